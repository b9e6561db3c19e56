"""Model families the converter reads: a table from a checkpoint's `architectures` entry to the module
that maps its tensors to GGUF, and the Hub repos known to convert. Add a family by adding a row.

A family module has `ARCH_NOTE` (one line for --list), `hparams(config) -> formats.HParams`,
`tensors(checkpoint) -> list[Tensor]` (in GGUF order; data is loaded only when `load()` is called) and
`gguf_arch(type_name) -> str` (the file's general.architecture)."""

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import ConverterError

FAMILIES = {
    "BitNetForCausalLM": "tritlm.converter.families.bitnet",
    "BitnetForCausalLM": "tritlm.converter.families.bitnet",  # 1bitLLM's spelling (config model_type llama)
    "LlamaForCausalLM": "tritlm.converter.families.llama",
}

# repo id -> what it holds
KNOWN_REPOS = {
    "microsoft/bitnet-b1.58-2B-4T": "BitNetForCausalLM, packed ternary (uint8 + bf16 weight_scale)",
    "microsoft/bitnet-b1.58-2B-4T-bf16": "BitNetForCausalLM, bf16 master weights (ternarized with absmean)",
    "1bitLLM/bitnet_b1_58-large": "BitnetForCausalLM, fp16 latent weights (absmean), silu, Llama-2 tokenizer",
    "1bitLLM/bitnet_b1_58-3B": "BitnetForCausalLM, fp16 latent weights (absmean), head_dim 100, rows padded",
    "HF1BitLLM/Llama3-8B-1.58-100B-tokens": "LlamaForCausalLM, packed ternary (uint8 + weight_scale that divides)",
    **{
        f"tiiuae/Falcon3-{size}{kind}-1.58bit": "LlamaForCausalLM, packed ternary (uint8 + weight_scale that divides)"
        for size in ("1B", "3B", "7B", "10B")
        for kind in ("", "-Instruct")
    },
    **{
        f"tiiuae/Falcon-E-{size}-{kind}": "LlamaForCausalLM, packed ternary (uint8 + weight_scale that divides)"
        for size in ("1B", "3B")
        for kind in ("Base", "Instruct")
    },
}


@dataclass
class Tensor:
    name: str  # GGUF tensor name
    shape: tuple[int, ...]  # numpy order: (rows, cols) or (n,)
    kind: str  # "ternary", "norm" (stored f32) or "float" (keeps its stored precision)
    load: Callable[[], np.ndarray]  # ternary: int8 values; norm: f32; float: stored values (bf16 as uint16)
    dtype: str = "F32"  # float: the stored safetensors dtype (BF16, F16 or F32)
    scale: float | None = None  # ternary: the f32 weight scale that multiplies


def family_for(config: dict):
    """The family module of a checkpoint's config.json."""
    archs = config.get("architectures") or []
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise ConverterError(f"config.json: architectures is {archs!r}, not a list of class names")
    for arch in archs:
        if arch in FAMILIES:
            return importlib.import_module(FAMILIES[arch])
    raise ConverterError(
        f"unsupported architecture {', '.join(archs) or '(none in config.json)'}; supported: {', '.join(FAMILIES)}"
    )
