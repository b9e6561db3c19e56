"""ggml's k-quants Q4_K and Q6_K (token_embd/output of llama.cpp's and bitnet.cpp's files): the C dequantization
equals gguf-py's `quants.dequantize` bit for bit on random blocks, the dot product equals the F32 kernel on those
dequantized rows (the canonical float order) and numpy, and the engine runs a model whose embedding is one."""

import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT
from gguf import quants

from tests import test_engine
from tests.test_kernels import random_output_matrix, run_float, run_typed, simd_isas
from tritlm.runtime._native import ffi, lib

KQUANTS = {"q4_k": (QT.Q4_K, lib.TL_Q4_K), "q6_k": (QT.Q6_K, lib.TL_Q6_K)}
RNG = np.random.default_rng(0)
EMBEDDING_SEED = (
    4  # the whole-model test's embedding blocks: no int8 rounding tie within 2e-5 of a step (seed 0 has one)
)


def random_blocks(name: str, rows: int, cols: int, d_max: float = 1e-3, rng=None) -> np.ndarray:
    """rows x cols values of random blocks: random bytes, with finite fp16 super-block scales (d, and dmin for Q4_K)."""
    return random_output_matrix(name, rows, cols, d_max, rng)


@pytest.fixture(autouse=True)
def _known_types(monkeypatch):
    for name, (_, type_id) in KQUANTS.items():
        monkeypatch.setitem(test_engine.TYPE_IDS, name, type_id)


@pytest.mark.parametrize("name", KQUANTS)
def test_dequantize_equals_gguf_py(name):
    """x = the identity picks each weight out exactly: y[t][r] = W[r][t]."""
    rows, cols = 29, 512
    packed = random_blocks(name, rows, cols)
    want = quants.dequantize(packed, KQUANTS[name][0])
    assert want.shape == (rows, cols) and np.isfinite(want).all()
    y = run_float_kquant("ref", name, packed, rows, cols, np.eye(cols, dtype=np.float32))
    np.testing.assert_array_equal(y.T, want)


@pytest.mark.parametrize("name", KQUANTS)
@pytest.mark.parametrize("rows,cols,n", [(1, 256, 1), (37, 512, 3), (45, 2560, 17)])
def test_dot_equals_f32_kernel_on_dequantized_rows(name, rows, cols, n):
    packed = random_blocks(name, rows, cols)
    dequant = quants.dequantize(packed, KQUANTS[name][0]).astype(np.float32)
    x = RNG.standard_normal((n, cols)).astype(np.float32)
    y = run_float_kquant("ref", name, packed, rows, cols, x)
    np.testing.assert_array_equal(y, run_float("ref", "f32", dequant, rows, cols, x))
    np.testing.assert_allclose(y, x.astype(np.float64) @ dequant.T.astype(np.float64), rtol=1e-5, atol=1e-4)
    for isa in simd_isas():  # every table has a k-quant kernel, the same numbers
        np.testing.assert_array_equal(run_float_kquant(isa, name, packed, rows, cols, x), y, err_msg=isa)


def test_rows_that_are_not_whole_blocks_are_refused():
    packed = random_blocks("q6_k", 1, 256)
    x = np.zeros((1, 240), np.float32)
    assert (
        lib.tl_matmul_float(
            b"ref",
            lib.TL_Q6_K,
            ffi.from_buffer(packed),
            1,
            240,
            ffi.from_buffer("float[]", x),
            1,
            ffi.from_buffer("float[]", np.empty(1, np.float32)),
        )
        == -1
    )


@pytest.mark.parametrize("name", KQUANTS)
def test_engine_with_a_kquant_embedding_matches_numpy(name, monkeypatch):
    """Embedding lookup (row dequantization) and tied output projection (the dot) in a whole forward pass."""
    w = test_engine.random_weights()
    vocab, e = w["token_embd"].shape
    # blocks of their own generator: drawn from the shared one, they changed with the tests run before in the process,
    # and some draws put an int8 rounding tie (1.9e-6 of a step from .5) where float32 order decides it
    packed = random_blocks(name, vocab, e, d_max=2e-4, rng=np.random.default_rng(EMBEDDING_SEED))
    dequant = quants.dequantize(packed, KQUANTS[name][0]).astype(np.float32)
    monkeypatch.setattr(test_engine, "pack_embedding", lambda kind, emb: (packed, dequant))
    eng = test_engine.Engine(w, linear="tq2_0", embd=name)
    assert eng.model != ffi.NULL, eng.error
    tokens = test_engine.prompt(12)
    rc, logits, err = eng.forward([eng.seq()] * len(tokens), tokens)
    assert rc == 0, err
    expect = test_engine.reference_logits(dict(w, token_embd=dequant), tokens, "relu2", linears=eng.linears)
    test_engine.assert_close_to_reference(logits, expect)


def run_float_kquant(isa, name, packed, rows, cols, x):
    y = run_typed(isa, KQUANTS[name][1], packed, rows, cols, x)
    assert y is not None  # the kernel refused the type or shape
    return y
