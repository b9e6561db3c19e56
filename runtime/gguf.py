"""GGUF files: a small strict parser of our own (gguf-py's GGUFReader cannot read i2_s, type 36), and the
file mmap'd so each tensor is a numpy view of the page cache, never a copy.

`parse_gguf(buf)` is a pure function over the file's bytes: every length, count, offset and size is checked
against the buffer before it is used, so a truncated or corrupt file is a ModelError, never a crash, a huge
allocation or a hang; numeric arrays stay numpy arrays (as many bytes as in the file, not a Python object
per number), and the metadata keys the runtime reads are checked to have their types (KEY_KINDS).
`read_gguf(path)` maps a file and parses it. `GGUFFile.copy_tensor_data()` copies its tensors into anonymous memory
on 2 MiB pages, which the engine streams faster than the page cache's 4 KiB pages (Model does it where Linux has them)."""

import math
import mmap
import os
import struct
from dataclasses import dataclass

import numpy as np
from gguf import GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGMLQuantizationType, GGUFValueType

from tritlm.formats import type_of
from tritlm.runtime.errors import ModelError

HUGE_PAGE = 2 << 20  # x86-64's transparent huge page (and ARM64's with 4 KiB base pages)
THP_SETTING = "/sys/kernel/mm/transparent_hugepage/enabled"
COPY_CHUNK = 64 << 20  # bytes copied before their pages of the file are released
MAX_DIMS = 4  # ggml's GGML_MAX_DIMS
MAX_ARRAY_DEPTH = 8  # arrays of arrays: bounded so a corrupt file cannot exhaust the stack

SCALAR_FORMATS: dict[int, str] = {  # GGUFValueType -> struct format
    GGUFValueType.UINT8: "<B",
    GGUFValueType.INT8: "<b",
    GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I",
    GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f",
    GGUFValueType.BOOL: "<?",
    GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q",
    GGUFValueType.FLOAT64: "<d",
}
# What the metadata keys the runtime reads must hold; a file whose keys hold anything else is refused when parsed.
KINDS = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "array of strings": lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
    "array of integers": lambda v: isinstance(v, np.ndarray) and v.dtype.kind in "iu",
    "array of numbers": lambda v: isinstance(v, np.ndarray) and v.dtype.kind in "iuf",
}
KEY_KINDS = {
    "general.architecture": "string",
    "general.name": "string",
    "general.alignment": "integer",
    "tokenizer.ggml.model": "string",
    "tokenizer.ggml.pre": "string",
    "tokenizer.chat_template": "string",
    "tokenizer.ggml.tokens": "array of strings",
    "tokenizer.ggml.merges": "array of strings",
    "tokenizer.ggml.token_type": "array of integers",
    "tokenizer.ggml.scores": "array of numbers",
    "tokenizer.ggml.bos_token_id": "integer",
    "tokenizer.ggml.eos_token_id": "integer",
    "tokenizer.ggml.eot_token_id": "integer",
    "tokenizer.ggml.add_bos_token": "bool",
    "tritlm.ffn_act": "string",
}

# Element types of tensors that get a typed numpy view (bf16 as its raw uint16 bits); others are raw bytes.
NUMPY_TYPES: dict[int, type[np.generic]] = {
    GGMLQuantizationType.F32: np.float32,
    GGMLQuantizationType.F16: np.float16,
    GGMLQuantizationType.BF16: np.uint16,
    GGMLQuantizationType.F64: np.float64,
    GGMLQuantizationType.I8: np.int8,
    GGMLQuantizationType.I16: np.int16,
    GGMLQuantizationType.I32: np.int32,
    GGMLQuantizationType.I64: np.int64,
}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    type: int  # ggml type id
    dims: tuple[int, ...]  # ggml order: dims[0] is the row length
    offset: int  # absolute offset of the first byte in the file
    nbytes: int

    @property
    def type_name(self) -> str:
        t = type_of(self.type)
        assert t is not None  # the parser accepts only types it knows (tensor_nbytes)
        return t.name

    @property
    def cols(self) -> int:
        return self.dims[0]

    @property
    def rows(self) -> int:
        return math.prod(self.dims[1:])


@dataclass(frozen=True)
class GGUFHeader:
    version: int
    metadata: dict  # key -> str | int | float | bool | list
    tensors: list[TensorInfo]
    alignment: int
    data_offset: int  # where the tensor data section starts


def tensor_nbytes(type_id: int, dims: tuple[int, ...]) -> int:
    """Bytes of a tensor; its row length must be a whole number of blocks."""
    t = type_of(type_id)
    if t is None:
        raise ModelError(f"unknown tensor type {type_id}")
    try:
        return t.nbytes(dims)
    except ValueError as e:
        raise ModelError(str(e)) from None


class _Cursor:
    """Reads little-endian values from buf, refusing to read past its end."""

    def __init__(self, buf):
        self.buf, self.pos, self.size = buf, 0, len(buf)

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise ModelError(f"truncated GGUF file: {what} at byte {self.pos} runs past the end ({self.size} bytes)")

    def scalar(self, fmt: str, what: str):
        n = struct.calcsize(fmt)
        self.need(n, what)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return value

    def string(self, what: str) -> str:
        n = self.scalar("<Q", what)
        self.need(n, what)
        try:
            text = str(self.buf[self.pos : self.pos + n], "utf-8")
        except UnicodeDecodeError:
            raise ModelError(f"corrupt GGUF file: {what} at byte {self.pos} is not UTF-8") from None
        self.pos += n
        return text

    def value(self, type_id: int, what: str):
        if type_id == GGUFValueType.STRING:
            return self.string(what)
        if type_id == GGUFValueType.ARRAY:
            return self.array(what)
        if type_id not in SCALAR_FORMATS:
            raise ModelError(f"corrupt GGUF file: {what} has unknown value type {type_id}")
        return self.scalar(SCALAR_FORMATS[type_id], what)

    def array(self, what: str, depth: int = 0) -> list | np.ndarray:
        if depth > MAX_ARRAY_DEPTH:
            raise ModelError(f"corrupt GGUF file: {what} nests arrays more than {MAX_ARRAY_DEPTH} deep")
        elem_type = self.scalar("<I", what)
        count = self.scalar("<Q", what)
        if elem_type in SCALAR_FORMATS:  # numbers: one numpy array, copied out of the file
            fmt = SCALAR_FORMATS[elem_type]
            n = count * struct.calcsize(fmt)
            self.need(n, what)
            values = np.frombuffer(self.buf, dtype=np.dtype(fmt), count=count, offset=self.pos).copy()
            self.pos += n
            return values
        if elem_type not in (GGUFValueType.STRING, GGUFValueType.ARRAY):
            raise ModelError(f"corrupt GGUF file: {what} has unknown element type {elem_type}")
        self.need(count * 8, what)  # each string or array takes at least 8 bytes: bounds count before the loop
        if elem_type == GGUFValueType.STRING:
            return self.strings(count, what)
        return [self.array(what, depth + 1) for _ in range(count)]

    def strings(self, count: int, what: str) -> list[str]:
        """The string() loop inlined: vocabularies hold hundreds of thousands of strings."""
        buf, pos, size, length = self.buf, self.pos, self.size, struct.Struct("<Q").unpack_from
        out = []
        try:
            for _ in range(count):
                if pos + 8 > size:
                    break
                end = pos + 8 + length(buf, pos)[0]
                if end > size:
                    break
                out.append(str(buf[pos + 8 : end], "utf-8"))
                pos = end
        except UnicodeDecodeError:
            raise ModelError(f"corrupt GGUF file: {what} has a string at byte {pos} that is not UTF-8") from None
        self.pos = pos
        if len(out) < count:
            raise ModelError(f"truncated GGUF file: {what} at byte {pos} runs past the end ({size} bytes)")
        return out


def parse_gguf(buf) -> GGUFHeader:
    """Parses and validates a whole GGUF file given as bytes (or any buffer, e.g. an mmap)."""
    with memoryview(buf) as view, view.cast("B") as data:  # released on return, so an mmap can close
        return _parse(_Cursor(data))


def _parse(cur: _Cursor) -> GGUFHeader:
    if cur.size < 4 or struct.unpack_from("<I", cur.buf, 0)[0] != GGUF_MAGIC:
        raise ModelError("not a GGUF file (bad magic)")
    cur.pos = 4
    version = cur.scalar("<I", "version")
    if version not in (2, 3):
        raise ModelError(f"unsupported GGUF version {version} (supported: 2, 3; little-endian)")
    n_tensors = cur.scalar("<Q", "tensor count")
    n_kv = cur.scalar("<Q", "metadata count")
    cur.need(n_kv * 12, "metadata")  # key length + value type at least
    metadata = {}
    for _ in range(n_kv):
        key = cur.string("metadata key")
        if key in metadata:
            raise ModelError(f"corrupt GGUF file: metadata key {key!r} appears twice")
        metadata[key] = cur.value(cur.scalar("<I", key), key)
    check_kinds(metadata)
    alignment = metadata.get("general.alignment", GGUF_DEFAULT_ALIGNMENT)
    if alignment <= 0 or alignment & (alignment - 1):
        raise ModelError(f"corrupt GGUF file: general.alignment {alignment!r} is not a power of two")

    cur.need(n_tensors * 24, "tensor infos")  # name length + n_dims + type + offset at least
    infos = []
    for _ in range(n_tensors):
        name = cur.string("tensor name")
        n_dims = cur.scalar("<I", name)
        if not 1 <= n_dims <= MAX_DIMS:
            raise ModelError(f"corrupt GGUF file: tensor {name!r} has {n_dims} dimensions")
        dims = tuple(cur.scalar("<Q", name) for _ in range(n_dims))
        type_id, offset = cur.scalar("<I", name), cur.scalar("<Q", name)
        if min(dims) == 0:
            raise ModelError(f"corrupt GGUF file: tensor {name!r} has an empty dimension {dims}")
        infos.append((name, type_id, dims, offset))
    data_offset = -(-cur.pos // alignment) * alignment

    tensors, names = [], set()
    for name, type_id, dims, offset in infos:
        if name in names:
            raise ModelError(f"corrupt GGUF file: tensor {name!r} appears twice")
        names.add(name)
        try:
            nbytes = tensor_nbytes(type_id, dims)
        except ModelError as e:
            raise ModelError(f"corrupt GGUF file: tensor {name!r}: {e}") from None
        if offset % alignment:
            raise ModelError(f"corrupt GGUF file: tensor {name!r} offset {offset} is not aligned to {alignment}")
        if data_offset + offset + nbytes > cur.size:
            raise ModelError(
                f"truncated GGUF file: tensor {name!r} ends at byte {data_offset + offset + nbytes}, "
                f"past the end of the file ({cur.size} bytes)"
            )
        tensors.append(TensorInfo(name, type_id, dims, data_offset + offset, nbytes))
    by_offset = sorted(tensors, key=lambda t: t.offset)
    for a, b in zip(by_offset, by_offset[1:]):
        if a.offset + a.nbytes > b.offset:
            raise ModelError(f"corrupt GGUF file: tensors {a.name!r} and {b.name!r} overlap")
    return GGUFHeader(version, metadata, tensors, alignment, data_offset)


def describe(value) -> str:
    """What a metadata value is, for messages."""
    if isinstance(value, np.ndarray):
        return f"an array of {value.size} {value.dtype}"
    if isinstance(value, list):
        return f"an array of {len(value)} {'strings' if all(isinstance(v, str) for v in value) else 'arrays'}"
    return {bool: "a bool", int: "an integer", float: "a float", str: "a string"}[type(value)] + f" ({value!r:.40})"


def check_kinds(metadata: dict) -> None:
    for key, kind in KEY_KINDS.items():
        if key in metadata and not KINDS[kind](metadata[key]):
            raise ModelError(f"metadata key {key} holds {describe(metadata[key])}, not {kind_name(kind)}")


def kind_name(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


class GGUFFile:
    """A GGUF file mapped read-only. Tensors are numpy views of the map, valid until close()."""

    def __init__(self, path: str):
        self.path = path
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size == 0:
                    raise ModelError(f"{path}: empty file, not a GGUF model")
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as e:
            raise ModelError(f"cannot open {path}: {e.strerror or e}") from None
        try:
            header = parse_gguf(self._map)
        except ModelError as e:
            self._map.close()
            raise ModelError(f"{path}: {e}") from None
        self.version, self.metadata, self.tensors = header.version, header.metadata, header.tensors
        self.alignment, self.data_offset = header.alignment, header.data_offset
        self.size = size

    @property
    def buffer(self) -> mmap.mmap:
        return self._map

    def view(self, t: TensorInfo) -> np.ndarray:
        """The tensor's bytes as numpy: typed, shaped [rows..., cols] for float and integer types;
        flat uint8 for block-quantized types."""
        dtype = NUMPY_TYPES.get(t.type)
        if dtype is None:
            return np.frombuffer(self._map, dtype=np.uint8, count=t.nbytes, offset=t.offset)
        return np.frombuffer(self._map, dtype=dtype, count=math.prod(t.dims), offset=t.offset).reshape(t.dims[::-1])

    def copy_tensor_data(self) -> tuple[mmap.mmap, int]:
        """(copy, start): the tensor data (data_offset to the end of the file) copied into private anonymous memory from
        byte start of copy on, a 2 MiB boundary, advised to be backed by transparent huge pages: weights streamed from
        there need a TLB entry per 2 MiB instead of per 4 KiB. The file's pages are released from this process as
        they are copied (they stay in the page cache), so resident memory holds the data once."""
        n = self.size - self.data_offset
        copy = mmap.mmap(-1, n + HUGE_PAGE, flags=mmap.MAP_PRIVATE)
        with memoryview(copy) as dst, memoryview(self._map) as src:
            start = -np.frombuffer(dst, np.uint8, 1).ctypes.data % HUGE_PAGE
            copy.madvise(mmap.MADV_HUGEPAGE)
            released = self.data_offset - self.data_offset % mmap.PAGESIZE
            for at in range(self.data_offset, self.size, COPY_CHUNK):
                end = min(at + COPY_CHUNK, self.size)
                dst[start + at - self.data_offset : start + end - self.data_offset] = src[at:end]
                done = end if end == self.size else end - end % mmap.PAGESIZE
                self._map.madvise(mmap.MADV_DONTNEED, released, done - released)
                released = done
        return copy, start

    def close(self) -> None:
        """Unmaps the file now, or, while numpy views of it are still alive, when the last one goes."""
        try:
            self._map.close()
        except BufferError:
            pass  # the views hold the map: it is unmapped when they are freed, never under them

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def huge_pages_available() -> bool:
    """Whether the system backs anonymous memory with transparent huge pages when asked (Linux THP `always` or
    `madvise`)."""
    if not hasattr(mmap, "MADV_HUGEPAGE"):
        return False
    try:
        with open(THP_SETTING) as f:
            return "[never]" not in f.read()
    except OSError:
        return False


def read_gguf(path: str) -> GGUFFile:
    return GGUFFile(path)
