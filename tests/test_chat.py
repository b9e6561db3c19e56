"""`tritlm run --chat`: answers match greedy decoding over the conversation as transformers renders it, the
KV cache is reused across turns, old turns are dropped to fit the context, Ctrl-C stops only the answer."""

import io

import pytest

from tests.checkpoints import full_forward_greedy
from tritlm.runtime import Model
from tritlm.runtime.chat import Conversation, chat
from tritlm.runtime.sampler import Sampler


@pytest.fixture(scope="module")
def model(tiny_gguf):
    m = Model(tiny_gguf, threads=2, n_ctx=256)
    yield m
    m.close()


@pytest.fixture(scope="module")
def hf_tokenizer(tiny_checkpoints):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_checkpoints["packed"])


def greedy_text(model, ids, max_tokens):
    return model.detokenize(full_forward_greedy(model, ids, max_tokens))


def reference_turns(model, hf_tokenizer, questions, max_tokens):
    messages, answers = [], []
    for question in questions:
        messages.append({"role": "user", "content": question})
        ids = hf_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
        answers.append(greedy_text(model, list(ids), max_tokens))
        messages.append({"role": "assistant", "content": answers[-1]})
    return answers


def answers_of(out):
    """The answers in a transcript: 'header\n> answer\n> answer\n> \n' (the last prompt met end of input)."""
    return out.getvalue().split("\n> ")[1:-1]


def test_turns_match_reference(model, hf_tokenizer):
    questions = ["What is a layer?", "And a token?", "Thanks."]
    expected = reference_turns(model, hf_tokenizer, questions, 8)
    out = io.StringIO()
    assert (
        chat(model, Sampler(temperature=0), max_tokens=8, stdin=io.StringIO("\n".join(questions) + "\n"), stdout=out)
        == 0
    )
    assert answers_of(out) == expected


def test_prompt_extending_the_cache_prefills_only_the_new_tokens(model):
    first = model.tokenize("The model cache is a", add_bos=True)
    longer = first + model.tokenize(" layer of the weight matrix", add_bos=False)
    conversation = Conversation(model)
    assert conversation._uncached(first) == first
    model.prefill(conversation.seq, first)
    conversation.cached = first  # as a turn leaves it
    assert conversation._uncached(longer) == longer[len(first) :] and conversation.seq.pos == len(first)
    # not an extension: the cache keeps the common prefix (all but the last id, which runs for its logits)
    assert conversation._uncached(first) == first[-1:] and conversation.seq.pos == len(first) - 1
    other = first[:3] + model.tokenize(" weight", add_bos=False)
    assert conversation._uncached(other) == other[3:] and conversation.seq.pos == 3


def test_old_turns_are_dropped_to_fit(tiny_gguf):
    small = Model(tiny_gguf, threads=2, n_ctx=96)
    try:
        conversation = Conversation(small, system="Be brief.", answer_room=16)
        for i in range(8):
            "".join(conversation.reply(f"Question number {i} about the weight matrix?", Sampler(temperature=0), 16))
            assert conversation.seq.pos <= 96
        assert conversation.messages[0] == {"role": "system", "content": "Be brief."}
        assert conversation.messages[1]["content"] != "Question number 0 about the weight matrix?"
        assert conversation.messages[-2]["content"] == "Question number 7 about the weight matrix?"
        with pytest.raises(ValueError, match="message too long"):
            "".join(conversation.reply("word " * 200, Sampler(temperature=0), 16))
    finally:
        small.close()


def test_ctrl_c_stops_only_the_answer(model, hf_tokenizer):
    decode, calls = model.decode, [0]

    def interrupted_once(seqs, tokens):  # after the cache grew: the chat must notice and start over
        logits = decode(seqs, tokens)
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt
        return logits

    model.decode = interrupted_once
    try:
        out = io.StringIO()
        chat(model, Sampler(temperature=0), max_tokens=8, stdin=io.StringIO("first?\nsecond?\n"), stdout=out)
    finally:
        del model.decode
    first, second = answers_of(out)
    assert first.endswith(" [stopped]")
    partial = first.removesuffix(" [stopped]")
    ids = hf_tokenizer.apply_chat_template(
        [
            {"role": "user", "content": "first?"},
            {"role": "assistant", "content": partial},
            {"role": "user", "content": "second?"},
        ],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
    )
    assert second == greedy_text(model, list(ids), 8)


@pytest.mark.parametrize("flag", ["--chat", "-cnv"])  # -cnv: llama-cli's conversation flag
def test_tritlm_run_chat_through_a_pipe(model, hf_tokenizer, tiny_gguf, flag):
    import subprocess
    import sys

    expected = reference_turns(model, hf_tokenizer, ["What is a layer?"], 8)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tritlm",
            "run",
            "-m",
            tiny_gguf,
            flag,
            "--temp",
            "0",
            "-n",
            "8",
            "-c",
            "256",
            "-t",
            "2",
        ],
        input="What is a layer?\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n> ")[1:-1] == expected
