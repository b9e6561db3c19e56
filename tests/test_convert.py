"""tritlm convert: tiny checkpoints in both published forms -> every GGUF type, checked against gguf-py
(GGUFReader, gguf.quants), transformers' BitNet reference and hand-computed layouts."""

import json
import os
import re
import shutil
import subprocess
import sys

import gguf
import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q

from tests.checkpoints import LINEARS, load_reference
from tritlm.converter import hf_ternary, pack
from tritlm.converter.safetensors_io import SafetensorsFile
from tritlm.converter.write import convert
from tritlm.runtime.cli import main

TYPES = ["i2_s", "tq1_0", "tq2_0", "f16", "f32"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class TensorTable(gguf.GGUFReader):
    """gguf-py's header parser, keeping each tensor's (type id, numpy shape, absolute offset) without
    interpreting the type, so it also reads i2_s (type 36, unknown to gguf-py)."""

    def _build_tensors(self, start_offs, fields):
        self.table = {}
        for field in fields:
            _, name, _, dims, dtype, offset = field.parts
            self.table[bytes(name).decode()] = (
                int(dtype[0]),
                tuple(reversed(dims.tolist())),
                start_offs + int(offset[0]),
            )


@pytest.fixture(scope="module")
def gguf_files(tiny_checkpoints, tmp_path_factory):
    """{(form, type): path} for every form and type."""
    out = tmp_path_factory.mktemp("gguf")
    files = {}
    for form, path in tiny_checkpoints.items():
        for type_name in TYPES:
            files[form, type_name] = str(out / f"{form}-{type_name}.gguf")
            convert(path, files[form, type_name], type_name, progress=False)
    return files


@pytest.fixture(scope="module")
def references(tiny_checkpoints):
    return {form: load_reference(path) for form, path in tiny_checkpoints.items()}


def effective_weights(model) -> dict[str, tuple[np.ndarray, float | None]]:
    """GGUF name -> (ternary values, scale) as transformers' layers hold them: offline layers have the
    unpacked ternary weight and a weight_scale that multiplies; online layers ternarize their masters."""
    from transformers.integrations.bitnet import WeightQuant

    out = {}
    for i, layer in enumerate(model.model.layers):
        for gguf_name, hf_name in LINEARS.items():
            module = layer.get_submodule(hf_name)
            if hasattr(module, "weight_scale"):
                out[f"blk.{i}.{gguf_name}.weight"] = (module.weight.detach().numpy(), float(module.weight_scale))
            else:
                out[f"blk.{i}.{gguf_name}.weight"] = (WeightQuant.apply(module.weight).detach().numpy(), None)
    return out


def read_tensor(path: str, name: str) -> tuple[int, tuple, np.ndarray]:
    """(type id, shape, raw bytes) of one tensor, sized by docs/format.md."""
    table = TensorTable(path)
    type_id, shape, offset = table.table[name]
    size = {36: pack.nbytes("i2_s", *shape)}.get(type_id) or gguf.quants.quant_shape_to_byte_shape(shape, Q(type_id))[
        -1
    ] * int(np.prod(shape[:-1]))
    return type_id, shape, np.asarray(table.data[offset : offset + size])


def dequantize_i2_s(raw: np.ndarray, shape) -> tuple[np.ndarray, float]:
    """Straight from the docs/format.md description, one value at a time over the blocks."""
    n = int(np.prod(shape))
    codes = np.empty(n, dtype=np.int8)
    for block in range(n // 128):
        for p in range(32):
            byte = int(raw[block * 32 + p])
            for g in range(4):
                codes[block * 128 + g * 32 + p] = (byte >> (6 - 2 * g)) & 3
    scale = raw[n // 4 : n // 4 + 4].view("<f4")[0]
    return (codes - 1).reshape(shape), float(scale)


@pytest.mark.parametrize("form", ["packed", "bf16"])
@pytest.mark.parametrize("type_name", TYPES)
def test_ternary_tensors_equal_the_reference(gguf_files, references, form, type_name):
    """Every ternary tensor dequantizes to exactly ternary * scale, where ternary and scale are what
    transformers computes with (so the scale direction is the reference's: it multiplies)."""
    path = gguf_files[form, type_name]
    meta = {k: f.contents() for k, f in TensorTable(path).fields.items() if k.startswith("tritlm.weight_scale.")}
    for name, (reference, ref_scale) in effective_weights(references[form]).items():
        scale = meta[f"tritlm.weight_scale.{name}"]
        if ref_scale is not None:  # packed: the bf16 weight_scale, exactly
            assert np.float32(scale) == np.float32(ref_scale)
            expected = reference * np.float32(scale)
        else:  # masters: the reference's T / (1/mean), means summed by torch, agrees with our T * mean to 2 ulp
            expected = reference
        type_id, shape, raw = read_tensor(path, name)
        assert type_id == pack.TYPES[type_name].id and shape == reference.shape
        if type_name == "i2_s":
            ternary, stored_scale = dequantize_i2_s(raw, shape)
            assert stored_scale == np.float32(scale)
            values = ternary * np.float32(stored_scale)
        elif type_name in ("tq1_0", "tq2_0"):
            values = gguf.quants.dequantize(raw.reshape(shape[0], -1), Q(type_id))
            # the block's fp16 d is the scale rounded; the exact one is in the metadata
            values = values / np.float32(np.float16(scale)) * np.float32(scale)
        else:
            values = raw.view(np.float16 if type_name == "f16" else np.float32).reshape(shape).astype(np.float32)
            expected = expected.astype(np.float16 if type_name == "f16" else np.float32).astype(np.float32)
        np.testing.assert_allclose(values, expected, rtol=3e-7 if ref_scale is None else 0, atol=0)
        assert set(np.unique(np.rint(values / np.float32(scale)))) <= {-1.0, 0.0, 1.0}


@pytest.mark.parametrize("type_name", ["tq1_0", "tq2_0", "f16", "f32"])
def test_gguf_py_reads_every_file(gguf_files, tiny_checkpoints, type_name):
    path = gguf_files["packed", type_name]
    reader = gguf.GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}
    assert len(tensors) == 1 + 1 + 2 * 11
    embd = tensors["token_embd.weight"]
    assert embd.tensor_type == Q.BF16 and tuple(embd.shape) == (256, 1024)
    st = SafetensorsFile(os.path.join(tiny_checkpoints["packed"], "model.safetensors"))
    np.testing.assert_array_equal(
        np.asarray(embd.data).view(np.uint16).reshape(1024, 256), st.raw("model.embed_tokens.weight")
    )
    norm = tensors["blk.1.ffn_sub_norm.weight"]
    assert norm.tensor_type == Q.F32
    np.testing.assert_array_equal(norm.data, st.float32("model.layers.1.mlp.ffn_sub_norm.weight"))
    q = tensors["blk.0.attn_q.weight"]
    if type_name.startswith("tq"):  # gguf-py's own dequantizer on its own reading of our bytes
        scale = reader.fields["tritlm.weight_scale.blk.0.attn_q.weight"].contents()
        ternary = hf_ternary.unpack(st.raw("model.layers.0.self_attn.q_proj.weight"))
        np.testing.assert_array_equal(
            gguf.quants.dequantize(q.data, q.tensor_type), ternary * np.float32(np.float16(scale))
        )


def test_metadata_and_tokenizer(gguf_files, tiny_checkpoints):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(tiny_checkpoints["packed"], "tokenizer.json"))
    with open(os.path.join(tiny_checkpoints["packed"], "config.json")) as f:
        config = json.load(f)
    fields = {k: f.contents() for k, f in gguf.GGUFReader(gguf_files["packed", "tq2_0"]).fields.items()}
    assert fields["general.architecture"] == "bitnet"
    assert TensorTable(gguf_files["packed", "i2_s"]).fields["general.architecture"].contents() == "bitnet-b1.58"
    assert [
        fields[f"bitnet.{k}"]
        for k in (
            "block_count",
            "embedding_length",
            "feed_forward_length",
            "attention.head_count",
            "attention.head_count_kv",
            "rope.dimension_count",
            "vocab_size",
        )
    ] == [2, 256, 768, 4, 2, 64, 1024]
    assert fields["bitnet.rope.freq_base"] == 500000.0 and fields["tritlm.ffn_act"] == "relu2"
    assert np.float32(fields["bitnet.attention.layer_norm_rms_epsilon"]) == np.float32(1e-5)
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "llama-bpe"
    assert fields["tokenizer.ggml.tokens"] == [tok.id_to_token(i) for i in range(1024)]
    assert fields["tokenizer.ggml.bos_token_id"] == config["bos_token_id"] == tok.token_to_id("<|begin_of_text|>")
    assert fields["tokenizer.ggml.eot_token_id"] == tok.token_to_id("<|eot_id|>")
    assert fields["tokenizer.ggml.token_type"][tok.token_to_id("<|eot_id|>")] == gguf.TokenType.CONTROL
    assert fields["tokenizer.ggml.token_type"][300] == gguf.TokenType.NORMAL
    merges = json.load(open(os.path.join(tiny_checkpoints["packed"], "tokenizer.json")))["model"]["merges"]
    assert fields["tokenizer.ggml.merges"] == [" ".join(m) if isinstance(m, list) else m for m in merges]
    assert "<|start_header_id|>" in fields["tokenizer.chat_template"]


def test_both_forms_give_identical_ternary_values(gguf_files):
    packed = TensorTable(gguf_files["packed", "i2_s"])
    for name in packed.table:
        if name.endswith(tuple(f"{n}.weight" for n in LINEARS)):
            a = read_tensor(gguf_files["packed", "i2_s"], name)[2]
            b = read_tensor(gguf_files["bf16", "i2_s"], name)[2]
            np.testing.assert_array_equal(a[:-32], b[:-32])  # same codes; scales differ by bf16 rounding


def test_i2_s_layout_on_a_known_matrix():
    ternary = np.zeros((2, 128), dtype=np.int8)
    ternary[0, 0], ternary[0, 32], ternary[0, 127], ternary[1, 64] = 1, -1, 1, -1
    raw = pack.pack(ternary, 0.75, "i2_s")
    expected = np.full(2 * 32, 0x55, dtype=np.uint8)  # code 1 (zero) in all four 2-bit fields
    expected[0] = 0b10_00_01_01  # row 0: value 0 = +1 (bits 7-6), value 32 = -1 (bits 5-4)
    expected[31] = 0b01_01_01_10  # row 0: value 127 = 96 + 31 -> bits 1-0 of byte 31
    expected[32] = 0b01_01_00_01  # row 1: value 64 = -1 -> bits 3-2 of byte 0 of the second block
    assert raw.shape == (64 + 32,)
    np.testing.assert_array_equal(raw[:64], expected)
    assert raw[64:68].view("<f4")[0] == np.float32(0.75) and not raw[68:].any()


def test_tq_packing_matches_gguf_quants():
    ternary = np.random.default_rng(1).integers(-1, 2, (4, 512)).astype(np.int8)
    for type_name, q in (("tq1_0", Q.TQ1_0), ("tq2_0", Q.TQ2_0)):
        # gguf-py quantizes each block with d = max|x| = the scale, so its bytes must equal ours
        np.testing.assert_array_equal(
            pack.pack(ternary, 0.5, type_name), gguf.quants.quantize(ternary * np.float32(0.5), q)
        )


# ---- errors: a one-line message, exit 1, and no output file ----


def run_cli(args, capsys):
    code = main(args)
    return code, capsys.readouterr().err.strip()


def assert_fails(capsys, tmp_path, src, message, type_name="i2_s"):
    out = tmp_path / "out.gguf"
    code, err = run_cli(["convert", str(src), "-o", str(out), "--type", type_name], capsys)
    last = err.splitlines()[-1]  # earlier lines: the progress bar
    assert code == 1 and last.startswith("tritlm convert: error: ") and message in last, err
    assert os.listdir(tmp_path) == [p for p in os.listdir(tmp_path) if not p.startswith("out.gguf")]


def copy_checkpoint(src, dst):
    shutil.copytree(src, dst)
    return dst


def rewrite_tensor(ckpt_dir, name, array):
    """Replaces one tensor in model.safetensors (with the safetensors package, an independent writer)."""
    from safetensors.torch import load_file, save_file

    path = os.path.join(ckpt_dir, "model.safetensors")
    tensors = load_file(path)
    tensors[name] = array if isinstance(array, torch.Tensor) else torch.from_numpy(array)
    save_file(tensors, path, metadata={"format": "pt"})


def test_error_missing_src_and_not_a_checkpoint(capsys, tmp_path):
    assert_fails(capsys, tmp_path, tmp_path / "nowhere", "no such checkpoint folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_fails(capsys, tmp_path, empty, "not a Hugging Face checkpoint: it has no config.json")


def test_error_unknown_architecture(capsys, tmp_path, tiny_checkpoints):
    ckpt = copy_checkpoint(tiny_checkpoints["packed"], tmp_path / "ckpt")
    config = json.load(open(ckpt / "config.json"))
    config["architectures"] = ["MambaForCausalLM"]
    json.dump(config, open(ckpt / "config.json", "w"))
    assert_fails(capsys, tmp_path, ckpt, "unsupported architecture MambaForCausalLM; supported: BitNetForCausalLM")


def test_error_missing_tokenizer(capsys, tmp_path, tiny_checkpoints):
    ckpt = copy_checkpoint(tiny_checkpoints["packed"], tmp_path / "ckpt")
    os.remove(ckpt / "tokenizer.json")
    assert_fails(capsys, tmp_path, ckpt, "no tokenizer.json")


def test_error_wrong_shape_and_dtype(capsys, tmp_path, tiny_checkpoints):
    ckpt = copy_checkpoint(tiny_checkpoints["packed"], tmp_path / "ckpt")
    rewrite_tensor(ckpt, "model.layers.1.mlp.up_proj.weight", np.zeros((100, 256), dtype=np.uint8))
    assert_fails(capsys, tmp_path, ckpt, "model.layers.1.mlp.up_proj.weight: shape [100, 256], expected [192, 256]")
    rewrite_tensor(ckpt, "model.layers.1.mlp.up_proj.weight", np.zeros((192, 256), dtype=np.int32))
    assert_fails(capsys, tmp_path, ckpt, "model.layers.1.mlp.up_proj.weight: dtype I32, expected BF16 or F16 or F32")


def rewrite_header(ckpt_dir, change):
    """model.safetensors with its JSON header replaced by change(header) (the data is kept as it is)."""
    path = os.path.join(ckpt_dir, "model.safetensors")
    data = open(path, "rb").read()
    n = int.from_bytes(data[:8], "little")
    header = json.dumps(change(json.loads(data[8 : 8 + n]))).encode()
    open(path, "wb").write(len(header).to_bytes(8, "little") + header + data[8 + n :])


NORM = "model.layers.0.input_layernorm.weight"


def reverse_offsets(header):
    header[NORM]["data_offsets"].reverse()
    return header


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda h: list(h), re.escape("not a safetensors file (its header is a JSON list, not an object)")),
        (lambda h: {**h, NORM: 5}, re.escape(f"tensor {NORM}: its header entry is 5, not an object")),
        (
            lambda h: {**h, NORM: {**h[NORM], "data_offsets": "0,512"}},
            re.escape(f"tensor {NORM}: data_offsets '0,512' is not a [begin, end] pair"),
        ),
        (reverse_offsets, rf"tensor {NORM}: data_offsets \[\d+, \d+\] hold -512 bytes, but BF16 \[256\] takes 512"),
        (
            lambda h: {**h, NORM: {**h[NORM], "shape": "256"}},
            re.escape(f"tensor {NORM}: shape '256' is not a list of sizes"),
        ),
    ],
)
def test_error_hostile_safetensors_header(capsys, tmp_path, tiny_checkpoints, change, message):
    """Each is one line naming the file and the tensor."""
    ckpt = copy_checkpoint(tiny_checkpoints["packed"], tmp_path / "ckpt")
    rewrite_header(ckpt, change)
    code, err = run_cli(["convert", str(ckpt), "-o", str(tmp_path / "out.gguf")], capsys)
    assert code == 1 and re.fullmatch(
        rf"tritlm convert: error: {re.escape(str(ckpt))}/model.safetensors: .*{message}.*", err
    ), err
    assert not (tmp_path / "out.gguf").exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"num_attention_heads": 0}, "config.json: num_attention_heads is 0, not a positive integer"),
        ({"rms_norm_eps": "nan"}, "config.json: rms_norm_eps is 'nan', not a finite number >= 0"),
        ({"rms_norm_eps": float("nan")}, "config.json: rms_norm_eps is nan, not a finite number >= 0"),
        ({"max_position_embeddings": -1}, "config.json: max_position_embeddings is -1, not a positive integer"),
        ({"hidden_size": 256.0}, "config.json: hidden_size is 256.0, not a positive integer"),
        ({"num_key_value_heads": 3}, "config.json: 4 attention heads do not share 3 key/value heads evenly"),
        ({"head_dim": 63}, "config.json: head_dim 63 is odd (RoPE rotates pairs)"),
        ({"architectures": "BitNetForCausalLM"}, "config.json: architectures is 'BitNetForCausalLM', not a list"),
        ({"quantization_config": "bitnet"}, "config.json: quantization_config is 'bitnet', not an object"),
        ({"rope_parameters": [1], "rope_theta": None}, "config.json: rope_parameters is [1], not an object"),
    ],
)
def test_error_hostile_config(capsys, tmp_path, tiny_checkpoints, change, message):
    ckpt = copy_checkpoint(tiny_checkpoints["packed"], tmp_path / "ckpt")
    config = json.load(open(ckpt / "config.json"))
    json.dump({**config, **change}, open(ckpt / "config.json", "w"))
    assert_fails(capsys, tmp_path, ckpt, message)


def test_error_config_not_an_object(capsys, tmp_path, tiny_checkpoints):
    ckpt = copy_checkpoint(tiny_checkpoints["packed"], tmp_path / "ckpt")
    json.dump([{"architectures": ["BitNetForCausalLM"]}], open(ckpt / "config.json", "w"))
    assert_fails(capsys, tmp_path, ckpt, "config.json: a JSON list, not an object")


@pytest.mark.parametrize("name, dtype, row", [(NORM, np.float32, 0), ("model.embed_tokens.weight", np.uint16, 1000)])
def test_error_non_finite_float_weight(capsys, tmp_path, tiny_checkpoints, name, dtype, row):
    """The runtime refuses NaN/Inf in float weights (they would reach its int8 quantizer): the converter does
    not write them (the embedding is checked in its stored bf16, by exponent bits)."""
    ckpt = copy_checkpoint(tiny_checkpoints["packed"], tmp_path / "ckpt")
    st = SafetensorsFile(os.path.join(ckpt, "model.safetensors"))
    values = np.array(st.float32(name) if dtype == np.float32 else st.raw(name))
    del st
    values.reshape(-1, values.shape[-1])[row, 5] = np.float32(np.inf) if dtype == np.float32 else 0x7FC0  # bf16 NaN
    rewrite_tensor(ckpt, name, values if dtype == np.float32 else torch.from_numpy(values).view(torch.bfloat16))
    assert_fails(capsys, tmp_path, ckpt, f"{name}: row {row} holds a NaN or Inf")


def test_error_not_ternary(capsys, tmp_path, tiny_checkpoints):
    ckpt = copy_checkpoint(tiny_checkpoints["packed"], tmp_path / "ckpt")
    st = SafetensorsFile(os.path.join(ckpt, "model.safetensors"))
    weight = np.array(st.raw("model.layers.0.self_attn.k_proj.weight"))
    weight[5, 7] = 0xFF  # code 3 in every field
    del st
    rewrite_tensor(ckpt, "model.layers.0.self_attn.k_proj.weight", weight)
    assert_fails(
        capsys, tmp_path, ckpt, "model.layers.0.self_attn.k_proj.weight: packed ternary weight holds the invalid code 3"
    )


def test_unwritable_output_is_one_line(capsys, tmp_path, tiny_checkpoints):
    out = tmp_path / "no-such-folder" / "out.gguf"
    code, err = run_cli(["convert", tiny_checkpoints["packed"], "-o", str(out)], capsys)
    assert code == 1 and err.splitlines()[-1] == f"tritlm convert: error: {out}: No such file or directory", err


def test_a_bug_keeps_its_traceback(tmp_path, tiny_checkpoints, monkeypatch):
    """Only ConverterError is bad input: any other exception while converting is a bug, so the CLI lets it
    through (a traceback) instead of printing it as a one-line error, and still leaves no file."""

    def broken(*args):
        raise ValueError("an internal bug")

    monkeypatch.setattr(pack, "pack", broken)
    with pytest.raises(ValueError, match="an internal bug"):
        main(["convert", tiny_checkpoints["packed"], "-o", str(tmp_path / "out.gguf"), "--type", "tq2_0"])
    assert os.listdir(tmp_path) == []


def test_interrupt_leaves_no_file(tmp_path, tiny_checkpoints, monkeypatch):
    calls = []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_pack(*args)

    real_pack = pack.pack
    monkeypatch.setattr(pack, "pack", interrupted)
    with pytest.raises(KeyboardInterrupt):
        convert(tiny_checkpoints["packed"], str(tmp_path / "out.gguf"), "tq2_0", progress=False)
    assert os.listdir(tmp_path) == []


# ---- the Hub path, offline over a cache this test lays out ----


def hub_cache(root, repo_id, files_from):
    """The huggingface_hub cache layout: refs/main -> commit, snapshots/<commit>/<files> -> blobs."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir()
    snapshot.mkdir(parents=True)
    for i, name in enumerate(sorted(os.listdir(files_from))):
        blob = repo / "blobs" / f"blob{i}"
        shutil.copy(os.path.join(files_from, name), blob)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / name)


def test_convert_hub_repo_id_offline(tmp_path, tiny_checkpoints):
    cache = tmp_path / "hub"
    hub_cache(cache, "tiny-org/tiny-bitnet", tiny_checkpoints["packed"])
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ROOT}
    out = tmp_path / "hub.gguf"
    cmd = [sys.executable, "-m", "tritlm", "convert"]
    done = subprocess.run(
        cmd + ["tiny-org/tiny-bitnet", "-o", str(out), "--type", "tq2_0"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    fields = gguf.GGUFReader(str(out)).fields
    assert fields["general.architecture"].contents() == "bitnet"
    assert fields["general.name"].contents() == "tiny-bitnet"  # the repo's name, not the snapshot's hash
    missing = subprocess.run(
        cmd + ["tiny-org/absent", "-o", str(tmp_path / "x.gguf")], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "tritlm convert: error: tiny-org/absent: not in the Hugging Face cache and the "
        "Hub is unreachable (offline or HF_HUB_OFFLINE=1)"
    )
    assert not (tmp_path / "x.gguf").exists()


def test_list(capsys):
    assert main(["convert", "--list"]) == 0
    out = capsys.readouterr().out
    assert "BitNetForCausalLM" in out and "microsoft/bitnet-b1.58-2B-4T-bf16" in out


@pytest.mark.slow
@pytest.mark.parametrize("form", ["packed", "bf16"])
def test_2b_converts_in_bounded_memory(tmp_path, form):
    """The 2.4B model streams: converting it (the bf16 masters are the heavier form) stays under 4 GB."""
    ckpt, out = str(tmp_path / "ckpt"), str(tmp_path / "2b.gguf")
    subprocess.run(
        [sys.executable, "-m", "tritlm", "synth", "--preset", "2b-4t", "-o", ckpt, "--form", form],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    code = (
        "import sys; from tritlm.converter.write import convert; convert(sys.argv[1], sys.argv[2], 'i2_s', False);"
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    )  # own peak, kB: ru_maxrss keeps pytest's across fork+exec
    done = subprocess.run([sys.executable, "-c", code, ckpt, out], check=True, cwd=ROOT, capture_output=True, text=True)
    peak_mb = int(done.stdout.split()[-1]) / 1024
    print(f"2b-4t {form} -> i2_s peak RSS {peak_mb:.0f} MB, {os.path.getsize(out) / 2**30:.2f} GiB")
    assert peak_mb < 4096
    table = TensorTable(out).table
    assert len(table) == 2 + 30 * 11 and table["blk.29.ffn_down.weight"][:2] == (36, (2560, 6912))
