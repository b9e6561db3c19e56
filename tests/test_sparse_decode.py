"""Exact activation sparsity in relu² models: a single decoded token computes up_proj only on the rows where
relu(gate) > 0 (the row-list entry of the ternary kernels) and runs down_proj over only its nonzero int8 inputs
(native/kernels/sparse_*.c over a by-input-channel copy of ffn_down). A skipped row's act(gate) * up is 0 and the
integer dot skips a zero exactly, so the logits must equal the dense path's bit for bit, on every ternary type,
while the path really skips most of the work."""

import os

import numpy as np
import pytest

from tests.test_kernels import RNG, TERNARY, pack_ternary, simd_isas
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


def run_rows(isa, name, packed, n_rows, cols, rows, x, x_scale, w_scale):
    """The row-list entry over the tokens of x [n][cols]: y [n][n_rows], NaN where no row was listed. name: a type's
    name, or the probe's type id (tl_matmul_ternary_rows)."""
    y = np.full((x.shape[0], n_rows), np.nan, np.float32)
    rc = lib.tl_matmul_ternary_rows(
        isa.encode(),
        TERNARY.get(name, name),
        ffi.from_buffer(packed),
        n_rows,
        cols,
        ffi.from_buffer("int32_t[]", rows),
        len(rows),
        ffi.from_buffer("int8_t[]", x),
        ffi.from_buffer("float[]", x_scale),
        x.shape[0],
        w_scale,
        ffi.from_buffer("float[]", y),
    )
    return y if rc == 0 else None


@pytest.mark.parametrize("name", TYPES)
@pytest.mark.parametrize("n_tokens", [1, 3, 8])
@pytest.mark.parametrize("n_rows,cols,kept", [(64, 256, 1), (64, 512, 5), (300, 768, 97), (1000, 2048, 400)])
def test_row_list_kernel_equals_dense_rows(name, n_tokens, n_rows, cols, kept):
    """The row-list entry (up_proj where some token's relu(gate) > 0) gives exactly the integer dot's value, scaled as
    the dense kernels scale it, at each listed row for every token, on every ISA, and touches no other row."""
    ternary = RNG.integers(-1, 2, (n_rows, cols), dtype=np.int8)
    x = RNG.integers(-128, 128, (n_tokens, cols), dtype=np.int8)
    x_scale = RNG.uniform(0.2, 50, n_tokens).astype(np.float32)
    packed = pack_ternary(name, ternary)
    isum = x.astype(np.int64) @ ternary.T.astype(np.int64)  # [n_tokens][n_rows], exact
    want = isum.astype(np.float32) / x_scale[:, None] * np.float32(0.0123)
    rows = np.sort(RNG.choice(n_rows, kept, replace=False)).astype(np.int32)
    for isa in ["ref"] + simd_isas():
        got = run_rows(isa, name, packed, n_rows, cols, rows, x, x_scale, 0.0123)
        np.testing.assert_array_equal(got[:, rows], want[:, rows], err_msg=isa)
        assert np.isnan(np.delete(got, rows, axis=1)).all(), isa


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


def test_sparse_decode_logits_equal_dense_on_every_isa(files, monkeypatch):
    """Each ISA's sparse kernels (the best one's run above) inside the engine: the embedded model's logits, i2_s."""
    for isa in ["ref"] + simd_isas():
        monkeypatch.setenv("TRITLM_ISA", isa)
        assert ffi.string(lib.tl_isa()).decode() == isa
        dense, _, _ = decode_logits(files["embedded", "i2_s"], sparse=False)
        sparse, (_, nonzero, _, _), _ = decode_logits(files["embedded", "i2_s"], sparse=True)
        assert np.array_equal(sparse, dense), isa
        assert nonzero > 0


def test_decode_steps_skip_union_rows_and_prefill_stays_dense(files):
    """A decode step of several sequences computes up_proj only on the rows where some token's relu(gate) > 0 (the
    embedded model: most rows skipped by 2 sequences, fewer by 8); a prefill runs dense. The logits equal the dense
    path's bit for bit."""
    path = files["embedded", "i2_s"]
    with Model(path, threads=2) as m, Model(path, threads=2, sparse=False) as dense:
        ids = m.tokenize(TEXT)[:8]
        texts = [ids[s:] + ids[:s] for s in range(8)]  # sequence s reads the tokens rotated by s: different rows
        wholes = [dense.logits(text) for text in texts]
        m.logits(ids)
        assert m.sparse_counts() == (0, 0, 0, 0)  # a prefill: dense
        for n_seqs, most_computed in [(2, 0.6), (8, 0.9)]:
            seqs = [m.new_sequence() for _ in range(n_seqs)]
            before = m.sparse_counts()
            steps = [m.decode(seqs, [texts[s][i] for s in range(n_seqs)]) for i in range(len(ids))]
            inputs, _, up_rows, computed = (a - b for a, b in zip(m.sparse_counts(), before))
            assert inputs == 0 and up_rows == len(ids) * n_seqs * m.hparams.n_layer * m.hparams.n_ff
            assert 0.3 * up_rows < computed < most_computed * up_rows, n_seqs  # a union: more than one token's 25-30%
            for s in range(n_seqs):
                np.testing.assert_array_equal(np.array([step[s] for step in steps]), wholes[s])
            for seq in seqs:
                seq.close()
        with m.new_sequence() as seq:
            single = np.array([m.decode([seq], [t])[0] for t in ids])
        assert m.sparse_counts()[0] > 0
    np.testing.assert_array_equal(single, wholes[0])
