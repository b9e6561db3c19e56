"""The a4.8 / Q-Sparse kernels (native/kernels/int4_*, topk_ref, sparse_*, kv_ref): each reference equals a numpy
reference written from the papers' formulas, and every SIMD variant this CPU has equals its reference bit for bit."""

import numpy as np
import pytest

from tests.test_kernels import TERNARY, pack_ternary, run_ternary, simd_isas
from tritlm.runtime._native import ffi, lib

RNG = np.random.default_rng(7)


def np_int4(x: np.ndarray):
    """Q4(x) = RoundClip(sqrt(7) / mean|x| * x, -8, 7), mean|x| summed as the kernels do (lane i mod 16, then
    lanes pairwise), round half to even."""
    lanes = np.zeros(16, np.float32)
    for row in np.abs(x).reshape(-1, 16):
        lanes = lanes + row
    for half in (8, 4, 2, 1):
        lanes = lanes[:half] + lanes[half : 2 * half]
    s = np.float32(np.sqrt(np.float32(7))) / max(lanes[0] / np.float32(x.size), np.float32(1e-5))
    q = np.clip(np.rint(x * s), -8, 7).astype(np.int8)
    return q, np.float32(s)


def run_int4(isa, x):
    q, scale, total = np.empty(x.size, np.int8), ffi.new("float *"), ffi.new("int32_t *")
    if (
        lib.tl_quantize_int4(
            isa.encode(), ffi.from_buffer("float[]", x), x.size, ffi.from_buffer("int8_t[]", q), scale, total
        )
        != 0
    ):
        return None
    return q, np.float32(scale[0]), total[0]


def activations(dim):
    """Gaussian rows with a few outlier channels, as the papers' q/k/v inputs."""
    x = RNG.standard_normal(dim).astype(np.float32)
    x[RNG.integers(0, dim, 3)] *= 20
    return x


@pytest.mark.parametrize("dim", [16, 256, 768, 2560, 6912])
def test_int4_reference_is_the_paper_quantizer(dim):
    x = activations(dim)
    q, s, total = run_int4("ref", x)
    expect_q, expect_s = np_int4(x)
    assert s == expect_s
    np.testing.assert_array_equal(q, expect_q)
    assert total == int(expect_q.astype(np.int64).sum())
    assert q.min() >= -8 and q.max() <= 7 and (q == 7).any()  # outliers clip


@pytest.mark.parametrize("isa", simd_isas())
@pytest.mark.parametrize("dim", [16, 256, 2560, 6912])
def test_int4_simd_matches_reference(isa, dim):
    for _ in range(5):
        x = activations(dim)
        got, ref = run_int4(isa, x), run_int4("ref", x)
        np.testing.assert_array_equal(got[0], ref[0])
        assert got[1:] == ref[1:]


def test_int4_rejects_bad_isa_and_shape():
    assert run_int4("sse9", activations(16)) is None
    assert run_int4("ref", activations(24)) is None


@pytest.mark.parametrize("dim,k", [(256, 128), (768, 384), (2560, 1280), (6912, 3456), (100, 1), (64, 64)])
def test_topk_keeps_the_stable_argsort_top_k(dim, k):
    x = activations(dim)
    x[::7] = 0.25  # many ties, some straddling the cut
    x[1::11] = -0.25
    keep = np.sort(np.argsort(-np.abs(x), kind="stable")[:k])
    expect = np.zeros_like(x)
    expect[keep] = x[keep]
    got = x.copy()
    assert lib.tl_topk_mask(ffi.from_buffer("float[]", got), dim, k) == min(k, dim)
    np.testing.assert_array_equal(got, expect)


def run_sparse(isa, name, packed, rows, cols, x, x_scale, w_scale):
    y = np.empty(rows, np.float32)
    rc = lib.tl_matmul_sparse(
        isa.encode(),
        TERNARY[name],
        ffi.from_buffer(packed),
        rows,
        cols,
        ffi.from_buffer("int8_t[]", x),
        x_scale,
        w_scale,
        ffi.from_buffer("float[]", y),
    )
    return y if rc == 0 else None


@pytest.mark.parametrize("name", TERNARY)
@pytest.mark.parametrize(
    "rows,cols,kept",
    [
        (256, 256, 128),
        (128, 256, 40),
        (768, 512, 256),
        (300, 768, 700),
        (2560, 1024, 1000),
        (64, 256, 1),
        (300, 768, 131),
    ],
)
def test_sparse_gemv_equals_dense_kernel_on_masked_input(name, rows, cols, kept):
    """The by-input-channel kernel reads only kept columns yet gives the dense kernel's floats exactly (and numpy's sums)."""
    ternary = RNG.integers(-1, 2, (rows, cols), dtype=np.int8)
    x = np.zeros(cols, np.int8)
    idx = RNG.choice(cols, kept, replace=False)
    x[idx] = RNG.integers(-128, 128, kept, dtype=np.int8)
    x[idx[:3]] = -128  # the int16 sums' worst case
    packed = pack_ternary(name, ternary)
    dense = run_ternary("ref", name, packed, rows, cols, x[None], np.float32([0.37]), 0.0123)[0]
    np.testing.assert_array_equal(
        dense,
        (ternary.astype(np.int64) @ x.astype(np.int64)).astype(np.float32) / np.float32(0.37) * np.float32(0.0123),
    )
    for isa in ["ref"] + simd_isas():
        np.testing.assert_array_equal(run_sparse(isa, name, packed, rows, cols, x, 0.37, 0.0123), dense, err_msg=isa)


def test_sparse_int16_sums_flush_before_overflow():
    """All +1 weights (code 2, the largest) and 1024 inputs of -128: |sum| = 131072 overflows int16 (the AVX2
    kernel's pair sums) unless widened every block of inputs."""
    rows, cols = 256, 1024
    packed = pack_ternary("i2_s", np.ones((rows, cols), np.int8))
    x = np.full(cols, -128, np.int8)
    for isa in ["ref"] + simd_isas():
        np.testing.assert_array_equal(
            run_sparse(isa, "i2_s", packed, rows, cols, x, 1.0, 1.0), np.full(rows, -131072, np.float32), err_msg=isa
        )


def np_kv(x: np.ndarray, bits: int) -> np.ndarray:
    """Symmetric absmax INT-bits per row, levels -(2^(b-1)-1) .. 2^(b-1)-1, read back as q / s."""
    top = np.float32(2 ** (bits - 1) - 1)
    s = top / max(np.abs(x).max(), np.float32(1e-5))
    return (np.clip(np.rint(x * s), -top, top) / s).astype(np.float32)


@pytest.mark.parametrize("bits", [3, 4])
@pytest.mark.parametrize("dim", [8, 64, 128])
def test_kv_rows_round_trip_as_the_formula(bits, dim):
    for x in (activations(dim), np.zeros(dim, np.float32)):
        packed, out = np.empty(dim * bits // 8 + 4, np.uint8), np.empty(dim, np.float32)
        assert (
            lib.tl_kv_roundtrip(
                ffi.from_buffer("float[]", x), dim, bits, ffi.from_buffer(packed), ffi.from_buffer("float[]", out)
            )
            == 0
        )
        np.testing.assert_array_equal(out, np_kv(x, bits))
    assert len(np.unique(np_kv(activations(dim), bits))) <= 2**bits - 1


def test_kv_rejects_other_bits():
    x, out = np.zeros(64, np.float32), np.zeros(64, np.float32)
    assert (
        lib.tl_kv_roundtrip(
            ffi.from_buffer("float[]", x),
            64,
            5,
            ffi.from_buffer(np.zeros(64, np.uint8)),
            ffi.from_buffer("float[]", out),
        )
        == -1
    )
