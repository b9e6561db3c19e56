"""tq1_0's lookup layout (native/kernels/tq1_0_lut_ref.c): where the kernels read it (AVX-512 VBMI), the engine repacks
every tq1_0 linear at load and reads only that copy, in row groups (TL_TQ1_0_LUT_R4: each 4 rows' spans interleaved,
then their tails) but for a relu² up_proj read by row lists and under --mmap. The repack's bytes must equal a numpy
packer of the documented layout, its scalar decode must give the ternary matrix back, every kernel on it, in rows and
in groups (all rows, listed rows; 1 to 13 tokens) must equal the tq1_0 reference bit for bit, and a model's logits
must equal those of the tq1_0 kernels that read the file's own blocks (TRITLM_ISA=avx512) on every path: decode with
and without relu² sparsity, batched decode, prefill."""

import os

import numpy as np
import pytest

from tests.test_bf16_lut import LUT_ISA, engine_reads_lut
from tests.test_kernels import RNG, group_rows, pack_ternary, run_ternary
from tests.test_sparse_decode import TEXT
from tritlm.converter.write import convert
from tritlm.runtime import Model
from tritlm.runtime._native import ffi, lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pack_lut(ternary: np.ndarray) -> np.ndarray:
    """The layout from docs/format.md: per 192 values, 64 five-bit fields c0 + 3 c1 + 9 c2 (codes of values g, g + 64,
    g + 128) at bits 5g of 40 bytes; then the rest, 16 bytes per 64 values, byte m holding value 16n + m at bits 2n."""
    rows, cols = ternary.shape
    spans, codes = cols // 192, (ternary + 1).astype(np.uint32)
    c = codes[:, : spans * 192].reshape(rows, spans, 3, 64)
    fields = c[:, :, 0] + 3 * c[:, :, 1] + 9 * c[:, :, 2]
    bits = ((fields[..., None] >> np.arange(5)) & 1).astype(np.uint8).reshape(rows, spans, 320)
    span_bytes = np.packbits(bits, axis=-1, bitorder="little").reshape(rows, spans * 40)
    tail = codes[:, spans * 192 :].reshape(rows, -1, 4, 16) << (2 * np.arange(4))[:, None]
    return np.concatenate([span_bytes, tail.sum(axis=2).astype(np.uint8).reshape(rows, -1)], axis=1)


def lut_isas():
    """[LUT_ISA] where this CPU runs it (simd_isas() lists only the file types' kernel sets)."""
    one = np.zeros(54, np.uint8)  # one row of 256 values: a tq1_0 block
    return (
        [LUT_ISA]
        if run_lut(LUT_ISA, one, 1, 256, np.zeros((1, 256), np.int8), np.ones(1, np.float32), 1.0) is not None
        else []
    )


def run_lut(isa, packed, rows, cols, x, x_scale, w_scale, listed=None, group=1):
    """tl_matmul_tq1_0_lut: the repack of tq1_0 bytes in rows (group 1) or row groups (4), then the ISA's kernel on it
    (all rows in two calls cut at rows / 2, or the listed ones)."""
    y = np.full((x.shape[0], rows), np.nan, np.float32)
    rc = lib.tl_matmul_tq1_0_lut(
        isa.encode(),
        group,
        ffi.from_buffer(packed),
        rows,
        cols,
        ffi.from_buffer("int8_t[]", x),
        ffi.from_buffer("float[]", x_scale),
        x.shape[0],
        w_scale,
        ffi.NULL if listed is None else ffi.from_buffer("int32_t[]", listed),
        0 if listed is None else len(listed),
        ffi.from_buffer("float[]", y),
    )
    return y if rc == 0 else None


def repack(isa, group, tq1_0, rows, cols, packed, values=None):
    """tl_tq1_0_lut_repack: its return code; packed (and values, for rows) filled."""
    return lib.tl_tq1_0_lut_repack(
        isa.encode(),
        group,
        ffi.from_buffer(tq1_0),
        rows,
        cols,
        ffi.from_buffer(packed),
        ffi.NULL if values is None else ffi.from_buffer("int8_t[]", values),
    )


@pytest.mark.parametrize("rows,cols", [(3, 256), (5, 512), (4, 768), (7, 2560), (2, 6912), (8, 2560), (12, 6912)])
def test_repack_is_the_documented_layout(rows, cols):
    """The scalar packer and each SIMD one write the numpy packer's bytes, which the scalar decode turns back into
    the matrix; in row groups, the numpy grouping of those bytes (rows a multiple of 4, else refused)."""
    ternary = RNG.integers(-1, 2, (rows, cols), dtype=np.int8)
    want = pack_lut(ternary)
    tq1_0 = pack_ternary("tq1_0", ternary)
    for isa in ["ref"] + lut_isas():
        packed, values = np.zeros_like(want), np.zeros((rows, cols), np.int8)
        assert repack(isa, 1, tq1_0, rows, cols, packed, values) == 0, isa
        np.testing.assert_array_equal(packed, want, err_msg=isa)
        np.testing.assert_array_equal(values, ternary, err_msg=isa)
        grouped = np.zeros_like(want)
        if rows % 4:
            assert repack(isa, 4, tq1_0, rows, cols, grouped) == -1, isa
            continue
        assert repack(isa, 4, tq1_0, rows, cols, grouped) == 0, isa
        np.testing.assert_array_equal(
            grouped.ravel(), group_rows(want, rows, 40, cols // 192), err_msg=f"{isa} grouped"
        )
        assert rows == 4 or not np.array_equal(grouped, want)
    assert want.shape[1] == cols // 192 * 40 + cols % 192 // 4  # 2560: 536 bytes a row, 6912: 1440 (tq1_0: 540, 1458)


@pytest.mark.parametrize("group", [1, 4])
@pytest.mark.parametrize(
    "rows,cols,n",
    [(1, 256, 1), (37, 512, 1), (37, 512, 2), (13, 768, 3), (45, 1280, 4), (70, 768, 5), (29, 512, 13),
     (640, 2560, 1), (413, 2560, 9), (2560, 6912, 1), (61, 6912, 4), (6, 33024, 2), (5, 16384 + 256, 6)],
)  # fmt: skip
def test_lut_kernels_equal_the_tq1_0_reference(rows, cols, n, group):
    """The layout's scalar reference and each SIMD kernel on it, in rows and in row groups, against the tq1_0 reference
    kernel (itself checked against numpy in test_kernels.py): rows of whole spans and of 64 or 128 tail values, 1-4
    tokens (decoded in the tile), more (through the code buffer), and rows longer than that buffer. In groups the rows
    are 8k + 4, so that the probe's cut at rows / 2 falls inside a group (the rows around it go through the row list)."""
    rows = rows if group == 1 else rows // 8 * 8 + 4
    ternary, x = RNG.integers(-1, 2, (rows, cols), dtype=np.int8), RNG.integers(-128, 128, (n, cols), dtype=np.int8)
    x_scale = RNG.uniform(0.5, 50, n).astype(np.float32)
    packed = pack_ternary("tq1_0", ternary)
    expect = run_ternary("ref", "tq1_0", packed, rows, cols, x, x_scale, 0.37)
    isum = (x.astype(np.int64) @ ternary.T.astype(np.int64)).astype(np.float32)
    np.testing.assert_array_equal(expect, isum / x_scale[:, None] * np.float32(0.37))
    for isa in ["ref"] + lut_isas():
        got = run_lut(isa, packed, rows, cols, x, x_scale, 0.37, group=group)
        np.testing.assert_array_equal(got, expect, err_msg=f"{isa} group {group}")


@pytest.mark.parametrize("group", [1, 4])
@pytest.mark.parametrize("n_tokens", [1, 3, 8])
@pytest.mark.parametrize("n_rows,cols,kept", [(64, 256, 1), (64, 512, 5), (300, 768, 97), (1000, 2560, 400)])
def test_lut_row_list_equals_dense_rows(n_tokens, n_rows, cols, kept, group):
    """The row-list entry (a relu² model's up_proj where some token's relu(gate) > 0) on the layout, in rows or groups:
    the dense values at the listed rows for every token, nothing written elsewhere."""
    ternary = RNG.integers(-1, 2, (n_rows, cols), dtype=np.int8)
    x = RNG.integers(-128, 128, (n_tokens, cols), dtype=np.int8)
    x_scale = RNG.uniform(0.2, 50, n_tokens).astype(np.float32)
    packed = pack_ternary("tq1_0", ternary)
    dense = run_ternary("ref", "tq1_0", packed, n_rows, cols, x, x_scale, 0.0123)
    listed = np.sort(RNG.choice(n_rows, kept, replace=False)).astype(np.int32)
    for isa in ["ref"] + lut_isas():
        got = run_lut(isa, packed, n_rows, cols, x, x_scale, 0.0123, listed, group)
        np.testing.assert_array_equal(got[:, listed], dense[:, listed], err_msg=isa)
        assert np.isnan(np.delete(got, listed, axis=1)).all(), isa


def test_extreme_sums_are_exact():
    """All +1 / all -1 rows against all -128 / 127 activations at 32768 values: |sum| up to 2^22, exact."""
    cols = 32768
    ternary = np.repeat(np.array([[1], [-1], [0], [1]], np.int8), cols, axis=1)
    x = np.stack([np.full(cols, -128, np.int8), np.full(cols, 127, np.int8)])
    expect = (x.astype(np.int64) @ ternary.T.astype(np.int64)).astype(np.float32)
    for isa in ["ref"] + lut_isas():
        np.testing.assert_array_equal(
            run_lut(isa, pack_ternary("tq1_0", ternary), 4, cols, x, np.ones(2, np.float32), 1.0), expect, err_msg=isa
        )


def test_isas_without_the_layout_refuse():
    ternary = np.zeros((1, 256), np.int8)
    x = np.zeros((1, 256), np.int8)
    assert run_lut("avx512", pack_ternary("tq1_0", ternary), 1, 256, x, np.ones(1, np.float32), 1.0) is None
    assert run_lut("ref", pack_ternary("tq1_0", ternary)[:-1], 1, 200, x, np.ones(1, np.float32), 1.0) is None


@pytest.fixture(scope="module")
def tq1_0_files(tmp_path_factory):
    """The embedded model (rows of 256 = one span + 64 tail values, and of 768 = 4 spans) and 2B-4T's widths in one
    layer with a small vocabulary (2560 = 13 spans + 64, 6912 = 36 spans), as tq1_0."""
    from tritlm.converter import synth
    from tritlm.converter.presets import PRESETS

    out = tmp_path_factory.mktemp("tq1_0_lut")
    wide = synth.write_checkpoint(str(out / "wide"), dict(PRESETS["2b-4t"], num_hidden_layers=1, vocab_size=1024))
    files = {"embedded": str(out / "embedded.gguf"), "wide": str(out / "wide.gguf")}
    convert(os.path.join(ROOT, "models", "bitnet-tiny"), files["embedded"], "tq1_0", progress=False)
    convert(wide, files["wide"], "tq1_0", progress=False)
    return files


def every_path(path: str, **model_args) -> dict[str, np.ndarray]:
    """Logits of one model (Model(path, **model_args)) on every forward path that reads its linears."""
    out = {}
    for sparse in (True, False):
        with Model(path, threads=2, sparse=sparse, **model_args) as m:
            ids = m.tokenize(TEXT)[:12]
            with m.new_sequence() as seq:  # one token at a time: relu² up rows and sparse down_proj, or dense
                out[f"decode sparse={sparse}"] = np.array([m.decode([seq], [t])[0] for t in ids])
            if sparse:
                continue
            out["prefill"] = m.logits(ids)  # 12 tokens at once: the code buffer
            seqs = [m.new_sequence() for _ in range(3)]  # three sequences a pass: decoded in the tiles
            out["batched"] = np.array([m.decode(seqs, [t, ids[0], ids[-1]]) for t in ids])
            for s in seqs:
                s.close()
    return out


@pytest.mark.parametrize("name", ["embedded", "wide"])
def test_model_logits_equal_the_tq1_0_kernels(tq1_0_files, name, monkeypatch):
    if not engine_reads_lut():
        pytest.skip(f"this CPU has no {LUT_ISA}: the engine reads tq1_0 as the file has it")
    grouped = every_path(tq1_0_files[name])  # in row groups (up_proj in rows where one token reads it by row lists)
    lut_rows = every_path(tq1_0_files[name], use_mmap=True)  # --mmap: the layout in rows
    monkeypatch.setenv("TRITLM_ISA", "avx512")  # the same engine without the repack
    file_blocks = every_path(tq1_0_files[name])
    for path, logits in file_blocks.items():
        assert np.isfinite(logits).all() and logits.std() > 0, path
        for got in (grouped, lut_rows):
            assert np.array_equal(got[path].view(np.uint32), logits.view(np.uint32)), path


def test_file_pages_of_repacked_tensors_are_released(tq1_0_files):
    """Once copied, a tq1_0 linear's pages of the file mapping leave the process (madvise), so memory holds one form:
    no whole page inside any of them is mapped in after load (/proc/self/pagemap's present bit)."""
    if not engine_reads_lut() or not os.path.exists("/proc/self/pagemap"):
        pytest.skip(f"needs {LUT_ISA} and Linux's pagemap")
    page = os.sysconf("SC_PAGE_SIZE")
    with Model(tq1_0_files["embedded"], threads=2) as m, open("/proc/self/pagemap", "rb") as pagemap:
        base = m._origin
        linears = [t for t in m._file.tensors if t.type_name == "tq1_0"]
        assert len(linears) == 7 * m.hparams.n_layer

        def present(addr):
            pagemap.seek(addr // page * 8)
            return int.from_bytes(pagemap.read(8), "little") >> 63

        pages = [
            a
            for t in linears
            for a in range(-(-(base + t.offset) // page) * page, base + t.offset + t.nbytes - page + 1, page)
        ]
        assert len(pages) > 100
        assert not any(present(a) for a in pages)  # (the tied bf16 embedding's: tests/test_bf16_lut.py)
