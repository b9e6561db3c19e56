"""The packed ternary form of Hugging Face BitNet checkpoints (microsoft/bitnet-b1.58-2B-4T, Falcon-E, ...).

A ternary matrix [out, in] is stored as uint8 [out/4, in]: row r + k*out/4 sits in bits 2k..2k+1 of byte
row r, as value + 1 (so codes 0, 1, 2; code 3 is invalid). This is transformers' `pack_weights` /
`unpack_weights` layout (integrations/bitnet.py)."""

import numpy as np

from .errors import ConverterError

VALUES_PER_BYTE = 4


def pack(ternary: np.ndarray) -> np.ndarray:
    """int8 [out, in] in {-1, 0, 1} -> uint8 [out/4, in]."""
    out_features = ternary.shape[0]
    if out_features % VALUES_PER_BYTE:
        raise ValueError(f"cannot pack {out_features} rows: not a multiple of {VALUES_PER_BYTE}")
    codes = (
        (ternary.astype(np.int16) + 1)
        .astype(np.uint8)
        .reshape(VALUES_PER_BYTE, out_features // VALUES_PER_BYTE, *ternary.shape[1:])
    )
    return codes[0] | (codes[1] << 2) | (codes[2] << 4) | (codes[3] << 6)


def unpack(packed: np.ndarray) -> np.ndarray:
    """uint8 [out/4, in] -> int8 [out, in]; the invalid code 3 is a ConverterError."""
    packed = np.asarray(packed, dtype=np.uint8)
    codes = np.concatenate([(packed >> (2 * k)) & 3 for k in range(VALUES_PER_BYTE)], axis=0)
    if (codes == 3).any():
        raise ConverterError("packed ternary weight holds the invalid code 3 (not a ternary value)")
    return codes.astype(np.int8) - 1


def absmean_ternarize(weight: np.ndarray, eps: float = 1e-5) -> tuple[np.ndarray, np.float32]:
    """BitNet b1.58's weight quantizer, as transformers' WeightQuant computes it in float32:
    s = 1 / clamp(mean|W|, eps); T = clamp(round(W * s), -1, 1) (ties to even). Returns (T int8, 1/s)."""
    w = np.asarray(weight, dtype=np.float32)
    mean = np.float32(max(np.abs(w).mean(dtype=np.float32), np.float32(eps)))
    s = np.float32(1.0) / mean
    ternary = np.clip(np.rint(w * s), -1, 1).astype(np.int8)
    return ternary, np.float32(1.0) / s
