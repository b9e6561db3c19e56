"""Encoders of the output-matrix types (`--output-type`): bf16, f16 and q8_0 through gguf-py's quants, and
Q6_K and Q4_K, which gguf-py reads but cannot write, as numpy ports of ggml's reference quantizers
(quantize_row_q6_K_ref / make_qx_quants, quantize_row_q4_K_ref / make_qkx2_quants), vectorized over
sub-blocks. Imported by converter/ (convert --output-type) and runtime/ (quantize); imports neither.
Float sums run in numpy's order, not ggml's one-by-one loop, so a scale may differ from llama-quantize's in
its last bits; gguf-py's dequantize is the reference for what the bytes mean."""

import numpy as np
from gguf import GGML_QUANT_SIZES, quants
from gguf import GGMLQuantizationType as QT

OUTPUT_MATRIX_TYPES = ("bf16", "f16", "q8_0", "q6_k", "q4_k")
ROWS_PER_CHUNK = 1024  # rows encoded at a time: bounds the temporaries of the 128256-row output matrix
GROUP_MAX_EPS = np.float32(1e-15)


def encode(values: np.ndarray, type_name: str) -> np.ndarray:
    """f32 values [rows, cols] -> the type's bytes, uint8 [rows, bytes per row]."""
    if type_name not in OUTPUT_MATRIX_TYPES:
        raise ValueError(f"unknown output type {type_name!r}: choose one of {', '.join(OUTPUT_MATRIX_TYPES)}")
    rows, cols = values.shape
    block_values, block_bytes = GGML_QUANT_SIZES[getattr(QT, type_name.upper())]
    if unfit(type_name, cols):
        raise ValueError(unfit(type_name, cols))
    out = np.empty((rows, cols // block_values * block_bytes), np.uint8)
    for r in range(0, rows, ROWS_PER_CHUNK):
        chunk = np.ascontiguousarray(values[r : r + ROWS_PER_CHUNK], dtype=np.float32)
        if type_name == "q6_k":
            encoded = quantize_q6_k_blocks(chunk.reshape(-1, 256))
        elif type_name == "q4_k":
            encoded = quantize_q4_k_blocks(chunk.reshape(-1, 256))
        else:
            encoded = quants.quantize(chunk, getattr(QT, type_name.upper()))
        out[r : r + len(chunk)] = encoded.view(np.uint8).reshape(len(chunk), -1)
    return out


def unfit(type_name: str, cols: int) -> str | None:
    """Why rows of cols values cannot be stored as an output-matrix type, or None."""
    block_values = GGML_QUANT_SIZES[getattr(QT, type_name.upper())][0]
    return f"{type_name} needs rows of whole {block_values}-value blocks, not {cols}" if cols % block_values else None


def nearest_int(x: np.ndarray) -> np.ndarray:
    """ggml's nearest_int: round half to even."""
    return np.rint(x).astype(np.int32)


def fp16(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float32).astype(np.float16)


def make_qx_quants(x: np.ndarray, nmax: int) -> tuple[np.ndarray, np.ndarray]:
    """ggml's make_qx_quants(rmse_type 1: weights x^2) for each row of x [groups, n]: (scale [groups],
    L [groups, n] in 0..2 nmax - 1)."""
    amax_i = np.abs(x).argmax(axis=1)
    vmax = np.take_along_axis(x, amax_i[:, None], 1)[:, 0]
    zero = np.abs(vmax) < GROUP_MAX_EPS
    vmax = np.where(zero, np.float32(1), vmax)
    w = x * x
    wx = w * x

    def fit(iscale):  # in place, float32: this loop is most of a 128256-row matrix's encoding time
        levels = np.multiply(iscale[:, None], x)
        np.clip(np.rint(levels, out=levels), -nmax, nmax - 1, out=levels)
        return (
            levels,
            (wx * levels).sum(1, dtype=np.float32),
            np.multiply(w, levels).__imul__(levels).sum(1, dtype=np.float32),
        )

    levels, sumlx, suml2 = fit(np.float32(-nmax) / vmax)
    scale = np.where(suml2 > 0, sumlx / np.where(suml2 > 0, suml2, 1), np.float32(0)).astype(np.float32)
    best = scale * sumlx
    for step in range(-9, 10):
        if step == 0:
            continue
        cand, sumlx, suml2 = fit(-(np.float32(nmax) + np.float32(0.1) * np.float32(step)) / vmax)
        better = (suml2 > 0) & (sumlx * sumlx > best * suml2)
        np.copyto(levels, cand, where=better[:, None])
        scale = np.where(better, sumlx / np.where(suml2 > 0, suml2, 1), scale).astype(np.float32)
        best = np.where(better, scale * sumlx, best)
    return np.where(zero, np.float32(0), scale), np.where(zero[:, None], 0, levels.astype(np.int32) + nmax)


def quantize_q6_k_blocks(x: np.ndarray) -> np.ndarray:
    """[blocks, 256] f32 -> [blocks, 210] Q6_K bytes (ql[128], qh[64], scales[16], fp16 d)."""
    nb = x.shape[0]
    sub = x.reshape(nb * 16, 16)
    scales, L = make_qx_quants(sub, 32)
    scales, L = scales.reshape(nb, 16), L.reshape(nb, 16, 16)
    max_i = np.abs(scales).argmax(axis=1)
    max_scale = np.take_along_axis(scales, max_i[:, None], 1)[:, 0]
    zero = np.abs(max_scale) < GROUP_MAX_EPS
    iscale = np.float32(-128) / np.where(zero, np.float32(1), max_scale)
    d = np.where(zero, np.float16(0), fp16(np.float32(1) / iscale))
    sc = np.minimum(127, nearest_int(iscale[:, None] * scales)).astype(np.int8)
    sc[zero] = 0
    step = d.astype(np.float32)[:, None] * sc.astype(np.float32)  # d * scale, as the decoder
    q = np.clip(nearest_int(x.reshape(nb, 16, 16) / np.where(step == 0, 1, step)[:, :, None]), -32, 31) + 32
    L = np.where(step[:, :, None] == 0, L, q).astype(np.uint8)  # ggml keeps make_qx_quants' L where d == 0
    L[zero] = 0
    L = L.reshape(nb, 2, 128)  # halves of 128 values
    ql = np.concatenate(
        [(L[:, :, 0:32] & 15) | ((L[:, :, 64:96] & 15) << 4), (L[:, :, 32:64] & 15) | ((L[:, :, 96:128] & 15) << 4)],
        axis=2,
    )
    qh = (
        (L[:, :, 0:32] >> 4)
        | ((L[:, :, 32:64] >> 4) << 2)
        | ((L[:, :, 64:96] >> 4) << 4)
        | ((L[:, :, 96:128] >> 4) << 6)
    )
    return np.concatenate(
        [ql.reshape(nb, 128), qh.reshape(nb, 64), sc.view(np.uint8), d.reshape(nb, 1).view(np.uint8)], axis=1
    )


def make_qkx2_quants(x: np.ndarray, w: np.ndarray, nmax: int, rmin: float, rdelta: float, nstep: int):
    """ggml's make_qkx2_quants (squared error) for each row of x [groups, n]: (scale, -min, L in 0..nmax)."""
    f32 = np.float32
    vmin = np.minimum(x.min(1), 0).astype(f32)
    vmax = x.max(1)
    flat = vmax == vmin
    rng = np.where(flat, f32(1), vmax - vmin)
    sum_w = w.sum(1, dtype=f32)
    sum_x = (w * x).sum(1, dtype=f32)
    iscale = f32(nmax) / rng
    scale = f32(1) / iscale
    L = np.clip(nearest_int(iscale[:, None] * (x - vmin[:, None])), 0, nmax)
    diff = scale[:, None] * L.astype(f32) + vmin[:, None] - x
    best = (w * diff * diff).sum(1, dtype=f32)
    for step in range(nstep + 1):
        iscale = (f32(rmin) + f32(rdelta) * f32(step) + f32(nmax)) / rng
        laux = np.clip(nearest_int(iscale[:, None] * (x - vmin[:, None])), 0, nmax)
        lf = laux.astype(f32)
        sum_l, sum_l2, sum_xl = (
            (w * lf).sum(1, dtype=f32),
            (w * lf * lf).sum(1, dtype=f32),
            (w * lf * x).sum(1, dtype=f32),
        )
        D = sum_w * sum_l2 - sum_l * sum_l
        ok = D > 0
        Ds = np.where(ok, D, f32(1))
        this_scale = (sum_w * sum_xl - sum_x * sum_l) / Ds
        this_min = (sum_l2 * sum_x - sum_l * sum_xl) / Ds
        pos = this_min > 0
        this_scale = np.where(pos, sum_xl / np.where(sum_l2 > 0, sum_l2, f32(1)), this_scale).astype(f32)
        this_min = np.where(pos, f32(0), this_min).astype(f32)
        diff = this_scale[:, None] * lf + this_min[:, None] - x
        err = (w * diff * diff).sum(1, dtype=f32)
        better = ok & (err < best)
        L = np.where(better[:, None], laux, L)
        best, scale, vmin = (
            np.where(better, err, best),
            np.where(better, this_scale, scale),
            np.where(better, this_min, vmin),
        )
    return (
        np.where(flat, f32(0), scale).astype(f32),
        np.where(flat, -x.min(1).clip(max=0), -vmin).astype(f32),
        np.where(flat[:, None], 0, L),
    )


def quantize_q4_k_blocks(x: np.ndarray) -> np.ndarray:
    """[blocks, 256] f32 -> [blocks, 144] Q4_K bytes (fp16 d, fp16 dmin, scales[12], qs[128])."""
    f32 = np.float32
    nb = x.shape[0]
    sub = x.reshape(nb * 8, 32)
    av_x = np.sqrt((sub * sub).sum(1, dtype=f32) / f32(32))
    scales, mins, _ = make_qkx2_quants(sub, av_x[:, None] + np.abs(sub), 15, -1.0, 0.1, 20)
    scales, mins = scales.reshape(nb, 8), mins.reshape(nb, 8)
    max_scale, max_min = np.maximum(scales.max(1), 0), np.maximum(mins.max(1), 0)
    inv_scale = np.where(max_scale > 0, f32(63) / np.where(max_scale > 0, max_scale, 1), f32(0))
    inv_min = np.where(max_min > 0, f32(63) / np.where(max_min > 0, max_min, 1), f32(0))
    ls = np.minimum(63, nearest_int(inv_scale[:, None] * scales).astype(np.uint8))
    lm = np.minimum(63, nearest_int(inv_min[:, None] * mins).astype(np.uint8))
    packed = np.zeros((nb, 12), np.uint8)
    packed[:, 0:4], packed[:, 4:8] = ls[:, :4], lm[:, :4]
    packed[:, 8:12] = (ls[:, 4:] & 15) | ((lm[:, 4:] & 15) << 4)
    packed[:, 0:4] |= (ls[:, 4:] >> 4) << 6
    packed[:, 4:8] |= (lm[:, 4:] >> 4) << 6
    d, dmin = fp16(max_scale / f32(63)), fp16(max_min / f32(63))
    dl = d.astype(f32)[:, None] * ls.astype(f32)
    ml = dmin.astype(f32)[:, None] * lm.astype(f32)
    q = np.clip(nearest_int((x.reshape(nb, 8, 32) + ml[:, :, None]) / np.where(dl == 0, 1, dl)[:, :, None]), 0, 15)
    q = np.where(dl[:, :, None] == 0, 0, q).astype(np.uint8).reshape(nb, 4, 2, 32)  # pairs of sub-blocks
    qs = q[:, :, 0] | (q[:, :, 1] << 4)
    return np.concatenate(
        [d.reshape(nb, 1).view(np.uint8), dmin.reshape(nb, 1).view(np.uint8), packed, qs.reshape(nb, 128)], axis=1
    )
