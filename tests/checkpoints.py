"""Tiny test checkpoints in both published forms, and the independent reference that runs them:
transformers' BitNetForCausalLM with its BitNet quantizer, so it really computes ternary weights times
int8 activations."""

import json
import os

import numpy as np

from tritlm.converter import synth, synth_tokenizer
from tritlm.converter.presets import PRESETS

# GGUF name -> Hugging Face module of each BitLinear, written out here (not the converter's table) so tests check it
LINEARS = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}

N_SPECIAL = 16
WORDS = (
    "the a of to and in is it that was for on are with as his they be at one have this from or had by "
    "word but what some we can out other were all there when up use your how said an each she which do "
    "their time if will way about many then them write would like so these her long make thing see him "
    "two has look more day could go come did number sound no most people my over know water than call "
    "first who may down side been now find ternary weight model token cache layer matrix vector scale"
).split()
EXTRA = ["naïve", "café", "Zürich", "日本語", "emoji 🙂", "x = 3.14;", "if (a != b) { return -1; }", "\n\n", "\t"]


def training_text(n_lines: int = 3000, seed: int = 1) -> list[str]:
    """Deterministic English-like lines with digits, punctuation, code and non-ASCII text."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n_lines):
        words = [str(rng.choice(WORDS)) for _ in range(rng.integers(4, 16))]
        if rng.random() < 0.3:
            words.insert(rng.integers(0, len(words)), str(rng.integers(0, 100000)))
        if rng.random() < 0.2:
            words.append(str(rng.choice(EXTRA)))
        lines.append(" ".join(words).capitalize() + str(rng.choice([".", "?", "!", ",", ":"])))
    return lines


def tiny_tokenizer(vocab_size: int = PRESETS["tiny"]["vocab_size"]):
    """A trained Llama-3-style byte-level BPE of exactly vocab_size entries (specials at the end)."""
    from tokenizers import pre_tokenizers, trainers

    tok = synth_tokenizer.new_llama3_bpe()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - N_SPECIAL, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(training_text(), trainer)
    tok = synth_tokenizer.finish_llama3(tok, N_SPECIAL)
    assert tok.get_vocab_size() == vocab_size, tok.get_vocab_size()
    return tok


def make_tiny(out_dir: str, form: str, seed: int = 0) -> str:
    """The tiny preset with the trained tokenizer; the same seed gives the same model in both forms."""
    return synth.write_checkpoint(out_dir, PRESETS["tiny"], form, seed, tokenizer=tiny_tokenizer())


def load_reference(model_dir: str):
    """transformers' BitNetForCausalLM in float32, with the BitNet quantizer on: offline (packed uint8 +
    weight_scale that multiplies) or online (absmean-ternarizes the bf16 masters in every forward)."""
    import torch
    from transformers import AutoConfig, BitNetForCausalLM

    with open(os.path.join(model_dir, "config.json")) as f:
        packed = json.load(f).get("quantization_config", {}).get("quantization_mode") == "offline"
    config = AutoConfig.from_pretrained(model_dir)
    config.quantization_config = {
        "quant_method": "bitnet",
        "linear_class": "autobitlinear",
        "quantization_mode": "offline" if packed else "online",
    }
    model = BitNetForCausalLM.from_pretrained(model_dir, config=config, dtype=torch.float32)
    # The quantizer leaves the unconverted modules (embeddings, norms) in the checkpoint's bf16 and
    # forbids model.float(); the plain nn.Module cast is what we need.
    return torch.nn.Module.to(model, torch.float32).eval()


def full_forward_greedy(model, ids: list[int], max_tokens: int) -> list[int]:
    """Greedy continuation recomputed from scratch at every step: argmax of a fresh full forward over the whole
    text (no KV cache reuse), stopping at an end-of-generation token. The reference for streamed answers."""
    out = []
    for _ in range(max_tokens):
        token = int(np.argmax(model.logits(ids + out)[-1]))
        if token in model.eos_ids:
            break
        out.append(token)
    return out


class ScriptedSampler:
    """Stands in for a Sampler: returns the given tokens in order, whatever the logits (to drive a token loop
    into a chosen ending: an end-of-sequence token, half a character, a stop string)."""

    def __init__(self, tokens):
        self.tokens = iter(tokens)

    def accept(self, tokens) -> None:  # a Sampler's penalty window: nothing to keep
        pass

    def sample(self, logits) -> int:
        return next(self.tokens)
