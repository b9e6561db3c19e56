"""BitNet a4.8 and Q-Sparse files: the converter writes the checkpoint's mode into the GGUF, the runtime runs it
without flags, and the engine's logits match the numpy reference of the papers' math (tests/modes_reference.py),
which in turn matches the torch forward the variants were trained with (models/train_variant.py)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests import modes_reference as ref
from tests.test_convert import TensorTable
from tritlm.converter.write import convert
from tritlm.runtime import Model
from tritlm.runtime.errors import ModelError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "models")
VARIANTS = {"b1.58": "bitnet-tiny", "a4.8": "bitnet-tiny-a4.8", "qsparse": "bitnet-tiny-qsparse"}
TEXT = '''def insort(a, x, lo=0, hi=None):
    """Insert item x in list a, and keep it sorted assuming a is sorted."""
    if lo < 0:
        raise ValueError('lo must be non-negative')
    while lo < hi:
        mid = (lo + hi) // 2
'''


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """{variant: i2_s GGUF} of the three shipped checkpoints."""
    out = tmp_path_factory.mktemp("modes")
    paths = {}
    for name, folder in VARIANTS.items():
        paths[name] = str(out / f"{name}.gguf")
        convert(os.path.join(MODELS, folder), paths[name], "i2_s", progress=False)
    return paths


@pytest.fixture(scope="module")
def ids(files):
    with Model(files["b1.58"], threads=1) as m:
        return m.tokenize(TEXT)


@pytest.fixture(scope="module")
def references(ids):
    """The numpy reference's logits of TEXT for each shipped checkpoint in its own mode."""
    return {name: ref.forward(ref.Checkpoint(os.path.join(MODELS, folder)), ids) for name, folder in VARIANTS.items()}


def nll(logits: np.ndarray, ids: list[int]) -> float:
    x = logits[:-1].astype(np.float64)
    x = x - x.max(-1, keepdims=True)
    return float(-(x[np.arange(len(ids) - 1), ids[1:]] - np.log(np.exp(x).sum(-1))).mean())


def test_converter_writes_the_mode(files):
    fields = {name: TensorTable(path).fields for name, path in files.items()}  # gguf-py's reader, i2_s-aware
    assert not [k for k in fields["b1.58"] if k.startswith(("tritlm.activation", "tritlm.kv_cache"))]

    def value(name, key):
        field = fields[name][key]
        return field.parts[field.data[0]][0].item()

    assert [value("a4.8", f"tritlm.activation_bits.{g}") for g in ref.GROUPS] == [4, 8, 4, 8]
    assert [value("a4.8", f"tritlm.activation_topk.{g}") for g in ref.GROUPS] == [1.0, 0.5, 1.0, 1.0]
    assert (value("a4.8", "tritlm.kv_cache_bits"), value("a4.8", "tritlm.kv_cache_bits_first")) == (3, 4)
    assert [value("qsparse", f"tritlm.activation_topk.{g}") for g in ref.GROUPS] == [0.5] * 4
    assert "tritlm.kv_cache_bits" not in fields["qsparse"]


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"activation_bits": {"attn_qkv": 2}}, "activation_bits.attn_qkv = 2"),
        ({"activation_topk": {"ffn_down": 1.5}}, "activation_topk.ffn_down = 1.5"),
        ({"activation_bits": {"lm_head": 4}}, "unknown linear input group 'lm_head'"),
        ({"kv_cache_bits": 2}, "kv_cache_bits 2"),
    ],
)
def test_convert_refuses_a_bad_mode_in_one_line(bad, message, tmp_path):
    src = tmp_path / "ckpt"
    shutil.copytree(os.path.join(MODELS, "bitnet-tiny"), src)
    config = json.loads((src / "config.json").read_text())
    config["quantization_config"].update(bad)
    (src / "config.json").write_text(json.dumps(config))
    out = tmp_path / "out.gguf"
    run = subprocess.run(
        [sys.executable, "-m", "tritlm", "convert", str(src), "-o", str(out)], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 1 and message in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert not out.exists() and not os.path.exists(str(out) + ".tmp")


def test_runtime_reads_the_mode(files):
    modes = {}
    for name, path in files.items():
        with Model(path, threads=1) as m:
            modes[name] = m.mode
    assert modes["b1.58"].lossless
    assert modes["a4.8"].bits == (4, 8, 4, 8) and modes["a4.8"].topk == (1, 0.5, 1, 1)
    assert (modes["a4.8"].kv_bits, modes["a4.8"].kv_bits_first) == (3, 4)
    assert modes["qsparse"].topk == (0.5,) * 4 and modes["qsparse"].kv_bits == 0


@pytest.mark.parametrize("name", VARIANTS)
def test_engine_matches_the_numpy_reference(name, files, ids, references):
    """Integer codes are computed identically, but a float that differs in its last bit (attention, norms) now and
    then lands on the other side of a rounding boundary, and the flipped code changes every later position; 3-bit KV
    rows make that likelier. So: the same loss to 0.5%, the same argmax at >= 90% of positions, and the engine's
    logits far closer to this mode's reference than to any other mode's (the mode is really applied)."""
    with Model(files[name], threads=2) as m:
        got = m.logits(ids)
    want = references[name]
    assert abs(nll(got, ids) - nll(want, ids)) < 0.005 * nll(want, ids)
    assert (got.argmax(-1) == want.argmax(-1)).mean() >= 0.9
    distance = {other: np.median(np.abs(got - r).max(-1)) for other, r in references.items()}
    assert all(distance[name] * 3 < d for other, d in distance.items() if other != name), distance
    assert np.abs(got[:4] - want[:4]).max() < 1e-3  # before any flip can have happened, the same floats


@pytest.mark.parametrize("name", ["a4.8", "qsparse"])
def test_decode_with_sparse_gemv_equals_prefill_bit_for_bit(name, files, ids):
    """One token at a time, top-K inputs go through the by-input-channel sparse GEMV and the quantized KV cache;
    a prefill runs the dense kernels on the same masked codes: identical logits."""
    with Model(files[name], threads=2) as m:
        whole = m.logits(ids)
        with m.new_sequence() as seq:
            steps = [m.prefill(seq, ids[:1])] + [m.decode([seq], [t])[0] for t in ids[1:]]
    np.testing.assert_array_equal(np.array(steps), whole)


def test_act_topk_runs_a_b158_file_as_qsparse_only_when_asked(files, ids, references):
    """--act-topk 0.5 on the b1.58 file is the Q-Sparse math without its training: it equals the reference's
    b1.58 weights in the Q-Sparse mode, and the file alone stays lossless."""
    mode = ref.mode_of({"quantization_config": {"activation_topk": dict.fromkeys(ref.GROUPS, 0.5)}})
    want = ref.forward(ref.Checkpoint(os.path.join(MODELS, "bitnet-tiny")), ids, mode)
    with Model(files["b1.58"], threads=2, act_topk=0.5) as m:
        assert m.mode.topk == (0.5,) * 4 and not m.mode.lossless
        lossy = m.logits(ids)
    assert abs(nll(lossy, ids) - nll(want, ids)) < 0.005 * nll(want, ids)
    assert np.median(np.abs(lossy - want).max(-1)) * 3 < np.median(np.abs(lossy - references["b1.58"]).max(-1))
    run = subprocess.run(
        [sys.executable, "-m", "tritlm", "run", "-m", files["b1.58"], "-p", "x", "-n", "1", "--act-topk", "1.5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1 and "--act-topk 1.5" in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_f16_kv_cache_is_the_reference_with_keys_and_values_in_half(files, ids, references):
    """kv_type="f16" (--cache-type f16) on the b1.58 file: each key and value rounded to IEEE half as it is cached. It
    matches the numpy reference doing just that as closely as the f32 cache matches its own, and before a code flip,
    far closer than the f32 reference (the rounding is really applied); one token at a time equals the prefill bit for
    bit; the rows take half the memory."""
    mode = {**ref.mode_of({}), "kv_cache_bits": 16, "kv_cache_bits_first": 16}
    want = ref.forward(ref.Checkpoint(os.path.join(MODELS, "bitnet-tiny")), ids, mode)
    with Model(files["b1.58"], threads=2, kv_type="f16") as m:
        assert m.mode.kv_bits == 16 and m.mode.name == "b1.58, kv f16"
        got = m.logits(ids)
        with m.new_sequence() as seq:
            steps = [m.prefill(seq, ids[:1])] + [m.decode([seq], [t])[0] for t in ids[1:]]
        from tritlm.runtime.bench import kv_bytes_per_token

        hp = m.hparams
        assert kv_bytes_per_token(m) == 2 * hp.n_layer * hp.n_head_kv * hp.head_dim * 2
    np.testing.assert_array_equal(np.array(steps), got)
    assert abs(nll(got, ids) - nll(want, ids)) < 0.005 * nll(want, ids)
    assert (got.argmax(-1) == want.argmax(-1)).mean() >= 0.9
    assert np.abs(got[:4] - want[:4]).max() * 10 < np.abs(got[:4] - references["b1.58"][:4]).max()
    with Model(files["a4.8"], threads=1, kv_type="f16") as m:  # replaces a file's 3/4-bit cache too
        assert (m.mode.kv_bits, m.mode.kv_bits_first) == (16, 16) and m.mode.name.endswith("kv f16")
    with pytest.raises(ModelError, match="KV cache type 'q8_0': supported f32, f16"):
        Model(files["b1.58"], threads=1, kv_type="q8_0")
    run = subprocess.run(
        [sys.executable, "-m", "tritlm", "run", "-m", files["b1.58"], "-p", TEXT, "-n", "8", "--temp", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    run_f16 = subprocess.run(run.args + ["--cache-type", "f16"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == run_f16.returncode == 0 and run.stdout == run_f16.stdout  # greedy: the same 8 tokens here


def test_f16_kv_cache_reads_alike_on_every_isa(files, monkeypatch):
    """The f16 cache read back by each kernel set: the reference converts each block of rows into floats for the f32
    attention kernel; AVX2 and AVX-512 read the half rows in the kernel itself (attention_f16_<isa>.c). The same floats
    in the same order: identical logits over several attention blocks, prefill and one token at a time."""
    from tests.test_kernels import simd_isas

    with Model(files["b1.58"], threads=1) as m:
        ids = m.tokenize(TEXT * 4)[:300]  # past two 128-position blocks
    got = {}
    for isa in ["ref"] + simd_isas():
        monkeypatch.setenv("TRITLM_ISA", isa)
        with Model(files["b1.58"], threads=2, kv_type="f16") as m, m.new_sequence() as seq:
            m.prefill(seq, ids[:200])
            got[isa] = np.concatenate([m.logits(ids), m.decode([seq], [ids[200]])])
    for isa, logits in got.items():
        np.testing.assert_array_equal(logits, got["ref"], err_msg=isa)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["a4.8", "qsparse"])
def test_reference_is_the_trained_forward(name, ids, references):
    """The numpy reference and models/train_variant.py's torch forward (what was trained and evaluated) agree."""
    import torch

    sys.path.insert(0, MODELS)
    from train_variant import load_variant

    with torch.no_grad():
        trained = load_variant(os.path.join(MODELS, VARIANTS[name]))(input_ids=torch.tensor([ids])).logits[0].numpy()
    want = references[name]
    assert abs(nll(trained, ids) - nll(want, ids)) < 0.005 * nll(want, ids)
    assert (trained.argmax(-1) == want.argmax(-1)).mean() >= 0.9
