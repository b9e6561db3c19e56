"""BitNetForCausalLM (microsoft/bitnet-b1.58-2B-4T and its -bf16 twin): Llama with attn_sub_norm before
o_proj, ffn_sub_norm before down_proj and a relu2 MLP. Its seven linears per layer are ternary, stored
either packed (uint8 [out/4, in] + bf16 weight_scale that multiplies) or as bf16 masters (absmean).

Also 1bitLLM's BitnetForCausalLM (bitnet_b1_58-large, -3B): the same graph with a silu MLP, its sub-norms
named inner_attn_ln and ffn_layernorm, fp16 latent weights (absmean at conversion)."""

import math

import numpy as np

from tritlm.formats import LAYER_TENSORS, HParams

from .. import hf_ternary
from ..errors import ConverterError
from . import Tensor

ARCH_NOTE = "BitNet b1.58 (Llama + sub-norms, relu2/silu MLP), packed uint8 or bf16/f32 master weights"

# GGUF norm -> its checkpoint names (2B-4T's first, then 1bitLLM's)
NORMS = {
    "attn_norm": ("input_layernorm",),
    "attn_sub_norm": ("self_attn.attn_sub_norm", "self_attn.inner_attn_ln"),
    "ffn_norm": ("post_attention_layernorm",),
    "ffn_sub_norm": ("mlp.ffn_sub_norm", "mlp.ffn_layernorm"),
}
LINEARS = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
FLOAT_DTYPES = ("BF16", "F16", "F32")
ACTIVATIONS = ("relu2", "silu")


def hparams(config: dict) -> HParams:
    def size(key, default=None):
        value = config.get(key)
        value = default if value is None else value
        if type(value) is not int or value <= 0:
            raise ConverterError(
                f"config.json: {key} is {'missing' if value is None else repr(value)}, not a positive integer"
            )
        return value

    def number(key, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ConverterError(f"config.json: {key} is {value!r}, not a finite number >= 0")
        return float(value)

    act = config.get("hidden_act", "silu")
    if act not in ACTIVATIONS:
        raise ConverterError(f"config.json: hidden_act {act!r} is not supported (supported: {', '.join(ACTIVATIONS)})")
    rope_parameters = config.get("rope_parameters") or {}
    if not isinstance(rope_parameters, dict):
        raise ConverterError(f"config.json: rope_parameters is {rope_parameters!r}, not an object")
    n_embd, n_head = size("hidden_size"), size("num_attention_heads")
    hp = HParams(
        n_layer=size("num_hidden_layers"),
        n_embd=n_embd,
        n_ff=size("intermediate_size"),
        n_head=n_head,
        n_head_kv=size("num_key_value_heads", n_head),
        head_dim=size("head_dim", n_embd // n_head or None),
        n_vocab=size("vocab_size"),
        context_length=size("max_position_embeddings", 4096),
        rms_eps=number("rms_norm_eps", config.get("rms_norm_eps", 1e-5)),
        rope_theta=number("rope_theta", config.get("rope_theta") or rope_parameters.get("rope_theta", 10000.0)),
        ffn_act=act,
        sub_norms=True,
        rope_interleaved=False,
    )
    if hp.problem():  # what the runtime would refuse: never write such a file
        raise ConverterError(f"config.json: {hp.problem()}")
    return hp


def tensors(ckpt, sub_norms: bool = True) -> list[Tensor]:
    """The GGUF tensors; without sub_norms (Llama-shaped checkpoints) there are no attn/ffn_sub_norm."""
    hp = hparams(ckpt.config)
    q, kv = hp.n_head * hp.head_dim, hp.n_head_kv * hp.head_dim
    linear_shapes = {
        "attn_q": (q, hp.n_embd),
        "attn_k": (kv, hp.n_embd),
        "attn_v": (kv, hp.n_embd),
        "attn_output": (hp.n_embd, q),
        "ffn_gate": (hp.n_ff, hp.n_embd),
        "ffn_up": (hp.n_ff, hp.n_embd),
        "ffn_down": (hp.n_embd, hp.n_ff),
    }
    norm_sizes = {"attn_norm": hp.n_embd, "attn_sub_norm": hp.n_embd, "ffn_norm": hp.n_embd, "ffn_sub_norm": hp.n_ff}
    tied = ckpt.config.get("tie_word_embeddings", False) or not ckpt.has("lm_head.weight")

    out = [
        float_tensor(ckpt, "token_embd.weight", "model.embed_tokens.weight", (hp.n_vocab, hp.n_embd)),
        norm_tensor(ckpt, "output_norm.weight", "model.norm.weight", hp.n_embd),
    ]
    if not tied:
        out.append(float_tensor(ckpt, "output.weight", "lm_head.weight", (hp.n_vocab, hp.n_embd)))
    for i in range(hp.n_layer):
        hf = f"model.layers.{i}."
        for gguf_name in LAYER_TENSORS:
            name = f"blk.{i}.{gguf_name}.weight"
            if gguf_name.endswith("_sub_norm") and not sub_norms:
                continue
            if gguf_name in NORMS:
                source = next(
                    (hf + n + ".weight" for n in NORMS[gguf_name] if ckpt.has(hf + n + ".weight")),
                    hf + NORMS[gguf_name][0] + ".weight",
                )
                out.append(norm_tensor(ckpt, name, source, norm_sizes[gguf_name]))
            else:
                out.append(ternary_tensor(ckpt, name, hf + LINEARS[gguf_name], linear_shapes[gguf_name]))
    return out


def gguf_arch(type_name: str) -> str:
    """bitnet.cpp's name for its i2_s files; llama.cpp's otherwise."""
    return "bitnet-b1.58" if type_name == "i2_s" else "bitnet"


def float_tensor(ckpt, name, source, shape) -> Tensor:
    dtype = ckpt.info(source, FLOAT_DTYPES, shape)

    def load():
        return finite(source, ckpt.raw(source), dtype)

    return Tensor(name, shape, "float", load, dtype=dtype)


def norm_tensor(ckpt, name, source, size) -> Tensor:
    ckpt.info(source, FLOAT_DTYPES, (size,))

    def load():
        return finite(source, ckpt.float32(source), "F32")

    return Tensor(name, (size,), "norm", load)


def finite(source: str, values: np.ndarray, dtype: str) -> np.ndarray:
    """values, after checking they hold no NaN or Inf: the runtime refuses such float weights (they would reach
    its int8 quantizer), so the converter does not write them. Checked a slab of rows at a time (bf16 by its
    exponent bits), so a large embedding needs no full-size temporary."""
    rows = values.reshape(len(values) if values.ndim > 1 else 1, -1)
    for start in range(0, len(rows), 1024):
        slab = rows[start : start + 1024]
        bad = (slab & 0x7F80) == 0x7F80 if dtype == "BF16" else ~np.isfinite(slab)
        hits = np.flatnonzero(bad.any(axis=1))
        if hits.size:
            raise ConverterError(f"{source}: row {start + hits[0]} holds a NaN or Inf")
    return values


def scale_multiplies(config: dict) -> bool:
    """transformers' two packed layers: AutoBitLinear (linear_class autobitlinear, 2B-4T) multiplies by
    weight_scale; BitLinear (no linear_class, or bitlinear: Falcon3/Falcon-E/Llama3-8B-1.58) divides by it."""
    return quantization_config(config).get("linear_class") == "autobitlinear"


def quantization_config(config: dict) -> dict:
    quant = config.get("quantization_config") or {}
    if not isinstance(quant, dict):
        raise ConverterError(f"config.json: quantization_config is {quant!r}, not an object")
    return quant


def ternary_tensor(ckpt, name, source, shape) -> Tensor:
    """Packed: unpack the uint8 rows and take the weight_scale (it multiplies or divides, per
    scale_multiplies). Masters: absmean ternarization, computed here once for the scale (the GGUF header
    needs it before any data)."""
    weight = source + ".weight"
    rows, cols = shape
    if ckpt.has(weight) and ckpt.dtype(weight) == "U8":
        ckpt.info(weight, ("U8",), (rows // hf_ternary.VALUES_PER_BYTE, cols))
        ckpt.info(source + ".weight_scale", FLOAT_DTYPES, (1,))
        stored = ckpt.float32(source + ".weight_scale")[0]
        scale = float(stored if scale_multiplies(ckpt.config) else np.float32(1) / stored)

        def load():
            raw = ckpt.raw(weight)
            try:
                return hf_ternary.unpack(raw)
            except ConverterError as e:
                raise ConverterError(f"{weight}: {e}") from None
    else:
        ckpt.info(weight, FLOAT_DTYPES, shape)
        scale = float(hf_ternary.absmean_ternarize(ckpt.float32(weight))[1])

        def load():
            return hf_ternary.absmean_ternarize(ckpt.float32(weight))[0]

    if not 0 < scale < np.inf:
        raise ConverterError(f"{source}: weight scale {scale} is not a positive finite number")
    return Tensor(name, shape, "ternary", load, scale=scale)
