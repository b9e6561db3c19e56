"""A checkpoint -> one GGUF file (docs/format.md), streamed tensor by tensor: the header (metadata,
tokenizer, every tensor's type and size, the exact weight scales) first, then each tensor's data loaded,
packed and written in turn. The file is written under a temporary name and renamed when complete."""
import os

import gguf
import numpy as np
from tqdm import tqdm

from . import pack, vocab
from .checkpoint import Checkpoint
from .families import Tensor, family_for

FLOAT_TYPES = {"BF16": gguf.GGMLQuantizationType.BF16, "F16": gguf.GGMLQuantizationType.F16,
               "F32": gguf.GGMLQuantizationType.F32}
STORED_NUMPY = {"BF16": np.uint16, "F16": np.float16, "F32": np.float32}


def convert(checkpoint_dir: str, out_path: str, type_name: str = "i2_s", progress: bool = True) -> None:
    if type_name not in pack.TYPES:
        raise ValueError(f"unknown type {type_name!r}: choose one of {', '.join(pack.TYPES)}")
    ckpt = Checkpoint(checkpoint_dir)
    family = family_for(ckpt.config)
    hp = family.hparams(ckpt.config)
    tensors = family.tensors(ckpt)

    tmp = out_path + ".tmp"
    writer = gguf.GGUFWriter(tmp, family.gguf_arch(type_name))
    try:
        add_metadata(writer, hp, os.path.basename(os.path.normpath(checkpoint_dir)))
        vocab.add_tokenizer(writer, checkpoint_dir, hp.n_vocab)
        for t in tensors:
            if t.kind == "ternary":
                writer.add_float32(f"tritlm.weight_scale.{t.name}", t.scale)
            gguf_type, size = stored_type(t, type_name)
            writer.add_tensor_info(t.name, stored_shape(t, type_name), np.float32, size, raw_dtype=gguf_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for t in tqdm(tensors, desc=f"writing {type_name}", unit="tensor", disable=not progress):
            writer.write_tensor_data(payload(t, type_name))
        writer.close()
        os.replace(tmp, out_path)
    finally:
        writer.close()
        if os.path.exists(tmp):
            os.remove(tmp)


def add_metadata(writer: gguf.GGUFWriter, hp, name: str) -> None:
    writer.add_name(name)
    writer.add_block_count(hp.n_layer)
    writer.add_context_length(hp.n_ctx)
    writer.add_embedding_length(hp.n_embd)
    writer.add_feed_forward_length(hp.n_ff)
    writer.add_head_count(hp.n_head)
    writer.add_head_count_kv(hp.n_head_kv)
    writer.add_layer_norm_rms_eps(hp.rms_eps)
    writer.add_rope_freq_base(hp.rope_theta)
    writer.add_rope_dimension_count(hp.head_dim)
    writer.add_key_length(hp.head_dim)  # llama.cpp takes head_dim from these (Falcon3: not n_embd / n_head)
    writer.add_value_length(hp.head_dim)
    writer.add_vocab_size(hp.n_vocab)
    writer.add_string("tritlm.ffn_act", hp.ffn_act)


def stored_type(t: Tensor, type_name: str) -> tuple[int, int]:
    """(ggml type id, bytes) of a tensor in the file."""
    n = int(np.prod(t.shape))
    if t.kind == "ternary":
        return pack.TYPES[type_name].id, pack.nbytes(type_name, *t.shape)
    if t.kind == "norm":
        return gguf.GGMLQuantizationType.F32, 4 * n
    return FLOAT_TYPES[t.dtype], np.dtype(STORED_NUMPY[t.dtype]).itemsize * n


def stored_shape(t: Tensor, type_name: str) -> tuple[int, ...]:
    """A ternary tensor's rows are stored zero-padded to whole blocks (pack.padded_cols)."""
    if t.kind == "ternary":
        return t.shape[0], pack.padded_cols(type_name, t.shape[1])
    return t.shape


def payload(t: Tensor, type_name: str) -> np.ndarray:
    if t.kind == "ternary":
        return pack.pack(t.load(), t.scale, type_name)
    if t.kind == "norm":
        return np.ascontiguousarray(t.load(), dtype=np.float32)
    return np.ascontiguousarray(t.load())
