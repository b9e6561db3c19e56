"""LlamaForCausalLM with transformers' BitNet quantization (HF1BitLLM/Llama3-8B-1.58-100B-tokens,
tiiuae/Falcon3-*-1.58bit, tiiuae/Falcon-E-*): plain Llama (silu MLP, no sub-norms) whose seven linears per
layer are packed ternary uint8 [out/4, in] with a weight_scale that divides (transformers' BitLinear);
the embedding and lm_head stay in the checkpoint's float precision. Written as llama.cpp's `llama`
architecture with ternary tensors, which bitnet.cpp also uses for these models: its q and k rows are
permuted as llama.cpp's converter does, so the two rotated halves of each head become interleaved pairs
(llama.cpp's normal RoPE instead of Hugging Face's rotate-half)."""

from dataclasses import replace

import numpy as np

from tritlm.formats import HParams

from ..errors import ConverterError
from . import Tensor, bitnet

ARCH_NOTE = "Llama with BitNet quantization_config (packed uint8 + weight_scale), no sub-norms, silu MLP"


def check_quantization(config: dict) -> None:
    quant = bitnet.quantization_config(config)
    if quant.get("quant_method") != "bitnet":
        raise ConverterError(
            "LlamaForCausalLM without quantization_config.quant_method 'bitnet' is not a ternary "
            "model (only BitNet b1.58 checkpoints convert)"
        )
    if quant.get("use_rms_norm"):
        raise ConverterError("quantization_config.use_rms_norm (an RMSNorm inside every BitLinear) is not supported")
    if config.get("rope_scaling"):
        raise ConverterError(f"config.json: rope_scaling {config['rope_scaling']!r} is not supported")


def hparams(config: dict) -> HParams:
    check_quantization(config)
    return replace(bitnet.hparams(config), sub_norms=False, rope_interleaved=True)


def tensors(ckpt) -> list[Tensor]:
    check_quantization(ckpt.config)
    hp = bitnet.hparams(ckpt.config)
    heads = {"attn_q": hp.n_head, "attn_k": hp.n_head_kv}
    out = []
    for t in bitnet.tensors(ckpt, sub_norms=False):
        kind = t.name.split(".")[-2]
        out.append(replace(t, load=interleave_halves(t.load, heads[kind])) if kind in heads else t)
    return out


def interleave_halves(load, n_heads: int):
    """Rows of each head reordered from (first half, second half) to pairs (i, i + head_dim/2)."""

    def permuted() -> np.ndarray:
        w = load()
        rows = w.shape[0]
        return w.reshape(n_heads, 2, rows // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    return permuted


def gguf_arch(type_name: str) -> str:
    return "llama"
