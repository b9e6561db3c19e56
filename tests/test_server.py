"""`tritlm serve` end to end: the official openai client against a server on a free loopback port, serving the
tiny converted model. Answers are checked against greedy decoding through `Model.logits` (a fresh sequence
per step, no batching) and prompts against transformers' own chat template and tokenizer."""

import asyncio
import collections
import contextlib
import json
import os
import random
import socket
import threading
import time

import httpx
import openai
import pytest

from tests.checkpoints import full_forward_greedy
from tritlm.runtime import Model
from tritlm.runtime.sampler import Sampler
from tritlm.runtime.server.app import create_app
from tritlm.runtime.server.cli import allowed_hosts, make_server, open_socket
from tritlm.runtime.server.scheduler import Scheduler
from tritlm.runtime.template import ChatTemplate

PROMPT = "The model cache is"
MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a layer."}]


@contextlib.contextmanager
def serving(app):
    """Runs `app` on a free loopback port in a thread; yields its base URL."""
    sock = open_socket("127.0.0.1", 0)
    server = make_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def model(tiny_gguf):
    m = Model(tiny_gguf, threads=2, n_ctx=256)
    yield m
    m.close()


@pytest.fixture(scope="module")
def server(model):
    app = create_app(model, parallel=4)
    with serving(app) as url:
        yield url, app


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key="none", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def chat_ids(tiny_checkpoints):
    """The chat prompt as transformers renders and tokenizes it from the original checkpoint."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoints["packed"])
    return tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True, return_dict=False)


def test_chat_template_matches_transformers(model, tiny_checkpoints, chat_ids):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoints["packed"])
    template = ChatTemplate(model)
    assert template.has_own_template
    assert template.render(MESSAGES) == tokenizer.apply_chat_template(
        MESSAGES, add_generation_prompt=True, tokenize=False
    )
    assert template.tokenize(MESSAGES) == list(chat_ids)


def test_completion_matches_greedy(client, model):
    ids = model.tokenize(PROMPT, add_bos=True, special=True)
    expected = full_forward_greedy(model, ids, 12)
    reply = client.completions.create(model=model.name, prompt=PROMPT, max_tokens=12, temperature=0)
    choice = reply.choices[0]
    assert choice.text == model.detokenize(expected)
    assert choice.finish_reason == ("length" if len(expected) == 12 else "stop")
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (len(ids), len(expected))

    chunks = list(client.completions.create(model=model.name, prompt=PROMPT, max_tokens=12, temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == choice.text
    assert chunks[-1].choices[0].finish_reason == choice.finish_reason


def test_chat_matches_greedy(client, model, chat_ids):
    expected = model.detokenize(full_forward_greedy(model, list(chat_ids), 10))
    reply = client.chat.completions.create(model=model.name, messages=MESSAGES, max_tokens=10, temperature=0)
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == expected
    assert reply.usage.prompt_tokens == len(chat_ids)

    chunks = list(
        client.chat.completions.create(model=model.name, messages=MESSAGES, max_tokens=10, temperature=0, stream=True)
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected
    assert chunks[-1].choices[0].finish_reason == reply.choices[0].finish_reason


def test_stop_sequence(client, model):
    full = model.detokenize(full_forward_greedy(model, model.tokenize(PROMPT, add_bos=True, special=True), 24))
    assert len(full) >= 10, f"greedy text too short for a stop test: {full!r}"
    stop = full[6:9]
    expected = full[: full.index(stop)]
    reply = client.completions.create(
        model=model.name, prompt=PROMPT, max_tokens=24, temperature=0, stop=[stop, "\x00never"]
    )
    assert (reply.choices[0].text, reply.choices[0].finish_reason) == (expected, "stop")
    chunks = list(
        client.completions.create(model=model.name, prompt=PROMPT, max_tokens=24, temperature=0, stop=stop, stream=True)
    )
    assert "".join(c.choices[0].text for c in chunks) == expected
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_models_health_tokenize(client, model, server, tiny_checkpoints):
    listed = client.models.list().data
    assert [m.id for m in listed] == [model.name]
    url = server[0]
    assert httpx.get(url + "/health").json()["status"] == "ok"
    from tokenizers import Tokenizer

    text = "naïve café 🙂 tokens"
    ids = httpx.post(url + "/tokenize", json={"content": text}).json()["tokens"]
    reference = Tokenizer.from_file(os.path.join(tiny_checkpoints["packed"], "tokenizer.json"))
    assert ids == reference.encode(text, add_special_tokens=False).ids
    assert httpx.post(url + "/detokenize", json={"tokens": ids}).json() == {"content": text}
    pieces = httpx.post(url + "/tokenize", json={"content": "ab", "with_pieces": True}).json()["tokens"]
    assert "".join(p["piece"] for p in pieces) == "ab" and all(isinstance(p["id"], int) for p in pieces)


def test_concurrent_streams_match_solo_and_are_batched(client, model):
    prompts = [PROMPT, "The weight of", "A vector and", "Layer one is"]
    solo = [
        client.completions.create(model=model.name, prompt=p, max_tokens=16, temperature=0).choices[0].text
        for p in prompts
    ]
    batch_sizes = []  # sequences in each forward pass
    forward = model.forward

    def counting_forward(seqs, tokens, logit_rows=None):
        batch_sizes.append(len({id(s) for s in seqs}))
        time.sleep(0.02)  # the tiny model finishes a request in ~3 ms: slow steps so the four overlap
        return forward(seqs, tokens, logit_rows)

    model.forward = counting_forward
    results = [None] * len(prompts)
    barrier = threading.Barrier(len(prompts))

    def stream(i):
        barrier.wait()
        chunks = client.completions.create(
            model=model.name, prompt=prompts[i], max_tokens=16, temperature=0, stream=True
        )
        results[i] = "".join(c.choices[0].text for c in chunks)

    try:
        threads = [threading.Thread(target=stream, args=(i,)) for i in range(len(prompts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        del model.forward
    assert results == solo
    assert max(batch_sizes) > 1, f"requests were never decoded together: {batch_sizes}"


@contextlib.contextmanager
def slow_steps(model, seconds_per_step):
    """Slows every scheduler step (one forward pass) so a request is still running when the test acts on it."""
    forward = model.forward

    def slow(seqs, tokens, logit_rows=None):
        time.sleep(seconds_per_step)
        return forward(seqs, tokens, logit_rows)

    model.forward = slow
    try:
        yield
    finally:
        del model.forward


def wait_for(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_client_disconnect_frees_its_slot(client, model, server):
    url, app = server
    scheduler = app.state.server.scheduler
    body = {"prompt": PROMPT, "max_tokens": 200}
    with slow_steps(model, 0.02):  # 200 steps would take >= 4 s
        with httpx.stream("POST", url + "/v1/completions", json={**body, "stream": True}, timeout=30) as response:
            lines = response.iter_lines()
            while not next(lines).startswith("data: {"):
                pass
            assert scheduler.n_busy == 1
        wait_for(lambda: scheduler.n_busy == 0, seconds=1.5)

        # Not streaming: the client hangs up while waiting for the whole answer.
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as raw:
            payload = json.dumps(body).encode()
            raw.sendall(
                b"POST /v1/completions HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
            )
            wait_for(lambda: scheduler.n_busy == 1)
        wait_for(lambda: scheduler.n_busy == 0, seconds=1.5)
    reply = client.completions.create(model=model.name, prompt=PROMPT, max_tokens=4, temperature=0)
    assert reply.usage.completion_tokens >= 1


def error_of(response):
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["message"]
    return body["error"]


@pytest.mark.parametrize(
    "path, body, param",
    [
        ("/v1/completions", b"{not json", None),
        ("/v1/completions", b'["a list"]', "body"),
        ("/v1/completions", {"prompt": PROMPT, "max_tokens": -1}, "max_tokens"),
        ("/v1/completions", {"prompt": PROMPT, "max_tokens": "ten"}, "max_tokens"),
        ("/v1/completions", {"prompt": PROMPT, "temperature": "hot"}, "temperature"),
        ("/v1/completions", {"prompt": PROMPT, "temperature": 1e-320}, "temperature"),  # subnormal: logits / T overflow
        ("/v1/completions", {"prompt": PROMPT, "temperature": -0.5}, "temperature"),
        ("/v1/completions", b'{"prompt": "x", "temperature": NaN}', "temperature"),  # Python's JSON reader takes NaN
        ("/v1/completions", b'{"prompt": "x", "temperature": Infinity}', "temperature"),
        ("/v1/completions", b'{"prompt": "x", "top_p": NaN}', "top_p"),
        ("/v1/completions", {"prompt": PROMPT, "top_p": 0}, "top_p"),
        ("/v1/completions", {"prompt": PROMPT, "top_k": -3}, "top_k"),
        ("/v1/completions", {"prompt": PROMPT, "seed": -2}, "seed"),
        ("/v1/completions", {"prompt": 42}, "prompt"),
        ("/v1/completions", {"prompt": [1, 10**9]}, "prompt"),
        ("/v1/completions", {"prompt": []}, "prompt"),
        ("/v1/completions", {"prompt": [[]], "max_tokens": 0, "echo": True, "logprobs": 1}, "prompt"),
        ("/v1/completions", {"prompt": PROMPT, "n": 2}, "n"),
        ("/v1/completions", {"prompt": PROMPT, "stop": 7}, "stop"),
        ("/v1/completions", {"prompt": PROMPT, "max_tokens": 1000}, "max_tokens"),
        ("/v1/chat/completions", {"messages": []}, "messages"),
        ("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
        ("/v1/chat/completions", {"messages": [{"role": "user"}]}, "messages.0.content"),
        ("/tokenize", {"content": 5}, "content"),
        ("/detokenize", {"tokens": [-1]}, "tokens"),
    ],
)
def test_bad_requests_get_openai_errors(server, path, body, param):
    send = (
        {"content": body, "headers": {"Content-Type": "application/json"}}
        if isinstance(body, bytes)
        else {"json": body}
    )
    response = httpx.post(server[0] + path, timeout=30, **send)
    assert response.status_code == 400
    error = error_of(response)
    assert error["type"] == "invalid_request_error" and error["param"] == param


def test_error_codes(server):
    url = server[0]
    assert (
        error_of(httpx.post(url + "/v1/completions", content=b"{", headers={"Content-Type": "application/json"}))[
            "code"
        ]
        == "invalid_json"
    )
    overflow = httpx.post(url + "/v1/completions", json={"prompt": "x " * 300})
    assert overflow.status_code == 400 and error_of(overflow)["code"] == "context_length_exceeded"
    missing = httpx.get(url + "/v1/nothing")
    assert missing.status_code == 404 and error_of(missing)["type"] == "not_found_error"


def test_full_queue_is_refused_at_once(model):
    app = create_app(model, parallel=1, max_waiting=1)
    scheduler = app.state.server.scheduler
    with serving(app) as url, slow_steps(model, 0.02):
        body = {"prompt": PROMPT, "max_tokens": 100, "stream": True}
        with httpx.stream("POST", url + "/v1/completions", json=body, timeout=30) as first:
            lines = first.iter_lines()  # kept: a dropped iterator closes the stream
            next(lines)
            waiting = threading.Thread(
                target=httpx.post,
                args=(url + "/v1/completions",),
                kwargs={"json": {"prompt": PROMPT, "max_tokens": 2}, "timeout": 30},
            )
            waiting.start()
            wait_for(lambda: scheduler.n_waiting == 1)
            started = time.monotonic()
            refused = httpx.post(url + "/v1/completions", json={"prompt": PROMPT, "max_tokens": 2}, timeout=30)
            assert time.monotonic() - started < 1
            assert refused.status_code == 429 and error_of(refused)["code"] == "queue_full"
        waiting.join(30)
        assert not waiting.is_alive()


def test_api_key(model):
    with serving(create_app(model, parallel=1, api_key="sesame")) as url:
        assert httpx.get(url + "/health").status_code == 200
        assert httpx.get(url + "/").status_code == 200  # the page itself; its API calls carry the key
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": "sesame"},
            {"Authorization": "Basic sesame"},
            {"Authorization": "Bearersesame"},
        ):
            for method, path in (("GET", "/v1/models"), ("POST", "/v1/completions"), ("POST", "/tokenize")):
                response = httpx.request(method, url + path, headers=headers, json={"prompt": "x"})
                assert response.status_code == 401, (path, headers)
                assert error_of(response)["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()
        good = openai.OpenAI(base_url=url + "/v1", api_key="sesame", max_retries=0)
        assert (
            good.completions.create(
                model=model.name, prompt=PROMPT, max_tokens=2, temperature=0
            ).usage.completion_tokens
            >= 1
        )
        for scheme in ("bearer", "BEARER"):  # the scheme is case-insensitive (RFC 7235)
            assert httpx.get(url + "/v1/models", headers={"Authorization": f"{scheme} sesame"}).status_code == 200


def test_seed_minus_one_is_random(client, model):
    def texts(seed, n):
        return {
            client.completions.create(
                model=model.name,
                prompt=PROMPT,
                max_tokens=12,
                temperature=1.5,
                top_p=1.0,
                seed=seed,
                extra_body={"top_k": 0},
            )
            .choices[0]
            .text
            for _ in range(n)
        }

    assert len(texts(-1, 3)) > 1  # three equal 12-token samples at temperature 1.5 over the whole vocabulary: ~never
    assert len(texts(5, 2)) == 1


def run_jobs(model, requests, parallel=4, batch_size=256):
    """Submits every (prompt ids, max_tokens, sampler, stop) to a fresh Scheduler before it starts (so they are
    admitted in one step); returns each job's (text, last event) once the scheduler has freed every slot."""

    async def main():
        scheduler = Scheduler(model, parallel, batch_size=batch_size)
        jobs = [scheduler.submit(*request) for request in requests]
        scheduler.start()
        try:
            results = []
            for job in jobs:
                parts, end = [], None
                async for kind, value in job.events():
                    if kind == "step":
                        parts.append(value.text)
                    else:
                        end = (kind, value)
                results.append(("".join(parts), end))
            while scheduler.n_busy:  # the last event may reach us before the slot is back on the free list
                await asyncio.sleep(0.01)
            assert len(scheduler._free) == parallel and not scheduler._waiting
            return results
        finally:
            scheduler.stop()

    return asyncio.run(asyncio.wait_for(main(), 60))


PROMPTS = [PROMPT, "The weight of", "A vector and"]


def greedy_results(model, n):
    tokens = [full_forward_greedy(model, model.tokenize(p, add_bos=True, special=True), n) for p in PROMPTS]
    return [(model.detokenize(t), ("done", "length" if len(t) == n else "stop")) for t in tokens]


class FailingSampler(Sampler):
    """Greedy, but its `n`-th sample raises (as sampling NaN logits does)."""

    def __init__(self, n):
        super().__init__(temperature=0)
        self.left = n

    def sample(self, logits):
        self.left -= 1
        if self.left == 0:
            raise ValueError("Probabilities contain NaN")
        return super().sample(logits)


def test_a_sampling_error_fails_only_its_own_request(model):
    ids = [model.tokenize(p, add_bos=True, special=True) for p in PROMPTS]
    results = run_jobs(
        model,
        [
            (ids[0], 8, Sampler(temperature=0), None),
            (ids[1], 8, FailingSampler(3), None),
            (ids[2], 8, Sampler(temperature=0), None),
        ],
    )
    expected = greedy_results(model, 8)
    assert results[0] == expected[0] and results[2] == expected[2]
    assert results[1][1] == ("error", "generation failed: Probabilities contain NaN")


def test_a_failing_prompt_fails_only_its_own_request(model):
    """A token id out of range fails the step's one forward pass; the scheduler reruns each request's part alone,
    so only that request fails and the others still equal the greedy reference."""
    ids = [model.tokenize(p, add_bos=True, special=True) for p in PROMPTS]
    bad = ids[0] + [model.n_vocab + 5]
    results = run_jobs(model, [(i, 8, Sampler(temperature=0), None) for i in [bad] + ids[1:]], parallel=3)
    assert results[0] == (
        "",
        ("error", f"generation failed: token id {model.n_vocab + 5} is out of range [0, {model.n_vocab})"),
    )
    assert results[1:] == greedy_results(model, 8)[1:]


def test_a_long_prompt_is_read_in_chunks_while_other_streams_decode(model):
    """llama-server's update_slots: two streams decode while a 60-token prompt arrives; with --batch-size 16 each
    step is ONE forward pass of both streams' next tokens plus 14 prompt tokens, so the prompt is read over 5 passes
    and the streams keep getting a token every pass. Every answer equals the greedy reference."""
    short = [model.tokenize(p, add_bos=True, special=True) for p in (PROMPTS[0], PROMPTS[2])]
    text = " ".join(PROMPTS * 20)
    long = model.tokenize(text, add_bos=True, special=True)[:60]
    assert len(long) == 60
    n_short, n_long = 20, 4
    reference = [
        full_forward_greedy(model, ids, n) for ids, n in ((short[0], n_short), (short[1], n_short), (long, n_long))
    ]
    assert all(len(r) == n for r, n in zip(reference, (n_short, n_short, n_long))), "an end token came early"
    passes = []  # per forward call: how many tokens each sequence had in it
    forward = model.forward

    async def main():
        loop = asyncio.get_running_loop()
        scheduler = Scheduler(model, 3, batch_size=16)
        jobs = [scheduler.submit(ids, n_short, Sampler(temperature=0)) for ids in short]

        def recording_forward(seqs, tokens, logit_rows=None):
            passes.append(collections.Counter(id(s) for s in seqs))
            if len(passes) == 3:  # the long prompt arrives while both streams decode (admitted at the next step)
                asyncio.run_coroutine_threadsafe(submit_long(), loop).result(10)
            return forward(seqs, tokens, logit_rows)

        async def submit_long():
            jobs.append(scheduler.submit(long, n_long, Sampler(temperature=0)))

        model.forward = recording_forward
        scheduler.start()
        try:
            await asyncio.sleep(0)
            while len(jobs) < 3:
                await asyncio.sleep(0.01)
            results = []
            for job in jobs:
                tokens = [value.token async for kind, value in job.events() if kind == "step"]
                results.append(tokens)
            return results
        finally:
            scheduler.stop()

    try:
        results = asyncio.run(asyncio.wait_for(main(), 60))
    finally:
        del model.forward
    assert results == reference
    assert all(sum(p.values()) <= 16 for p in passes)
    assert len(passes[0]) == 2  # the first pass reads both short prompts
    chunks = [(i, max(p.values())) for i, p in enumerate(passes) if i > 0 and max(p.values()) > 1]
    assert [n for _, n in chunks] == [14, 14, 14, 14, 4]  # the long prompt, a chunk per pass
    assert all(len(passes[i]) == 3 for i, _ in chunks)  # both streams decoded in each of those passes


def test_a_short_prompt_is_read_before_a_long_one(model):
    """Prompt chunks go to the prompt with the fewest tokens left first: a short prompt admitted with a long one
    gets its first token from the first pass, which carries no chunk of the long one (a short pass); the long
    one's chunks follow beside the short one's decoding."""
    long = model.tokenize(" ".join(PROMPTS * 20), add_bos=True, special=True)[:60]
    short = model.tokenize(PROMPTS[0], add_bos=True, special=True)
    passes = []
    forward = model.forward

    def recording_forward(seqs, tokens, logit_rows=None):
        passes.append(list(tokens))
        return forward(seqs, tokens, logit_rows)

    model.forward = recording_forward
    try:
        results = run_jobs(
            model,
            [(long, 2, Sampler(temperature=0), None), (short, 2, Sampler(temperature=0), None)],
            parallel=2,
            batch_size=16,
        )
    finally:
        del model.forward
    assert passes[0] == short
    assert passes[1][1:] == long[:15]  # the short one's second (and last) token, then a full chunk
    assert passes[2] == long[15:31]
    assert results == [
        (model.detokenize(full_forward_greedy(model, ids, 2)), ("done", "length")) for ids in (long, short)
    ]


@contextlib.contextmanager
def slowed(model, fixed=0.02, per_token=0.004, per_position=0.0, per_sequence=0.0):
    """model.forward as a 2B model's pass costs on this machine: a fixed part (reading the weights) plus a part per
    token, one per position each token attends to and one per sequence after the first, slept before the real pass;
    yields the list of passes run: (sequences by id, tokens, seconds)."""
    forward, passes = model.forward, []

    def slow_forward(seqs, tokens, logit_rows=None):
        start = time.perf_counter()
        earlier: collections.Counter = collections.Counter()  # tokens of each sequence before this one in the pass
        positions = 0
        for seq in seqs:
            positions += seq.pos + earlier[id(seq)]
            earlier[id(seq)] += 1
        time.sleep(fixed + per_token * len(tokens) + per_position * positions + per_sequence * (len(earlier) - 1))
        out = forward(seqs, tokens, logit_rows)
        passes.append((collections.Counter(id(s) for s in seqs), len(tokens), time.perf_counter() - start))
        return out

    model.forward = slow_forward
    try:
        yield passes
    finally:
        del model.forward


def test_the_pass_limit_cuts_prompt_chunks_by_time(model):
    """With --pass-limit 3, a long prompt read while two streams decode comes in chunks sized so a pass lasts about
    three one-token passes (24 ms fixed + 4 ms a token here: ~11 tokens, not the 254 of -b 256), both streams
    decode in every pass, and every answer still equals the greedy reference."""
    short = [model.tokenize(p, add_bos=True, special=True) for p in (PROMPTS[0], PROMPTS[2])]
    long = model.tokenize(" ".join(PROMPTS * 30), add_bos=True, special=True)[:150]
    reference = [full_forward_greedy(model, ids, n) for ids, n in ((short[0], 30), (short[1], 30), (long, 2))]
    assert [len(r) for r in reference] == [30, 30, 2], "an end token came early"

    async def main():
        scheduler = Scheduler(model, 3, batch_size=256, pass_limit=3)
        jobs = [scheduler.submit(ids, 30, Sampler(temperature=0)) for ids in short]
        scheduler.start()
        try:
            await asyncio.sleep(0.3)  # both streams decode
            jobs.append(scheduler.submit(long, 2, Sampler(temperature=0)))
            results = []
            for job in jobs:
                results.append([value.token async for kind, value in job.events() if kind == "step"])
            return results, scheduler.times.one
        finally:
            scheduler.stop()

    with slowed(model) as passes:
        results, one = asyncio.run(asyncio.wait_for(main(), 60))
    assert results == reference
    chunks = [(n - 2, seconds) for seqs, n, seconds in passes if len(seqs) == 3 and n > 3]  # streams + the long one
    assert sum(n for n, _ in chunks) >= 149 - 2  # the long prompt, less the tokens of passes that carried 1
    assert len(chunks) >= 5 and max(n for n, _ in chunks) <= 40, chunks
    assert sorted(seconds for _, seconds in chunks)[len(chunks) // 2] < 4.5 * one, (chunks, one)


def read_beside_streams(model, requests, pass_limit, **slow):
    """Greedy answers to requests [(ids, max_tokens)] from a Scheduler with pass_limit, on the model slowed (slowed()'s
    costs): all but the last start at once, the last (a long prompt) once they decode. Returns each one's tokens, the
    scheduler's PassTimes and the passes run."""

    async def main():
        scheduler = Scheduler(model, len(requests), batch_size=256, pass_limit=pass_limit)
        jobs = [scheduler.submit(ids, n, Sampler(temperature=0)) for ids, n in requests[:-1]]
        scheduler.start()
        try:
            await asyncio.sleep(0.2)  # the streams decode
            jobs.append(scheduler.submit(*requests[-1], Sampler(temperature=0)))
            results = []
            for job in jobs:
                results.append([value.token async for kind, value in job.events() if kind == "step"])
            return results, scheduler.times
        finally:
            scheduler.stop()

    with slowed(model, **slow) as passes:
        results, times = asyncio.run(asyncio.wait_for(main(), 120))
    return results, times, passes


def test_prompt_chunks_shrink_as_they_attend_to_more(model):
    """A token costs more the more positions it attends to: PassTimes times that cost (here 100 us a position, slept),
    and the pass limit cuts a long prompt's later chunks smaller, so its passes beside two streams keep about the
    limit's length to the end (with chunks cut by the cost at position 0, those at 150+ would last ~9 one-token
    passes). Every answer still equals the greedy reference."""
    streams = [model.tokenize(p, add_bos=True, special=True) for p in (PROMPTS[0], PROMPTS[2])]
    long = model.tokenize(" ".join(PROMPTS * 30), add_bos=True, special=True)[:200]
    assert len(long) == 200
    requests = [(streams[0], 60), (streams[1], 60), (long, 2)]
    results, times, passes = read_beside_streams(model, requests, 3, per_position=100e-6)
    assert results == [full_forward_greedy(model, ids, n) for ids, n in requests]
    assert 80e-6 < times.position < 130e-6, times.position
    # the passes carrying both streams and a chunk of the long prompt: (chunk, seconds), in order
    chunks = [(n - 2, seconds) for seqs, n, seconds in passes if len(seqs) == 3 and n > 3]
    assert sum(n for n, _ in chunks) >= 100 and len(chunks) >= 8, chunks  # most of it read beside the streams
    assert chunks[0][0] >= 2 * chunks[-1][0], chunks  # at position 0 against 150 and more
    late = sorted(seconds for _, seconds in chunks[len(chunks) // 2 :])
    assert late[len(late) // 2] < 4 * times.one, (chunks, times.one)


def test_passes_correct_the_costs_timed_at_start(model):
    """A pass of several sequences costs more than the costs PassTimes times at start on one say (here 50 ms more,
    slept): with --pass-limit 4, a long prompt read beside a stream would come in ~19-token chunks whose passes last
    ~6 one-token passes; each pass's time corrects the estimate, so the later ones keep about the limit's length.
    Every answer still equals the greedy reference."""
    stream = model.tokenize(PROMPTS[0], add_bos=True, special=True)
    long = model.tokenize(" ".join(PROMPTS * 30), add_bos=True, special=True)[:200]
    requests = [(stream, 60), (long, 2)]
    results, times, passes = read_beside_streams(model, requests, 4, per_sequence=0.05)
    assert results == [full_forward_greedy(model, ids, n) for ids, n in requests]
    chunks = [(n - 1, seconds) for seqs, n, seconds in passes if len(seqs) == 2 and n > 2]  # the stream + a chunk
    assert len(chunks) >= 8 and chunks[0][0] > 2 * chunks[-1][0], chunks
    assert 1.5 < times.correction < 2.5, times.correction
    late = sorted(seconds for _, seconds in chunks[len(chunks) // 2 :])
    assert late[len(late) // 2] < 5 * times.one, (chunks, times.one)


def test_a_new_short_prompt_gets_a_pass_of_its_own(model):
    """With the pass limit, a short prompt that arrives while two streams decode and a long prompt is being read is
    read in a pass of its own (neither decode tokens nor a long chunk lengthen the pass before its first token); the
    streams and the long prompt go on in the very next pass, and every answer still equals the greedy reference."""
    streams = [model.tokenize(p, add_bos=True, special=True) for p in (PROMPTS[0], PROMPTS[2])]
    long = model.tokenize(" ".join(PROMPTS * 30), add_bos=True, special=True)[:150]
    short = model.tokenize(PROMPTS[1], add_bos=True, special=True)
    requests = [(streams[0], 30), (streams[1], 30), (long, 2), (short, 2)]
    reference = [full_forward_greedy(model, ids, n) for ids, n in requests]

    async def main():
        scheduler = Scheduler(model, 4, batch_size=256, pass_limit=3)
        jobs = [scheduler.submit(ids, n, Sampler(temperature=0)) for ids, n in requests[:2]]
        scheduler.start()
        try:
            await asyncio.sleep(0.3)  # both streams decode
            jobs.append(scheduler.submit(long, 2, Sampler(temperature=0)))
            await asyncio.sleep(0.15)  # the long prompt is being read
            jobs.append(scheduler.submit(short, 2, Sampler(temperature=0)))
            results = []
            for job in jobs:
                results.append([value.token async for kind, value in job.events() if kind == "step"])
            return results
        finally:
            scheduler.stop()

    with slowed(model) as passes:
        results = asyncio.run(asyncio.wait_for(main(), 60))
    assert results == reference
    solo = [i for i, (seqs, n, _) in enumerate(passes) if len(seqs) == 1 and n == len(short)]
    assert len(solo) == 1, passes
    after = passes[solo[0] + 1][0]
    assert len(after) == 4 and max(after.values()) > 1, passes  # both streams, the short one's next token, a long chunk


def test_a_pass_wakes_the_event_loop_once(model):
    """Each pass hands its tokens to the event loop in one call (two when new requests' first tokens go first), not
    one per token: every wake-up took the GIL from the scheduler thread while the engine waited. Three streams of 20
    tokens, then a fourth request arriving mid-way: the calls are counted against the passes, and every answer still
    equals the greedy reference, its events in order."""
    ids = [
        model.tokenize(p, add_bos=True, special=True) for p in (PROMPTS[0], PROMPTS[2], "The history of", "Once upon a")
    ]
    reference = [full_forward_greedy(model, i, 20) for i in ids]
    assert [len(r) for r in reference] == [20] * 4, "an end token came early"

    async def main():
        loop, calls = asyncio.get_running_loop(), []
        handoff = loop.call_soon_threadsafe

        def counted(callback, *args):
            calls.append(threading.current_thread().name)
            return handoff(callback, *args)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        scheduler = Scheduler(model, 4, batch_size=256)
        jobs = [scheduler.submit(i, 20, Sampler(temperature=0)) for i in ids[:3]]
        scheduler.start()
        try:
            stream = jobs[0].events()
            head = [await anext(stream) for _ in range(3)]  # three passes in: the streams decode
            jobs.append(scheduler.submit(ids[3], 20, Sampler(temperature=0)))
            results = []
            for job, events in zip(jobs, [stream] + [job.events() for job in jobs[1:]]):
                got = (head if job is jobs[0] else []) + [event async for event in events]
                assert [kind for kind, _ in got] == ["step"] * 20 + ["done"]
                results.append([value.token for kind, value in got if kind == "step"])
            return results, calls.count("tritlm-scheduler")
        finally:
            scheduler.stop()

    with slowed(model, fixed=0.01, per_token=0) as passes:
        results, n_calls = asyncio.run(asyncio.wait_for(main(), 60))
    assert results == reference
    # one call a pass (the last pass's tokens come with the done events), plus one for the fourth request's first
    # token, sent before the streams' tokens of its pass; one a token would be 84 steps and 4 ends
    assert len(passes) + 1 >= n_calls >= len(passes) - 1 and len(passes) < 40, (n_calls, len(passes))


def test_a_short_prompt_does_not_wait_for_a_long_prompt_being_read(model):
    """Over HTTP, on a model slowed to a 2B model's pass costs: while two streams decode and a 150-token prompt is
    being read, a short prompt's first token comes after a few passes (the pass limit cuts the long prompt's chunks),
    long before the long prompt's; without the limit (-b alone) the short one waits for its whole 150-token pass."""

    def first_token_seconds(url, prompt, max_tokens):
        start = time.monotonic()
        body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True}
        with httpx.stream("POST", url + "/v1/completions", json=body, timeout=60) as response:
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    return time.monotonic() - start

    long = model.tokenize(" ".join(PROMPTS * 30), add_bos=True, special=True)[:150]
    ttft = {}
    for pass_limit in (3, None):
        with slowed(model), serving(create_app(model, parallel=4, pass_limit=pass_limit)) as url:
            streams = [threading.Thread(target=first_token_seconds, args=(url, PROMPT, 40)) for _ in range(2)]
            for t in streams:
                t.start()
            time.sleep(0.3)
            long_seconds = []
            reader = threading.Thread(target=lambda out=long_seconds: out.append(first_token_seconds(url, long, 1)))
            reader.start()
            time.sleep(0.1)  # the long prompt's first pass is under way
            short_seconds = first_token_seconds(url, PROMPT, 1)
            reader.join(60)
            ttft[pass_limit] = (short_seconds, long_seconds[0])
            for t in streams:
                t.join(60)
    (short, long_first), (short_b, long_first_b) = ttft[3], ttft[None]
    assert short < long_first / 3, ttft  # the long prompt takes ~0.9 s of chunks; the short one ~2 passes
    assert short_b > 0.5 * long_first_b, ttft  # without the limit: behind the long prompt's single pass


def test_body_size_limit(model):
    with serving(create_app(model, parallel=1, max_body_bytes=1000)) as url:
        fits = json.dumps({"prompt": PROMPT, "max_tokens": 2, "temperature": 0, "stop": "x" * 800}).encode()
        assert len(fits) <= 1000
        ok = httpx.post(url + "/v1/completions", content=fits, headers={"Content-Type": "application/json"})
        assert ok.status_code == 200, ok.text
        big = json.dumps({"prompt": "word " * 400}).encode()
        declared = httpx.post(url + "/v1/completions", content=big, headers={"Content-Type": "application/json"})
        chunked = httpx.post(
            url + "/v1/completions", content=iter([big[:600], big[600:]]), headers={"Content-Type": "application/json"}
        )  # no Content-Length: counted as read
        for response in (declared, chunked):
            assert response.status_code == 413 and error_of(response)["code"] == "request_too_large"
        assert httpx.get(url + "/health").status_code == 200


def test_tokenizing_does_not_stall_the_server(model, server):
    url = server[0]
    tokenize = model.tokenize

    def slow_tokenize(*args, **kwargs):  # a long prompt's tokenization, as seen from the event loop
        time.sleep(2)
        return tokenize(*args, **kwargs)

    model.tokenize = slow_tokenize
    try:
        busy = threading.Thread(
            target=httpx.post,
            args=(url + "/v1/completions",),
            kwargs={"json": {"prompt": PROMPT, "max_tokens": 1}, "timeout": 30},
        )
        busy.start()
        time.sleep(0.3)
        started = time.monotonic()
        assert httpx.get(url + "/health", timeout=30).status_code == 200
        assert time.monotonic() - started < 1
        busy.join(30)
    finally:
        del model.tokenize


def test_tokenizing_releases_the_gil(model):
    """The server tokenizes in worker threads; that helps only if the tokenizer lets the event loop run."""
    text = "".join(random.Random(0).choices("abcdefghij klmnop", k=1 << 18))
    done, ticks = threading.Event(), [0]
    worker = threading.Thread(target=lambda: (model.tokenize(text), done.set()))
    started = time.monotonic()
    worker.start()
    while not done.is_set():
        ticks[0] += 1
        time.sleep(0.001)
    seconds = time.monotonic() - started
    worker.join()
    assert seconds > 0.05, "the text tokenized too fast to tell"
    assert ticks[0] >= 100 * seconds, f"{ticks[0]} wake-ups in {seconds:.2f} s: the tokenizer held the GIL"


def test_prompt_too_long_for_any_slot_is_refused_before_tokenizing(model, server):
    url = server[0]
    longest = max(len(model.tokenizer.token_bytes(i)) for i in range(model.n_vocab))
    text = "x" * (model.n_ctx * longest + 1)  # cannot be fewer tokens than the context holds
    model.tokenize = lambda *args, **kwargs: pytest.fail("tokenized")  # fails the request with a 500
    try:
        for path, body, param in (
            ("/v1/completions", {"prompt": text}, "prompt"),
            ("/v1/chat/completions", {"messages": [{"role": "user", "content": text}]}, "messages"),
        ):
            response = httpx.post(url + path, json=body)
            assert response.status_code == 400, response.text
            assert (error_of(response)["code"], error_of(response)["param"]) == ("context_length_exceeded", param)
    finally:
        del model.tokenize


def test_a_bug_is_an_openai_shaped_500(model, server):
    model.tokenize = lambda *args, **kwargs: 1 / 0
    try:
        response = httpx.post(server[0] + "/v1/completions", json={"prompt": PROMPT})
    finally:
        del model.tokenize
    assert response.status_code == 500 and error_of(response)["type"] == "server_error"


def test_allowed_hosts(model):
    with serving(create_app(model, parallel=1, allowed_hosts=allowed_hosts("127.0.0.1", None))) as url:
        port = url.rsplit(":", 1)[1]
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}"):
            assert httpx.get(url + "/v1/models", headers={"Host": host}).status_code == 200, host
        for host in (f"evil.example:{port}", "127.0.0.1.evil.example", ""):
            refused = httpx.get(url + "/v1/models", headers={"Host": host})
            assert refused.status_code == 400 and error_of(refused)["code"] == "host_not_allowed", host
    assert allowed_hosts("0.0.0.0", None) is None  # bound for the network: any name (use --api-key)
    assert allowed_hosts("0.0.0.0", "api.example, *.example.org") == ["api.example", "*.example.org"]
    assert allowed_hosts("::1", None) == allowed_hosts("localhost", None) == ["localhost", "127.0.0.1", "::1"]
