"""The token loop (runtime/generate.py) at both of its ends, and driven by each of its three users (Generation
for Model.generate and `tritlm run`, the terminal chat, the server's scheduler): the text streamed equals the
detokenized completion, also when it ends inside a UTF-8 character (the decoder is flushed: U+FFFD, as
detokenize gives) and when an end-of-sequence token comes while the stop matcher holds text back."""

import numpy as np
import pytest

from tests.checkpoints import ScriptedSampler
from tests.test_server import run_jobs
from tritlm.runtime.chat import Conversation
from tritlm.runtime.generate import Generation, TokenLoop
from tritlm.runtime.sampler import Sampler


@pytest.fixture(scope="module")
def script(model):
    """Tokens that end inside a character ("…🦙" cut before its last byte token), and an EOS id."""
    ids = model.tokenize("ab 🦙", add_bos=False)
    cut = ids[:-1]
    assert model.detokenize(cut).endswith("\ufffd") and len(ids) > 2
    return {"ids": ids, "cut": cut, "eos": min(model.eos_ids)}


def run_loop(loop, n_steps, n_vocab):
    steps = []
    for _ in range(n_steps):
        steps.append(loop.step(np.zeros(n_vocab, dtype=np.float32)))
        if steps[-1].finish:
            break
    return steps


def test_max_tokens_inside_a_character_flushes_the_decoder(model, script):
    cut = script["cut"]
    steps = run_loop(TokenLoop(model, ScriptedSampler(cut), len(cut)), 10, model.n_vocab)
    assert "".join(s.text for s in steps) == model.detokenize(cut)
    assert [s.token for s in steps] == cut and steps[-1].finish == "length"


def test_eos_releases_what_the_stop_matcher_holds(model, script):
    ids = model.tokenize("abc", add_bos=False)
    loop = TokenLoop(model, ScriptedSampler(ids + [script["eos"]]), 10, stop=["cd", "never"])
    steps = run_loop(loop, 10, model.n_vocab)
    assert "".join(s.text for s in steps) == "abc"  # "c" was held back: it might have begun "cd"
    assert steps[-1].finish == "stop" and steps[-1].token == script["eos"] and loop.tokens == ids


def test_eos_inside_a_character_flushes_the_decoder(model, script):
    cut = script["cut"]
    steps = run_loop(TokenLoop(model, ScriptedSampler(cut + [script["eos"]]), 10), 10, model.n_vocab)
    assert "".join(s.text for s in steps) == model.detokenize(cut) and steps[-1].finish == "stop"


def test_stop_string_cuts_and_ends(model):
    ids = model.tokenize("one two three four", add_bos=False)
    steps = run_loop(TokenLoop(model, ScriptedSampler(ids), 50, stop="thr"), 50, model.n_vocab)
    assert "".join(s.text for s in steps) == "one two " and steps[-1].finish == "stop"


def test_logits_processors_and_logprobs(model):
    import torch

    logits = np.random.default_rng(3).standard_normal(model.n_vocab).astype(np.float32)
    banned = int(np.argmax(logits))
    seen = []

    def ban(tokens, row):  # a token mask, as structured output will use
        seen.append(list(tokens))
        row = row.copy()
        row[banned] = -np.inf
        return row

    loop = TokenLoop(model, Sampler(temperature=0), 3, logits_processors=[ban], logprobs=2)
    steps = [loop.step(logits) for _ in range(3)]
    masked = logits.copy()
    masked[banned] = -np.inf
    expected = int(np.argmax(masked))
    assert [s.token for s in steps] == [expected] * 3 and seen == [[], [expected], [expected] * 2]
    # Logprobs are the model's, before the mask (as OpenAI and llama-server report them).
    reference = torch.log_softmax(torch.from_numpy(logits).double(), 0)
    assert steps[0].logprob.token == expected
    assert steps[0].logprob.logprob == pytest.approx(reference[expected].item(), abs=1e-9)
    top = torch.topk(reference, 2)
    assert [t for t, _ in steps[0].logprob.top] == top.indices.tolist() == [banned, expected]
    np.testing.assert_allclose([p for _, p in steps[0].logprob.top], top.values.numpy(), atol=1e-9)
    assert TokenLoop(model, Sampler(temperature=0), 3).step(logits).logprob is None


def test_generation_flushes_at_max_tokens_and_at_a_full_context(model, script):
    cut = script["cut"]
    prompt = model.tokenize("The", add_bos=True)
    generation = Generation(model, prompt, TokenLoop(model, ScriptedSampler(cut), len(cut)))
    assert "".join(generation) == model.detokenize(cut) and generation.finish == "length"
    with model.new_sequence(len(prompt) + len(cut) - 1) as seq:  # room to decode all but the last token
        generation = Generation(model, prompt, TokenLoop(model, ScriptedSampler(cut + [0] * 5), 100), seq)
        assert "".join(generation) == model.detokenize(cut) and generation.finish == "length"
        assert generation.tokens == cut and seq.pos == seq.n_ctx


def test_chat_flushes_the_decoder(model, script):
    cut = script["cut"]
    conversation = Conversation(model)
    answer = "".join(conversation.reply("Hi", ScriptedSampler(cut), len(cut)))
    assert answer == model.detokenize(cut) == conversation.messages[-1]["content"]


def test_server_flushes_the_decoder_and_the_stop_matcher(model, script):
    prompt = model.tokenize("The", add_bos=True)
    abc = model.tokenize("abc", add_bos=False)
    cut = script["cut"]
    results = run_jobs(
        model,
        [(prompt, len(cut), ScriptedSampler(cut), None), (prompt, 10, ScriptedSampler(abc + [script["eos"]]), ["cd"])],
    )
    assert results == [(model.detokenize(cut), ("done", "length")), ("abc", ("done", "stop"))]
