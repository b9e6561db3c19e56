"""A numpy reference of BitNet b1.58 / a4.8 / Q-Sparse inference, written from the papers' formulas
(arXiv 2411.04965, 2407.10969) and docs/format.md, independent of the engine (torch only reads the bf16 safetensors).

It runs a 2B-4T-form checkpoint folder (packed ternary weights, bf16 rest) with the activation mode of its
`quantization_config` (or one given), over a whole token sequence at once (no cache: a quantized KV cache only
changes what later positions read, so quantizing every position's k and v is the same computation). Each linear
input is quantized per token: top-K of |x| (ties: lower index), then INT8 absmax or INT4 absmean; the dot is an
integer sum scaled once, y = isum / s * weight_scale, as the engine computes it. The quantizers sum in the
engine's canonical order, so the integer codes are the engine's exactly; floats elsewhere may differ in rounding."""

import json
from pathlib import Path

import numpy as np
from safetensors.torch import load_file

from tritlm.converter.hf_ternary import unpack

GROUPS = ("attn_qkv", "attn_output", "ffn_gate_up", "ffn_down")
B158 = {
    "activation_bits": dict.fromkeys(GROUPS, 8),
    "activation_topk": dict.fromkeys(GROUPS, 1.0),
    "kv_cache_bits": None,
    "kv_cache_bits_first": None,
}


def mode_of(config: dict) -> dict:
    """The activation mode a config's quantization_config names; b1.58 (INT8, dense, float KV) where absent."""
    q = config.get("quantization_config") or {}
    mode = {key: q.get(key, default) for key, default in B158.items()}
    mode["activation_bits"] = {**B158["activation_bits"], **(mode["activation_bits"] or {})}
    mode["activation_topk"] = {**B158["activation_topk"], **(mode["activation_topk"] or {})}
    if mode["kv_cache_bits"] and not mode["kv_cache_bits_first"]:
        mode["kv_cache_bits_first"] = mode["kv_cache_bits"]
    return mode


def topk_count(ratio: float, dim: int) -> int:
    """Values kept of dim: round(ratio * dim) with the ratio as float32 (as the GGUF stores it), at least 1."""
    return max(1, int(float(np.float32(ratio)) * dim + 0.5))


def canonical_sum(v: np.ndarray) -> np.float32:
    """float32 sum as the kernels do it: lane i mod 16 in order, then lanes pairwise (8, 4, 2, 1)."""
    lanes = np.zeros(16, np.float32)
    for row in v.reshape(-1, 16):
        lanes = lanes + row
    for half in (8, 4, 2, 1):
        lanes = lanes[:half] + lanes[half : 2 * half]
    return lanes[0]


def topk_mask(x: np.ndarray, k: int) -> np.ndarray:
    """x with all but its k largest |x| zeroed (ties: lower index first)."""
    if k >= x.size:
        return x
    keep = np.argsort(-np.abs(x), kind="stable")[:k]
    out = np.zeros_like(x)
    out[keep] = x[keep]
    return out


def int8_absmax(x: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """BitNet's INT8: s = 127 / max|x|, q = RoundClip(x s, -128, 127)."""
    s = np.float32(127) / max(np.abs(x).max(), np.float32(1e-5))
    return np.clip(np.rint(x * s), -128, 127).astype(np.int8), np.float32(s)


def int4_absmean(x: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """a4.8's INT4: s = sqrt(7) / mean|x|, q = RoundClip(x s, -8, 7)."""
    s = np.float32(np.sqrt(np.float32(7))) / max(canonical_sum(np.abs(x)) / np.float32(x.size), np.float32(1e-5))
    return np.clip(np.rint(x * s), -8, 7).astype(np.int8), np.float32(s)


def kv_absmax(x: np.ndarray, bits: int) -> np.ndarray:
    """A KV row at `bits`: symmetric absmax, levels -(2^(b-1)-1) .. 2^(b-1)-1, read back as q / s."""
    top = np.float32(2 ** (bits - 1) - 1)
    s = top / max(np.abs(x).max(), np.float32(1e-5))
    return (np.clip(np.rint(x * s), -top, top) / s).astype(np.float32)


def quantize_input(x: np.ndarray, bits: int, topk: float) -> tuple[np.ndarray, np.float32]:
    """One token's linear input: top-K (mask from the unquantized x), then INT8 absmax or INT4 absmean."""
    x = topk_mask(x, topk_count(topk, x.size))
    return int8_absmax(x) if bits == 8 else int4_absmean(x)


class Checkpoint:
    """A 2B-4T-form checkpoint folder's weights as numpy: ternary int8 + f32 scale, the rest float32."""

    def __init__(self, folder):
        folder = Path(folder)
        self.config = json.loads((folder / "config.json").read_text())
        raw = {
            name: value.float().numpy() if value.is_floating_point() else value.numpy()
            for name, value in load_file(str(folder / "model.safetensors")).items()
        }  # bf16 -> f32 exactly
        self.t = {}
        for name, value in raw.items():
            if name.endswith(".weight_scale"):
                continue
            if value.dtype == np.uint8:
                self.t[name] = (unpack(value), np.float32(raw[name.replace(".weight", ".weight_scale")][0]))
            else:
                self.t[name] = value

    def __getitem__(self, name):
        return self.t[name]


def rmsnorm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    """BitNetRMSNorm: w * (x * rsqrt(mean(x^2) + eps)), float32."""
    r = np.float32(1) / np.sqrt((x * x).mean(-1, keepdims=True, dtype=np.float32) + np.float32(eps))
    return (w * (x * r)).astype(np.float32)


def bitlinear(x: np.ndarray, weight, bits: int, topk: float) -> np.ndarray:
    """[n, in] -> [n, out]: each token quantized, integer dot with the ternary weight, scaled once."""
    ternary, w_scale = weight
    out = np.empty((x.shape[0], ternary.shape[0]), np.float32)
    for t, row in enumerate(x):
        q, s = quantize_input(row, bits, topk)
        isum = ternary.astype(np.int64) @ q.astype(np.int64)
        out[t] = isum.astype(np.float32) / s * w_scale
    return out


def rope(x: np.ndarray, theta: float) -> np.ndarray:
    """NEOX RoPE (rotate halves) of [n, heads, head_dim] at positions 0..n-1; frequencies, angles in float32 as
    transformers computes them, their cos/sin correctly rounded (computed in float64)."""
    hd = x.shape[-1]
    exponent = np.arange(0, hd, 2, dtype=np.float32) / np.float32(hd)
    inv = np.float32(1) / (np.float64(np.float32(theta)) ** exponent.astype(np.float64)).astype(np.float32)
    angle = np.arange(x.shape[0], dtype=np.float32)[:, None] * inv[None]
    cos = np.cos(angle.astype(np.float64)).astype(np.float32)[:, None]
    sin = np.sin(angle.astype(np.float64)).astype(np.float32)[:, None]
    a, b = x[..., : hd // 2], x[..., hd // 2 :]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin], -1).astype(np.float32)


def forward(ckpt: Checkpoint, ids: list[int], mode: dict | None = None) -> np.ndarray:
    """Logits [len(ids), vocab] of the token sequence (positions 0..n-1), in the checkpoint's mode or `mode`."""
    c = ckpt.config
    mode = mode or mode_of(c)
    bits, topk = mode["activation_bits"], mode["activation_topk"]
    n, hd = len(ids), c["hidden_size"] // c["num_attention_heads"]
    n_head, n_kv, eps = c["num_attention_heads"], c["num_key_value_heads"], c["rms_norm_eps"]
    x = ckpt["model.embed_tokens.weight"][ids]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        # attention: RMSNorm, q/k/v BitLinears on one quantized input, RoPE
        h = rmsnorm(x, ckpt[p + "input_layernorm.weight"], eps)
        q, k, v = (
            bitlinear(h, ckpt[p + f"self_attn.{name}.weight"], bits["attn_qkv"], topk["attn_qkv"])
            for name in ("q_proj", "k_proj", "v_proj")
        )
        q = rope(q.reshape(n, n_head, hd), c["rope_theta"])
        k, v = rope(k.reshape(n, n_kv, hd), c["rope_theta"]), v.reshape(n, n_kv, hd)
        # the KV cache at its bits, per token and KV head (position 0 at kv_cache_bits_first); 16: IEEE half
        if mode["kv_cache_bits"] == 16:
            k, v = k.astype(np.float16).astype(np.float32), v.astype(np.float16).astype(np.float32)
        elif mode["kv_cache_bits"]:
            for pos in range(n):
                b = mode["kv_cache_bits_first"] if pos == 0 else mode["kv_cache_bits"]
                for j in range(n_kv):
                    k[pos, j], v[pos, j] = kv_absmax(k[pos, j], b), kv_absmax(v[pos, j], b)
        # causal grouped-query attention (float64 softmax)
        att = np.empty((n, n_head, hd), np.float32)
        for hh in range(n_head):
            kh, vh = k[:, hh // (n_head // n_kv)], v[:, hh // (n_head // n_kv)]
            scores = (q[:, hh] @ kh.T).astype(np.float64) / np.sqrt(hd)
            scores[np.triu_indices(n, 1)] = -np.inf
            w = np.exp(scores - scores.max(-1, keepdims=True))
            att[:, hh] = (w / w.sum(-1, keepdims=True)) @ vh
        # attn_sub_norm, o_proj, residual
        h = rmsnorm(att.reshape(n, -1), ckpt[p + "self_attn.attn_sub_norm.weight"], eps)
        x = x + bitlinear(h, ckpt[p + "self_attn.o_proj.weight"], bits["attn_output"], topk["attn_output"])
        # MLP: RMSNorm, gate/up, relu^2(gate) * up, ffn_sub_norm, down, residual
        h = rmsnorm(x, ckpt[p + "post_attention_layernorm.weight"], eps)
        gate = bitlinear(h, ckpt[p + "mlp.gate_proj.weight"], bits["ffn_gate_up"], topk["ffn_gate_up"])
        up = bitlinear(h, ckpt[p + "mlp.up_proj.weight"], bits["ffn_gate_up"], topk["ffn_gate_up"])
        h = rmsnorm(np.maximum(gate, 0) ** 2 * up, ckpt[p + "mlp.ffn_sub_norm.weight"], eps)
        x = x + bitlinear(h, ckpt[p + "mlp.down_proj.weight"], bits["ffn_down"], topk["ffn_down"])
    x = rmsnorm(x, ckpt["model.norm.weight"], eps)
    return x @ ckpt["model.embed_tokens.weight"].T
