"""AMX-INT8 (native/kernels/i2_s_amx.c): where the CPU has it, i2_s (and tq2_0, which the engine repacks as i2_s) runs
5 tokens or more in tiles, two ways (5 to 32 tokens with the weights as the tiles' A, more with the activations as A).
Its kernels must equal the i2_s reference bit for bit, in rows and in row groups, at every edge (token counts around
both ways' limits and tails, rows outside whole 16-row tiles, chunk cuts inside a tile, rows too long for its buffers),
its int32 sums must hold at the longest rows it takes both ways, and a model's logits must equal those of the AVX-512
kernels (TRITLM_ISA=avx512vbmi) on a prefill and on a batch of 17 sequences decoding."""

import numpy as np
import pytest

from tests.test_i2_s_r4 import run_grouped
from tests.test_kernels import RNG, pack_ternary, random_case, run_ternary, simd_isas
from tests.test_tq2_0_repack import files  # noqa: F401 (a fixture)
from tritlm.runtime import Model
from tritlm.runtime._native import ffi, lib

needs_amx = pytest.mark.skipif("amx" not in simd_isas(), reason="this CPU (or OS) has no AMX-INT8")


@needs_amx
@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize(
    "rows,cols,n",
    [
        (32, 128, 5),  # few tokens: the fewest, in one tile cut to 5 tokens
        (32, 128, 8),
        (48, 768, 15),  # a 16-row block after a 32-row one; one token tile cut to 15
        (64, 256, 16),  # one whole token tile
        (32, 384, 17),  # a second token tile of one token
        (64, 2560, 32),  # a whole pair of token tiles
        (64, 256, 4),  # fewer than 5 tokens: AVX-512
        (48, 768, 33),  # many tokens: two whole tiles, a token after them through AVX-512
        (412, 2560, 37),  # the probe's cut at row 206, inside a tile: rows on either side through AVX-512
        (64, 1024, 40),  # two whole tiles, then 8 tokens the few-token way
        (64, 1024, 37),  # two whole tiles, then 5 tokens the few-token way
        (64, 1024, 36),  # two whole tiles, then 4 through AVX-512
        (96, 6912, 64),  # 2B-4T's down_proj rows
        (32, 8192, 17),  # the longest rows AMX takes, few tokens
        (32, 8192, 48),  # and many
        (32, 8448, 20),  # longer: AVX-512 throughout
    ],
)
def test_amx_matches_reference(rows, cols, n, grouped):
    ternary, x = random_case(rows, cols, n)
    x_scale = RNG.uniform(0.5, 50, n).astype(np.float32)
    packed = pack_ternary("i2_s", ternary)
    expect = run_ternary("ref", "i2_s", packed, rows, cols, x, x_scale, 0.37)
    if grouped:
        got = run_grouped("amx", packed, rows, cols, x, x_scale, 0.37)
    else:
        got = run_ternary("amx", "i2_s", packed, rows, cols, x, x_scale, 0.37)
    np.testing.assert_array_equal(got, expect)


@needs_amx
@pytest.mark.parametrize("n", [16, 48])  # the few-token and the many-token way
def test_amx_extreme_sums(n):
    """Rows of all +1 / all -1 / 0 against activations of all -128 / all 127, 8192 values: the largest sums AMX adds."""
    cols = 8192
    ternary = np.repeat(np.array([[1], [-1], [0], [1]] * 8, np.int8), cols, axis=1)
    x = np.concatenate([np.full((n // 2, cols), -128, np.int8), np.full((n - n // 2, cols), 127, np.int8)])
    expect = (x.astype(np.int64) @ ternary.T.astype(np.int64)).astype(np.float32)
    y = run_ternary("amx", "i2_s", pack_ternary("i2_s", ternary), 32, cols, x, np.ones(n, np.float32))
    np.testing.assert_array_equal(y, expect)


def many_tokens(path: str) -> dict[str, np.ndarray]:
    """A model's logits on a prefill of 40 tokens (2 token tiles, then 8 tokens the few-token way) and on 17 sequences
    decoding together (few tokens)."""
    with Model(path, threads=2) as m:
        ids = [int(i) for i in np.random.default_rng(7).integers(3, m.n_vocab, 40)]
        out = {"prefill": m.logits(ids)}
        seqs = [m.new_sequence() for _ in range(17)]
        out["batched"] = np.array([m.decode(seqs, [(t + s) % m.n_vocab for s in range(17)]) for t in ids[:3]])
        for s in seqs:
            s.close()
    return out


@needs_amx
@pytest.mark.parametrize("name", ["embedded", "wide"])
@pytest.mark.parametrize("type_name", ["i2_s", "tq2_0"])
def test_model_logits_equal_avx512(files, name, type_name, monkeypatch):  # noqa: F811 (the fixture)
    assert ffi.string(lib.tl_isa()).decode() == "amx"
    amx = many_tokens(files[name, type_name])
    monkeypatch.setenv("TRITLM_ISA", "avx512vbmi")
    avx512 = many_tokens(files[name, type_name])
    for path, logits in avx512.items():
        assert np.isfinite(logits).all() and logits.std() > 0, path
        assert np.array_equal(amx[path].view(np.uint32), logits.view(np.uint32)), path
