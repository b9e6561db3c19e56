"""tq2_0 linears repacked as i2_s at load (native/kernels/i2_s_ref.c, native/model.c's repack_linears): the same 2-bit
codes with each byte's four fields reversed and the blocks' d dropped, since the kernels take the tensor's one scale
apart. The repack must write the i2_s layout of docs/format.md (a numpy packer of it, from gguf-py's tq2_0 blocks),
into new memory and in place; and a tq2_0 model's logits must equal, bit for bit on every forward path, those of the
same checkpoint converted to i2_s and those of the tq2_0 kernels reading the file's blocks (--mmap keeps them), whether
the repack rewrote the private copy in place or wrote new memory."""

import os

import numpy as np
import pytest

from tests.test_kernels import RNG, pack_ternary, simd_isas
from tests.test_tq1_0_lut import every_path
from tritlm.converter.write import convert
from tritlm.runtime import Model
from tritlm.runtime._native import ffi, lib
from tritlm.runtime.gguf import read_gguf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pack_i2_s(ternary: np.ndarray) -> np.ndarray:
    """docs/format.md's i2_s rows: per 128 values, byte j holds values j, j + 32, j + 64, j + 96 at bits 6, 4, 2, 0 as
    code = value + 1."""
    codes = (ternary + 1).astype(np.uint8).reshape(-1, 4, 32)
    return (codes << np.array([6, 4, 2, 0], np.uint8)[:, None]).sum(axis=1, dtype=np.uint8).ravel()


@pytest.mark.parametrize("rows,cols", [(1, 256), (3, 512), (5, 2560), (2, 6912)])
def test_repack_writes_the_i2_s_layout(rows, cols):
    """gguf-py's tq2_0 blocks, with arbitrary d, into new memory and over themselves: the i2_s bytes of the matrix."""
    ternary = RNG.integers(-1, 2, (rows, cols), dtype=np.int8)
    blocks = pack_ternary("tq2_0", ternary).reshape(-1, 66)
    blocks[:, 64:] = RNG.integers(0, 256, (len(blocks), 2), dtype=np.uint8)  # d is dropped, whatever it holds
    want = pack_i2_s(ternary)
    out = np.zeros(rows * cols // 4, np.uint8)
    lib.tl_i2_s_from_tq2_0(ffi.from_buffer(blocks), len(blocks), ffi.from_buffer(out))
    np.testing.assert_array_equal(out, want)
    in_place = blocks.ravel().copy()
    lib.tl_i2_s_from_tq2_0(ffi.from_buffer(in_place), len(blocks), ffi.from_buffer(in_place))
    np.testing.assert_array_equal(in_place[: len(want)], want)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """{(model, type): GGUF}: the embedded model and 2B-4T's widths in one layer with a small vocabulary, each as tq2_0
    and i2_s from one checkpoint."""
    from tritlm.converter import synth
    from tritlm.converter.presets import PRESETS

    out = tmp_path_factory.mktemp("tq2_0_repack")
    wide = synth.write_checkpoint(str(out / "wide"), dict(PRESETS["2b-4t"], num_hidden_layers=1, vocab_size=1024))
    sources = {"embedded": os.path.join(ROOT, "models", "bitnet-tiny"), "wide": wide}
    paths = {}
    for name, src in sources.items():
        for t in ("tq2_0", "i2_s"):
            paths[name, t] = str(out / f"{name}-{t}.gguf")
            convert(src, paths[name, t], t, progress=False)
    return paths


def linear_bytes(path: str, per_256: int) -> dict[str, int]:
    """Each linear of a file at per_256 bytes per 256 values (i2_s: 64, tq2_0: 66)."""
    with read_gguf(path) as f:
        return {
            t.name: t.rows * t.cols // 256 * per_256 for t in f.tensors if t.type_name in ("tq2_0", "i2_s", "tq1_0")
        }


def linears_read(m: Model) -> dict[str, int]:
    """The linears' bytes as the engine reads them (Model.read_bytes, which `tritlm bench` counts)."""
    return {name: n for name, n in m.read_bytes().items() if name.startswith("blk.")}


@pytest.mark.parametrize("name", ["embedded", "wide"])
def test_model_logits_equal_i2_s_and_the_tq2_0_kernels(files, name, monkeypatch):
    tq2_0, i2_s = files[name, "tq2_0"], files[name, "i2_s"]
    expect = every_path(i2_s)
    file_blocks = every_path(tq2_0, use_mmap=True)  # read in place: the tq2_0 kernels
    repacked = every_path(tq2_0)  # in the private copy, in place where the system has huge pages
    monkeypatch.setattr("tritlm.runtime.model.huge_pages_available", lambda: False)
    new_memory = every_path(tq2_0)  # the file mapping is read-only: repacked into new memory
    with Model(tq2_0, threads=1) as m:
        assert m._copy is None and linears_read(m) == linear_bytes(tq2_0, 64)
    for path, logits in expect.items():
        assert np.isfinite(logits).all() and logits.std() > 0, path
        for got in (file_blocks, repacked, new_memory):
            assert np.array_equal(got[path].view(np.uint32), logits.view(np.uint32)), path
    # the engine read what it says: i2_s's bytes after the repack, tq2_0's with --mmap
    monkeypatch.undo()
    with Model(tq2_0, threads=1) as m:
        assert linears_read(m) == linear_bytes(tq2_0, 64)
    with Model(tq2_0, threads=1, use_mmap=True) as m:
        assert linears_read(m) == linear_bytes(tq2_0, 66)


@pytest.mark.parametrize("isa", ["ref"] + simd_isas())
def test_every_isa_repacks_exactly(files, isa, monkeypatch):
    monkeypatch.setenv("TRITLM_ISA", isa)
    path = files["embedded", "tq2_0"]
    with Model(path, threads=2, use_mmap=True) as kept, Model(path, threads=2) as repacked:
        assert linears_read(repacked) == linear_bytes(path, 64)
        ids = kept.tokenize("The capital of France is Paris, and the capital of Italy is")
        assert np.array_equal(repacked.logits(ids).view(np.uint32), kept.logits(ids).view(np.uint32))
