"""Synthetic checkpoints: the on-disk form of microsoft/bitnet-b1.58-2B-4T, checked against transformers,
torch and the safetensors package as independent readers."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.checkpoints import load_reference
from tritlm.converter import hf_ternary, synth, synth_tokenizer
from tritlm.converter.errors import ConverterError
from tritlm.converter.presets import PRESETS
from tritlm.converter.safetensors_io import SafetensorsFile, bf16_to_f32, f32_to_bf16


def test_bf16_rounding_matches_torch():
    x = np.concatenate(
        [
            np.random.default_rng(0).standard_normal(10000).astype(np.float32) * 100,
            np.array([0.0, -0.0, 1.0, 1.00390625, 1.01171875, 3.0e38, 1e-40], dtype=np.float32),
        ]
    )
    # 1.00390625 and 1.01171875 sit exactly halfway between bf16 neighbours: ties go to even
    expected = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(f32_to_bf16(x), expected)
    np.testing.assert_array_equal(bf16_to_f32(expected), torch.from_numpy(x).to(torch.bfloat16).float().numpy())


def test_safetensors_package_reads_our_files(tiny_checkpoints):
    from safetensors.torch import load_file

    for _form, path in tiny_checkpoints.items():
        ours = SafetensorsFile(os.path.join(path, "model.safetensors"))
        theirs = load_file(os.path.join(path, "model.safetensors"))
        assert sorted(theirs) == ours.names()
        for name, tensor in theirs.items():
            assert tuple(tensor.shape) == ours.shape(name)
            if tensor.dtype == torch.uint8:
                np.testing.assert_array_equal(tensor.numpy(), ours.raw(name))
            else:
                np.testing.assert_array_equal(tensor.float().numpy(), ours.float32(name))


def test_both_forms_hold_the_same_ternary_model(tiny_checkpoints):
    packed = SafetensorsFile(os.path.join(tiny_checkpoints["packed"], "model.safetensors"))
    master = SafetensorsFile(os.path.join(tiny_checkpoints["bf16"], "model.safetensors"))
    linears = [n for n in master.names() if n.endswith("_proj.weight")]
    assert len(linears) == 7 * PRESETS["tiny"]["num_hidden_layers"]
    for name in master.names():
        if name not in linears:  # embeddings and norms are identical bf16 tensors
            np.testing.assert_array_equal(packed.raw(name), master.raw(name))
    for name in linears:
        assert packed.dtype(name) == "U8" and master.dtype(name) == "BF16"
        ternary, scale = hf_ternary.absmean_ternarize(master.float32(name))
        np.testing.assert_array_equal(hf_ternary.unpack(packed.raw(name)), ternary)
        assert packed.float32(name + "_scale")[0] == bf16_to_f32(f32_to_bf16(np.array([scale])))[0]
        assert (ternary == 0).mean() > 0.2 and (ternary == 1).mean() > 0.2  # really ternary, not degenerate


def test_config_and_tokenizer_files(tiny_checkpoints):
    from transformers import AutoTokenizer

    path = tiny_checkpoints["packed"]
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    assert config["architectures"] == ["BitNetForCausalLM"] and config["model_type"] == "bitnet"
    assert config["hidden_act"] == "relu2" and config["tie_word_embeddings"] is True
    assert config["quantization_config"] == {
        "quant_method": "bitnet",
        "linear_class": "autobitlinear",
        "quantization_mode": "offline",
    }
    tok = AutoTokenizer.from_pretrained(path)
    assert len(tok) == config["vocab_size"] == 1024
    assert tok.convert_tokens_to_ids(synth_tokenizer.BOS) == config["bos_token_id"]
    text = tok.apply_chat_template([{"role": "user", "content": "hello"}], tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhello<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    ids = tok("the café 12345")["input_ids"]
    assert ids[0] == config["bos_token_id"] and tok.decode(ids[1:]) == "the café 12345"


def test_synthetic_tokenizer_has_llama3_layout():
    tok = synth_tokenizer.synthetic_tokenizer(128256)
    assert tok.get_vocab_size() == 128256
    assert [
        tok.token_to_id(t)
        for t in (
            synth_tokenizer.BOS,
            synth_tokenizer.EOS,
            synth_tokenizer.START_HEADER,
            synth_tokenizer.END_HEADER,
            synth_tokenizer.EOT,
        )
    ] == [128000, 128001, 128006, 128007, 128009]
    text = "Hello world,\n\tcafé 日本 12345!"
    assert tok.decode(tok.encode(text).ids) == text


def test_reference_runs_ternary(tiny_checkpoints):
    """The reference is not a float model: its effective weights are ternary * scale, zeroing a scale changes
    its output, and the two forms agree once the packed scales are given their unrounded f32 value."""
    from transformers.integrations.bitnet import AutoBitLinear, WeightQuant

    packed, master = load_reference(tiny_checkpoints["packed"]), load_reference(tiny_checkpoints["bf16"])
    ids = torch.tensor([[5, 300, 17, 900, 42, 7, 1000]])
    with torch.no_grad():
        before = packed(ids).logits
        for (_name, p), (_, m) in zip(packed.named_modules(), master.named_modules()):
            if isinstance(p, AutoBitLinear):
                ternary, scale = hf_ternary.absmean_ternarize(m.weight.numpy())
                np.testing.assert_array_equal(p.weight.numpy(), ternary)
                np.testing.assert_allclose(WeightQuant.apply(m.weight).numpy(), ternary * scale, rtol=1e-6)
                p.weight_scale.fill_(float(scale))
        np.testing.assert_allclose(packed(ids).logits.numpy(), master(ids).logits.numpy(), atol=1e-3)
        assert not torch.allclose(before, packed(ids).logits)  # bf16 vs f32 scale is visible in the output
        packed.model.layers[0].mlp.down_proj.weight_scale.zero_()
        assert (packed(ids).logits - before).abs().max() > 1.0


def test_cli_synth_and_bad_preset(tmp_path):
    from tritlm.runtime.cli import main

    assert main(["synth", "--preset", "tiny", "-o", str(tmp_path / "t"), "--form", "bf16", "--seed", "3"]) == 0
    assert sorted(os.listdir(tmp_path / "t")) == [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    with pytest.raises(ConverterError, match="unknown preset 'huge'"):
        synth.synth("huge", str(tmp_path / "h"))


@pytest.mark.slow
def test_2b_preset_streams_in_bounded_memory(tmp_path):
    code = (
        "import sys; from tritlm.converter.synth import synth; synth('2b-4t', sys.argv[1]);"
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    )  # own peak, kB: ru_maxrss keeps pytest's across fork+exec
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    peak_mb = int(out.stdout.split()[-1]) / 1024
    print(f"2b-4t synth peak RSS {peak_mb:.0f} MB")
    assert peak_mb < 2048
    st = SafetensorsFile(str(tmp_path / "model.safetensors"))
    assert st.shape("model.embed_tokens.weight") == (128256, 2560)
    assert st.shape("model.layers.29.mlp.down_proj.weight") == (640, 6912)
