"""Files made by bitnet.cpp's and llama.cpp's converters (written as they write them: tests/peer_files.py) run
in our runtime and give the reference's logits; our i2_s tensors hold what bitnet.cpp writes."""

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as QT
from gguf import quants

from tests import peer_files
from tests.checkpoints import load_reference
from tests.test_families import (
    FAMILIES,
    PROMPT,
    assert_close,
    checkpoints,  # noqa: F401 (a fixture)
)
from tritlm.converter import synth
from tritlm.converter.write import convert
from tritlm.runtime import Model
from tritlm.runtime.gguf import GGUFFile

N_TOKENS = 48
# float32 attention's last-bit rounding decides an int8 rounding tie now and then (tests/test_lossless.py: LOGITS_SEED);
# this prompt seed meets none in the lossless (F16) cases
LOGITS_SEED = 3


def token_ids(model, n, seed=0):
    rng = np.random.default_rng(seed)
    return [model.bos_id] + rng.integers(0, model.n_vocab, n - 1).tolist()


def file_embedding(path: str) -> torch.Tensor:
    """The token embedding as the file holds it, dequantized by gguf-py."""
    with GGUFFile(path) as f:
        t = next(t for t in f.tensors if t.name == "token_embd.weight")
        data = np.array(f.view(t))
    values = quants.dequantize(data, QT(t.type))
    return torch.from_numpy(values.reshape(t.rows, t.cols).astype(np.float64))


@pytest.fixture(scope="module")
def reference_models(tiny_checkpoints):
    """transformers in float64 (as tests/test_lossless.py), one per published form."""
    return {form: torch.nn.Module.to(load_reference(path), torch.float64) for form, path in tiny_checkpoints.items()}


@pytest.mark.parametrize(
    "form,embedding,arch,output_copy",
    [
        ("packed", "f16", "bitnet-b1.58", False),
        ("packed", "f16", "bitnet-b1.58", True),
        ("packed", "q6_k", "bitnet-b1.58", False),
        ("packed", "q8_0", "bitnet-b1.58", False),
        ("bf16", "f16", "bitnet-b1.58", False),
        ("packed", "f16", "bitnet-25", False),
    ],
)
def test_bitnet_cpp_file_matches_transformers(
    tiny_checkpoints, reference_models, tmp_path, form, embedding, arch, output_copy
):
    """bitnet.cpp's i2_s file (no tritlm.* keys: the scale is the I2_S trailer's, relu2 implied by the
    architecture; with or without an output.weight copy of the embedding) gives transformers' logits (with an
    F16 embedding, losslessly), with the
    reference's tied embedding set to what the file holds (F16, Q8_0 or Q6_K instead of the checkpoint's bf16)."""
    path = peer_files.bitnet_cpp_gguf(
        tiny_checkpoints[form], str(tmp_path / "bitnet-cpp.gguf"), embedding, arch, output_copy
    )
    with GGUFFile(path) as f:
        assert f.metadata["general.architecture"] == arch
        assert not [key for key in f.metadata if key.startswith("tritlm.")]
        assert {t.type for t in f.tensors if t.name == "token_embd.weight"} == {QT[embedding.upper()]}
    reference = reference_models[form]
    embedding_weights = file_embedding(path)
    with Model(path, threads=2) as model, torch.no_grad():
        ids = token_ids(model, N_TOKENS, seed=LOGITS_SEED)
        original = reference.model.embed_tokens.weight.clone()
        try:
            reference.model.embed_tokens.weight.copy_(embedding_weights)  # tied: also the output projection
            assert reference.lm_head.weight.data_ptr() == reference.model.embed_tokens.weight.data_ptr()
            want = reference(torch.tensor([ids])).logits[0].float().numpy()
        finally:
            reference.model.embed_tokens.weight.copy_(original)
        got = model.logits(ids)
    diff, span = np.abs(got - want).max(axis=1), float(want.max() - want.min())
    exact = diff < 1e-3 * span
    first_off = int(np.argmin(exact)) if not exact.all() else N_TOKENS
    agree = float((got.argmax(1) == want.argmax(1)).mean())
    print(
        f"{arch} {form} {embedding} output copy {output_copy}: {int(exact.sum())}/{N_TOKENS} positions within "
        f"1e-3 of the logit range {span:.3g} (all up to {first_off}); argmax agreement {agree:.0%}"
    )
    if embedding == "f16":  # lossless, as tests/test_lossless.py
        assert exact.all()
    else:
        # The Q8_0/Q6_K grids put first-layer activations on (near-)exact int8 rounding ties (seen: within 4e-7),
        # which float32 (ours) and float64 (the reference) round apart; the flipped position's k/v then move
        # every later position. So: the same predictions, and logits close on average.
        assert agree >= 0.9 and float(diff.mean()) < 0.03 * span


@pytest.mark.parametrize("form", ["packed", "bf16"])
def test_our_i2_s_tensors_are_bitnet_cpps_bytes(tiny_checkpoints, tmp_path, form):
    """Packed checkpoints: byte for byte. Master weights: the same codes; the absmean scale may differ in its
    last bits, as numpy's float32 mean (ours) and torch's (bitnet.cpp's) sum in different orders."""
    ours = str(tmp_path / "ours.gguf")
    convert(tiny_checkpoints[form], ours, "i2_s", progress=False)
    theirs = peer_files.bitnet_cpp_gguf(tiny_checkpoints[form], str(tmp_path / "theirs.gguf"))
    with GGUFFile(ours) as a, GGUFFile(theirs) as b:
        mine = {t.name: t for t in a.tensors if t.type == peer_files.I2_S.id}
        other = {t.name: t for t in b.tensors if t.type == peer_files.I2_S.id}
        assert sorted(mine) == sorted(other) and len(mine) == 14
        ulps = []
        for name in mine:
            assert mine[name].dims == other[name].dims
            x, y = np.array(a.view(mine[name])), np.array(b.view(other[name]))
            np.testing.assert_array_equal(x[:-32], y[:-32], err_msg=name)  # the codes
            scales = x[-32:-28].view(np.int32)[0], y[-32:-28].view(np.int32)[0]
            ulps.append(abs(int(scales[0]) - int(scales[1])))
            assert not x[-28:].any() and not y[-28:].any()
        assert a.metadata["general.architecture"] == b.metadata["general.architecture"] == "bitnet-b1.58"
    print(f"{form}: {len(mine)} i2_s tensors, same codes; scales differ by up to {max(ulps)} ulp")
    assert max(ulps) <= (4 if form == "bf16" else 0)


LLAMA_CPP_FAMILIES = ["1bitllm-large", "1bitllm-3b", "falcon3", "llama3-8b"]
# GGUF -> HF names as test_families.model_card_logits knows them (1bitLLM's sub-norm names)
HF_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_sub_norm": "self_attn.inner_attn_ln",
    "ffn_sub_norm": "mlp.ffn_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def file_weights(path: str, config: dict) -> dict:
    """HF name -> float32 weights as gguf-py reads and dequantizes the file (q/k of `llama` back in HF order)."""
    import gguf

    reader = gguf.GGUFReader(path)
    llama = bytes(reader.fields["general.architecture"].parts[-1]).decode() == "llama"
    out = {}
    for t in reader.tensors:
        values = quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(tuple(reversed(t.shape.tolist())))
        kind = t.name.split(".")[2] if t.name.startswith("blk.") else t.name
        name = f"model.layers.{t.name.split('.')[1]}.{HF_NAMES[kind]}.weight" if kind != t.name else HF_NAMES[kind]
        if llama and kind in ("attn_q", "attn_k"):
            heads = config["num_attention_heads"] if kind == "attn_q" else config["num_key_value_heads"]
            half = values.shape[0] // heads // 2  # undo the pairs: each head's rows (i, half + i) -> halves
            values = values.reshape(heads, half, 2, -1).swapaxes(1, 2).reshape(values.shape)
        out[name] = values
    return out


@pytest.fixture(scope="module")
def llama_cpp_checkpoints(checkpoints, tmp_path_factory):  # noqa: F811
    """tests/test_families.py's checkpoints; 1bitLLM's with tied embeddings: llama.cpp's `bitnet` architecture
    has no output tensor, so its converter refuses an lm_head."""
    root = tmp_path_factory.mktemp("llama-cpp-checkpoints")
    out = {}
    for name in LLAMA_CPP_FAMILIES:
        family, form, shape = FAMILIES[name]
        out[name] = (
            checkpoints[name]
            if family != "1bitllm"
            else synth.write_checkpoint(
                str(root / name), dict(shape, tie_word_embeddings=True), form, seed=5, family=family
            )
        )
    return out


def test_llama_cpp_converter_refuses_an_untied_bitnet(checkpoints, tmp_path):  # noqa: F811
    with pytest.raises(ValueError, match="lm_head"):
        peer_files.llama_cpp_gguf(checkpoints["1bitllm-large"], str(tmp_path / "x.gguf"), "tq2_0")


@pytest.mark.parametrize("type_name", ["tq1_0", "tq2_0"])
@pytest.mark.parametrize("name", LLAMA_CPP_FAMILIES)
def test_llama_cpp_file_runs_as_its_weights_say(llama_cpp_checkpoints, tmp_path, monkeypatch, name, type_name):
    """llama.cpp's file holds each scale only as the blocks' fp16 d (0 in all-zero blocks) and its 3B rows in
    F16: our logits equal the model-card forward over the weights gguf-py reads from the file (as closely as
    for our own files, tests/test_families.py). Against the checkpoint's own reference the fp16 scales
    alone move these random tiny models' logits by 1-10% of their range (printed)."""
    from tests import test_families

    checkpoint = llama_cpp_checkpoints[name]
    path = peer_files.llama_cpp_gguf(checkpoint, str(tmp_path / "llama-cpp.gguf"), type_name)
    with GGUFFile(path) as f:
        assert not [key for key in f.metadata if key.startswith("tritlm.")]
        types = {t.type for t in f.tensors if t.name.endswith(("attn_q.weight", "ffn_down.weight"))}
    assert types == ({QT.F16} if name == "1bitllm-3b" else {QT[type_name.upper()]})  # 3B: rows not whole blocks
    reference = (
        test_families.transformers_logits if FAMILIES[name][0] == "llama" else test_families.model_card_logits
    )(checkpoint, PROMPT)
    config, _ = test_families.checkpoint_weights(checkpoint)
    monkeypatch.setattr(test_families, "checkpoint_weights", lambda path_: (config, file_weights(path, config)))
    want = test_families.model_card_logits(checkpoint, PROMPT)
    with Model(path, threads=2) as model:
        got = model.logits(PROMPT)
    print(
        f"vs the checkpoint's reference: max |diff| {np.abs(got - reference).max():.3g} "
        f"(logit range {float(reference.max() - reference.min()):.3g})"
    )
    assert_close(got, want)


@pytest.mark.parametrize("type_name", ["tq1_0", "tq2_0"])
def test_llama_cpp_2b_4t_file_reads_the_exact_weights(tiny_checkpoints, tmp_path, monkeypatch, type_name):
    """2B-4T's packed form through llama.cpp's BitnetModel: every block's d is the checkpoint's bf16
    weight_scale exactly, and the file runs as llama.cpp's `bitnet` graph says: with SiLU (the file cannot
    say relu2, so 2B-4T runs with the wrong activation, in llama.cpp as here)."""
    from tests import test_families
    from tritlm.runtime.weights import weight_scale

    path = peer_files.llama_cpp_gguf(tiny_checkpoints["packed"], str(tmp_path / "llama-cpp.gguf"), type_name)
    config, tensors = peer_files.read_checkpoint(tiny_checkpoints["packed"])
    with GGUFFile(path) as f:
        assert f.metadata["general.architecture"] == "bitnet"
        scales = {t.name: weight_scale(f, t) for t in f.tensors if t.type == QT[type_name.upper()]}
    want = {
        peer_files.gguf_name(n[: -len("_scale")]): float(t.float()) for n, t in tensors.items() if n.endswith("_scale")
    }
    assert scales == want and len(want) == 14
    silu = dict(config, hidden_act="silu")
    monkeypatch.setattr(test_families, "checkpoint_weights", lambda path_: (silu, file_weights(path, silu)))
    with Model(path, threads=2) as model:
        assert_close(model.logits(PROMPT), test_families.model_card_logits(tiny_checkpoints["packed"], PROMPT))
