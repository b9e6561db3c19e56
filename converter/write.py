"""A checkpoint -> one GGUF file (docs/format.md), streamed tensor by tensor: the header (metadata,
tokenizer, every tensor's type and size, the exact weight scales) first, then each tensor's data loaded,
packed and written in turn. The file is written under a temporary name and renamed when complete."""

import os

import gguf
import numpy as np
from tqdm import tqdm

from tritlm import quants
from tritlm.formats import ACT_GROUPS, TYPES, HParams

from . import pack, vocab
from .checkpoint import Checkpoint
from .errors import ConverterError
from .families import Tensor, family_for
from .hub import model_name
from .safetensors_io import bf16_to_f32


def convert(
    checkpoint_dir: str,
    out_path: str,
    type_name: str = "i2_s",
    progress: bool = True,
    output_type: str | None = None,
    name: str | None = None,
) -> None:
    """output_type: store the output matrix in that type (quants.OUTPUT_MATRIX_TYPES); default: as the checkpoint.
    name: general.name (default: the checkpoint folder's name)."""
    if type_name not in pack.OUTPUT_TYPES:
        raise ConverterError(f"unknown type {type_name!r}: choose one of {', '.join(pack.OUTPUT_TYPES)}")
    if output_type is not None and output_type not in quants.OUTPUT_MATRIX_TYPES:
        raise ConverterError(
            f"unknown output type {output_type!r}: choose one of {', '.join(quants.OUTPUT_MATRIX_TYPES)}"
        )
    ckpt = Checkpoint(checkpoint_dir)
    family = family_for(ckpt.config)
    hp = family.hparams(ckpt.config)
    tensors = family.tensors(ckpt)
    if output_type is not None:
        tensors = with_output_matrix(tensors, output_type)

    tmp = out_path + ".tmp"
    writer = gguf.GGUFWriter(tmp, family.gguf_arch(type_name))
    try:
        add_metadata(writer, hp, name or model_name(checkpoint_dir))
        add_activation_mode(writer, ckpt.config)
        vocab.add_tokenizer(writer, checkpoint_dir, hp.n_vocab)
        for t in tensors:
            if t.kind == "ternary":
                writer.add_float32(f"tritlm.weight_scale.{t.name}", t.scale)
            gguf_type, size = stored_type(t, type_name)
            shape = stored_shape(t, type_name)
            # gguf-py annotates raw_dtype as its GGMLQuantizationType, which lacks i2_s (36); it writes any int id.
            writer.add_tensor_info(t.name, shape, np.dtype(np.float32), size, raw_dtype=gguf_type)  # type: ignore[arg-type]
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for t in tqdm(tensors, desc=f"writing {type_name}", unit="tensor", disable=not progress):
            writer.write_tensor_data(payload(t, type_name))
        writer.close()
        os.replace(tmp, out_path)
    except OSError as e:  # the output cannot be written, or a checkpoint file cannot be read
        raise ConverterError(f"{out_path if e.filename in (None, tmp) else e.filename}: {e.strerror or e}") from None
    finally:
        writer.close()
        if os.path.exists(tmp):
            os.remove(tmp)


def add_metadata(writer: gguf.GGUFWriter, hp: HParams, name: str) -> None:
    writer.add_name(name)
    writer.add_block_count(hp.n_layer)
    writer.add_context_length(hp.context_length)
    writer.add_embedding_length(hp.n_embd)
    writer.add_feed_forward_length(hp.n_ff)
    writer.add_head_count(hp.n_head)
    writer.add_head_count_kv(hp.n_head_kv)
    writer.add_layer_norm_rms_eps(hp.rms_eps)
    writer.add_rope_freq_base(hp.rope_theta)
    writer.add_rope_dimension_count(hp.head_dim)  # RoPE rotates the whole head
    writer.add_key_length(hp.head_dim)  # llama.cpp takes head_dim from these (Falcon3: not n_embd / n_head)
    writer.add_value_length(hp.head_dim)
    writer.add_vocab_size(hp.n_vocab)
    writer.add_string("tritlm.ffn_act", hp.ffn_act)


def add_activation_mode(writer: gguf.GGUFWriter, config: dict) -> None:
    """A4.8 / Q-Sparse checkpoints (models/train_variant.py): how each linear input and the KV cache must be
    quantized, from quantization_config to tritlm.* keys (docs/format.md). b1.58 checkpoints write none."""
    q = config.get("quantization_config") or {}
    bits, topk = q.get("activation_bits"), q.get("activation_topk")
    if bits is None and topk is None and q.get("kv_cache_bits") is None:
        return
    bits, topk = bits or {}, topk or {}
    for key in set(bits) | set(topk):
        if key not in ACT_GROUPS:
            raise ConverterError(
                f"quantization_config: unknown linear input group {key!r} (known: {', '.join(ACT_GROUPS)})"
            )
    for group in ACT_GROUPS:
        b, k = bits.get(group, 8), topk.get(group, 1.0)
        if b not in (4, 8):
            raise ConverterError(f"quantization_config.activation_bits.{group} = {b!r}: supported are 4 and 8")
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not 0 < k <= 1:
            raise ConverterError(f"quantization_config.activation_topk.{group} = {k!r}: must be a fraction in (0, 1]")
        writer.add_uint32(f"tritlm.activation_bits.{group}", b)
        writer.add_float32(f"tritlm.activation_topk.{group}", float(k))
    kv, first = q.get("kv_cache_bits"), q.get("kv_cache_bits_first", q.get("kv_cache_bits"))
    if kv is not None:
        if kv not in (3, 4) or first not in (3, 4):
            raise ConverterError(f"quantization_config.kv_cache_bits {kv!r} / _first {first!r}: supported are 3 and 4")
        writer.add_uint32("tritlm.kv_cache_bits", kv)
        writer.add_uint32("tritlm.kv_cache_bits_first", first)


def stored_type(t: Tensor, type_name: str) -> tuple[int, int]:
    """(ggml type id, bytes) of a tensor in the file."""
    if t.kind == "ternary":
        return TYPES[type_name].id, pack.nbytes(type_name, *t.shape)
    stored = TYPES["f32" if t.kind == "norm" else t.dtype.lower()]
    return stored.id, stored.nbytes(t.shape[::-1])


def stored_shape(t: Tensor, type_name: str) -> tuple[int, ...]:
    """A ternary tensor's rows are stored zero-padded to whole blocks (pack.stored_shape)."""
    if t.kind == "ternary":
        return pack.stored_shape(type_name, *t.shape)
    return t.shape


def payload(t: Tensor, type_name: str) -> np.ndarray:
    if t.kind == "ternary":
        assert t.scale is not None  # the families give every ternary tensor its scale
        return pack.pack(t.load(), t.scale, type_name)
    if t.kind == "norm":
        return np.ascontiguousarray(t.load(), dtype=np.float32)
    return np.ascontiguousarray(t.load())


def with_output_matrix(tensors: list[Tensor], type_name: str) -> list[Tensor]:
    """The tensors with the output projection stored as type_name: output.weight re-encoded, or, for a tied
    embedding, a new output.weight encoded from it (the token embedding stays as it is: one row per token)."""
    by_name = {t.name: t for t in tensors}
    source = by_name.get("output.weight") or by_name["token_embd.weight"]
    output = Tensor(
        "output.weight",
        source.shape,
        "float",
        lambda: quants.encode(as_float32(source), type_name),
        dtype=type_name.upper(),
    )
    if "output.weight" in by_name:
        return [output if t.name == "output.weight" else t for t in tensors]
    at = [t.name for t in tensors].index("output_norm.weight") + 1
    return tensors[:at] + [output] + tensors[at:]


def as_float32(t: Tensor) -> np.ndarray:
    """A float tensor's values as f32 (bf16 is stored as uint16: the top half of an f32)."""
    values = t.load()
    return bf16_to_f32(values) if t.dtype == "BF16" else values.astype(np.float32)
