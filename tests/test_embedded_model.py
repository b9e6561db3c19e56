"""The embedded model (models/bitnet-tiny): it is in microsoft/bitnet-b1.58-2B-4T's on-disk form, transformers
runs it with its own BitNet quantizer, and after `tritlm convert` our engine continues a prompt greedily with
exactly transformers' tokens."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

from tests.checkpoints import load_reference
from tritlm.converter.hf_ternary import unpack

CHECKPOINT = Path(__file__).resolve().parent.parent / "models" / "bitnet-tiny"
PROMPT = "def fibonacci(n):"
N_TOKENS = 32


@pytest.fixture(scope="module")
def reference():
    return load_reference(str(CHECKPOINT))


@pytest.fixture(scope="module")
def prompt_ids():
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(CHECKPOINT / "tokenizer.json")).encode(PROMPT).ids


@pytest.fixture(scope="module")
def expected_continuation(reference, prompt_ids):
    return transformers_greedy(reference, prompt_ids, N_TOKENS)


def test_checkpoint_is_in_2b4t_packed_form():
    from safetensors import safe_open

    config = json.loads((CHECKPOINT / "config.json").read_text())
    assert config["architectures"] == ["BitNetForCausalLM"]
    assert config["quantization_config"] == {
        "quant_method": "bitnet",
        "linear_class": "autobitlinear",
        "quantization_mode": "offline",
    }
    with safe_open(str(CHECKPOINT / "model.safetensors"), "pt") as f:
        names = set(f.keys())
        q = f.get_tensor("model.layers.0.self_attn.q_proj.weight")
        scale = f.get_tensor("model.layers.0.self_attn.q_proj.weight_scale")
        embedding = f.get_slice("model.embed_tokens.weight")
        assert embedding.get_dtype() == "BF16"
    assert "lm_head.weight" not in names  # tied
    assert str(q.dtype) == "torch.uint8" and tuple(q.shape) == (config["hidden_size"] // 4, config["hidden_size"])
    assert str(scale.dtype) == "torch.bfloat16" and scale.shape == (1,)
    ternary = unpack(q.numpy())  # raises on the invalid code 3
    # absmean ternarization leaves a real share of zeros and of both signs
    assert {-1, 0, 1} == set(np.unique(ternary).tolist())


def test_transformers_runs_it_as_bitnet(reference):
    from transformers.integrations.bitnet import AutoBitLinear

    q_proj = reference.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj, AutoBitLinear) and not q_proj.online_quant
    assert set(np.unique(q_proj.weight.detach().numpy()).tolist()) == {-1.0, 0.0, 1.0}


def transformers_greedy(model, ids: list[int], n: int) -> list[int]:
    import torch

    ids = list(ids)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[-n:]


def engine_greedy(path: str, ids: list[int], n: int) -> list[int]:
    from tritlm.runtime import Model

    with Model(path, threads=2) as model, model.new_sequence() as seq:
        out = [int(np.argmax(model.prefill(seq, ids)))]
        while len(out) < n:
            out.append(int(np.argmax(model.decode([seq], [out[-1]])[0])))
        assert model.tokenize(PROMPT) == ids
    return out


@pytest.mark.parametrize("qtype", ["i2_s", "tq2_0"])
def test_greedy_continuation_matches_transformers(qtype, expected_continuation, prompt_ids, tmp_path):
    from tritlm.converter.write import convert

    gguf = str(tmp_path / f"bitnet-tiny-{qtype}.gguf")
    convert(str(CHECKPOINT), gguf, qtype, progress=False)
    assert engine_greedy(gguf, prompt_ids, N_TOKENS) == expected_continuation
