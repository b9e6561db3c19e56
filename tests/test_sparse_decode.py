"""Exact activation sparsity in relu² models: a single decoded token computes up_proj only on the rows where
relu(gate) > 0 (the row-list entry of the ternary kernels) and runs down_proj over only its nonzero int8 inputs
(native/kernels/sparse_*.c over a by-input-channel copy of ffn_down). A skipped row's act(gate) * up is 0 and the
integer dot skips a zero exactly, so the logits must equal the dense path's bit for bit, on every ternary type,
while the path really skips most of the work."""

import os

import numpy as np
import pytest

from tests.test_kernels import RNG, TERNARY, pack_ternary, run_ternary, simd_isas
from tritlm.converter.write import convert
from tritlm.runtime import Model
from tritlm.runtime._native import ffi, lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TYPES = ["i2_s", "tq2_0", "tq1_0"]
TEXT = "def insort(a, x, lo=0, hi=None):\n    while lo < hi:\n        mid = (lo + hi) // 2\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_checkpoints):
    """{(model, type): GGUF}: the embedded trained model and the random tiny one (both relu²) in every type."""
    out = tmp_path_factory.mktemp("sparse")
    sources = {"embedded": os.path.join(ROOT, "models", "bitnet-tiny"), "random": tiny_checkpoints["packed"]}
    paths = {}
    for name, src in sources.items():
        for t in TYPES:
            paths[name, t] = str(out / f"{name}-{t}.gguf")
            convert(src, paths[name, t], t, progress=False)
    return paths


def run_rows(isa, name, packed, cols, rows, x, x_scale, w_scale, n_rows):
    y = np.full(n_rows, np.nan, np.float32)
    rc = lib.tl_matmul_ternary_rows(
        isa.encode(),
        TERNARY[name],
        ffi.from_buffer(packed),
        cols,
        ffi.from_buffer("int32_t[]", rows),
        len(rows),
        ffi.from_buffer("int8_t[]", x),
        x_scale,
        w_scale,
        ffi.from_buffer("float[]", y),
    )
    return y if rc == 0 else None


@pytest.mark.parametrize("name", TYPES)
@pytest.mark.parametrize("n_rows,cols,kept", [(64, 256, 1), (64, 512, 5), (300, 768, 97), (1000, 2048, 400)])
def test_row_list_kernel_equals_dense_rows(name, n_rows, cols, kept):
    """The row-list entry (up_proj where relu(gate) > 0) gives exactly the dense kernel's value at each listed row,
    on every ISA, and touches no other row."""
    ternary = RNG.integers(-1, 2, (n_rows, cols), dtype=np.int8)
    x = RNG.integers(-128, 128, (1, cols), dtype=np.int8)
    packed = pack_ternary(name, ternary)
    dense = run_ternary("ref", name, packed, n_rows, cols, x, np.float32([0.37]), 0.0123)[0]
    rows = np.sort(RNG.choice(n_rows, kept, replace=False)).astype(np.int32)
    for isa in ["ref"] + simd_isas():
        got = run_rows(isa, name, packed, cols, rows, x[0], 0.37, 0.0123, n_rows)
        np.testing.assert_array_equal(got[rows], dense[rows], err_msg=isa)
        assert np.isnan(np.delete(got, rows)).all(), isa


def decode_logits(path: str, sparse: bool, n_tokens: int = 24, threads: int = 2):
    """Logits of a prompt's tokens decoded one at a time, and the sparse path's counts (Model.sparse_counts)."""
    with Model(path, threads=threads, sparse=sparse) as m:
        ids = m.tokenize(TEXT)[:n_tokens]
        with m.new_sequence() as seq:
            logits = np.array([m.decode([seq], [t])[0] for t in ids])
        return logits, m.sparse_counts(), m.hparams


@pytest.mark.parametrize("name", ["embedded", "random"])
@pytest.mark.parametrize("ttype", TYPES)
def test_sparse_decode_logits_equal_dense(files, name, ttype):
    dense, dense_counts, hp = decode_logits(files[name, ttype], sparse=False)
    sparse, (inputs, nonzero, up_rows, computed), _ = decode_logits(files[name, ttype], sparse=True)
    assert np.array_equal(sparse, dense)
    assert dense_counts == (0, 0, 0, 0)  # the dense run never took the sparse path
    assert inputs == up_rows == len(dense) * hp.n_layer * hp.n_ff  # every decoded token's every layer did
    # the embedded model's down inputs are mostly int8 zeros (74-90% per layer measured); random weights ~half;
    # a row whose gate is <= 0 gives a zero down input, so at least as many down inputs are zero as rows skipped
    assert 0 < nonzero < inputs * (0.5 if name == "embedded" else 0.8)
    assert nonzero <= computed < up_rows * (0.7 if name == "embedded" else 0.8)


def test_batches_and_prefill_stay_dense_and_agree(files):
    """Several sequences in one pass (and a prefill) run the dense kernels; their logits equal sparse single decodes."""
    path = files["embedded", "i2_s"]
    with Model(path, threads=2) as m:
        ids = m.tokenize(TEXT)[:8]
        whole = m.logits(ids)
        assert m.sparse_counts() == (0, 0, 0, 0)
        with m.new_sequence() as a, m.new_sequence() as b:
            steps = [m.decode([a, b], [t, t]) for t in ids]
        assert m.sparse_counts() == (0, 0, 0, 0)
        with m.new_sequence() as seq:
            single = np.array([m.decode([seq], [t])[0] for t in ids])
        assert m.sparse_counts()[0] > 0
    np.testing.assert_array_equal(np.array([s[0] for s in steps]), whole)
    np.testing.assert_array_equal(np.array([s[1] for s in steps]), whole)
    np.testing.assert_array_equal(single, whole)
