"""Every published BitNet b1.58 family: a tiny checkpoint in the family's exact on-disk form (converter/synth.py)
converts, its GGUF tensors hold the reference's weights, and the engine's logits equal the reference's.

References: transformers' LlamaForCausalLM with its BitNet quantizer for the Llama-shaped families (Falcon3,
Falcon-E, Llama3-8B-1.58: packed weights whose weight_scale divides); for 1bitLLM, which transformers has no
class for, `model_card_logits` below, a numpy forward written from the model card (checked against
transformers on the Llama family, where both apply)."""

import json
import os

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q

from tests.checkpoints import LINEARS
from tritlm.converter import synth
from tritlm.converter.errors import ConverterError
from tritlm.converter.write import convert
from tritlm.runtime.cli import main

# name -> (synth family, form, shape fields)
FAMILIES = {
    "1bitllm-large": (
        "1bitllm",
        "fp16",
        dict(
            hidden_size=256,
            intermediate_size=768,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            vocab_size=512,
            max_position_embeddings=128,
        ),
    ),
    # the 3B's awkward sizes: head_dim 100 and rows (400, 1072) that are whole blocks of no ternary type
    "1bitllm-3b": (
        "1bitllm",
        "fp16",
        dict(
            hidden_size=400,
            intermediate_size=1072,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            vocab_size=512,
            max_position_embeddings=128,
        ),
    ),
    # an intermediate size that is a multiple of no block and not of 16 (the float kernels' row)
    "1bitllm-1080": (
        "1bitllm",
        "fp16",
        dict(
            hidden_size=256,
            intermediate_size=1080,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            vocab_size=512,
            max_position_embeddings=128,
        ),
    ),
    # Falcon3's head_dim 256 (q is wider than the hidden size) and rope theta
    "falcon3": (
        "llama",
        "packed",
        dict(
            hidden_size=256,
            intermediate_size=768,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=256,
            vocab_size=1024,
            rope_theta=1000042.0,
            rms_norm_eps=1e-06,
            max_position_embeddings=128,
        ),
    ),
    "llama3-8b": (
        "llama",
        "packed",
        dict(
            hidden_size=256,
            intermediate_size=512,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=1024,
            max_position_embeddings=128,
        ),
    ),
}
TERNARY_TYPES = ["i2_s", "tq1_0", "tq2_0"]
PROMPT = [1, 17, 300, 42, 7, 99, 250, 3, 64, 128, 5, 200]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    return {
        name: synth.write_checkpoint(str(root / name), shape, form, seed=5, family=family)
        for name, (family, form, shape) in FAMILIES.items()
    }


@pytest.fixture(scope="module")
def ggufs(checkpoints, tmp_path_factory):
    root = tmp_path_factory.mktemp("families-gguf")
    out = {}
    for name, path in checkpoints.items():
        for type_name in TERNARY_TYPES:
            out[name, type_name] = str(root / f"{name}-{type_name}.gguf")
            convert(path, out[name, type_name], type_name, progress=False)
    return out


# ---- the references ----


def checkpoint_weights(path: str) -> tuple[dict, dict]:
    """(config, tensor name -> float32 numpy) read with the safetensors library, linears as the effective
    dequantized weights: packed ternary / weight_scale (transformers' BitLinear), or absmean-ternarized
    latents (the model card: s = 1 / mean|W|, W_q = clamp(round(W s), -1, 1), W = W_q / s)."""
    import torch
    from safetensors.torch import load_file
    from transformers.integrations.bitnet import unpack_weights

    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    raw = load_file(os.path.join(path, "model.safetensors"))
    out = {}
    for name, t in raw.items():
        if name.endswith(".weight_scale"):
            continue
        if t.dtype == torch.uint8:
            scale = raw[name + "_scale"].float()
            out[name] = (unpack_weights(t, dtype=torch.float32) / scale).numpy()
        elif any(f".{hf}.weight" in name for hf in LINEARS.values()):
            w = t.float()
            s = 1.0 / w.abs().mean().clamp(min=1e-5)
            out[name] = ((w * s).round().clamp(-1, 1) / s).numpy()
        else:
            out[name] = t.float().numpy()
    return config, out


def model_card_logits(path: str, ids: list[int]) -> np.ndarray:
    """BitNet b1.58 as its model card describes it: Llama (RMSNorm, RoPE rotate_half, causal GQA) whose
    linears are BitLinear (per-token absmax int8 activations, quantized in float32 as trained, times the
    ternary weights), with an RMSNorm before o_proj and before down_proj when the checkpoint has them
    (1bitLLM: inner_attn_ln, ffn_layernorm). Everything else in float64, so sums are (nearly) exact."""
    config, w = checkpoint_weights(path)
    w = {name: value.astype(np.float64) for name, value in w.items()}
    eps, theta = config["rms_norm_eps"], config["rope_theta"]
    n_head, n_kv = config["num_attention_heads"], config["num_key_value_heads"]
    hd = config.get("head_dim") or config["hidden_size"] // n_head
    act = {"silu": lambda g: g / (1 + np.exp(-g)), "relu2": lambda g: np.maximum(g, 0) ** 2}[config["hidden_act"]]

    def rmsnorm(x, weight):
        return weight * (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps))

    def bitlinear(x, weight):
        x = x.astype(np.float32)
        s = np.float32(127) / np.maximum(np.abs(x).max(-1, keepdims=True), np.float32(1e-5))
        q = np.clip(np.rint(x * s), -128, 127)
        return (q.astype(np.float64) @ weight.T) / s

    def rope(x, pos):  # x [n, heads, hd]
        inv = 1.0 / theta ** (np.arange(0, hd, 2) / hd)
        ang = pos[:, None] * inv[None, :]
        cos, sin = np.cos(np.concatenate([ang, ang], -1))[:, None], np.sin(np.concatenate([ang, ang], -1))[:, None]
        rotated = np.concatenate([-x[..., hd // 2 :], x[..., : hd // 2]], -1)
        return x * cos + rotated * sin

    n = len(ids)
    pos = np.arange(n, dtype=np.float64)
    x = w["model.embed_tokens.weight"][ids]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rmsnorm(x, w[p + "input_layernorm.weight"])
        q = rope(bitlinear(h, w[p + "self_attn.q_proj.weight"]).reshape(n, n_head, hd), pos)
        k = rope(bitlinear(h, w[p + "self_attn.k_proj.weight"]).reshape(n, n_kv, hd), pos)
        v = bitlinear(h, w[p + "self_attn.v_proj.weight"]).reshape(n, n_kv, hd)
        k, v = np.repeat(k, n_head // n_kv, axis=1), np.repeat(v, n_head // n_kv, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(hd)
        scores = np.where(np.tril(np.ones((n, n), bool)), scores, -np.inf)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        att = np.einsum("hqk,khd->qhd", probs, v).reshape(n, n_head * hd)
        if p + "self_attn.inner_attn_ln.weight" in w:
            att = rmsnorm(att, w[p + "self_attn.inner_attn_ln.weight"])
        x = x + bitlinear(att, w[p + "self_attn.o_proj.weight"])
        h = rmsnorm(x, w[p + "post_attention_layernorm.weight"])
        g = act(bitlinear(h, w[p + "mlp.gate_proj.weight"])) * bitlinear(h, w[p + "mlp.up_proj.weight"])
        if p + "mlp.ffn_layernorm.weight" in w:
            g = rmsnorm(g, w[p + "mlp.ffn_layernorm.weight"])
        x = x + bitlinear(g, w[p + "mlp.down_proj.weight"])
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return rmsnorm(x, w["model.norm.weight"]) @ head.T


def transformers_logits(path: str, ids: list[int]) -> np.ndarray:
    """transformers' LlamaForCausalLM with the BitNet quantizer its config.json names, run in float64 (sums
    nearly exact) except its BitLinear's activation quantization, kept in float32 as trained."""
    from unittest import mock

    import torch
    from transformers import LlamaForCausalLM
    from transformers.integrations.bitnet import BitLinear

    as_trained = BitLinear.activation_quant

    def float32_activation_quant(self, x, num_bits=8):
        q, scale = as_trained(self, x.float(), num_bits)
        return q, scale.to(x.dtype)

    model = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32)
    model = torch.nn.Module.to(model, torch.float64).eval()
    with torch.no_grad(), mock.patch.object(BitLinear, "activation_quant", float32_activation_quant):
        return model(torch.tensor([ids])).logits[0].float().numpy()


def assert_close(logits, expect):
    """Equal up to float summation order at (nearly) every position. Random tiny models saturate attention,
    so an o_proj input is often one position's v exactly, whose int8 quantization can land on an exact .5
    tie: there the last float bit decides the rounding and that position's logits move by up to ~1%."""
    span = float(expect.max() - expect.min())
    diff = np.abs(logits - expect).max(axis=1)
    exact = int((diff < 1e-4 * span).sum())
    print(f"{exact}/{len(diff)} positions within 1e-4 of the logit range {span:.3g}; max |diff| {diff.max():.3g}")
    assert logits.shape == expect.shape
    assert exact >= 0.75 * len(diff) and diff.max() < 2e-2 * span


# ---- tests ----


@pytest.mark.parametrize("name", ["falcon3", "llama3-8b"])
def test_model_card_forward_equals_transformers(checkpoints, name):
    """The numpy reference agrees with transformers where both apply, so it can stand in for 1bitLLM."""
    assert_close(model_card_logits(checkpoints[name], PROMPT), transformers_logits(checkpoints[name], PROMPT))


@pytest.mark.parametrize("name", list(FAMILIES))
def test_checkpoint_has_the_family_form(checkpoints, name):
    with open(os.path.join(checkpoints[name], "config.json")) as f:
        config = json.load(f)
    from safetensors import safe_open

    with safe_open(os.path.join(checkpoints[name], "model.safetensors"), "np") as st:
        keys = set(st.keys())
        dtype = st.get_slice("model.layers.0.self_attn.q_proj.weight").get_dtype()
    if FAMILIES[name][0] == "1bitllm":
        assert config["architectures"] == ["BitnetForCausalLM"] and config["model_type"] == "llama"
        assert "auto_map" not in config and "quantization_config" not in config and dtype == "F16"
        assert {
            "model.layers.1.self_attn.inner_attn_ln.weight",
            "model.layers.1.mlp.ffn_layernorm.weight",
            "lm_head.weight",
        } <= keys
    else:
        assert config["architectures"] == ["LlamaForCausalLM"] and dtype == "U8"
        assert config["quantization_config"]["quant_method"] == "bitnet"
        assert "linear_class" not in config["quantization_config"]  # transformers' BitLinear: the scale divides
        assert "model.layers.1.self_attn.q_proj.weight_scale" in keys and not any("sub_norm" in k for k in keys)


@pytest.mark.parametrize("type_name", TERNARY_TYPES)
@pytest.mark.parametrize("name", list(FAMILIES))
def test_gguf_tensors_hold_the_reference_weights(checkpoints, ggufs, name, type_name):
    """Each ternary tensor dequantizes to the reference's effective weight (padding columns are zeros), with
    the exact scale in tritlm.weight_scale.*; the architecture is the family's."""
    config, ref = checkpoint_weights(checkpoints[name])
    path = ggufs[name, type_name]
    table = RawTensors(path)
    arch = table.fields["general.architecture"].contents()
    assert arch == ("llama" if FAMILIES[name][0] == "llama" else "bitnet-b1.58" if type_name == "i2_s" else "bitnet")
    for i in range(FAMILIES[name][2]["num_hidden_layers"]):
        for gguf_name, hf_name in LINEARS.items():
            gname = f"blk.{i}.{gguf_name}.weight"
            expect = ref[f"model.layers.{i}.{hf_name}.weight"]
            if arch == "llama" and gguf_name in ("attn_q", "attn_k"):  # llama.cpp's q/k row order (normal RoPE)
                expect = llama_cpp_row_order(
                    expect, config["num_attention_heads" if gguf_name == "attn_q" else "num_key_value_heads"]
                )
            scale = np.float32(table.fields[f"tritlm.weight_scale.{gname}"].contents())
            type_id, shape, raw = table.tensor(gname)
            block = 128 if type_name == "i2_s" else 256
            assert shape == (expect.shape[0], -(-expect.shape[1] // block) * block)
            if type_name == "i2_s":
                values = decode_i2_s(raw, shape)
                assert raw[raw.size - 32 : raw.size - 28].view("<f4")[0] == scale
            else:
                values = gguf.quants.dequantize(raw.reshape(shape[0], -1), Q(type_id))
                values = np.rint(values / np.float32(np.float16(scale)))
            assert not values[:, expect.shape[1] :].any()
            np.testing.assert_allclose(values[:, : expect.shape[1]] * scale, expect, rtol=2e-7, atol=0)


def llama_cpp_row_order(w, n_heads):
    """llama.cpp's convert_hf_to_gguf permutation for `llama`: row i of a head's second half moves next
    to row i of its first half."""
    head_dim = w.shape[0] // n_heads
    order = [
        h * head_dim + half * head_dim // 2 + i for h in range(n_heads) for i in range(head_dim // 2) for half in (0, 1)
    ]
    return w[order]


class RawTensors(gguf.GGUFReader):
    """gguf-py's header parser, keeping each tensor's raw bytes uninterpreted (gguf-py does not know i2_s)."""

    def _build_tensors(self, start_offs, fields):
        self.table = {}
        for field in fields:
            _, name, _, dims, dtype, offset = field.parts
            self.table[bytes(name).decode()] = (
                int(dtype[0]),
                tuple(reversed(dims.tolist())),
                start_offs + int(offset[0]),
            )

    def tensor(self, name):
        type_id, shape, offset = self.table[name]
        n = int(np.prod(shape))
        size = n // 4 + 32 if type_id == 36 else gguf.quants.quant_shape_to_byte_shape(shape, Q(type_id))[-1] * shape[0]
        return type_id, shape, np.asarray(self.data[offset : offset + size])


def decode_i2_s(raw, shape):
    """bitnet.cpp's I2_S: 128-value blocks of 32 bytes, byte j holding values j, j+32, j+64, j+96 from the
    top bits down, code 0/1/2 = -1/0/+1."""
    blocks = raw[: int(np.prod(shape)) // 4].reshape(-1, 1, 32)
    codes = (blocks >> np.array([6, 4, 2, 0], dtype=np.uint8)[None, :, None]) & 3
    return (codes.reshape(shape).astype(np.int8) - 1).astype(np.float32)


@pytest.fixture(scope="module")
def references(checkpoints):
    """name -> the reference logits of PROMPT: transformers for the Llama family, the model card otherwise."""
    return {
        name: (transformers_logits if FAMILIES[name][0] == "llama" else model_card_logits)(path, PROMPT)
        for name, path in checkpoints.items()
    }


@pytest.mark.parametrize("type_name", TERNARY_TYPES)
@pytest.mark.parametrize("name", list(FAMILIES))
def test_engine_logits_equal_the_reference(ggufs, references, name, type_name):
    Model = pytest.importorskip("tritlm.runtime.model").Model
    with Model(ggufs[name, type_name], threads=2) as model:
        assert_close(model.logits(PROMPT), references[name])


@pytest.mark.parametrize("type_name", ["f16", "f32"])
def test_float_files_of_awkward_widths_load(checkpoints, references, tmp_path, type_name):
    """Rows of ternary * scale in f16/f32 are zero-padded to a multiple of 16 values, as ternary rows are to
    whole blocks: the converter never writes a file the runtime refuses (intermediate size 1080)."""
    path = str(tmp_path / f"1080-{type_name}.gguf")
    convert(checkpoints["1bitllm-1080"], path, type_name, progress=False)
    assert RawTensors(path).tensor("blk.0.ffn_down.weight")[:2] == (Q[type_name.upper()], (256, 1088))
    Model = pytest.importorskip("tritlm.runtime.model").Model
    with Model(path, threads=2) as model:
        logits, expect = model.logits(PROMPT), references["1bitllm-1080"]
    if type_name == "f32":
        assert_close(logits, expect)
    else:  # f16 rounds ternary x scale to 11 bits: these random tiny models move by ~1.5% of the logit range
        assert np.abs(logits - expect).max() < 0.03 * float(expect.max() - expect.min())


def test_list_shows_every_family(capsys):
    assert main(["convert", "--list"]) == 0
    out = capsys.readouterr().out
    for needle in (
        "BitnetForCausalLM",
        "LlamaForCausalLM",
        "1bitLLM/bitnet_b1_58-3B",
        "tiiuae/Falcon3-7B-Instruct-1.58bit",
        "tiiuae/Falcon-E-3B-Base",
        "HF1BitLLM/Llama3-8B-1.58-100B-tokens",
    ):
        assert needle in out


def test_plain_llama_is_refused(tmp_path, checkpoints):
    import shutil

    ckpt = shutil.copytree(checkpoints["llama3-8b"], tmp_path / "plain")
    config = json.loads((ckpt / "config.json").read_text())
    del config["quantization_config"]
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConverterError, match="not a ternary model"):
        convert(str(ckpt), str(tmp_path / "x.gguf"), "tq2_0", progress=False)
    assert not os.path.exists(tmp_path / "x.gguf")


def test_sentencepiece_tokenizer_round_trips(checkpoints, ggufs):
    """1bitLLM's Llama-2 tokenizer, written as llama.cpp's `llama` model with scores, tokenizes as the
    checkpoint's tokenizer.json does (byte fallback included) and decodes back to the text."""
    from tokenizers import Tokenizer

    from tritlm.runtime.gguf import GGUFFile
    from tritlm.runtime.tokenizer import GGUFTokenizer

    original = Tokenizer.from_file(os.path.join(checkpoints["1bitllm-large"], "tokenizer.json"))
    with GGUFFile(ggufs["1bitllm-large", "tq2_0"]) as f:
        assert f.metadata["tokenizer.ggml.model"] == "llama" and "tokenizer.ggml.merges" not in f.metadata
        ours = GGUFTokenizer(f.metadata)
    for text in ("Hello world, the naïve café", "  two  spaces\nand a newline", "日本語 🙂 x = 3.14;"):
        want = original.encode(text).ids
        assert ours.tokenize(text) == want
        assert ours.detokenize(want[1:]).removeprefix(" ") == text
    assert ours.tokenize("<s> as text", special=True) == original.encode("<s> as text").ids
