"""The C matmul kernels: references agree with numpy, every SIMD variant this CPU has matches its reference
bit for bit. Ternary weights are packed by gguf-py (an independent packer), i2_s by a short numpy packer."""

import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, quants
from gguf import GGMLQuantizationType as QT

from tritlm.runtime._native import ffi, lib

TERNARY = {"tq1_0": lib.TL_TQ1_0, "tq2_0": lib.TL_TQ2_0, "i2_s": lib.TL_I2_S}
FLOAT = {"f32": lib.TL_F32, "f16": lib.TL_F16, "bf16": lib.TL_BF16, "q8_0": lib.TL_Q8_0}
SIMD = ["avx2", "avxvnni", "avx512", "amx", "neon", "dotprod", "i8mm"]  # x86-64, ARM64
RNG = np.random.default_rng(0)


def pack_i2_s(ternary: np.ndarray, scale: float) -> np.ndarray:
    """bitnet.cpp's x86 I2_S: per 128 values, byte j = codes j, j+32, j+64, j+96 at bits 7-6, 5-4, 3-2, 1-0;
    then 32 bytes whose first 4 are the f32 scale."""
    rows, cols = ternary.shape
    codes = (ternary.astype(np.uint8) + 1).reshape(rows, cols // 128, 4, 32)
    packed = (codes[:, :, 0] << 6) | (codes[:, :, 1] << 4) | (codes[:, :, 2] << 2) | codes[:, :, 3]
    tail = np.zeros(32, np.uint8)
    tail[:4] = np.frombuffer(np.float32(scale).tobytes(), np.uint8)
    return np.concatenate([packed.reshape(-1), tail])


def group_rows(packed: np.ndarray, rows: int, block_bytes: int, blocks: int) -> np.ndarray:
    """Packed rows (rows x row bytes, whole blocks then a tail) in row groups as docs/format.md lays them out (the
    engine's TL_I2_S_R4, TL_TQ1_0_LUT_R4): each 4 rows' block b side by side, block by block, then the 4 rows' tails in
    row order. Returns the bytes, flat."""
    packed = packed.reshape(rows, -1)
    body = packed[:, : blocks * block_bytes].reshape(rows // 4, 4, blocks, block_bytes).transpose(0, 2, 1, 3)
    tails = packed[:, blocks * block_bytes :].reshape(rows // 4, -1)
    return np.concatenate([body.reshape(rows // 4, -1), tails], axis=1).ravel()


def pack_ternary(name: str, ternary: np.ndarray) -> np.ndarray:
    if name == "i2_s":
        return pack_i2_s(ternary, 1.0)
    return quants.quantize(ternary.astype(np.float32), getattr(QT, name.upper()))


def pack_float(name: str, w: np.ndarray) -> np.ndarray:
    if name == "f32":
        return w.astype(np.float32)
    if name == "f16":
        return w.astype(np.float16)
    return quants.quantize(w.astype(np.float32), getattr(QT, name.upper()))


def run_ternary(isa, name, packed, rows, cols, x, x_scale, w_scale=1.0):
    y = np.empty((x.shape[0], rows), np.float32)
    rc = lib.tl_matmul_ternary(
        isa.encode(),
        TERNARY[name],
        ffi.from_buffer(packed),
        rows,
        cols,
        ffi.from_buffer("int8_t[]", x),
        ffi.from_buffer("float[]", x_scale),
        x.shape[0],
        w_scale,
        ffi.from_buffer("float[]", y),
    )
    return y if rc == 0 else None


def run_float(isa, name, packed, rows, cols, x):
    return run_typed(isa, FLOAT[name], packed, rows, cols, x)


def run_typed(isa, type_id, packed, rows, cols, x):
    y = np.empty((x.shape[0], rows), np.float32)
    rc = lib.tl_matmul_float(
        isa.encode(),
        type_id,
        ffi.from_buffer(packed),
        rows,
        cols,
        ffi.from_buffer("float[]", x),
        x.shape[0],
        ffi.from_buffer("float[]", y),
    )
    return y if rc == 0 else None


def simd_isas():
    """The SIMD ISAs this CPU runs (a kernel call on an unsupported ISA returns -1)."""
    probe = pack_ternary("tq2_0", np.zeros((1, 256), np.int8))
    x = np.zeros((1, 256), np.int8)
    return [isa for isa in SIMD if run_ternary(isa, "tq2_0", probe, 1, 256, x, np.ones(1, np.float32)) is not None]


def random_case(rows, cols, n):
    ternary = RNG.integers(-1, 2, (rows, cols), dtype=np.int8)
    x = RNG.integers(-128, 128, (n, cols), dtype=np.int8)
    return ternary, x


@pytest.mark.parametrize("name", TERNARY)
@pytest.mark.parametrize("rows,cols,n", [(1, 256, 1), (37, 512, 3), (19, 1024, 9), (33, 768, 16)])
def test_ternary_reference_is_integer_matmul(name, rows, cols, n):
    ternary, x = random_case(rows, cols, n)
    y = run_ternary("ref", name, pack_ternary(name, ternary), rows, cols, x, np.ones(n, np.float32))
    expect = x.astype(np.int64) @ ternary.T.astype(np.int64)
    np.testing.assert_array_equal(y, expect.astype(np.float32))


def test_ternary_reference_applies_scales_once():
    ternary, x = random_case(5, 256, 2)
    x_scale = np.array([3.7, 0.21], np.float32)
    y = run_ternary("ref", "tq2_0", pack_ternary("tq2_0", ternary), 5, 256, x, x_scale, w_scale=0.4)
    isum = (x.astype(np.int64) @ ternary.T.astype(np.int64)).astype(np.float32)
    np.testing.assert_array_equal(y, isum / x_scale[:, None] * np.float32(0.4))


@pytest.mark.parametrize("name", TERNARY)
@pytest.mark.parametrize(
    "rows,cols,n",
    [
        (1, 256, 1),
        (37, 512, 1),
        (37, 512, 2),
        (37, 512, 3),
        (45, 1280, 5),
        (70, 768, 8),
        (29, 512, 13),
        (640, 2560, 1),
        (640, 2560, 4),
        (2560, 6912, 1),
        (6, 33024, 2),
        (413, 2560, 9),  # across two of the many-token kernels' 128 KB row blocks, then 4 + 1 rows
        (413, 2560, 37),  # AMX: two 16-token tiles (a pair) and 5 tokens; 32-row blocks, a 16-row one and 13 rows
    ],
)
def test_ternary_simd_matches_reference(name, rows, cols, n):
    isas = simd_isas()
    if not isas:
        pytest.skip("no SIMD ISA on this CPU")
    ternary, x = random_case(rows, cols, n)
    x_scale = RNG.uniform(0.5, 50, n).astype(np.float32)
    packed = pack_ternary(name, ternary)
    expect = run_ternary("ref", name, packed, rows, cols, x, x_scale, 0.37)
    for isa in isas:
        np.testing.assert_array_equal(run_ternary(isa, name, packed, rows, cols, x, x_scale, 0.37), expect, err_msg=isa)


@pytest.mark.parametrize("name", TERNARY)
def test_ternary_simd_extreme_sums(name):
    """Rows of all +1 / all -1 against activations of all -128 / all 127 at the longest row tq1_0's few-token
    kernel takes (32512 values): its int32 partial sums wrap, and the result must still be exact."""
    isas = simd_isas()
    if not isas:
        pytest.skip("no SIMD ISA on this CPU")
    cols = 32512
    ternary = np.repeat(np.array([[1], [-1], [1], [-1], [0]], np.int8), cols, axis=1)
    x = np.stack([np.full(cols, -128, np.int8), np.full(cols, 127, np.int8)])
    packed = pack_ternary(name, ternary)
    expect = (x.astype(np.int64) @ ternary.T.astype(np.int64)).astype(np.float32)
    for n in (1, 2):
        for isa in isas:
            y = run_ternary(isa, name, packed, 5, cols, x[:n], np.ones(n, np.float32))
            np.testing.assert_array_equal(y, expect[:n], err_msg=isa)


@pytest.mark.parametrize("name", FLOAT)
def test_float_reference_agrees_with_numpy(name):
    rows, cols, n = 23, 512, 3
    w = RNG.standard_normal((rows, cols)).astype(np.float32)
    x = RNG.standard_normal((n, cols)).astype(np.float32)
    packed = pack_float(name, w)
    dequant = (
        w
        if name == "f32"
        else w.astype(np.float16).astype(np.float32)
        if name == "f16"
        else quants.dequantize(packed, getattr(QT, name.upper()))
    )
    y = run_float("ref", name, packed, rows, cols, x)
    np.testing.assert_allclose(y, x.astype(np.float64) @ dequant.T.astype(np.float64), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", FLOAT)
@pytest.mark.parametrize(
    "rows,cols,n",
    [(1, 16, 1), (37, 512, 1), (37, 512, 3), (30, 512, 5), (45, 2560, 7), (1023, 256, 8), (13, 256, 9),
     (7, 2560, 13), (640, 2560, 16), (9, 80, 2), (11, 560, 8)],
)  # fmt: skip
# tokens: tiles of 1-4 and their remainders, and the 5-16 of batched decode (from 8, AVX-512's 2 x 8 tiles over
# chunks of columns, then single rows); 1023 rows: a last part tile; 80 and 560 columns: whole 64-byte lines of bf16,
# then 16 values
def test_float_simd_matches_reference(name, rows, cols, n):
    isas = simd_isas()
    if not isas:
        pytest.skip("no SIMD ISA on this CPU")
    if name == "q8_0" and cols % 32:
        cols = 32 * -(-cols // 32)
    w = RNG.standard_normal((rows, cols)).astype(np.float32)
    x = RNG.standard_normal((n, cols)).astype(np.float32)
    packed = pack_float(name, w)
    expect = run_float("ref", name, packed, rows, cols, x)
    for isa in isas:
        np.testing.assert_array_equal(run_float(isa, name, packed, rows, cols, x), expect, err_msg=isa)


OUTPUT_TYPES = {"bf16": lib.TL_BF16, "q8_0": lib.TL_Q8_0, "q6_k": lib.TL_Q6_K, "q4_k": lib.TL_Q4_K}


def random_output_matrix(name, rows, cols, d_max=1e-3, rng=None):
    """Random bytes of a type, with finite fp16 block scales (no inf/nan: they would hide mismatches); from rng, else
    the module's generator."""
    rng = RNG if rng is None else rng
    if name == "bf16":
        packed = rng.integers(0, 1 << 16, (rows, cols), dtype=np.uint16)
        packed[(packed & 0x7F80) == 0x7F80] = 0
        return packed
    block, nbytes = GGML_QUANT_SIZES[getattr(QT, name.upper())]
    blocks = rng.integers(0, 256, (rows * cols // block, nbytes), dtype=np.uint8)
    d = rng.uniform(-d_max, d_max, (blocks.shape[0], 2)).astype(np.float16).view(np.uint8)
    at = {"q8_0": slice(0, 2), "q4_k": slice(0, 4), "q6_k": slice(nbytes - 2, nbytes)}[name]  # d (and dmin)
    blocks[:, at] = d[:, : at.stop - at.start]
    return blocks.reshape(rows, -1)


@pytest.mark.parametrize("name", OUTPUT_TYPES)
def test_output_matrix_shape_matches_reference(name):
    """The tied 128256 x 2560 embedding: the largest matrix read per token, in every output type."""
    isas = simd_isas()
    if not isas:
        pytest.skip("no SIMD ISA on this CPU")
    rows, cols = 128256, 2560
    packed = random_output_matrix(name, rows, cols)
    x = RNG.standard_normal((2, cols)).astype(np.float32)
    for n in (1, 2):
        expect = run_typed("ref", OUTPUT_TYPES[name], packed, rows, cols, x[:n])
        for isa in isas:
            np.testing.assert_array_equal(
                run_typed(isa, OUTPUT_TYPES[name], packed, rows, cols, x[:n]), expect, err_msg=f"{isa} n={n}"
            )


def test_unknown_isa_and_type_are_refused():
    ternary, x = random_case(1, 256, 1)
    assert run_ternary("sse9", "tq2_0", pack_ternary("tq2_0", ternary), 1, 256, x, np.ones(1, np.float32)) is None
    y = np.empty(1, np.float32)
    buf = ffi.from_buffer("float[]", y)
    assert lib.tl_matmul_float(b"ref", lib.TL_TQ2_0, buf, 1, 16, buf, 1, buf) == -1


def test_an_unknown_isa_override_is_refused_in_one_line(tiny_gguf, monkeypatch, capsys):
    """TRITLM_ISA naming no kernel set of this build stops the run with one line and exit 1 (the engine would take it
    for its plain C reference, many times slower); a set this CPU lacks runs the fastest one below it."""
    from tritlm.runtime import Model
    from tritlm.runtime.cli import main
    from tritlm.runtime.model import isa_names

    names = isa_names()
    assert names[-1] == "ref" and set(names) >= {"ref"} | set(simd_isas()) and len(set(names)) == len(names)
    monkeypatch.setenv("TRITLM_ISA", "avx512bw")
    assert main(["run", "-m", tiny_gguf, "-p", "a", "-n", "2"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"tritlm run: error: TRITLM_ISA='avx512bw' names no kernel set; this build has {', '.join(names)}"
    )
    for isa in names:
        monkeypatch.setenv("TRITLM_ISA", isa)
        with Model(tiny_gguf, threads=1) as m:
            assert m.logits(m.tokenize("a b")).shape[-1] == m.n_vocab
        assert ffi.string(lib.tl_isa()).decode() in names[names.index(isa) :]


def test_read_bandwidth_is_measured():
    gbs = lib.tl_read_bandwidth(64 << 20, 1)
    assert 0.5 < gbs < 1000
    assert ffi.string(lib.tl_isa()).decode() in ("ref", "avx2", "avxvnni", "avx512", "avx512vbmi", "amx")
