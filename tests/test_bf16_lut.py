"""bf16's lookup layout (native/kernels/bf16_lut_ref.c): where the kernels read it (AVX-512 VBMI), the engine repacks a
bf16 output matrix at load into 12 bits a value and reads only that copy. It must be lossless: the repack's bytes must
equal a numpy packer of the documented layout, a numpy unpacker of those bytes and the engine's own decode must give
every bf16 value back bit for bit (hard cases: +-0, subnormals, values far outside a row's usual exponents, rows of
zeros, rows of different scales), every kernel on it must equal the plain bf16 reference bit for bit, and a model's
logits must equal those of the plain bf16 kernels (TRITLM_ISA=avx512) on every path, its tied embedding rows too."""

import os

import numpy as np
import pytest

from tests.test_kernels import RNG, run_float, run_typed
from tests.test_sparse_decode import TEXT
from tritlm.converter import synth
from tritlm.converter.presets import PRESETS
from tritlm.converter.write import convert
from tritlm.runtime import Model
from tritlm.runtime._native import ffi, lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LUT_ISA = "avx512vbmi"  # the kernel set that reads bf16 repacked


def engine_reads_lut() -> bool:
    """Whether the engine's kernel set reads the lookup layouts (VBMI's, and AMX's, which adds i2_s tiles to it)."""
    return ffi.string(lib.tl_isa()).decode() in (LUT_ISA, "amx")


BF16_LUT = 0x10000 + 30  # the layout's engine-internal type id (kernels.h: TL_BF16_LUT)


GROUP = 4  # rows interleaved in a group


def header_at(r: int, row_bytes: int) -> int:
    """Where row r's header starts: its group's start, then the headers of the group's rows before it."""
    return r // GROUP * GROUP * row_bytes + r % GROUP * 64


def pack_lut(bf16: np.ndarray) -> np.ndarray:
    """The layout from docs/format.md, as one flat uint8 array: per row a 64-byte header (table of the 16 most frequent
    high bytes, most first, ties and the unused slots by byte value; int64 offset of the row's exception list from
    its header; int32 its length) and per 64 values their low bytes and 32 bytes of codes (value m low nibble, 32 + m
    high); the rows in groups of 4 (the last filled up with zero rows): the group's headers, then block 0 of each of
    its rows, block 1 of each, ...; then each row's exceptions (uint32 column, uint16 value, 2 zero bytes) after the
    last group."""
    rows, cols = bf16.shape
    row_bytes = 64 + cols // 64 * 96
    groups = -(-rows // GROUP)
    headers = np.zeros((groups * GROUP, 64), np.uint8)
    blocks = np.zeros((groups * GROUP, cols // 64, 96), np.uint8)
    lists = []
    at = groups * GROUP * row_bytes
    for r in range(rows):
        high, low = (bf16[r] >> 8).astype(np.uint8), (bf16[r] & 0xFF).astype(np.uint8)
        count = np.bincount(high, minlength=256)
        table = np.lexsort((np.arange(256), -count))[:16].astype(np.uint8)  # by count, most first, then by byte
        code = np.full(256, 16, np.int64)
        code[table] = np.arange(16)
        c = code[high]
        outside = np.flatnonzero(c == 16)
        c[outside] = 0
        entries = np.zeros((len(outside), 8), np.uint8)
        entries[:, :4] = outside.astype("<u4").view(np.uint8).reshape(-1, 4)
        entries[:, 4:6] = bf16[r, outside].astype("<u2").view(np.uint8).reshape(-1, 2)
        lists.append(entries.reshape(-1))
        headers[r, :16] = table
        headers[r, 16:24] = np.array([at - header_at(r, row_bytes) if len(outside) else 0], "<i8").view(np.uint8)
        headers[r, 24:28] = np.array([len(outside)], "<i4").view(np.uint8)
        at += 8 * len(outside)
        blocks[r, :, :64] = low.reshape(-1, 64)
        cb = c.reshape(-1, 2, 32).astype(np.uint8)
        blocks[r, :, 64:] = cb[:, 0] | cb[:, 1] << 4
    interleaved = blocks.reshape(groups, GROUP, -1, 96).transpose(0, 2, 1, 3)  # [group][block][row][byte]
    out = np.concatenate([headers.reshape(groups, -1), interleaved.reshape(groups, -1)], axis=1)
    return np.concatenate([out.reshape(-1), *lists])


def unpack_lut(packed: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The bf16 values back from the layout's bytes, by the documented layout alone."""
    row_bytes = 64 + cols // 64 * 96
    groups = -(-rows // GROUP)
    grouped = packed[: groups * GROUP * row_bytes].reshape(groups, -1)
    headers = grouped[:, : GROUP * 64].reshape(-1, 64)
    blocks = grouped[:, GROUP * 64 :].reshape(groups, -1, GROUP, 96)  # [group][block][row][byte]
    blocks = blocks.transpose(0, 2, 1, 3).reshape(groups * GROUP, -1, 96)
    out = np.zeros((rows, cols), np.uint16)
    for r in range(rows):
        table = headers[r, :16]
        codes = np.stack([blocks[r, :, 64:] & 15, blocks[r, :, 64:] >> 4], axis=1).reshape(-1)
        out[r] = table[codes].astype(np.uint16) << 8 | blocks[r, :, :64].reshape(-1)
        offset, n = int(headers[r, 16:24].view("<i8")[0]), int(headers[r, 24:28].view("<i4")[0])
        start = header_at(r, row_bytes) + offset
        entries = packed[start : start + 8 * n].reshape(-1, 8) if n else np.zeros((0, 8), np.uint8)
        out[r, entries[:, :4].copy().view("<u4").reshape(-1)] = entries[:, 4:6].copy().view("<u2").reshape(-1)
    return out


def hard_matrix(rows: int, cols: int) -> np.ndarray:
    """bf16 rows like an output matrix's (normal values of one scale per row, the scales far apart), with the hard
    cases: +0 and -0, subnormals of both signs, values far below and far above the row's usual exponents (more than 16
    high bytes in a row: exceptions, some sharing a 32-value step), a row of zeros, a row of -0, the largest finite
    values and a row of only exceptions' kinds of bytes."""
    scales = 2.0 ** RNG.integers(-30, 30, rows)
    f = (RNG.standard_normal((rows, cols)) * scales[:, None]).astype(np.float32)
    bf16 = (f.view(np.uint32) >> 16).astype(np.uint16)
    for r in range(rows):
        spots = RNG.choice(cols, 12, replace=False)
        bf16[r, spots[:2]] = [0x0000, 0x8000]  # +0, -0
        bf16[r, spots[2:4]] = [0x0001, 0x807F]  # subnormals
        bf16[r, spots[4:6]] = [0x0101, 0x8200]  # tiny normals
        bf16[r, spots[6:8]] = [0x7F7F, 0xFF7F]  # the largest finite values
        bf16[r, spots[8:10]] = [0x3F80, 0xC000]  # 1, -2
        bf16[r, spots[10:]] = RNG.integers(0, 0x7F80, 2)  # anything finite
    special = [np.zeros(cols, np.uint16), np.full(cols, 0x8000, np.uint16)]  # all +0, all -0
    special.append(bf16[-1].copy())
    special[-1][5:37] = np.arange(32) << 10 & 0x7F00 | 1  # 32 distinct high bytes in one step of 32
    for i, row in enumerate(special[:rows]):
        bf16[rows - 1 - i * rows // 3] = row  # spread over the tiles
    return bf16


def lut_isas():
    """[LUT_ISA] where this CPU runs it (simd_isas() lists only the file types' kernel sets)."""
    one = np.zeros((1, 64), np.uint16)
    return [LUT_ISA] if run_lut(LUT_ISA, one, np.zeros((1, 64), np.float32)) is not None else []


def repack(bf16: np.ndarray):
    """(the engine's packed bytes, its scalar decode as bf16)"""
    rows, cols = bf16.shape
    size = lib.tl_bf16_lut_repack(ffi.from_buffer(bf16), rows, cols, ffi.NULL, 0, ffi.NULL)
    assert size > 0
    packed, values = np.zeros(size, np.uint8), np.zeros((rows, cols), np.float32)
    assert (
        lib.tl_bf16_lut_repack(
            ffi.from_buffer(bf16), rows, cols, ffi.from_buffer(packed), size, ffi.from_buffer("float[]", values)
        )
        == size
    )
    return packed, (values.view(np.uint32) >> 16).astype(np.uint16)


def run_lut(isa, bf16, x):
    """tl_matmul_float on the layout's type: bf16 repacked as the engine does, then the ISA's kernel for it."""
    return run_typed(isa, BF16_LUT, bf16, bf16.shape[0], bf16.shape[1], x)


@pytest.mark.parametrize("rows,cols", [(5, 64), (9, 128), (7, 192), (11, 2560), (3, 6912)])
def test_repack_is_the_documented_layout_and_lossless(rows, cols):
    bf16 = hard_matrix(rows, cols)
    want = pack_lut(bf16)
    packed, values = repack(bf16)
    lists_at = -(-rows // GROUP) * GROUP * (64 + cols // 64 * 96)  # past the last group
    assert np.count_nonzero(packed[lists_at:]) > 0  # some rows have exceptions
    np.testing.assert_array_equal(packed, want)
    np.testing.assert_array_equal(unpack_lut(want, rows, cols), bf16)  # the numpy pair: lossless by the spec
    np.testing.assert_array_equal(values, bf16)  # the engine's decode (the tied embedding lookup)


def test_one_wrong_weight_is_caught():
    """The checks above can fail: one value changed after packing decodes to something else."""
    bf16 = hard_matrix(4, 128)
    packed = pack_lut(bf16)
    packed[GROUP * 64 + 7] ^= 1  # row 0's value 7's low byte: its block 0 follows the group's headers
    assert not np.array_equal(unpack_lut(packed, 4, 128), bf16)


def test_output_matrix_sized():
    """A trained-like row (one scale, 2560 values) needs no exceptions: 3904 bytes against bf16's 5120."""
    f = (RNG.standard_normal((64, 2560)) * 0.02).astype(np.float32)
    bf16 = (f.view(np.uint32) >> 16).astype(np.uint16)
    packed, values = repack(bf16)
    np.testing.assert_array_equal(values, bf16)
    assert len(packed) <= 64 * 3904 + 8 * 64  # 12.2 bits a value, and ~1 exception a row at most


@pytest.mark.parametrize(
    "rows,cols,n",
    [(1, 64, 1), (37, 128, 1), (37, 192, 2), (13, 256, 3), (45, 1280, 4), (70, 768, 5), (38, 2560, 6), (22, 1280, 7),
     (1023, 512, 8), (29, 512, 13), (640, 2560, 1), (413, 2560, 9), (17, 2560, 16), (61, 6912, 4), (3, 2560, 8),
     (21, 6912, 11)],
)  # fmt: skip
def test_lut_kernels_equal_the_bf16_reference(rows, cols, n):
    """The layout's reference and each SIMD kernel on it against the bf16 reference (checked against numpy in
    test_kernels.py) bit for bit: the same weights in the same canonical order. 1-16 tokens (tiles of 1-4 tokens and
    their remainders; 5-8, 9, 11, 13 and 16 as batched decode passes them: from 8, 2 x 8 tiles over chunks of 256
    columns, exceptions in most chunks, then single rows), rows of one to 108 blocks, most row counts
    ending in a part group (1023: the last group holds 3 rows), each matrix in two calls whose second starts at a row
    past 0 (tl_matmul_float cuts rows as the engine does)."""
    bf16 = hard_matrix(rows, cols)
    big = (bf16 & 0x7FFF) > 0x5F7F  # sums of the largest finite values would overflow: below 2^64 instead
    bf16[big] = bf16[big] & 0x80FF | 0x5F00
    x = RNG.standard_normal((n, cols)).astype(np.float32)
    expect = run_float("ref", "bf16", bf16, rows, cols, x)
    assert np.isfinite(expect).all()
    for isa in ["ref"] + lut_isas():
        got = run_lut(isa, bf16, x)
        assert got is not None, isa
        assert np.array_equal(got.view(np.uint32), expect.view(np.uint32)), isa


def test_isas_without_the_layout_refuse():
    bf16 = np.zeros((1, 64), np.uint16)
    x = np.zeros((1, 64), np.float32)
    assert run_lut("avx512", bf16, x) is None
    assert run_lut("ref", np.zeros((1, 48), np.uint16), np.zeros((1, 48), np.float32)) is None  # cols % 64


@pytest.fixture(scope="module")
def bf16_file(tmp_path_factory):
    """The embedded model (tied bf16 embedding, 4096 x 256) as i2_s."""
    out = tmp_path_factory.mktemp("bf16_lut")
    path = str(out / "embedded.gguf")
    convert(os.path.join(ROOT, "models", "bitnet-tiny"), path, "i2_s", progress=False)
    return path


def every_path(path: str, use_mmap: bool = False) -> dict[str, np.ndarray]:
    """Logits of one model on every forward path that reads the output matrix, and embedding lookups across the
    vocabulary."""
    out = {}
    for sparse in (True, False):
        with Model(path, threads=2, sparse=sparse, use_mmap=use_mmap) as m:
            ids = m.tokenize(TEXT)[:12]
            with m.new_sequence() as seq:  # one token at a time
                out[f"decode sparse={sparse}"] = np.array([m.decode([seq], [t])[0] for t in ids])
            if sparse:
                continue
            with m.new_sequence() as seq:
                out["prefill last"] = m.prefill(seq, ids)
            out["logits"] = m.logits(ids)
            seqs = [m.new_sequence() for _ in range(16)]  # sixteen sequences a pass
            out["batched"] = np.array([m.decode(seqs, [t] + list(range(15))) for t in ids[:3]])
            for s in seqs:
                s.close()
            # embedding rows across the vocabulary (decoded from the packed matrix when repacked)
            out["spread tokens"] = m.logits(list(range(0, m.n_vocab, m.n_vocab // 256)))
    return out


def no_huge_pages(monkeypatch):
    """Model then reads the file's read-only mapping instead of its own copy: the engine packs into new memory."""
    import tritlm.runtime.model

    monkeypatch.setattr(tritlm.runtime.model, "huge_pages_available", lambda: False)


@pytest.fixture(scope="module")
def odd_vocab_file(tmp_path_factory):
    """A synthetic tiny model (tied bf16 embedding) of 1023 tokens: the layout's last group holds 3 rows, in the last
    of the engine's row chunks."""
    out = tmp_path_factory.mktemp("bf16_lut_odd")
    checkpoint = synth.write_checkpoint(str(out / "hf"), dict(PRESETS["tiny"], vocab_size=1023), "packed", 0)
    path = str(out / "odd.gguf")
    convert(checkpoint, path, "i2_s", progress=False)
    return path


@pytest.mark.parametrize("file", ["bf16_file", "odd_vocab_file"])
def test_model_logits_equal_the_bf16_kernels(file, request, monkeypatch):
    """Repacked over the model's copy of the file (the default) and into new memory (no copy), against the bf16
    kernels: --mmap (not repacked) and TRITLM_ISA=avx512 (no VBMI kernels)."""
    if not engine_reads_lut():
        pytest.skip(f"this CPU has no {LUT_ISA}: the engine reads bf16 as the file has it")
    gguf = request.getfixturevalue(file)
    in_place = every_path(gguf)
    mapped = every_path(gguf, use_mmap=True)
    with monkeypatch.context() as patch:
        no_huge_pages(patch)
        new_memory = every_path(gguf)
    monkeypatch.setenv("TRITLM_ISA", "avx512")  # the same engine without the repack
    plain = every_path(gguf)
    for path, logits in plain.items():
        assert np.isfinite(logits).all() and logits.std() > 0, path
        for name, other in (("in place", in_place), ("new memory", new_memory), ("mmap", mapped)):
            assert np.array_equal(other[path], logits), (name, path)


def test_bf16_pages_are_released(bf16_file, monkeypatch):
    """Memory holds one form of the matrix (/proc/self/pagemap's present bit over its whole pages, after lookups):
    packed over the model's copy, the pages past the packed bytes are dropped; packed into new memory (no copy), all
    of the file mapping's; with --mmap the file's bf16 is read."""
    if not engine_reads_lut() or not os.path.exists("/proc/self/pagemap"):
        pytest.skip(f"needs {LUT_ISA} and Linux's pagemap")
    page = os.sysconf("SC_PAGE_SIZE")

    def mapped_pages(use_mmap: bool = False) -> tuple[int, int, int]:
        """(whole pages of the packed part, of them mapped in, of the rest mapped in)"""
        with Model(bf16_file, threads=2, use_mmap=use_mmap) as m, open("/proc/self/pagemap", "rb") as pagemap:
            embd = next(t for t in m._file.tensors if t.name == "token_embd.weight")
            start, end, packed = m._origin + embd.offset, m._origin + embd.offset + embd.nbytes, m.output_bytes
            m.logits([0, 5, 7, 4000])

            def present(addr):
                pagemap.seek(addr // page * 8)
                return int.from_bytes(pagemap.read(8), "little") >> 63

            head = range(-(-start // page) * page, start + packed - page + 1, page)
            tail = range(-(-(start + packed) // page) * page, end - page + 1, page)
            assert len(head) > 300 and (len(tail) > 50 or packed == embd.nbytes)
            return len(head), sum(present(a) for a in head), sum(present(a) for a in tail)

    head, in_head, in_tail = mapped_pages()
    assert in_head == head and in_tail == 0  # packed over the copy: the rest dropped
    with monkeypatch.context() as patch:
        no_huge_pages(patch)
        _, in_head, in_tail = mapped_pages()
    assert in_head == in_tail == 0  # packed elsewhere: the file's pages left
    _, in_head, _ = mapped_pages(use_mmap=True)
    assert in_head > 0  # --mmap: bf16 read from the file's pages


def test_bench_counts_the_bytes_read(bf16_file, monkeypatch):
    """`tritlm bench`'s weights/token counts the output matrix as the engine reads it: the numpy packer's bytes when
    repacked, the file's bf16 with --mmap or without VBMI."""
    from tritlm.runtime.bench import weight_layout

    with Model(bf16_file, threads=1) as m:
        embd = next(t for t in m._file.tensors if t.name == "token_embd.weight")
        bf16 = m._file.view(embd).view(np.uint16)
        repacked = engine_reads_lut()
        assert m.output_bytes == (len(pack_lut(bf16)) if repacked else embd.nbytes)
        _, file_bytes = weight_layout(bf16_file)
        read, linears = m.read_bytes(), 7 * m.hparams.n_layer  # i2_s linears are read without their 32-byte trailer
        assert read["token_embd.weight"] == m.output_bytes
        assert weight_layout(bf16_file, read_bytes=read)[1] == file_bytes - embd.nbytes + m.output_bytes - 32 * linears
    with Model(bf16_file, threads=1, use_mmap=True) as m:
        assert m.output_bytes == embd.nbytes


@pytest.mark.parametrize("outside", [0.01, 0.5])
def test_exceptional_matrices(bf16_file, tmp_path, monkeypatch, outside):
    """The embedded model with its tied matrix rewritten so a fraction of each row's values have high bytes outside
    its 16 most frequent: 1% are listed as exceptions (the packed form is the numpy packer's), half are too many (the
    matrix stays bf16); either way the logits equal the bf16 kernels'."""
    if not engine_reads_lut():
        pytest.skip(f"this CPU has no {LUT_ISA}")
    from tritlm.runtime.gguf import read_gguf

    path = str(tmp_path / "exceptional.gguf")
    with open(bf16_file, "rb") as f:
        data = bytearray(f.read())
    with read_gguf(bf16_file) as g:
        embd = next(t for t in g.tensors if t.name == "token_embd.weight")
        bf16 = g.view(embd).view(np.uint16).copy()
    odd = RNG.random(bf16.shape) < outside
    bf16[odd] = (RNG.integers(0x2000, 0x4000, odd.sum()) | RNG.integers(0, 2, odd.sum()) << 15).astype(np.uint16)
    data[embd.offset : embd.offset + embd.nbytes] = bf16.tobytes()
    with open(path, "wb") as f:
        f.write(data)

    def logits():
        with Model(path, threads=2) as m:
            with m.new_sequence() as seq:
                one = np.array([m.decode([seq], [t])[0] for t in (1, 7, 4000)])
            seqs = [m.new_sequence() for _ in range(5)]
            five = m.decode(seqs, [3, 9, 27, 81, 243])
            for s in seqs:
                s.close()
            return one, five, m.output_bytes

    one, five, read = logits()
    assert read == (len(pack_lut(bf16)) if outside < 0.1 else embd.nbytes)
    monkeypatch.setenv("TRITLM_ISA", "avx512")
    plain_one, plain_five, _ = logits()
    assert np.array_equal(one, plain_one) and np.array_equal(five, plain_five)
    assert np.isfinite(one).all()
