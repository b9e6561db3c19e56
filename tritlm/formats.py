"""What converter/ and runtime/ share about tritlm's GGUF files (docs/format.md): the ggml tensor types, the
model's hyperparameters, and the pre-tokenizer names. Both import this module; it imports neither, so the
data path stays one-way (converter -> formats <- runtime). native/kernels/blocks.h holds the same block
constants for C; tests/test_formats.py checks the two agree. A new type is one row here and one there."""

import math
from dataclasses import dataclass
from typing import NamedTuple

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

ROW_ALIGN = 16  # the engine's float kernels sum 16 lanes: every row it multiplies holds a multiple of 16 values
MAX_SIZE = 2**31 - 1  # the engine's sizes are int32
MAX_ROW = 2**22  # the longest row a BitLinear multiplies (blocks.h TL_MAX_ROW): int32 sums of row length x 128 x 1


class GGMLType(NamedTuple):
    """A ggml tensor type: how a row of values is stored."""

    name: str
    id: int  # ggml type id (the GGUF tensor info's type field)
    block_values: int  # values per block: a row is a whole number of blocks
    block_bytes: int  # bytes per block
    scale: str | None = None  # ternary types: where the weight scale is stored ("block": an fp16 d ending
    # every block; "trailer": an f32 starting the bytes after the last block)
    trailer: int = 0  # bytes after a tensor's blocks

    @property
    def ternary(self) -> bool:
        return self.scale is not None

    def padded_cols(self, cols: int) -> int:
        """cols rounded up to whole blocks and a multiple of ROW_ALIGN: a linear weight's rows are stored
        zero-padded to it (docs/format.md), and the engine pads its input with zeros to match."""
        align = math.lcm(self.block_values, ROW_ALIGN)
        return -(-cols // align) * align

    def nbytes(self, dims) -> int:
        """Bytes of a tensor of ggml dims (row length first), which must be a whole number of blocks a row."""
        if dims[0] % self.block_values:
            raise ValueError(
                f"row length {dims[0]} is not a whole number of {self.name} blocks of {self.block_values} values"
            )
        return math.prod(dims) // self.block_values * self.block_bytes + self.trailer


def ggml_type(name: str, scale: str | None = None) -> GGMLType:
    """A standard ggml type, with gguf-py's id and block sizes."""
    qt = GGMLQuantizationType[name.upper()]
    return GGMLType(name, int(qt), *GGML_QUANT_SIZES[qt], scale=scale)


# Every type tritlm reads or writes.
TYPES = {
    t.name: t
    for t in (
        ggml_type("f32"),
        ggml_type("f16"),
        ggml_type("bf16"),
        ggml_type("q8_0"),
        ggml_type("q4_k"),
        ggml_type("q6_k"),
        ggml_type("tq1_0", scale="block"),
        ggml_type("tq2_0", scale="block"),
        GGMLType("i2_s", 36, 128, 32, scale="trailer", trailer=32),  # bitnet.cpp's; gguf-py does not know it
    )
}
BY_ID = {t.id: t for t in TYPES.values()}
TERNARY = {t.id for t in TYPES.values() if t.ternary}


def type_of(type_id: int) -> GGMLType | None:
    """The type of a tensor type id: ours, or any other ggml type gguf-py knows (so a file holding one can be
    parsed and the type named when it is refused); None for an unknown id."""
    if type_id in BY_ID:
        return BY_ID[type_id]
    try:
        return ggml_type(GGMLQuantizationType(type_id).name.lower())
    except (ValueError, KeyError):
        return None


FFN_ACTS = ("silu", "relu2")  # the engine's TL_ACT_* order

# A layer's tensors, blk.N.<name>.weight, in the order of the engine's tl_layer fields (native/tritlm.h).
LAYER_TENSORS = (
    "attn_norm",
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_sub_norm",
    "attn_output",
    "ffn_norm",
    "ffn_gate",
    "ffn_up",
    "ffn_sub_norm",
    "ffn_down",
)


@dataclass(frozen=True)
class HParams:
    """A model's hyperparameters, as the converter writes them and the runtime reads them back."""

    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_vocab: int
    context_length: int  # the context the model was trained for
    rms_eps: float
    rope_theta: float
    ffn_act: str  # "relu2" or "silu" (tritlm.ffn_act)
    sub_norms: bool  # attn_sub_norm before o_proj, ffn_sub_norm before down_proj (BitNet; not Llama)
    rope_interleaved: bool  # q/k rows in llama.cpp's order: RoPE on adjacent pairs, not halves

    def problem(self) -> str | None:
        """Why the engine cannot run a model of these hyperparameters, or None. The converter refuses such a
        checkpoint and the runtime such a file, each with its own error type."""
        sizes = {
            "n_layer": self.n_layer,
            "n_embd": self.n_embd,
            "n_ff": self.n_ff,
            "n_head": self.n_head,
            "n_head_kv": self.n_head_kv,
            "head_dim": self.head_dim,
            "n_vocab": self.n_vocab,
            "context_length": self.context_length,
        }
        for name, value in sizes.items():
            if type(value) is not int or not 0 < value <= MAX_SIZE:
                return f"{name} {value!r} is not a size from 1 to {MAX_SIZE}"
        if max(self.n_embd, self.n_ff, self.n_head * self.head_dim) > MAX_ROW:
            return f"a row length above {MAX_ROW} is not supported"
        if self.n_head % self.n_head_kv:
            return f"{self.n_head} attention heads do not share {self.n_head_kv} key/value heads evenly"
        if self.head_dim % 2:
            return f"head_dim {self.head_dim} is odd (RoPE rotates pairs)"
        if self.n_embd % ROW_ALIGN:
            return f"hidden size {self.n_embd} is not a multiple of {ROW_ALIGN} (the engine's float rows)"
        if not (math.isfinite(self.rms_eps) and self.rms_eps >= 0):
            return f"rms_norm_eps {self.rms_eps} is not a finite number >= 0"
        if not (math.isfinite(self.rope_theta) and self.rope_theta > 0):
            return f"rope_theta {self.rope_theta} is not a finite number > 0"
        if self.ffn_act not in FFN_ACTS:
            return f"activation {self.ffn_act!r} is not one of {', '.join(FFN_ACTS)}"
        return None


# The linear inputs an activation mode (BitNet a4.8, Q-Sparse) quantizes separately: the <group> of the
# tritlm.activation_bits.<group> / tritlm.activation_topk.<group> keys, in the engine's TL_IN_* order.
ACT_GROUPS = ("attn_qkv", "attn_output", "ffn_gate_up", "ffn_down")
# The papers' settings as quantization_config entries (docs/format.md): BitNet a4.8 (arXiv 2411.04965) and
# Q-Sparse (arXiv 2407.10969) at 50% of every linear input.
ACT_MODES = {
    "a4.8": {
        "activation_bits": dict(zip(ACT_GROUPS, (4, 8, 4, 8))),
        "activation_topk": dict(zip(ACT_GROUPS, (1.0, 0.5, 1.0, 1.0))),
        "kv_cache_bits": 3,
        "kv_cache_bits_first": 4,
    },
    "qsparse": {"activation_bits": dict.fromkeys(ACT_GROUPS, 8), "activation_topk": dict.fromkeys(ACT_GROUPS, 0.5)},
}

# Llama 3's pre-tokenizer split (tiktoken's cl100k); tokenizer.ggml.pre names it `llama-bpe`, as llama.cpp does.
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
PRE_TOKENIZER_SPLITS = {"llama-bpe": LLAMA3_SPLIT}  # tokenizer.ggml.pre -> its split regex
