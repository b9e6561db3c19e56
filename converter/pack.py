"""Ternary matrices -> GGUF tensor payloads, numpy-vectorized. Layouts as docs/format.md describes:
ggml's tq2_0 and tq1_0 (the scale as each block's fp16 d), bitnet.cpp's i2_s (one f32 scale after the
data), and plain f16/f32 holding ternary * scale. Rows whose length is not a whole number of blocks are
padded with zero weights to the next block (zeros add nothing to a dot product; the runtime pads
activations with zeros to match), so the stored row length may exceed the model's."""

import numpy as np

from tritlm.formats import TYPES

OUTPUT_TYPES = ("i2_s", "tq1_0", "tq2_0", "f16", "f32")  # what the ternary weights can be written as

# tq1_0 packs 5 base-3 digits a byte (4 in the last 16 values); first digit most significant.
TQ1_POW3 = np.array([81, 27, 9, 3, 1], dtype=np.uint16)


def stored_shape(type_name: str, rows: int, cols: int) -> tuple[int, int]:
    """(rows, stored row length) of a [rows, cols] ternary tensor: its rows zero-padded to whole blocks."""
    return rows, TYPES[type_name].padded_cols(cols)


def nbytes(type_name: str, rows: int, cols: int) -> int:
    """Size of a [rows, cols] ternary tensor stored as type_name (rows padded to whole blocks)."""
    return TYPES[type_name].nbytes(stored_shape(type_name, rows, cols)[::-1])


def pack(ternary: np.ndarray, scale: float, type_name: str) -> np.ndarray:
    """int8 [rows, cols] in {-1, 0, 1} and its f32 scale -> the tensor's bytes (uint8, or f16/f32 values),
    each row zero-padded to whole blocks."""
    rows, cols = ternary.shape
    ternary = np.pad(ternary, ((0, 0), (0, TYPES[type_name].padded_cols(cols) - cols)))
    if type_name in ("f32", "f16"):
        values = ternary.astype(np.float32) * np.float32(scale)
        return values.astype(np.float16 if type_name == "f16" else np.float32)
    codes = (ternary.astype(np.int16) + 1).astype(np.uint8)  # -1, 0, 1 -> 0, 1, 2
    if type_name == "i2_s":
        return pack_i2_s(codes, scale)
    blocks = codes.reshape(-1, TYPES[type_name].block_values)
    d = np.full((blocks.shape[0], 1), scale, dtype=np.float32).astype(np.float16).view(np.uint8)
    qs = pack_tq2_0(blocks) if type_name == "tq2_0" else pack_tq1_0(blocks)
    return np.concatenate([qs, d], axis=1).reshape(rows, -1)


def pack_tq2_0(blocks: np.ndarray) -> np.ndarray:
    """[n, 256] codes -> [n, 64]: byte m of 32-byte chunk c holds value 128c + 32k + m at bits 2k."""
    chunks = blocks.reshape(-1, 2, 4, 32)  # [block, c, k, m]
    shifted = chunks << np.array([0, 2, 4, 6], dtype=np.uint8)[:, None]
    return np.bitwise_or.reduce(shifted, axis=2).reshape(-1, 64)


def pack_tq1_0(blocks: np.ndarray) -> np.ndarray:
    """[n, 256] codes -> [n, 52]: qs[32] (values 32k + j), qs[16] (160 + 16k + j), qh[4] (240 + 4k + j),
    each byte the base-3 number of its digits, scaled to ceil(x * 256 / 243) so a multiply extracts digits."""

    def base3(values, digits, width):
        groups = values.reshape(-1, digits, width).astype(np.uint16)
        return (groups * TQ1_POW3[:digits, None]).sum(axis=1)

    number = np.concatenate(
        [base3(blocks[:, :160], 5, 32), base3(blocks[:, 160:240], 5, 16), base3(blocks[:, 240:], 4, 4)], axis=1
    )
    return ((number * 256 + 242) // 243).astype(np.uint8)


def pack_i2_s(codes: np.ndarray, scale: float) -> np.ndarray:
    """[rows, cols] codes -> 1-D bytes: 128-value blocks of 32 bytes over the whole tensor, byte p holding
    values p, p+32, p+64, p+96 at bits 7-6, 5-4, 3-2, 1-0; then the 32-byte trailer with the f32 scale."""
    groups = codes.reshape(-1, 4, 32)
    shifted = groups << np.array([6, 4, 2, 0], dtype=np.uint8)[:, None]
    data = np.bitwise_or.reduce(shifted, axis=1).reshape(-1)
    trailer = np.zeros(TYPES["i2_s"].trailer, dtype=np.uint8)
    trailer[:4] = np.array([scale], dtype="<f4").view(np.uint8)
    return np.concatenate([data, trailer])
