"""The safetensors format without torch: an 8-byte little-endian header length, a JSON header naming each
tensor's dtype, shape and byte range, then the raw bytes. Written and read one tensor at a time so a
multi-gigabyte checkpoint never has to fit in memory. bf16 is handled as the top 16 bits of an f32."""

import json
import math
import os
import struct
from collections.abc import Callable, Iterable

import numpy as np

from .errors import ConverterError

# safetensors dtype name -> numpy dtype of the stored bytes (bf16 is kept as its raw uint16 bits).
DTYPES = {
    "F32": np.float32,
    "F16": np.float16,
    "BF16": np.uint16,
    "U8": np.uint8,
    "I8": np.int8,
    "I32": np.int32,
    "I64": np.int64,
}


def f32_to_bf16(x: np.ndarray) -> np.ndarray:
    """f32 -> bf16 bits (uint16), rounding to nearest even as torch does."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) >> 16).astype(np.uint16)


def bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    """bf16 bits (uint16) -> f32, exact."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def write_safetensors(
    path: str,
    specs: list[tuple[str, str, tuple[int, ...]]],
    produce: Callable[[str], Iterable[np.ndarray]],
    metadata: dict | None = None,
) -> None:
    """Writes tensors (name, dtype, shape) in the given order. produce(name) yields the tensor's data as
    row chunks in its stored dtype (bf16 as uint16 bits), so only one chunk is in memory at a time.
    The file appears at path only once complete."""
    header: dict[str, dict] = {}  # safetensors' JSON header: tensor name -> dtype, shape, data_offsets
    offset = 0
    for name, dtype, shape in specs:
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(DTYPES[dtype]).itemsize
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    if metadata:
        header["__metadata__"] = metadata
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)  # the data starts 8-byte aligned
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(header_bytes)) + header_bytes)
            for name, dtype, _shape in specs:
                written = 0
                for chunk in produce(name):
                    chunk = np.ascontiguousarray(chunk, dtype=DTYPES[dtype])
                    f.write(chunk.tobytes())
                    written += chunk.nbytes
                begin, end = header[name]["data_offsets"]
                if written != end - begin:
                    raise RuntimeError(f"{name}: produced {written} bytes, expected {end - begin}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def entry_problem(entry, data_bytes: int) -> str | None:
    """What is wrong with one header entry ({"dtype", "shape", "data_offsets"}) of a file with data_bytes of
    tensor data, or None."""
    if not isinstance(entry, dict):
        return f"its header entry is {json.dumps(entry)[:60]}, not an object"
    if entry.get("dtype") not in DTYPES:
        return f"unsupported dtype {entry.get('dtype')!r}"
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        return f"shape {shape!r} is not a list of sizes"
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int and o >= 0 for o in offsets):
        return f"data_offsets {offsets!r} is not a [begin, end] pair of byte offsets"
    begin, end = offsets
    nbytes = math.prod(shape) * np.dtype(DTYPES[entry["dtype"]]).itemsize
    if end - begin != nbytes:
        return f"data_offsets {offsets} hold {end - begin} bytes, but {entry['dtype']} {shape} takes {nbytes}"
    if end > data_bytes:
        return "runs past the end of the file (truncated download?)"
    return None


class SafetensorsFile:
    """One .safetensors file; each tensor is read from disk when asked for (not memory-mapped, so a
    converted tensor's pages are freed with it instead of staying resident)."""

    def __init__(self, path: str):
        self.path = path
        try:
            with open(path, "rb") as f:
                (header_len,) = struct.unpack("<Q", f.read(8))
                if header_len > 100_000_000:
                    raise ConverterError("header too large")
                header = json.loads(f.read(header_len))
        except OSError as e:
            raise ConverterError(f"{path}: {e.strerror}") from None
        except (struct.error, ValueError, UnicodeDecodeError) as e:
            raise ConverterError(f"{path}: not a safetensors file ({e})") from None
        if not isinstance(header, dict):
            raise ConverterError(
                f"{path}: not a safetensors file (its header is a JSON {type(header).__name__}, not an object)"
            )
        header.pop("__metadata__", None)
        self.data_start = 8 + header_len
        self.entries = header
        size = os.path.getsize(path)
        for name, entry in header.items():
            problem = entry_problem(entry, size - self.data_start)
            if problem:
                raise ConverterError(f"{path}: tensor {name}: {problem}")

    def names(self) -> list[str]:
        return list(self.entries)

    def dtype(self, name: str) -> str:
        return self.entries[name]["dtype"]

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.entries[name]["shape"])

    def raw(self, name: str) -> np.ndarray:
        """The stored values (bf16 as uint16 bits)."""
        entry = self.entries[name]
        dtype = np.dtype(DTYPES[entry["dtype"]])
        begin, end = entry["data_offsets"]
        data = np.fromfile(
            self.path, dtype=dtype, count=(end - begin) // dtype.itemsize, offset=self.data_start + begin
        )
        return data.reshape(entry["shape"])

    def float32(self, name: str) -> np.ndarray:
        """The tensor as f32 (bf16 widened exactly)."""
        raw = self.raw(name)
        return bf16_to_f32(raw) if self.dtype(name) == "BF16" else raw.astype(np.float32)
