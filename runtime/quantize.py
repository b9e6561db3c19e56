"""`tritlm quantize IN.gguf OUT.gguf --output-type T --token-embedding-type E`: an existing file with its output
matrix stored as T and/or its token embedding as E (llama-quantize's options of the same names).

The output projection (output.weight, or the token embedding when tied: then a separate output.weight is
added and the embedding stays as it is, one row per token) is dequantized with gguf-py and re-encoded
(quants.encode). E re-encodes token_embd itself: a tied model keeps one matrix, the form llama.cpp's bitnet graph
loads (it refuses a separate output.weight). Every other byte (metadata, tokenizer, tensors) is copied as it is."""

import os
import struct

import numpy as np
from gguf import GGMLQuantizationType
from gguf import quants as gguf_quants

from tritlm import quants

from .cli import open_file
from .errors import InputError, ModelError
from .gguf import GGUFFile, TensorInfo

ROWS_PER_CHUNK = quants.ROWS_PER_CHUNK


def register(sub) -> None:
    p = sub.add_parser("quantize", help="rewrite a GGUF file with its output matrix or token embedding in another type")
    p.add_argument("input", help="input .gguf")
    p.add_argument("output", help="output .gguf")
    p.add_argument("--output-type", choices=quants.OUTPUT_MATRIX_TYPES, help="type of the output matrix (logits)")
    p.add_argument(
        "--token-embedding-type",
        choices=quants.OUTPUT_MATRIX_TYPES,
        help="type of token_embd itself (tied: also the output matrix, in the one form llama.cpp loads)",
    )
    p.set_defaults(func=run_quantize, errors=(InputError,))


def run_quantize(args) -> int:
    quantize(args.input, args.output, args.output_type, args.token_embedding_type)
    print(f"wrote {args.output}")
    return 0


def quantize(src: str, dst: str, output_type: str | None, embedding_type: str | None = None) -> None:
    for option, value in (("output", output_type), ("token embedding", embedding_type)):
        if value is not None and value not in quants.OUTPUT_MATRIX_TYPES:
            raise InputError(f"unknown {option} type {value!r}: choose one of {', '.join(quants.OUTPUT_MATRIX_TYPES)}")
    if output_type is None and embedding_type is None:
        raise InputError("quantize needs --output-type and/or --token-embedding-type")
    if os.path.abspath(src) == os.path.abspath(dst):
        raise InputError("quantize writes a new file: OUT must differ from IN")
    f = GGUFFile(src)
    try:
        by_name = {t.name: t for t in f.tensors}
        if "token_embd.weight" not in by_name:
            raise ModelError(f"{src}: no token_embd.weight tensor")
        tensors, encoded = list(f.tensors), dict[str, np.ndarray]()
        if "output.weight" not in by_name and output_type == embedding_type:
            output_type = None  # tied: token_embd re-encoded as E is already the output matrix in that type
        if output_type is not None:  # from the file's output matrix, before token_embd changes
            source = by_name.get("output.weight", by_name["token_embd.weight"])
            output = reencoded(f, source, "output.weight", output_type, encoded)
            if "output.weight" in by_name:
                tensors = [output if t.name == "output.weight" else t for t in tensors]
            else:
                names = [t.name for t in tensors]
                at = names.index("output_norm.weight") + 1 if "output_norm.weight" in names else len(names)
                tensors = tensors[:at] + [output] + tensors[at:]
        if embedding_type is not None:
            embd = reencoded(f, by_name["token_embd.weight"], "token_embd.weight", embedding_type, encoded)
            tensors = [embd if t.name == "token_embd.weight" else t for t in tensors]
        write(f, tensors, encoded, dst)
    finally:
        f.close()


def reencoded(f: GGUFFile, source: TensorInfo, name: str, type_name: str, encoded: dict[str, np.ndarray]) -> TensorInfo:
    """The tensor `name` holding source's matrix as type_name; its bytes go to encoded[name]."""
    if quants.unfit(type_name, source.cols):
        raise ModelError(f"{f.path}: {source.name}: {quants.unfit(type_name, source.cols)}")
    encoded[name] = encode_matrix(f, source, type_name)
    return TensorInfo(name, int(GGMLQuantizationType[type_name.upper()]), source.dims, -1, encoded[name].nbytes)


def encode_matrix(f: GGUFFile, t: TensorInfo, output_type: str) -> np.ndarray:
    """The matrix of tensor t (rows = vocabulary) dequantized by gguf-py and encoded as output_type, in chunks of rows."""
    qtype = GGMLQuantizationType(t.type)
    raw = np.frombuffer(f.buffer, np.uint8, t.nbytes, t.offset).reshape(t.rows, -1)
    return np.concatenate(
        [
            quants.encode(gguf_quants.dequantize(raw[r : r + ROWS_PER_CHUNK], qtype).reshape(-1, t.cols), output_type)
            for r in range(0, t.rows, ROWS_PER_CHUNK)
        ]
    )


def tensor_info_bytes(t: TensorInfo, offset: int) -> bytes:
    name = t.name.encode()
    return (
        struct.pack("<Q", len(name))
        + name
        + struct.pack("<I", len(t.dims))
        + struct.pack(f"<{len(t.dims)}Q", *t.dims)
        + struct.pack("<IQ", t.type, offset)
    )


def metadata_end(f: GGUFFile) -> int:
    """Where the metadata ends and the tensor infos start: the infos as parsed, serialized again, end within the
    alignment padding before the data section."""
    infos = b"".join(tensor_info_bytes(t, t.offset - f.data_offset) for t in f.tensors)
    buf = f.buffer
    for end in range(f.data_offset, max(f.data_offset - f.alignment, 0), -1):
        if buf[end - len(infos) : end] == infos and not any(buf[end : f.data_offset]):
            return end - len(infos)
    raise ModelError(f"{f.path}: tensor infos not found where the header says they end")


def write(f: GGUFFile, tensors: list[TensorInfo], encoded: dict[str, np.ndarray], dst: str) -> None:
    """f's metadata as it is, the new tensor infos and data (encoded[name] for a tensor not in f: offset -1),
    written under a temporary name and renamed."""
    align = lambda n: -(-n // f.alignment) * f.alignment  # noqa: E731
    offsets, pos = [], 0
    for t in tensors:
        offsets.append(pos)
        pos = align(pos + t.nbytes)
    head = bytearray(f.buffer[: metadata_end(f)])
    struct.pack_into("<Q", head, 8, len(tensors))  # magic, version, then the tensor count
    head += b"".join(tensor_info_bytes(t, o) for t, o in zip(tensors, offsets))
    head += bytes(align(len(head)) - len(head))
    tmp = dst + ".tmp"
    try:
        with open_file(tmp, "wb") as out:
            out.write(head)
            for t, o in zip(tensors, offsets):
                out.seek(len(head) + o)
                out.write(encoded[t.name].data if t.offset < 0 else f.buffer[t.offset : t.offset + t.nbytes])
            out.truncate(len(head) + pos)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
