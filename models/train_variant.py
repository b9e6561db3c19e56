"""Continue the embedded b1.58 model as a BitNet a4.8 or Q-Sparse model (quantization-aware, straight-through).

Same corpus, tokenizer, batch shape and optimizer as models/train_tiny.py; the start is the shipped checkpoint
(models/bitnet-tiny), whose forward the initial master weights reproduce exactly. Each decoder linear quantizes
its input as the mode says (the papers' recipes, arXiv 2411.04965 and 2407.10969):

- a4.8: q/k/v and gate/up inputs INT4 absmean, Q4(x) = RoundClip(sqrt(7) / mean|x| * x, -8, 7); the o_proj input
  keeps its top 50% of |x| (mask from the unquantized x) then INT8 absmax; the down_proj input INT8 absmax (relu^2
  makes it sparse already); keys and values INT3 absmax per token and KV head after RoPE, position 0 (BOS) INT4.
- qsparse: every linear input keeps its top 50% of |x| per token, then INT8 absmax; KV cache float.

Gradients pass straight through quantizers and top-K (dense gradients, as both papers train). The mode is saved in
config.json's `quantization_config` (docs/format.md), which `tritlm convert` writes to the GGUF metadata.

    nohup nice -n 10 .venv/bin/python models/train_variant.py --mode a4.8 --out models/bitnet-tiny-a4.8 > .cache/a48.log 2>&1 &
"""

import argparse
import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

import numpy as np
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer
from transformers import AttentionInterface, BitNetConfig, BitNetForCausalLM
from transformers.integrations.sdpa_attention import sdpa_attention_forward

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from train_tiny import corpus_files, encode_files, export, mean_loss, train  # noqa: E402

from tritlm.converter.hf_ternary import unpack  # noqa: E402
from tritlm.formats import ACT_GROUPS  # noqa: E402
from tritlm.formats import ACT_MODES as MODES  # noqa: E402

# Which linear inputs each quantization_config group (formats.ACT_GROUPS) names.
GROUPS = {
    "attn_qkv": ("q_proj", "k_proj", "v_proj"),
    "attn_output": ("o_proj",),
    "ffn_gate_up": ("gate_proj", "up_proj"),
    "ffn_down": ("down_proj",),
}
assert tuple(GROUPS) == ACT_GROUPS


def topk_count(ratio: float, dim: int) -> int:
    """Values kept of dim: round(ratio * dim), at least 1 (ratio as the float32 the GGUF file stores)."""
    return max(1, int(float(np.float32(ratio)) * dim + 0.5))


def quantize_input(x: torch.Tensor, bits: int, keep: int) -> torch.Tensor:
    """The mode's fake-quantized linear input (float32), per token over the last dimension: top-`keep` of |x|
    (when keep < dim), then INT8 absmax or INT4 absmean, round half to even."""
    if keep < x.shape[-1]:
        idx = x.abs().topk(keep, dim=-1).indices
        x = torch.zeros_like(x).scatter(-1, idx, x.gather(-1, idx))
    if bits == 8:
        s = 127 / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
        return (x * s).round().clamp(-128, 127) / s
    s = math.sqrt(7) / x.abs().mean(dim=-1, keepdim=True).clamp(min=1e-5)
    return (x * s).round().clamp(-8, 7) / s


def quantize_kv(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric absmax INT-bits of each token's head vector (last dim): levels -(2^(b-1) - 1) .. 2^(b-1) - 1."""
    top = 2 ** (bits - 1) - 1
    s = top / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    return (x * s).round().clamp(-top, top) / s


class VariantBitLinear(torch.nn.Linear):
    """BitLinear with the mode's input quantizer. Training: absmean-ternarized fp32 masters; `fixed`: the weight
    already holds ternary x scale (a loaded checkpoint), used as is."""

    def __init__(self, in_features: int, out_features: int, bits: int, topk: float, fixed: bool = False):
        super().__init__(in_features, out_features, bias=False)
        self.bits, self.keep, self.fixed = bits, topk_count(topk, in_features), fixed

    def forward(self, x):
        xq = x + (quantize_input(x.float(), self.bits, self.keep) - x).detach()
        w = self.weight
        if not self.fixed:
            scale = w.abs().mean().clamp(min=1e-5)
            w = w + ((w / scale).round().clamp(-1, 1) * scale - w).detach()
        return torch.nn.functional.linear(xq, w)


def kv_quantized_attention(module, query, key, value, attention_mask, **kwargs):
    """sdpa over keys (after RoPE) and values fake-quantized as the KV cache holds them; position 0 at its own bits."""
    bits, first = module.config.kv_cache_bits, module.config.kv_cache_bits_first
    kq = torch.cat([quantize_kv(key[:, :, :1], first), quantize_kv(key[:, :, 1:], bits)], dim=2)
    vq = torch.cat([quantize_kv(value[:, :, :1], first), quantize_kv(value[:, :, 1:], bits)], dim=2)
    return sdpa_attention_forward(
        module, query, key + (kq - key).detach(), value + (vq - value).detach(), attention_mask, **kwargs
    )


AttentionInterface.register("tritlm_kv", kv_quantized_attention)


def build_variant(config: dict, fixed: bool = False) -> BitNetForCausalLM:
    """A float BitNet whose decoder linears quantize their inputs as config's quantization_config says (b1.58's
    INT8, dense, float KV where it says nothing)."""
    q = {
        "activation_bits": dict.fromkeys(GROUPS, 8),
        "activation_topk": dict.fromkeys(GROUPS, 1.0),
        **config["quantization_config"],
    }
    float_config = {k: v for k, v in config.items() if k != "quantization_config"}
    model = BitNetForCausalLM(BitNetConfig(**float_config))
    if q.get("kv_cache_bits"):
        model.config.kv_cache_bits, model.config.kv_cache_bits_first = q["kv_cache_bits"], q["kv_cache_bits_first"]
        model.config._attn_implementation = "tritlm_kv"
    for name, module in list(model.model.named_modules()):
        if isinstance(module, torch.nn.Linear):
            group = next(g for g, names in GROUPS.items() if name.split(".")[-1] in names)
            bit = VariantBitLinear(
                module.in_features, module.out_features, q["activation_bits"][group], q["activation_topk"][group], fixed
            )
            model.model.set_submodule(name, bit)
    return model


def load_shipped(model: BitNetForCausalLM, checkpoint: Path, masters: bool) -> None:
    """Loads a 2B-4T-form checkpoint. masters: each weight becomes ternary x scale / (fraction nonzero), whose
    absmean ternarization is that checkpoint's ternary x scale again (training starts where the checkpoint is);
    otherwise ternary x scale itself (the `fixed` evaluation model)."""
    tensors = load_file(str(checkpoint / "model.safetensors"))
    state = {}
    for name, value in tensors.items():
        if name.endswith(".weight_scale"):
            continue
        if value.dtype == torch.uint8:
            ternary = torch.from_numpy(unpack(value.numpy())).float()
            scale = tensors[name.replace(".weight", ".weight_scale")].float()
            nonzero = ternary.abs().mean() if masters else torch.tensor(1.0)
            state[name] = ternary * scale / nonzero
        else:
            state[name] = value.float()
    state["lm_head.weight"] = state["model.embed_tokens.weight"]
    model.load_state_dict(state)


def load_variant(checkpoint: Path) -> BitNetForCausalLM:
    """A saved variant (or b1.58) checkpoint as its exact evaluation model, float32."""
    checkpoint = Path(checkpoint)
    model = build_variant(json.loads((checkpoint / "config.json").read_text()), fixed=True)
    load_shipped(model, checkpoint, masters=False)
    return model.eval()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mode",
        choices=sorted(MODES) + ["b1.58"],
        required=True,
        help="b1.58: the same continued training without a mode change (the control)",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--init", type=Path, default=Path(__file__).parent / "bitnet-tiny")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=1, help="1: other windows than train_tiny.py's seed 0")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--log-every", type=int, default=10)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    tokenizer = Tokenizer.from_file(str(args.init / "tokenizer.json"))
    train_files, held_files = corpus_files()
    stream, held = encode_files(tokenizer, train_files), encode_files(tokenizer, held_files)
    config = json.loads((args.init / "config.json").read_text())
    config["quantization_config"] = {**config["quantization_config"], **MODES.get(args.mode, {})}
    model = build_variant(config)
    load_shipped(model, args.init, masters=True)
    print(
        f"start: held-out loss {mean_loss(model, held, config['max_position_embeddings']):.4f} in {args.mode} mode",
        flush=True,
    )
    train(model, stream, args.steps, args.batch, args.length, args.lr, args.seed, args.log_every)
    export(model, held, tokenizer, config, args.out)


if __name__ == "__main__":
    main()
