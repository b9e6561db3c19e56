"""Random-weight checkpoints in the exact on-disk form of microsoft/bitnet-b1.58-2B-4T ("packed": uint8
ternary + bf16 weight_scale) or of its -bf16 twin ("bf16": bf16 master weights).

Both forms made from one seed hold the same model: the packed ternary values and scale are the absmean
ternarization of the bf16 masters (the scale then rounded to bf16, as the published checkpoint stores it).
Tensors are generated and written one at a time (embeddings in row chunks), so the 2B preset needs well
under 2 GB of RAM."""
import json
import os
import zlib

import numpy as np

from . import hf_ternary, synth_tokenizer
from .presets import FORMS, PRESETS
from .safetensors_io import bf16_to_f32, f32_to_bf16, write_safetensors

# microsoft/bitnet-b1.58-2B-4T's config.json, minus the shape fields the presets set.
BASE_CONFIG = {
    "architectures": ["BitNetForCausalLM"], "model_type": "bitnet", "hidden_act": "relu2",
    "attention_bias": False, "attention_dropout": 0.0, "initializer_range": 0.02, "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0, "max_position_embeddings": 4096, "tie_word_embeddings": True,
    "torch_dtype": "bfloat16", "use_cache": True,
}

LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
EMBEDDING_CHUNK_ROWS = 8192


def make_config(preset: dict, form: str, tokenizer) -> dict:
    """config.json for a preset's shapes in the 2B-4T form, special-token ids taken from the tokenizer."""
    config = {**BASE_CONFIG, **preset}
    config["bos_token_id"] = tokenizer.token_to_id(synth_tokenizer.BOS)
    config["eos_token_id"] = tokenizer.token_to_id(synth_tokenizer.EOS)
    mode = "offline" if form == "packed" else "online"  # the -bf16 repo ternarizes its masters at load time
    config["quantization_config"] = {"quant_method": "bitnet", "linear_class": "autobitlinear",
                                     "quantization_mode": mode}
    return dict(sorted(config.items()))


def linear_shapes(config: dict) -> dict[str, tuple[int, int]]:
    """[out, in] of each linear of a layer."""
    hidden, ffn = config["hidden_size"], config["intermediate_size"]
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    q, kv = config["num_attention_heads"] * head_dim, config["num_key_value_heads"] * head_dim
    return {"self_attn.q_proj": (q, hidden), "self_attn.k_proj": (kv, hidden), "self_attn.v_proj": (kv, hidden),
            "self_attn.o_proj": (hidden, q), "mlp.gate_proj": (ffn, hidden), "mlp.up_proj": (ffn, hidden),
            "mlp.down_proj": (hidden, ffn)}


def tensor_specs(config: dict, form: str) -> list[tuple[str, str, tuple[int, ...]]]:
    """(name, safetensors dtype, shape) of every tensor of the checkpoint, sorted by name as HF writes them."""
    hidden, vocab = config["hidden_size"], config["vocab_size"]
    norm_sizes = {"input_layernorm": hidden, "post_attention_layernorm": hidden,
                  "self_attn.attn_sub_norm": hidden, "mlp.ffn_sub_norm": config["intermediate_size"]}
    specs = [("model.embed_tokens.weight", "BF16", (vocab, hidden)), ("model.norm.weight", "BF16", (hidden,))]
    if not config["tie_word_embeddings"]:
        specs.append(("lm_head.weight", "BF16", (vocab, hidden)))
    for i in range(config["num_hidden_layers"]):
        prefix = f"model.layers.{i}."
        specs += [(prefix + n + ".weight", "BF16", (size,)) for n, size in norm_sizes.items()]
        for n, (rows, cols) in linear_shapes(config).items():
            if form == "packed":
                specs += [(prefix + n + ".weight", "U8", (rows // hf_ternary.VALUES_PER_BYTE, cols)),
                          (prefix + n + ".weight_scale", "BF16", (1,))]
            else:
                specs.append((prefix + n + ".weight", "BF16", (rows, cols)))
    return sorted(specs)


def tensor_rng(seed: int, name: str) -> np.random.Generator:
    """Each tensor's own stream, so values do not depend on the form or the write order."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def master_linear(seed: int, name: str, shape: tuple[int, int]) -> np.ndarray:
    """bf16 master weight (as uint16 bits); a random spread per tensor so scales differ between tensors."""
    rng = tensor_rng(seed, name)
    spread = rng.uniform(0.5, 2.0)
    return f32_to_bf16(rng.standard_normal(shape, dtype=np.float32) * np.float32(spread))


def write_checkpoint(out_dir: str, config: dict, form: str = "packed", seed: int = 0, tokenizer=None) -> str:
    """Writes config.json, generation_config.json, model.safetensors and the tokenizer files to out_dir.
    config holds the shape fields (a PRESETS entry); vocab_size must cover the tokenizer (a synthetic
    tokenizer of exactly vocab_size entries is made when none is given). Returns out_dir."""
    if form not in FORMS:
        raise ValueError(f"unknown checkpoint form {form!r}: choose one of {', '.join(FORMS)}")
    if tokenizer is None:
        tokenizer = synth_tokenizer.synthetic_tokenizer(config["vocab_size"])
    if tokenizer.get_vocab_size() > config["vocab_size"]:
        raise ValueError(f"tokenizer has {tokenizer.get_vocab_size()} entries, more than vocab_size {config['vocab_size']}")
    config = make_config(config, form, tokenizer)
    os.makedirs(out_dir, exist_ok=True)

    shapes = {n: shape for n, _, shape in tensor_specs(config, "bf16")}
    last = {}  # the packed form needs each ternarization twice: for the weight and for its scale

    def ternarized(weight_name):
        if last.get("name") != weight_name:
            master = bf16_to_f32(master_linear(seed, weight_name, shapes[weight_name]))
            last.update(name=weight_name, result=hf_ternary.absmean_ternarize(master))
        return last["result"]

    def produce(name):
        if name.endswith(".weight_scale"):
            _, scale = ternarized(name.removesuffix("_scale"))
            yield f32_to_bf16(np.array([scale], dtype=np.float32))
        elif any(f".{n}.weight" in name for n in LINEARS):
            if form == "packed":
                yield hf_ternary.pack(ternarized(name)[0])
            else:
                yield master_linear(seed, name, shapes[name])
        elif name in ("model.embed_tokens.weight", "lm_head.weight"):
            rng = tensor_rng(seed, name)
            rows, cols = shapes[name]
            for start in range(0, rows, EMBEDDING_CHUNK_ROWS):
                n = min(EMBEDDING_CHUNK_ROWS, rows - start)
                yield f32_to_bf16(rng.standard_normal((n, cols), dtype=np.float32))
        else:  # RMSNorm gains
            yield f32_to_bf16(tensor_rng(seed, name).uniform(0.5, 1.5, shapes[name]).astype(np.float32))

    write_safetensors(os.path.join(out_dir, "model.safetensors"), tensor_specs(config, form), produce,
                      metadata={"format": "pt"})
    write_json(os.path.join(out_dir, "config.json"), config)
    write_json(os.path.join(out_dir, "generation_config.json"), {
        "_from_model_config": True, "bos_token_id": config["bos_token_id"],
        "eos_token_id": [config["eos_token_id"], tokenizer.token_to_id(synth_tokenizer.EOT)],
        "do_sample": True, "temperature": 0.6, "top_p": 0.9, "max_length": config["max_position_embeddings"]})
    tokenizer.save(os.path.join(out_dir, "tokenizer.json"))
    write_json(os.path.join(out_dir, "tokenizer_config.json"),
               synth_tokenizer.tokenizer_config(tokenizer, config["max_position_embeddings"]))
    return out_dir


def write_json(path: str, value: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def synth(preset: str, out_dir: str, form: str = "packed", seed: int = 0) -> str:
    """`tritlm synth`: a random checkpoint of a named preset."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    return write_checkpoint(out_dir, PRESETS[preset], form, seed)
