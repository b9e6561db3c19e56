"""The blocked attention kernel (native/kernels/attention_*.c): the reference agrees with a float64 numpy softmax
attention, and every SIMD variant this CPU has equals the reference bit for bit, over several key blocks, causal
rows that see different numbers of keys, head sizes that are not a multiple of 16, and scores large enough that
the running maximum grows from block to block (the online softmax's rescale)."""

import numpy as np
import pytest

from tests.test_kernels import simd_isas
from tritlm.runtime._native import ffi, lib

RNG = np.random.default_rng(0)


def attention(isa, q, pos, k, v):
    out = np.full_like(q, np.nan)
    rc = lib.tl_attention_rows(
        isa.encode(),
        ffi.from_buffer("float[]", q),
        len(q),
        ffi.from_buffer("int32_t[]", pos),
        ffi.from_buffer("float[]", k),
        ffi.from_buffer("float[]", v),
        len(k),
        q.shape[1],
        ffi.from_buffer("float[]", out),
    )
    assert rc == 0
    return out


def numpy_attention(q, pos, k, v):
    """softmax(q k^T / sqrt(hd)) v in float64, row r over keys 0..pos[r]."""
    out = []
    for row, p in zip(q.astype(np.float64), pos):
        s = k[: p + 1].astype(np.float64) @ row / np.sqrt(q.shape[1])
        w = np.exp(s - s.max())
        out.append(w / w.sum() @ v[: p + 1])
    return np.array(out)


def case(hd, rows, n_keys, q_scale=1.0, growing=False):
    q = (RNG.standard_normal((rows, hd)) * q_scale).astype(np.float32)
    k = RNG.standard_normal((n_keys, hd)).astype(np.float32)
    if growing:  # later keys align ever more with the queries: each block raises the running maximum
        k += np.linspace(0, 3, n_keys, dtype=np.float32)[:, None] * q.mean(0)
    v = RNG.standard_normal((n_keys, hd)).astype(np.float32)
    pos = np.sort(RNG.integers(0, n_keys, rows)).astype(np.int32)
    pos[-1] = n_keys - 1
    return q, pos, k, v


CASES = [
    dict(hd=64, rows=1, n_keys=1),
    dict(hd=128, rows=1, n_keys=700),  # one decoded token over several blocks
    dict(hd=128, rows=4, n_keys=300, growing=True),
    dict(hd=128, rows=37, n_keys=260, q_scale=3.0),  # a prompt's rows, tiles with a remainder
    dict(hd=100, rows=9, n_keys=129),  # 1bitLLM-3B's head size: a partial 16-value chunk
    dict(hd=16, rows=17, n_keys=5),
]


@pytest.mark.parametrize("shape", CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_reference_matches_numpy(shape):
    q, pos, k, v = case(**shape)
    np.testing.assert_allclose(attention("ref", q, pos, k, v), numpy_attention(q, pos, k, v), rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("shape", CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_simd_matches_reference(shape):
    isas = simd_isas()
    if not isas:
        pytest.skip("no SIMD ISA on this CPU")
    q, pos, k, v = case(**shape)
    expect = attention("ref", q, pos, k, v)
    for isa in isas:
        np.testing.assert_array_equal(attention(isa, q, pos, k, v), expect, err_msg=isa)


def test_rows_do_not_depend_on_their_neighbours():
    """A row's result is the same alone as among other rows (a prompt's token equals the same token decoded)."""
    q, pos, k, v = case(hd=128, rows=11, n_keys=400)
    together = attention("ref", q, pos, k, v)
    for isa in ["ref", *simd_isas()]:
        for r in (0, 5, 10):
            np.testing.assert_array_equal(
                attention(isa, q[r : r + 1].copy(), pos[r : r + 1].copy(), k, v)[0], together[r]
            )


def test_bad_arguments_are_refused():
    q, pos, k, v = case(hd=64, rows=2, n_keys=3)
    pos[1] = 3  # past the last key
    with pytest.raises(AssertionError):
        attention("ref", q, pos, k, v)
    assert lib.tl_attention_rows(b"nope", ffi.NULL, 1, ffi.NULL, ffi.NULL, ffi.NULL, 1, 64, ffi.NULL) == -1


@pytest.mark.parametrize("isa", ["ref"] + simd_isas())
def test_f16_cache_rows_convert_as_numpy(isa):
    """The f16 KV cache's conversions under each ISA (kv_ref.c; F16C on x86): every half to f32 exactly, and f32 to half
    rounding to nearest even as numpy does: the halves themselves, the midpoints between neighbours (ties), the floats
    just beside them, overflow to inf, subnormals, random floats over 30 decades, lengths not a multiple of the vector
    (the scalar tail)."""
    halves = np.arange(1 << 16, dtype=np.uint16)
    got = np.full(len(halves) + 1, np.float32(7))  # the last is past the end: left alone
    for start, stop in ((0, len(halves) - 7), (len(halves) - 7, len(halves))):  # 9 past the last whole 16; 7 alone
        part = halves[start:stop]
        at = ffi.cast("float *", ffi.from_buffer("float[]", got)) + start
        assert lib.tl_kv_f16_to_f32(isa.encode(), ffi.from_buffer("uint16_t[]", part), len(part), at) == 0
    want = halves.view(np.float16).astype(np.float32)
    nan = np.isnan(want)
    assert np.array_equal(got[:-1][~nan].view(np.uint32), want[~nan].view(np.uint32)) and got[-1] == 7
    assert np.isnan(got[:-1][nan]).all()
    finite = np.sort(want[np.isfinite(want)].astype(np.float64))
    ties = ((finite[1:] + finite[:-1]) / 2).astype(np.float32)  # exact: halves have 11 significant bits
    x = np.concatenate(
        [
            want,
            ties,
            np.nextafter(ties, np.float32(np.inf)),
            np.nextafter(ties, np.float32(-np.inf)),
            np.float32([65504, 65519.996, 65520, 1e9, 3e38, 2.0**-24, 2.0**-25, 2.0**-26, 1e-30, -0.0]),
            (RNG.standard_normal(1 << 18) * 10.0 ** RNG.uniform(-20, 10, 1 << 18)).astype(np.float32),
        ]
    )
    x = x[: len(x) // 16 * 16 - 9]  # 7 past the last whole vector
    out = np.empty(len(x), np.uint16)
    assert (
        lib.tl_kv_f32_to_f16(isa.encode(), ffi.from_buffer("float[]", x), len(x), ffi.from_buffer("uint16_t[]", out))
        == 0
    )
    with np.errstate(over="ignore", invalid="ignore"):
        ref = x.astype(np.float16)
    nan = np.isnan(x)
    assert np.array_equal(out[~nan], ref.view(np.uint16)[~nan])
    assert np.isnan(out[nan].view(np.float16)).all()
