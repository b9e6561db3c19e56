"""Threads calling one Model at the same time, each on its own sequence, get exactly the logits each gets alone:
the engine's model is read-only after load, and each call borrows its own context (scratch)."""

import threading

import numpy as np

from tritlm.runtime import Model

STEPS = 32


def greedy_logits(model, prompt):
    """The logits of a prompt's last token and of STEPS greedy tokens after it."""
    with model.new_sequence(128) as seq:
        out = [model.prefill(seq, prompt)]
        for _ in range(STEPS):
            out.append(model.decode([seq], [int(out[-1].argmax())])[0])
    return np.stack(out)


def test_threads_decoding_at_once_get_the_logits_of_each_alone(tiny_gguf):
    with Model(tiny_gguf, threads=2) as model:
        prompts = [model.tokenize(t) for t in ("def add(a, b):", "The weight of the model is", "x = [1, 2")]
        alone = [greedy_logits(model, p) for p in prompts]
        together, start = [None] * len(prompts), threading.Barrier(len(prompts))

        def run(i):
            start.wait()
            together[i] = greedy_logits(model, prompts[i])

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for a, b in zip(alone, together):
            np.testing.assert_array_equal(b, a)


def test_one_sequence_is_used_by_one_call_at_a_time(tiny_gguf):
    """Two threads decoding into the same sequence: a call that finds it in use by the other fails with a ModelError
    and changes nothing, so the sequence holds exactly the tokens of the calls that succeeded."""
    from runtime import ModelError

    with Model(tiny_gguf, threads=2) as model, model.new_sequence(512) as seq:
        done, refused, start = [0, 0], [], threading.Barrier(2)

        def run(i):
            start.wait()
            for _ in range(100):
                try:
                    model.decode([seq], [7])
                    done[i] += 1
                except ModelError as e:
                    refused.append(str(e))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert seq.pos == sum(done) > 0
        assert all("in use by another call" in message for message in refused)
