"""i2_s in row groups (native/kernels/kernels.h's TL_I2_S_R4): where the kernels read it (x86), the engine repacks i2_s
and tq2_0 linears at load so that each 4 rows' 32-byte blocks sit side by side (row r's block b at r // 4 * 4 rows +
(4b + r % 4) blocks). The repack must write that layout (a numpy packer of it, from docs/format.md's i2_s rows), in new
memory and in place, from i2_s and from tq2_0; the layout's kernels must equal the i2_s reference bit for bit at every
tile shape (1-9 tokens, 4-row tiles and single rows, row lists); and a model's logits must not change on any forward
path whether it reads the groups or the file's rows (--mmap)."""

import numpy as np
import pytest

from tests.test_kernels import RNG, group_rows, pack_ternary, random_case, run_ternary, simd_isas
from tests.test_sparse_decode import run_rows
from tests.test_tq1_0_lut import every_path, tq1_0_files  # noqa: F401 (tq1_0_files: a fixture)
from tests.test_tq2_0_repack import files, linear_bytes, linears_read, pack_i2_s  # noqa: F401 (files: a fixture)
from tritlm.runtime import Model
from tritlm.runtime._native import ffi, lib
from tritlm.runtime.gguf import huge_pages_available, read_gguf

I2_S_R4 = 0x10000 + lib.TL_I2_S


def grouped_isas() -> list[str]:
    """The ISAs with kernels for the layout ("ref": its reference; the rest return -1 from the probe)."""
    ternary, x = random_case(4, 128, 1)
    packed = pack_ternary("i2_s", ternary)
    return [
        isa for isa in ["ref"] + simd_isas() if run_grouped(isa, packed, 4, 128, x, np.ones(1, np.float32)) is not None
    ]


def run_grouped(isa, packed, rows, cols, x, x_scale, w_scale=1.0):
    """tl_matmul_ternary on i2_s rows as the layout's kernels run them (the probe packs them first)."""
    y = np.empty((x.shape[0], rows), np.float32)
    rc = lib.tl_matmul_ternary(
        isa.encode(), I2_S_R4, ffi.from_buffer(packed), rows, cols, ffi.from_buffer("int8_t[]", x),
        ffi.from_buffer("float[]", x_scale), x.shape[0], w_scale, ffi.from_buffer("float[]", y),
    )  # fmt: skip
    return y if rc == 0 else None


def i2_s_pack(type_id, group, src, rows, cols, out):
    return lib.tl_i2_s_pack(type_id, group, ffi.from_buffer(src), rows, cols, ffi.from_buffer(out))


@pytest.mark.parametrize("group", [1, 4])
@pytest.mark.parametrize("rows,cols", [(4, 128), (8, 256), (12, 2560), (4, 6912)])
def test_repack_writes_row_groups(rows, cols, group):
    """From i2_s, tq2_0 (arbitrary d) and tq1_0 (arbitrary d), in rows or row groups, into new memory and over itself
    (i2_s and tq2_0, which i2_s is no larger than): the numpy packer's bytes."""
    ternary = RNG.integers(-1, 2, (rows, cols), dtype=np.int8)
    want = pack_i2_s(ternary)[: rows * cols // 4]
    want = group_rows(want, rows, 32, cols // 128) if group == 4 else want
    sources = {lib.TL_I2_S: pack_ternary("i2_s", ternary)}
    if cols % 256 == 0:
        for type_id, name, block in ((lib.TL_TQ2_0, "tq2_0", 66), (lib.TL_TQ1_0, "tq1_0", 54)):
            src = pack_ternary(name, ternary).reshape(-1, block)
            src[:, -2:] = RNG.integers(0, 256, (len(src), 2), dtype=np.uint8)
            sources[type_id] = src.ravel()
    for type_id, src in sources.items():
        out = np.zeros(rows * cols // 4, np.uint8)
        assert i2_s_pack(type_id, group, src, rows, cols, out) == 0
        np.testing.assert_array_equal(out, want, err_msg=str(type_id))
        if type_id == lib.TL_TQ1_0:
            continue
        in_place = src.copy()
        assert i2_s_pack(type_id, group, in_place, rows, cols, in_place) == 0
        np.testing.assert_array_equal(in_place[: len(want)], want, err_msg=f"{type_id} in place")


def test_repack_refuses_partial_groups_and_other_types():
    src = np.zeros(6 * 256, np.uint8)
    assert i2_s_pack(lib.TL_I2_S, 4, src, 6, 128, src) == -1
    assert i2_s_pack(lib.TL_I2_S, 2, src, 4, 128, src) == -1
    assert i2_s_pack(lib.TL_TQ1_0, 1, src, 1, 128, src) == -1  # tq1_0 rows are whole 256-value blocks
    assert i2_s_pack(lib.TL_Q8_0, 1, src, 4, 256, src) == -1


@pytest.mark.parametrize(
    "rows,cols,n",
    [(4, 128, 1), (8, 256, 2), (12, 512, 3), (16, 768, 4), (20, 1280, 5), (640, 2560, 1), (640, 2560, 7),
     (2560, 6912, 1), (8, 6912, 9), (416, 2560, 6)],  # the last: across two of the many-token kernels' row blocks
)  # fmt: skip
def test_grouped_kernels_equal_the_i2_s_reference(rows, cols, n):
    ternary, x = random_case(rows, cols, n)
    x_scale = RNG.uniform(0.5, 50, n).astype(np.float32)
    packed = pack_ternary("i2_s", ternary)
    expect = run_ternary("ref", "i2_s", packed, rows, cols, x, x_scale, 0.37)
    np.testing.assert_array_equal(
        expect, (x.astype(np.int64) @ ternary.T).astype(np.float32) / x_scale[:, None] * np.float32(0.37)
    )
    for isa in grouped_isas():
        np.testing.assert_array_equal(run_grouped(isa, packed, rows, cols, x, x_scale, 0.37), expect, err_msg=isa)


@pytest.mark.parametrize("n_tokens", [1, 3, 8])
def test_grouped_row_lists_equal_the_i2_s_reference(n_tokens):
    """The row-list entry (relu² up_proj rows) on the layout: single rows anywhere in their group."""
    n_rows, cols = 300, 768
    ternary, x = random_case(n_rows, cols, n_tokens)
    x_scale = RNG.uniform(0.2, 50, n_tokens).astype(np.float32)
    packed = pack_ternary("i2_s", ternary)
    rows = np.sort(RNG.choice(n_rows, 97, replace=False)).astype(np.int32)
    want = run_rows("ref", "i2_s", packed, n_rows, cols, rows, x, x_scale, 0.0123)
    for isa in grouped_isas():
        got = run_rows(isa, I2_S_R4, packed, n_rows, cols, rows, x, x_scale, 0.0123)
        np.testing.assert_array_equal(got[:, rows], want[:, rows], err_msg=isa)
        assert np.isnan(np.delete(got, rows, axis=1)).all(), isa


@pytest.mark.parametrize("name", ["embedded", "wide"])
def test_model_logits_equal_the_file_rows(files, name, monkeypatch):  # noqa: F811
    """An i2_s file read in row groups (in place in the private copy, or in new memory) and as the file's rows."""
    path = files[name, "i2_s"]
    expect = every_path(path, use_mmap=True)
    grouped = every_path(path)
    monkeypatch.setattr("tritlm.runtime.model.huge_pages_available", lambda: False)
    new_memory = every_path(path)
    for key, logits in expect.items():
        assert np.isfinite(logits).all() and logits.std() > 0, key
        for got in (grouped, new_memory):
            assert np.array_equal(got[key].view(np.uint32), logits.view(np.uint32)), key
    with Model(path, threads=1) as m:
        assert linears_read(m) == linear_bytes(path, 64)


@pytest.mark.skipif(not huge_pages_available(), reason="the private copy is made only with transparent huge pages")
@pytest.mark.parametrize("ttype", ["i2_s", "tq2_0"])
@pytest.mark.parametrize("sparse", [True, False])
def test_in_place_repack_rewrites_the_private_copy(files, ttype, sparse):  # noqa: F811
    """Each linear's bytes in Model's copy of the file now start with the i2_s file's bytes of that tensor in row
    groups where the engine's ISA reads them (else: i2_s rows, tq2_0 repacked as those), except a relu² up_proj that
    one token reads by row lists (the sparse decode), which keeps rows."""
    engine_groups = (
        run_grouped(
            ffi.string(lib.tl_isa()).decode(),
            np.zeros(32, np.uint8),
            4,
            128,
            np.zeros((1, 128), np.int8),
            np.ones(1, np.float32),
        )
        is not None
    )
    with read_gguf(files["embedded", "i2_s"]) as f:
        rows = {t.name: bytes(f.view(t)[: t.nbytes - 32]) for t in f.tensors if t.type_name == "i2_s"}
        shape = {t.name: (t.rows, t.cols) for t in f.tensors if t.type_name == "i2_s"}
    grouped = {k for k in rows if engine_groups and not (sparse and k.endswith("ffn_up.weight"))}
    assert any(k.endswith("ffn_up.weight") for k in rows) and (grouped or not engine_groups)
    want = {
        k: group_rows(np.frombuffer(v, np.uint8), shape[k][0], 32, shape[k][1] // 128).tobytes() if k in grouped else v
        for k, v in rows.items()
    }
    with Model(files["embedded", ttype], threads=1, sparse=sparse) as m:
        assert m._copy is not None
        linears = [t for t in m._file.tensors if t.type_name == ttype]
        assert len(linears) == 7 * m.hparams.n_layer
        for t in linears:
            got = bytes(ffi.buffer(ffi.cast("char *", m._origin + t.offset), len(want[t.name])))
            assert got == want[t.name], t.name


@pytest.mark.parametrize("name", ["embedded", "wide"])
def test_tq1_0_is_read_as_i2_s_on_avx2(tq1_0_files, name, monkeypatch):  # noqa: F811
    """Where tq1_0's own kernel decodes compute-bound (AVX2, and AVX2 with AVX-VNNI), tq1_0 linears are repacked as i2_s
    (64 bytes per 256 values): logits equal those of AVX2's tq1_0 kernel on the file's own blocks (--mmap) on every
    path. AVX-512 reads tq1_0 as the file has it (or in its lookup layout)."""
    path = tq1_0_files[name]
    if "avx2" not in simd_isas():
        pytest.skip("no AVX2 here: tq1_0 is read as the file has it")
    monkeypatch.setenv("TRITLM_ISA", "avx2")
    file_blocks = every_path(path, use_mmap=True)
    for isa in [isa for isa in ("avx2", "avxvnni") if isa in simd_isas()]:  # AVX-VNNI: i2_s on its own dot
        monkeypatch.setenv("TRITLM_ISA", isa)
        repacked = every_path(path)
        for key, logits in file_blocks.items():
            assert np.isfinite(logits).all() and logits.std() > 0, key
            assert np.array_equal(repacked[key].view(np.uint32), logits.view(np.uint32)), (isa, key)
        with Model(path, threads=1) as m:
            assert linears_read(m) == linear_bytes(path, 64), isa
    for isa, mmap in (("avx2", True), ("avx512", False)):
        if isa in simd_isas():
            monkeypatch.setenv("TRITLM_ISA", isa)
            with Model(path, threads=1, use_mmap=mmap) as m:
                assert linears_read(m) == linear_bytes(path, 54), isa
