"""Random-weight checkpoints in the exact on-disk form of microsoft/bitnet-b1.58-2B-4T ("packed": uint8
ternary + bf16 weight_scale) or of its -bf16 twin ("bf16": bf16 master weights); or of the other families
(presets.FAMILY_FORMS): 1bitLLM's BitnetForCausalLM ("fp16" latent weights, sub-norms inner_attn_ln and
ffn_layernorm, Llama-2 tokenizer) and the Llama-shaped Falcon3/Falcon-E/Llama3-8B-1.58 ("packed", with a
weight_scale that divides).

Both forms made from one seed hold the same model: the packed ternary values and scale are the absmean
ternarization of the bf16 masters (the scale then rounded to bf16, as the published checkpoint stores it).
Tensors are generated and written one at a time (embeddings in row chunks), so the 2B preset needs well
under 2 GB of RAM."""

import functools
import json
import os
import zlib

import numpy as np

from . import hf_ternary, synth_tokenizer
from .errors import ConverterError
from .presets import FAMILY_FORMS, PRESET_FAMILY, PRESETS
from .safetensors_io import bf16_to_f32, f32_to_bf16, write_safetensors

# microsoft/bitnet-b1.58-2B-4T's config.json, minus the shape fields the presets set.
BASE_CONFIG = {
    "architectures": ["BitNetForCausalLM"],
    "model_type": "bitnet",
    "hidden_act": "relu2",
    "attention_bias": False,
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
    "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "use_cache": True,
}
# 1bitLLM/bitnet_b1_58-large's config.json, minus the shape fields
ONEBIT_CONFIG = {
    "architectures": ["BitnetForCausalLM"],
    "model_type": "llama",
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "input_bits": 8,
    "weight_bits": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": None,
    "rope_theta": 10000.0,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": False,
    "torch_dtype": "float16",
    "use_cache": True,
}
# tiiuae/Falcon3-*-1.58bit's config.json, minus the shape fields
LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_act": "silu",
    "attention_bias": False,
    "attention_dropout": 0.0,
    "mlp_bias": False,
    "initializer_range": 0.02,
    "rms_norm_eps": 1e-05,
    "rope_scaling": None,
    "rope_theta": 500000.0,
    "max_position_embeddings": 8192,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "quantization_config": {"modules_to_not_convert": None, "quant_method": "bitnet"},
}
FAMILY_CONFIGS = {"bitnet": BASE_CONFIG, "1bitllm": ONEBIT_CONFIG, "llama": LLAMA_CONFIG}
# each family's sub-norm tensor names (attention, MLP)
SUB_NORMS = {
    "bitnet": ("self_attn.attn_sub_norm", "mlp.ffn_sub_norm"),
    "1bitllm": ("self_attn.inner_attn_ln", "mlp.ffn_layernorm"),
    "llama": (),
}

LINEARS = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
)
EMBEDDING_CHUNK_ROWS = 8192


def family_of(config: dict) -> str:
    return {"BitNetForCausalLM": "bitnet", "BitnetForCausalLM": "1bitllm"}.get(config["architectures"][0], "llama")


def make_config(preset: dict, form: str, tokenizer, family: str = "bitnet") -> dict:
    """config.json for a preset's shapes in a family's form, special-token ids taken from the tokenizer."""
    config = {**FAMILY_CONFIGS[family], **preset}
    spm = family == "1bitllm"
    config["bos_token_id"] = tokenizer.token_to_id(synth_tokenizer.SPM_BOS if spm else synth_tokenizer.BOS)
    config["eos_token_id"] = tokenizer.token_to_id(synth_tokenizer.SPM_EOS if spm else synth_tokenizer.EOS)
    if spm:
        config["pad_token_id"] = tokenizer.token_to_id(synth_tokenizer.SPM_ADDED[0])
    if family == "bitnet":
        mode = "offline" if form == "packed" else "online"  # the -bf16 repo ternarizes its masters at load time
        config["quantization_config"] = {
            "quant_method": "bitnet",
            "linear_class": "autobitlinear",
            "quantization_mode": mode,
        }
    return dict(sorted(config.items()))


def linear_shapes(config: dict) -> dict[str, tuple[int, int]]:
    """[out, in] of each linear of a layer."""
    hidden, ffn = config["hidden_size"], config["intermediate_size"]
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    q, kv = config["num_attention_heads"] * head_dim, config["num_key_value_heads"] * head_dim
    return {
        "self_attn.q_proj": (q, hidden),
        "self_attn.k_proj": (kv, hidden),
        "self_attn.v_proj": (kv, hidden),
        "self_attn.o_proj": (hidden, q),
        "mlp.gate_proj": (ffn, hidden),
        "mlp.up_proj": (ffn, hidden),
        "mlp.down_proj": (hidden, ffn),
    }


def tensor_specs(config: dict, form: str) -> list[tuple[str, str, tuple[int, ...]]]:
    """(name, safetensors dtype, shape) of every tensor of the checkpoint, sorted by name as HF writes them."""
    hidden, vocab = config["hidden_size"], config["vocab_size"]
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    sub_norm_sizes = (config["num_attention_heads"] * head_dim, config["intermediate_size"])
    norm_sizes = {
        "input_layernorm": hidden,
        "post_attention_layernorm": hidden,
        **dict(zip(SUB_NORMS[family_of(config)], sub_norm_sizes)),
    }
    dtype = "F16" if form == "fp16" else "BF16"
    specs = [("model.embed_tokens.weight", dtype, (vocab, hidden)), ("model.norm.weight", dtype, (hidden,))]
    if not config["tie_word_embeddings"]:
        specs.append(("lm_head.weight", dtype, (vocab, hidden)))
    for i in range(config["num_hidden_layers"]):
        prefix = f"model.layers.{i}."
        specs += [(prefix + n + ".weight", dtype, (size,)) for n, size in norm_sizes.items()]
        for n, (rows, cols) in linear_shapes(config).items():
            if form == "packed":
                specs += [
                    (prefix + n + ".weight", "U8", (rows // hf_ternary.VALUES_PER_BYTE, cols)),
                    (prefix + n + ".weight_scale", "BF16", (1,)),
                ]
            else:
                specs.append((prefix + n + ".weight", dtype, (rows, cols)))
    return sorted(specs)


def tensor_rng(seed: int, name: str) -> np.random.Generator:
    """Each tensor's own stream, so values do not depend on the form or the write order."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def master_linear(seed: int, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """bf16 master weight (as uint16 bits); a random spread per tensor so scales differ between tensors."""
    rng = tensor_rng(seed, name)
    spread = rng.uniform(0.5, 2.0)
    return f32_to_bf16(rng.standard_normal(shape, dtype=np.float32) * np.float32(spread))


def write_checkpoint(
    out_dir: str, config: dict, form: str = "packed", seed: int = 0, tokenizer=None, family: str = "bitnet"
) -> str:
    """Writes config.json, generation_config.json, model.safetensors and the tokenizer files to out_dir.
    config holds the shape fields (a PRESETS entry); vocab_size must cover the tokenizer (a synthetic
    tokenizer of exactly vocab_size entries is made when none is given). Returns out_dir."""
    if form not in FAMILY_FORMS[family]:
        raise ConverterError(
            f"unknown {family} checkpoint form {form!r}: choose one of {', '.join(FAMILY_FORMS[family])}"
        )
    spm = family == "1bitllm"
    if tokenizer is None:
        make = synth_tokenizer.synthetic_sentencepiece if spm else synth_tokenizer.synthetic_tokenizer
        tokenizer = make(config["vocab_size"])
    if tokenizer.get_vocab_size() > config["vocab_size"]:
        raise ConverterError(
            f"tokenizer has {tokenizer.get_vocab_size()} entries, more than vocab_size {config['vocab_size']}"
        )
    config = make_config(config, form, tokenizer, family)
    stored = f16_values if form == "fp16" else f32_to_bf16
    os.makedirs(out_dir, exist_ok=True)

    shapes = {n: shape for n, _, shape in tensor_specs(config, "bf16")}

    @functools.lru_cache(maxsize=1)  # the packed form needs each ternarization twice: for the weight and its scale
    def ternarized(weight_name: str) -> tuple[np.ndarray, np.float32]:
        master = bf16_to_f32(master_linear(seed, weight_name, shapes[weight_name]))
        return hf_ternary.absmean_ternarize(master)

    def produce(name):
        if name.endswith(".weight_scale"):
            _, scale = ternarized(name.removesuffix("_scale"))
            if family == "llama":  # transformers' BitLinear divides by its weight_scale
                scale = np.float32(1) / scale
            yield f32_to_bf16(np.array([scale], dtype=np.float32))
        elif any(f".{n}.weight" in name for n in LINEARS):
            if form == "packed":
                yield hf_ternary.pack(ternarized(name)[0])
            elif form == "fp16":
                yield f16_values(bf16_to_f32(master_linear(seed, name, shapes[name])))
            else:
                yield master_linear(seed, name, shapes[name])
        elif name in ("model.embed_tokens.weight", "lm_head.weight"):
            rng = tensor_rng(seed, name)
            rows, cols = shapes[name]
            for start in range(0, rows, EMBEDDING_CHUNK_ROWS):
                n = min(EMBEDDING_CHUNK_ROWS, rows - start)
                yield stored(rng.standard_normal((n, cols), dtype=np.float32))
        else:  # RMSNorm gains
            yield stored(tensor_rng(seed, name).uniform(0.5, 1.5, shapes[name]).astype(np.float32))

    write_safetensors(
        os.path.join(out_dir, "model.safetensors"), tensor_specs(config, form), produce, metadata={"format": "pt"}
    )
    write_json(os.path.join(out_dir, "config.json"), config)
    eos = config["eos_token_id"] if spm else [config["eos_token_id"], tokenizer.token_to_id(synth_tokenizer.EOT)]
    write_json(
        os.path.join(out_dir, "generation_config.json"),
        {
            "_from_model_config": True,
            "bos_token_id": config["bos_token_id"],
            "eos_token_id": eos,
            "do_sample": True,
            "temperature": 0.6,
            "top_p": 0.9,
            "max_length": config["max_position_embeddings"],
        },
    )
    tokenizer.save(os.path.join(out_dir, "tokenizer.json"))
    make_tokenizer_config = synth_tokenizer.sentencepiece_tokenizer_config if spm else synth_tokenizer.tokenizer_config
    write_json(
        os.path.join(out_dir, "tokenizer_config.json"),
        make_tokenizer_config(tokenizer, config["max_position_embeddings"]),
    )
    return out_dir


def f16_values(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float16)


def write_json(path: str, value: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def synth(preset: str, out_dir: str, form: str | None = None, seed: int = 0) -> str:
    """`tritlm synth`: a random checkpoint of a named preset, in its family's form (default: the first)."""
    if preset not in PRESETS:
        raise ConverterError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    family = PRESET_FAMILY.get(preset, "bitnet")
    return write_checkpoint(out_dir, PRESETS[preset], form or FAMILY_FORMS[family][0], seed, family=family)
