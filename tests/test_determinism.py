"""Determinism (issue 12): a seeded, sampled completion is the same text across runs, thread counts and the
server's --parallel setting (its decode batches mixing it with other requests), and equals Model.generate's."""

import threading

import httpx
import pytest

from tests.test_server import serving
from tritlm.runtime import Model
from tritlm.runtime.server.app import create_app

PROMPTS = ["The model cache is", "A vector and", "Layer one is"]
SETTINGS = {"max_tokens": 24, "temperature": 0.9, "top_k": 0, "top_p": 0.95}


@pytest.fixture(scope="module")
def reference(tiny_gguf):
    """Each prompt's seeded completion from Model.generate on one thread."""
    with Model(tiny_gguf, threads=1, n_ctx=256) as model:
        return {
            (p, seed): "".join(
                model.generate(
                    p, SETTINGS["max_tokens"], SETTINGS["temperature"], SETTINGS["top_k"], SETTINGS["top_p"], seed=seed
                )
            )
            for p in PROMPTS
            for seed in (1, 2)
        }


def test_reference_is_sampled(reference):
    assert reference[(PROMPTS[0], 1)] != reference[(PROMPTS[0], 2)]  # the seed matters: these are samples


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_same_seed_same_text_across_runs_and_threads(tiny_gguf, reference, threads):
    with Model(tiny_gguf, threads=threads, n_ctx=256) as model:
        for _ in range(2):
            got = {
                key: "".join(
                    model.generate(
                        key[0],
                        SETTINGS["max_tokens"],
                        SETTINGS["temperature"],
                        SETTINGS["top_k"],
                        SETTINGS["top_p"],
                        seed=key[1],
                    )
                )
                for key in reference
            }
            assert got == reference


@pytest.mark.parametrize("parallel, threads", [(1, 1), (4, 2)])
def test_same_seed_same_text_in_the_server(tiny_gguf, reference, parallel, threads):
    with (
        Model(tiny_gguf, threads=threads, n_ctx=256) as model,
        serving(create_app(model, parallel=parallel, max_waiting=len(reference))) as url,
    ):
        got, barrier = {}, threading.Barrier(len(reference))

        def ask(key):  # all at once: with 4 slots they share decode passes
            barrier.wait()
            body = {"prompt": key[0], "seed": key[1], **SETTINGS}
            got[key] = httpx.post(url + "/v1/completions", json=body, timeout=120).json()["choices"][0]["text"]

        threads_ = [threading.Thread(target=ask, args=(key,)) for key in reference]
        for t in threads_:
            t.start()
        for t in threads_:
            t.join(120)
        assert got == reference
