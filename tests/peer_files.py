"""Tiny GGUF files written the way other projects' converters write them, to test that the runtime reads them.
The rules come from their sources (not their code):

- bitnet.cpp, utils/convert-hf-to-gguf-bitnet.py `--outtype i2_s` (class BitnetModel): architecture
  `bitnet-b1.58`; `general.file_type` 40; no tritlm.* keys; the seven linears of each layer as I2_S (a packed
  checkpoint's ternary codes with its weight_scale as the f32 trailer scale; master weights absmean-ternarized
  in float32 with the first nonzero |value| as the scale); the token embedding F16; norms F32; tied output.
  Its llama-quantize can requantize the embedding (`--token-embedding-type`, utils/quantize_embeddings.py):
  `embedding="q6_k"` (or "q8_0", "bf16") stands for that. utils/convert-ms-to-gguf-bitnet.py + llama-quantize
  name the same tensors under `bitnet-25` (the `arch` argument).
- llama.cpp, convert_hf_to_gguf.py `--outtype tq1_0|tq2_0`: BitnetModel (architecture `bitnet`, no
  rope.dimension_count, vocab_size or activation key: its graph is SiLU) or LlamaModel (Llama-shaped BitNet
  checkpoints: `llama`, q/k rows permuted, vocab_size, rope.dimension_count); linears dequantized to float
  (packed: codes / weight_scale in the generic path, codes * weight_scale in BitnetModel; masters:
  round(W / mean|W|) clamped, divided by 1 / mean|W|, cast back to the checkpoint's dtype) and quantized by
  gguf-py (`d` = each block's max |w|); a tensor gguf-py cannot quantize (rows not whole blocks) falls back
  to F16; token embedding F16; norms F32. Its `bitnet` architecture has no output tensor (the graph reuses
  token_embd), so an untied checkpoint does not convert.

The tokenizer is written with our converter's vocab module: both projects write gguf-py's standard keys."""

import json
import os

import gguf
import numpy as np
import torch
from gguf import GGMLQuantizationType as QT
from safetensors import safe_open

from tritlm.converter import vocab
from tritlm.formats import TYPES

I2_S = TYPES["i2_s"]
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "self_attn.attn_sub_norm": "attn_sub_norm",
    "self_attn.inner_attn_ln": "attn_sub_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "mlp.ffn_sub_norm": "ffn_sub_norm",
    "mlp.ffn_layernorm": "ffn_sub_norm",
}


def gguf_name(hf_name: str) -> str:
    if hf_name in NAMES:
        return NAMES[hf_name]
    _, _, layer, rest = hf_name.split(".", 3)
    return f"blk.{layer}.{NAMES[rest.removesuffix('.weight')]}.weight"


def read_checkpoint(path: str) -> tuple[dict, dict]:
    """(config, name -> torch tensor in its stored dtype)."""
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    with safe_open(os.path.join(path, "model.safetensors"), "pt") as f:
        return config, {name: f.get_tensor(name) for name in f.keys()}


def unpack_codes(packed: torch.Tensor) -> torch.Tensor:
    """uint8 [out/4, in] -> float32 [out, in] in {-1, 0, 1}: bits 2k..2k+1 of byte row r hold row r + k*out/4."""
    shift = torch.tensor([0, 2, 4, 6], dtype=torch.uint8).reshape(4, 1, 1)
    codes = (packed.unsqueeze(0) >> shift) & 3
    return (codes.float() - 1).reshape(packed.shape[0] * 4, packed.shape[1])


def absmean_dequantized(w: torch.Tensor) -> torch.Tensor:
    """Both converters' weight_quant: ternary / s with s = 1 / mean|W| (float32), in the input's dtype."""
    s = 1 / w.float().abs().mean().clamp(min=1e-5)
    return ((w.float() * s).round().clamp(-1, 1) / s).to(w.dtype)


def is_linear(name: str) -> bool:
    return any(name.endswith(f".{proj}.weight") for proj in LINEARS)


def add_hparams(writer: gguf.GGUFWriter, config: dict, name: str, file_type: int) -> None:
    """What both converters' base Model/TextModel.set_gguf_parameters write."""
    writer.add_name(name)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config.get("num_key_value_heads", config["num_attention_heads"]))
    writer.add_rope_freq_base(config.get("rope_theta", 10000.0))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    if "head_dim" in config:
        writer.add_key_length(config["head_dim"])
        writer.add_value_length(config["head_dim"])
    writer.add_file_type(file_type)


def write(path: str, writer: gguf.GGUFWriter, tensors: list[tuple[str, np.ndarray, int, tuple]]) -> None:
    """tensors: (name, bytes or array, ggml type, numpy shape in values)."""
    for name, data, type_id, shape in tensors:
        writer.add_tensor_info(name, shape, np.float32, data.nbytes, raw_dtype=type_id)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for _, data, _, _ in tensors:
        writer.write_tensor_data(np.ascontiguousarray(data))
    writer.close()


# ---- bitnet.cpp ----


def pack_i2_s(values: np.ndarray, scale: np.float32) -> np.ndarray:
    """convert-hf-to-gguf-bitnet.py's quantize_i2_s: codes 0/1/2 for -1/0/+1 of the flattened tensor, 128
    values a block of 32 bytes (value 32g + p at bits 6 - 2g of byte p), then 32 bytes: the f32 scale, zeros."""
    flat = values.reshape(-1)
    codes = np.ones(flat.size, np.uint8)
    codes[flat > 0.5], codes[flat < -0.5] = 2, 0
    blocks = codes.reshape(-1, 4, I2_S.block_values // 4)
    packed = (blocks[:, 0] << 6) | (blocks[:, 1] << 4) | (blocks[:, 2] << 2) | blocks[:, 3]
    trailer = np.zeros(I2_S.trailer, np.uint8)
    trailer[:4] = np.frombuffer(np.float32(scale).tobytes(), np.uint8)
    return np.concatenate([packed.reshape(-1), trailer])


def i2_s_of(name: str, tensors: dict) -> np.ndarray:
    scale = tensors.get(name + "_scale")
    if scale is not None:  # packed: the codes as they are, weight_scale (it multiplies in 2B-4T) as the scale
        return pack_i2_s(unpack_codes(tensors[name]).numpy(), np.float32(scale.float().item()))
    w = tensors[name]
    w = absmean_dequantized(w if w.dtype in (torch.float16, torch.float32) else w.float()).float().numpy()
    scale = np.abs(w[np.abs(w) > 1e-6])[0]  # the first nonzero |value|
    return pack_i2_s(np.round(w * (np.float32(1) / scale)).clip(-1, 1), scale)


def quantize_q6_k(x: np.ndarray) -> np.ndarray:
    """A valid Q6_K encoding of x [rows, cols] (a plain absmax choice of scales, not ggml's search: the
    runtime reads whatever scales a file holds, and gguf-py's dequantize is the reference for the values)."""
    blocks = x.astype(np.float32).reshape(-1, 16, 16)  # 256-value blocks of 16 sub-blocks of 16
    sub = np.abs(blocks).max(-1) / 31
    d = (sub.max(-1, keepdims=True) / 127).astype(np.float16)
    sc = np.where(d > 0, np.round(sub / np.where(d > 0, d.astype(np.float32), 1)), 0).clip(0, 127).astype(np.int8)
    step = (d.astype(np.float32) * sc)[..., None]
    q = np.where(step > 0, np.round(blocks / np.where(step > 0, step, 1)), 0).clip(-32, 31).astype(np.int16) + 32
    q = q.reshape(-1, 2, 128).astype(np.uint8)  # halves of 128 values
    ql = (q[:, :, :64] & 15) | ((q[:, :, 64:] & 15) << 4)
    qh = q[:, :, 0:32] >> 4 | (q[:, :, 32:64] >> 4) << 2 | (q[:, :, 64:96] >> 4) << 4 | (q[:, :, 96:128] >> 4) << 6
    out = np.concatenate([ql.reshape(-1, 128), qh.reshape(-1, 64), sc.view(np.uint8), d.view(np.uint8)], axis=1)
    return out.reshape(x.shape[0], -1)


def bitnet_cpp_gguf(
    checkpoint: str, out: str, embedding: str = "f16", arch: str = "bitnet-b1.58", output_copy: bool = False
) -> str:
    """output_copy: also an output.weight equal to the embedding, as the re-uploaded official 2B-4T file has."""
    config, tensors = read_checkpoint(checkpoint)
    writer = gguf.GGUFWriter(out, arch)
    add_hparams(writer, config, os.path.basename(checkpoint), file_type=40)  # LLAMA_FTYPE_MOSTLY_I2_S
    writer.add_vocab_size(config["vocab_size"])
    writer.add_rope_dimension_count(config["hidden_size"] // config["num_attention_heads"])
    vocab.add_tokenizer(writer, checkpoint, config["vocab_size"])
    out_tensors = []
    for name, t in tensors.items():
        if name.endswith(".weight_scale"):
            continue
        shape = tuple(t.shape) if t.dtype != torch.uint8 else (t.shape[0] * 4, t.shape[1])
        if is_linear(name):
            out_tensors.append((gguf_name(name), i2_s_of(name, tensors), I2_S.id, shape))
        elif t.dim() == 1:
            out_tensors.append((gguf_name(name), t.float().numpy(), QT.F32, shape))
        elif embedding == "q6_k":
            out_tensors.append((gguf_name(name), quantize_q6_k(t.float().numpy()), QT.Q6_K, shape))
        else:  # f16, or what gguf-py quantizes (q8_0, bf16)
            qtype = QT[embedding.upper()]
            out_tensors.append((gguf_name(name), gguf.quants.quantize(t.float().numpy(), qtype), qtype, shape))
    if output_copy:
        out_tensors.append(("output.weight",) + next(t for t in out_tensors if t[0] == "token_embd.weight")[1:])
    write(out, writer, out_tensors)
    return out


# ---- llama.cpp ----


def llama_permute(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """LlamaModel.permute: each head's two rotated halves interleaved as pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama_cpp_gguf(checkpoint: str, out: str, type_name: str) -> str:
    config, tensors = read_checkpoint(checkpoint)
    llama = config["architectures"][0] == "LlamaForCausalLM"
    qtype = {"tq1_0": QT.TQ1_0, "tq2_0": QT.TQ2_0}[type_name]
    writer = gguf.GGUFWriter(out, "llama" if llama else "bitnet")
    add_hparams(writer, config, os.path.basename(checkpoint), file_type={"tq1_0": 36, "tq2_0": 37}[type_name])
    if llama:
        writer.add_vocab_size(config["vocab_size"])
        writer.add_rope_dimension_count(
            config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
        )
    else:
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(1.0)
    vocab.add_tokenizer(writer, checkpoint, config["vocab_size"])
    out_tensors = []
    for name, t in tensors.items():
        if name.endswith(".weight_scale"):
            continue
        if name == "lm_head.weight" and not llama:  # gguf-py's MODEL_ARCH.BITNET has no output tensor
            raise ValueError("Can not map tensor 'lm_head.weight'")
        if t.dtype == torch.uint8:  # packed: the generic path divides by weight_scale, BitnetModel multiplies
            scale = tensors[name + "_scale"].float()
            t = unpack_codes(t) / scale if llama else unpack_codes(t) * scale.item()
        elif is_linear(name):
            t = absmean_dequantized(t)
        if llama and name.endswith(("q_proj.weight", "k_proj.weight")):
            heads = config["num_attention_heads"] if "q_proj" in name else config["num_key_value_heads"]
            t = llama_permute(t, heads)
        data = t.float().numpy()
        if data.ndim == 1:
            out_tensors.append((gguf_name(name), data, QT.F32, data.shape))
            continue
        try:
            out_type = qtype if is_linear(name) else QT.F16  # token_embd/output: F16 for TQ files
            packed = gguf.quants.quantize(data, out_type)
        except gguf.QuantError:  # rows that are not whole blocks
            out_type, packed = QT.F16, data.astype(np.float16)
        out_tensors.append((gguf_name(name), packed, out_type, data.shape))
    write(out, writer, out_tensors)
    return out
