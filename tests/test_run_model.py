"""The Model API contract (runtime/model.py): attributes, sequences as values, batched decode equal to each
sequence alone, forward's logit rows, generation stops, and one-line ModelErrors instead of crashes."""

import numpy as np
import pytest

from tritlm.runtime import Model, ModelError
from tritlm.runtime.generate import StopText
from tritlm.runtime.gguf import read_gguf
from tritlm.runtime.model import physical_cores

PROMPT = "The weight of the model"


def test_attributes(tiny_gguf, model):
    with read_gguf(tiny_gguf) as f:
        md, nbytes = f.metadata, sum(t.nbytes for t in f.tensors)
    assert model.n_ctx == min(md[f"{model.arch}.context_length"], 4096) and model.n_vocab == 1024
    assert model.metadata.keys() == md.keys() and model.model_bytes == nbytes and model.name == md["general.name"]
    assert model.bos_id == md["tokenizer.ggml.bos_token_id"] and md["tokenizer.ggml.eos_token_id"] in model.eos_ids
    assert model.chat_template == md["tokenizer.chat_template"]
    assert model.n_threads == 1
    with Model(tiny_gguf, n_ctx=64) as default:
        assert default.n_threads == physical_cores() >= 1 and default.n_ctx == 64


def test_batched_decode_equals_each_sequence_alone(model):
    prompts = [model.tokenize(t) for t in ("one two", "the cache of the layer", "x = 3.14;")]
    alone, seqs = [], []
    for ids in prompts:
        seq = model.new_sequence(64)
        model.prefill(seq, ids)
        alone.append(model.decode([seq], [7])[0])
        seq.reset()
        model.prefill(seq, ids)
        seqs.append(seq)
    together = model.decode(seqs, [7, 7, 7])
    np.testing.assert_array_equal(together, np.stack(alone))
    assert [s.pos for s in seqs] == [len(ids) + 1 for ids in prompts]
    for seq in seqs:
        seq.close()


def test_forward_logit_rows(model):
    ids = model.tokenize("the model is a ternary matrix")
    full = model.logits(ids)
    with model.new_sequence(64) as seq:
        out = model.forward([seq] * len(ids), ids, logit_rows=[-1] * (len(ids) - 2) + [1, 0])
    assert out.shape == (2, model.n_vocab)
    np.testing.assert_array_equal(out, full[[-1, -2]])
    with model.new_sequence(64) as seq:
        np.testing.assert_array_equal(model.prefill(seq, ids), full[-1])


def test_generation_stops(model):
    text = "".join(model.generate(PROMPT, 24, temperature=0))
    stop = text[6:9]
    assert "".join(model.generate(PROMPT, 24, temperature=0, stop=[stop, "never"])) == text[: text.index(stop)]
    small = Model(model.path, threads=1, n_ctx=12)
    try:
        ids = small.tokenize(PROMPT)
        generation = small.generate(ids, 100, temperature=0)
        list(generation)
        assert len(generation.tokens) == small.n_ctx - len(ids) + 1  # the context filled up
    finally:
        small.close()


def test_stop_text_across_pieces():
    stop = StopText(["<|end|>", "zz"])
    assert [stop.push(p) for p in ["ab", "c<", "|e", "nd|>x"]] == [("ab", False), ("c", False), ("", False), ("", True)]
    stop = StopText("zz")
    assert [stop.push(p) for p in ["az", "b"]] + [stop.flush()] == [("a", False), ("zb", False), ""]


def test_errors_are_one_line(model, tiny_gguf):
    seq = model.new_sequence(8)
    cases = [
        (lambda: model.prefill(seq, [model.n_vocab]), "out of range"),
        (lambda: model.prefill(seq, list(range(9))), "context full"),
        (lambda: model.decode([seq, seq], [1, 2]), "appears twice"),
        (lambda: model.forward([seq], [1, 2]), "lengths differ"),
        (lambda: model.generate("x " * 600, 4), "more than the context"),
    ]
    for call, message in cases:
        with pytest.raises(ModelError, match=message) as error:
            call()
        assert "\n" not in str(error.value)
    assert seq.pos == 0  # failed calls leave the sequence as it was
    model.prefill(seq, list(range(8)))
    with pytest.raises(ModelError, match="context full"):
        model.decode([seq], [1])
    seq.close()
    with pytest.raises(ModelError, match="closed"):
        model.decode([seq], [1])
    other = Model(tiny_gguf, threads=1)
    foreign = other.new_sequence(8)
    with pytest.raises(ModelError, match="another model"):
        model.decode([foreign], [1])
    other.close()
    with pytest.raises(ModelError, match="closed"):
        other.logits([1])


def test_reset_empties_every_sequence(tiny_gguf):
    with Model(tiny_gguf, threads=1) as m:
        seqs = [m.new_sequence(16) for _ in range(2)]
        for seq in seqs:
            m.prefill(seq, [1, 2, 3])
        m.reset()
        assert [s.pos for s in seqs] == [0, 0]
