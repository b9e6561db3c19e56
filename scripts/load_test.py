"""Load tests of `tritlm serve` on this machine (loopback only, bounded, they stop by themselves).

    .venv/bin/python scripts/load_test.py stress -m model.gguf --clients 16 --duration 30   # `make load-test`
    .venv/bin/python scripts/load_test.py scaling -m model.gguf --clients 1 2 4 8 --max-tokens 64

stress: many concurrent clients send a mix of well-formed requests (greedy and seeded sampling, completions
and chat, streaming or not, with and without stop strings) and hostile ones (garbage bodies and bytes, bad
types, NaN settings, foreign Host headers, oversized and chunked bodies, over-context prompts, streams
dropped mid-way). Every well-formed answer is compared with the model's own answer computed in this process
(Model.generate on one sequence: greedy, and the same seed for sampled ones); every hostile request must get
its 4xx. Reports requests served, statuses by kind, p50/p99 latency, the worst /health latency and the
server's RSS before and after; exits 1 on any wrong answer, unexpected status, busy slot at the end or RSS
not back near its baseline.

scaling: rounds of 1, 2, 4, 8 clients each sending --requests streaming completions; prints completion
tokens per second over each round's wall time, the speed-up over one client, the median time to first token, and
from the server's /metrics the share of the round its engine spent in forward passes and the streams' tokens in an
average pass (how far the round was from the engine's own speed with that many streams).
With --repeat N the rounds run N times, alternating, and the medians close the table: each speed-up divides by the
one-client round run just before it, so a swing of the machine's memory bandwidth (which moves one stream's speed
far more than eight's) does not land in the ratio.
Then the time to first token of a short prompt three ways (median and max of --ttft-samples): on an idle server;
while the other slots stream; and while they stream and a --long-prompt token prompt (default 2000, cut to fit the
context) is being read, a chunk per step (each short prompt sent at a random moment of its prefill).

Both start `tritlm serve` on a free loopback port (or use --url, which must be loopback)."""

import argparse
import collections
import contextlib
import http.client
import ipaddress
import json
import multiprocessing
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import httpx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

PROMPTS = [
    "The history of",
    "def main():",
    "Once upon a time",
    "import numpy as np",
    "The weather today",
    "In mathematics, a",
    "Dear colleagues,",
    "class Node:",
]


def start_server(model, parallel, threads, ctx_size, extra=(), stderr=None):
    """`tritlm serve` in a child process on a free loopback port; returns (process, base URL)."""
    cmd = [sys.executable, "-m", "tritlm", "serve", "-m", model, "--port", "0", "--parallel", str(parallel)]
    cmd += ["-t", str(threads)] if threads else []
    cmd += ["-c", str(ctx_size)] if ctx_size else []
    proc = subprocess.Popen(cmd + list(extra), stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT)
    for line in proc.stdout:
        if match := re.search(r"chat page: (http://\S+?)/?$", line.strip()):
            return proc, match.group(1)
    proc.wait()
    raise SystemExit(f"load_test: the server exited ({proc.returncode}) before printing its URL")


def check_loopback(url):
    host = urllib.parse.urlsplit(url).hostname or ""
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"load_test: refusing non-loopback URL {url}")


def memory_mib(pid, key="VmRSS") -> float:
    """The server's memory (a server of ours, started with -m; NaN for one given by --url)."""
    if pid is None:
        return float("nan")
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024


# ---- stress ----


class References:
    """The model's own answers, computed here on one sequence: greedy token lists (cut to any max_tokens) and
    seeded samples."""

    MAX_TOKENS = 32

    def __init__(self, model_path, n_ctx, samples):
        from tritlm.runtime import Model
        from tritlm.runtime.template import ChatTemplate

        self.model = Model(model_path, threads=1, n_ctx=256)
        self.n_ctx, self.samples = n_ctx, samples  # n_ctx: the server's slot context
        template = ChatTemplate(self.model)
        self.prompt_ids = {}
        for p in PROMPTS:
            self.prompt_ids["completion", p] = self.model.tokenize(p, add_bos=True, special=True)
            self.prompt_ids["chat", p] = template.tokenize([{"role": "user", "content": p}])
        self.greedy = {key: self._tokens(ids, self.MAX_TOKENS, 0, 1) for key, ids in self.prompt_ids.items()}
        self.sampled = {
            (key, seed): self._tokens(ids, 16, *samples, seed=seed)
            for key, ids in self.prompt_ids.items()
            for seed in range(4)
        }

    def _tokens(self, ids, n, temperature, top_k, top_p=1.0, seed=None):
        generation = self.model.generate(ids, n, temperature, top_k, top_p, seed=seed)
        list(generation)
        return generation.tokens, generation.finish

    def expected(self, tokens_finish, max_tokens, stop):
        """(text, finish_reason) for a max_tokens cut of a reference and an optional stop string."""
        tokens, finish = tokens_finish
        if max_tokens <= len(
            tokens
        ):  # the server stops at max_tokens without looking at the next token (an EOS or not)
            tokens, finish = tokens[:max_tokens], "length"
        text = self.model.detokenize(tokens)
        if stop and stop in text:
            return text[: text.index(stop)], "stop"
        return text, finish


class Stress:
    WEIGHTS = {
        "greedy": 40,
        "sampled": 10,
        "garbage": 14,
        "bad-host": 3,
        "oversized": 6,
        "chunked-oversized": 3,
        "over-context": 6,
        "disconnect": 10,
        "raw-bytes": 4,
        "health": 4,
        "tokenize-long": 1,
    }
    EXPECTED = {
        "garbage": {400, 404, 405},
        "bad-host": {400},
        "oversized": {413},
        "chunked-oversized": {413},
        "over-context": {400},
        "health": {200},
    }

    def __init__(self, url, refs: References, max_body_bytes, seed):
        self.url, self.refs, self.max_body = url, refs, max_body_bytes
        self.port = urllib.parse.urlsplit(url).port
        self.statuses = collections.defaultdict(collections.Counter)
        self.latencies, self.failures, self.lock = [], [], threading.Lock()
        self.rng = random.Random(seed)

    def record(self, kind, status, seconds=None, failure=None):
        with self.lock:
            self.statuses[kind][status] += 1
            if seconds is not None:
                self.latencies.append(seconds)
            if failure:
                self.failures.append(f"{kind}: {failure}")

    def client(self, index, deadline):
        rng = random.Random(self.rng.random() + index)
        kinds, weights = zip(*self.WEIGHTS.items())
        with httpx.Client(base_url=self.url, timeout=60) as http:
            while time.monotonic() < deadline:
                kind = rng.choices(kinds, weights)[0]
                try:
                    getattr(self, kind.replace("-", "_"))(http, rng, kind)
                except Exception as e:  # a client-side failure: the server broke a connection it should not have
                    self.record(kind, type(e).__name__, failure=f"{type(e).__name__}: {e}")

    # well-formed requests: the answer must be the reference's
    def greedy(self, http, rng, kind):
        self.generate(http, rng, kind, sampled=False)

    def sampled(self, http, rng, kind):
        self.generate(http, rng, kind, sampled=True)

    def generate(self, http, rng, kind, sampled):
        endpoint, prompt = rng.choice(["completion", "chat"]), rng.choice(PROMPTS)
        key = (endpoint, prompt)
        if sampled:
            seed, max_tokens, stop = rng.randrange(4), 16, None
            body = {
                "temperature": self.refs.samples[0],
                "top_k": self.refs.samples[1],
                "top_p": self.refs.samples[2],
                "seed": seed,
            }
            reference = self.refs.sampled[key, seed]
        else:
            max_tokens, body, reference = (
                rng.randint(1, References.MAX_TOKENS),
                {"temperature": 0},
                self.refs.greedy[key],
            )
            full = self.refs.model.detokenize(reference[0])
            stop = full[4:7] if len(full) > 8 and rng.random() < 0.3 else None
            if stop:
                body["stop"] = [stop]
        body["max_tokens"] = max_tokens
        if endpoint == "completion":
            path, body["prompt"] = "/v1/completions", prompt
        else:
            path, body["messages"] = "/v1/chat/completions", [{"role": "user", "content": prompt}]
        stream = rng.random() < 0.5
        started = time.monotonic()
        status, text, finish = self.send(http, path, {**body, "stream": stream}, endpoint == "chat")
        seconds = time.monotonic() - started
        want = self.refs.expected(reference, max_tokens, stop)
        wrong = status == 200 and (text, finish) != want
        failure = (
            f"status {status}"
            if status not in (200, 429)
            else f"{path} {body} stream={stream}: got {(text, finish)!r}, want {want!r}"
            if wrong
            else None
        )
        self.record(kind, status, seconds if status == 200 else None, failure)

    def send(self, http, path, body, chat):
        if not body["stream"]:
            response = http.post(path, json=body)
            if response.status_code != 200:
                return response.status_code, None, None
            choice = response.json()["choices"][0]
            return 200, choice["message"]["content"] if chat else choice["text"], choice["finish_reason"]
        parts, finish = [], None
        with http.stream("POST", path, json=body) as response:
            if response.status_code != 200:
                response.read()
                return response.status_code, None, None
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    choice = json.loads(line[6:])["choices"][0]
                    parts.append((choice["delta"].get("content") if chat else choice["text"]) or "")
                    finish = choice["finish_reason"] or finish
        return 200, "".join(parts), finish

    # hostile requests: each must get its 4xx, and leave the server serving
    def garbage(self, http, rng, kind):
        bodies = [
            b"{not json",
            os.urandom(rng.randint(1, 2000)),
            b'{"prompt": 42}',
            b'["a list"]',
            b'{"prompt": "x", "temperature": NaN}',
            b'{"prompt": "x", "top_p": Infinity}',
            b'{"prompt": "x", "temperature": 1e-320}',
            b'{"prompt": "x", "seed": -7}',
            b'{"prompt": [1, 99999999]}',
            b'{"messages": [{"role": "wizard", "content": "hi"}]}',
            json.dumps({"prompt": "x", "max_tokens": -5}).encode(),
            b"\x00" * 64,
        ]
        choice = rng.randrange(len(bodies) + 2)
        if choice == len(bodies):
            response = http.get("/v1/" + "".join(rng.choices("abcxyz/._%", k=12)))
        elif choice == len(bodies) + 1:
            response = http.get("/v1/completions")
        else:
            path = rng.choice(["/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize"])
            response = http.post(path, content=bodies[choice], headers={"Content-Type": "application/json"})
        self.expect(kind, response)

    def bad_host(self, http, rng, kind):
        self.expect(kind, http.get("/v1/models", headers={"Host": f"rebound.example:{self.port}"}))

    def oversized(self, http, rng, kind):
        body = json.dumps({"prompt": "word " * (self.max_body // 5 + rng.randint(1, 10000))}).encode()
        self.expect(kind, http.post("/v1/completions", content=body, headers={"Content-Type": "application/json"}))

    def chunked_oversized(self, http, rng, kind):
        chunk = b" " * 65536
        chunks = iter([b'{"prompt": "'] + [chunk] * (self.max_body // len(chunk) + 2) + [b'"}'])
        self.expect(kind, http.post("/v1/completions", content=chunks, headers={"Content-Type": "application/json"}))

    def over_context(self, http, rng, kind):
        """A prompt longer than a slot (some just under the body limit: tokenized in full, then refused), or
        max_tokens that cannot fit."""
        choice = rng.randrange(3)
        if choice == 0:
            body = {"prompt": "word " * (self.refs.n_ctx + 50), "max_tokens": 4}
        elif choice == 1:
            words = "".join(rng.choices("abcdefghij klmnop", k=self.max_body - 100))
            body = {"prompt": words, "max_tokens": 4}
        else:
            body = {"prompt": rng.choice(PROMPTS), "max_tokens": self.refs.n_ctx}
        response = http.post("/v1/completions", json=body)
        self.expect(kind, response, code="context_length_exceeded")

    def tokenize_long(self, http, rng, kind):
        """A long text (a quarter of the body limit) through /tokenize: the ids must be the model's own."""
        text = "".join(rng.choices("abcdefghij klmnop", k=self.max_body // 4))
        started = time.monotonic()
        response = http.post("/tokenize", json={"content": text})
        seconds = time.monotonic() - started
        wrong = response.status_code == 200 and response.json()["tokens"] != self.refs.model.tokenize(
            text, add_bos=False
        )
        self.record(
            kind,
            response.status_code,
            seconds,
            failure=f"status {response.status_code}"
            if response.status_code != 200
            else "ids differ from the model's"
            if wrong
            else None,
        )

    def health(self, http, rng, kind):
        self.expect(kind, http.get("/health"))

    def expect(self, kind, response, code=None):
        status = response.status_code
        failure = None
        if status not in self.EXPECTED[kind]:
            failure = f"status {status}: {response.text[:200]}"
        elif status != 200:
            error = response.json().get("error", {})
            if not error.get("message") or (code and error.get("code") != code):
                failure = f"not an OpenAI-shaped error: {response.text[:200]}"
        self.record(kind, status, failure=failure)

    def disconnect(self, http, rng, kind):
        """A stream dropped after a few chunks: the slot must be freed (checked at the end)."""
        body = {"prompt": rng.choice(PROMPTS), "max_tokens": 200, "temperature": 0.8, "stream": True}
        with http.stream("POST", "/v1/completions", json=body) as response:
            lines = response.iter_lines()
            for _ in range(rng.randint(1, 6)):
                next(lines, None)
            self.record(
                kind,
                response.status_code,
                failure=None if response.status_code == 200 else f"status {response.status_code}",
            )

    def raw_bytes(self, http, rng, kind):
        """Not HTTP at all: the server may answer 400 or close; it must not hang or fall over."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as raw:
            raw.sendall(
                rng.choice(
                    [
                        os.urandom(300),
                        b"GET / HTTP/9.9\r\n\r\n",
                        b"POST /v1/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                        b"\r\n" * 50 + b"HELLO\r\n\r\n",
                    ]
                )
            )
            raw.shutdown(socket.SHUT_WR)
            answer = raw.recv(64)
        status = int(answer.split()[1]) if answer.startswith(b"HTTP/1.1 ") else "closed"
        self.record(kind, status, failure=None if status in (400, "closed") else f"answered {answer!r}")


def watch_health(url, stop, worst):
    with httpx.Client(base_url=url, timeout=60) as http:
        while not stop.wait(0.25):
            started = time.monotonic()
            http.get("/health")
            worst[0] = max(worst[0], time.monotonic() - started)


def settle(url, seconds=30):
    """Waits until every slot is idle and nothing waits; -> the /health body."""
    deadline = time.monotonic() + seconds
    while True:
        health = httpx.get(url + "/health", timeout=30).json()
        if (health["slots_processing"], health["requests_waiting"]) == (0, 0) or time.monotonic() > deadline:
            return health
        time.sleep(0.2)


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100 * len(values)))] if values else float("nan")


def stress(args, url, pid, server_log) -> int:
    print("load_test: computing the reference answers ...", flush=True)
    n_ctx = httpx.get(url + "/v1/models", timeout=30).json()["data"][0]["meta"]["n_ctx"]
    refs = References(args.model, n_ctx, (0.8, 40, 0.95))
    run = Stress(url, refs, args.max_body_bytes, args.seed)
    with httpx.Client(base_url=url, timeout=60) as http:  # one request of each kind first: the baseline
        for kind in Stress.WEIGHTS:  # includes what any request loads once
            getattr(run, kind.replace("-", "_"))(http, random.Random(0), kind)
    settle(url)
    time.sleep(1)
    before = memory_mib(pid)
    stop, worst = threading.Event(), [0.0]
    watcher = threading.Thread(target=watch_health, args=(url, stop, worst), daemon=True)
    watcher.start()
    run.statuses.clear()
    run.latencies.clear()
    deadline = time.monotonic() + args.duration
    started = time.monotonic()
    clients = [threading.Thread(target=run.client, args=(i, deadline), daemon=True) for i in range(args.clients)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(args.duration + 120)
    seconds = time.monotonic() - started
    stop.set()
    hung = sum(c.is_alive() for c in clients)
    health = settle(url)
    time.sleep(2)
    after, peak = memory_mib(pid), memory_mib(pid, "VmHWM")

    served = sum(sum(c.values()) for c in run.statuses.values())
    print(f"\n{served} requests in {seconds:.1f} s from {args.clients} clients ({served / seconds:.1f}/s)")
    print(f"{'kind':<18} statuses")
    for kind in Stress.WEIGHTS:
        counts = run.statuses.get(kind, {})
        print(f"{kind:<18} " + ", ".join(f"{s}: {n}" for s, n in sorted(counts.items(), key=str)))
    ms = [1000 * s for s in run.latencies]
    print(
        f"latency of {len(ms)} answered generations and long tokenizations: p50 {percentile(ms, 50):.0f} ms, p99 {percentile(ms, 99):.0f} ms"
        f"; worst /health {1000 * worst[0]:.0f} ms"
    )
    print(f"server RSS: {before:.0f} MiB before, {after:.0f} MiB after (peak {peak:.0f} MiB)")
    problems = list(run.failures)
    if server_log is not None:  # uvicorn warns of each invalid request (expected here); a traceback is a bug
        server_log.seek(0)
        log = server_log.read()
        print(
            f"server log: {log.count('Invalid HTTP request received')} invalid-request warnings, "
            f"{log.count('Traceback')} tracebacks"
        )
        if "Traceback" in log:
            problems.append("the server logged a traceback:\n" + log[log.index("Traceback") :][:3000])
    if hung:
        problems.append(f"{hung} clients still waiting after the deadline")
    if (health["slots_processing"], health["requests_waiting"]) != (0, 0):
        problems.append(f"slots still busy at the end: {health}")
    if after > before + args.max_rss_growth:
        problems.append(f"RSS grew by {after - before:.0f} MiB (more than --max-rss-growth {args.max_rss_growth})")
    for problem in problems[:20]:
        print("FAIL", problem)
    print(
        f"{len(run.failures)} wrong answers or statuses; "
        + (
            "FAILED"
            if problems
            else "all well-formed requests answered as the model answers alone, every hostile one refused"
        )
    )
    refs.model.close()
    return 1 if problems else 0


# ---- scaling ----


def connect(url, timeout) -> http.client.HTTPConnection:
    """A keep-alive connection for one_request. The timed clients share the machine's cores with the server, so they
    read the streams with the standard library's HTTP client: 8 streams' 1,024 events took httpx 0.25-0.35 s of CPU,
    http.client 0.06-0.07 s."""
    parts = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def one_request(conn, prompt, max_tokens) -> tuple[int, float]:
    """Streams one greedy completion, parsing every event; returns its completion tokens (from the usage chunk) and
    the seconds to its first token."""
    body = {
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    tokens, first = 0, None
    start = time.monotonic()
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"/v1/completions answered {response.status}: {response.read()[:300]!r}")
    for line in response:
        if line.startswith(b"data: {"):
            chunk = json.loads(line[6:])
            if first is None and chunk.get("choices"):
                first = time.monotonic() - start
            tokens = (chunk.get("usage") or {}).get("completion_tokens", tokens)
    return tokens, first


def run_round(url, n_clients, n_requests, max_tokens, time_limit) -> tuple[int, int, float, list[float]]:
    """-> (requests done, completion tokens, wall seconds, times to first token) with n_clients clients at once."""
    done, tokens, ttfts, lock = [0], [0], [], threading.Lock()
    deadline = time.monotonic() + time_limit

    def client_loop(index):
        with contextlib.closing(connect(url, time_limit + 60)) as conn:
            for k in range(n_requests):
                if time.monotonic() > deadline:
                    return
                n, first = one_request(conn, PROMPTS[(index + k) % len(PROMPTS)], max_tokens)
                with lock:
                    done[0], tokens[0] = done[0] + 1, tokens[0] + n
                    ttfts.append(first)

    start = time.monotonic()
    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0], tokens[0], time.monotonic() - start, ttfts


def long_prompt(client, n_tokens) -> list[int]:
    """n_tokens token ids of varied text, cut to fit the server's context with room for a token."""
    n_ctx = client.get("/v1/models").json()["data"][0]["meta"]["n_ctx"]
    n_tokens = min(n_tokens, n_ctx - 2)
    words = " ".join(random.Random(0).choices(PROMPTS + ["and", "of", "the", "a", "is", "with"], k=2 * n_tokens))
    return client.post("/tokenize", json={"content": words}).json()["tokens"][:n_tokens]


def ttft_under_load(url, n_streams, long_ids, samples, time_limit) -> dict[str, list[float]]:
    """Seconds to the first token of a short prompt (samples of each): idle; while n_streams others stream; and while
    they stream and the long prompt is being read. Each short prompt is sent after a random pause of up to four idle
    TTFTs (about a pass), so it lands at a random point of the pass under way, not just after one ended; during the
    long prompt, short prompts follow one another until its first token, and the long prompt is sent again until
    `samples` of them started while it was being read; "long" holds the long prompt's own TTFTs."""
    out, rng = {}, random.Random(0)
    with contextlib.closing(connect(url, time_limit + 60)) as client:
        out["idle"] = [one_request(client, PROMPTS[0], 1)[1] for _ in range(samples)]
        gap = 4 * percentile(out["idle"], 50)

        def short():  # sent at a random point of the pass under way
            time.sleep(rng.uniform(0, gap))
            return one_request(client, PROMPTS[0], 1)[1]

        spawn = multiprocessing.get_context("spawn")
        stop = spawn.Event()
        # in a process of their own, so reading their tokens does not hold up this one's clock (the GIL)
        streams = spawn.Process(target=stream_until, args=(url, n_streams, stop, time_limit), daemon=True)
        streams.start()
        try:
            time.sleep(1)  # the streams are decoding
            out["streams"] = [short() for _ in range(samples)]
            out["streams+long"], out["long"] = [], []
            deadline = time.monotonic() + time_limit
            while len(out["streams+long"]) < samples and time.monotonic() < deadline:
                read = threading.Event()  # set when the long prompt's first token (the end of its prefill) arrives

                def send_long(read=read):
                    with contextlib.closing(connect(url, time_limit + 60)) as own:
                        out["long"].append(one_request(own, long_ids, 1)[1])
                    read.set()

                long = threading.Thread(target=send_long)
                long.start()
                while len(out["streams+long"]) < samples:
                    time.sleep(rng.uniform(0, gap))
                    if read.is_set():
                        break
                    out["streams+long"].append(one_request(client, PROMPTS[0], 1)[1])
                long.join()
        finally:
            stop.set()
            streams.join(time_limit + 60)
    return out


def stream_until(url, n_streams, stop, time_limit):
    """n_streams clients streaming 64-token completions one after another until stop is set."""

    def stream(i):
        with contextlib.closing(connect(url, time_limit + 60)) as own:
            while not stop.is_set():
                one_request(own, PROMPTS[i % len(PROMPTS)], 64)

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(n_streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def pass_counts(url) -> dict[str, float]:
    """The server's counters of passes, their seconds and the generated tokens they fed ({} if it has none)."""
    text = httpx.get(url + "/metrics", timeout=30).text
    return {m[1]: float(m[2]) for m in re.finditer(r"^tritlm_(\w+)_total (\S+)$", text, re.M)}


def scaling(args, url, pid, server_log) -> int:
    run_round(url, 1, 1, 4, args.time_limit)  # warm-up: page in the weights
    rates = collections.defaultdict(list)  # clients -> tok/s of each repetition
    print(
        f"{'clients':>7} {'requests':>8} {'tokens':>7} {'seconds':>8} {'tok/s':>8} {'speed-up':>8} {'TTFT p50':>9} "
        f"{'engine':>6} {'streams/pass':>12}"
    )
    for _ in range(args.repeat):  # the rounds alternate, so each speed-up divides by a round run moments before
        for n in args.clients:
            before = pass_counts(url)
            done, tokens, seconds, ttfts = run_round(url, n, args.requests, args.max_tokens, args.time_limit)
            after = pass_counts(url)
            rates[n].append(tokens / seconds)
            base = rates[args.clients[0]][-1]
            work = {k: after[k] - before[k] for k in ("passes", "pass_seconds", "decoded_tokens") if k in after}
            engine = (
                f"{100 * work['pass_seconds'] / seconds:>5.0f}% {work['decoded_tokens'] / max(work['passes'], 1):>12.1f}"
                if work
                else f"{'-':>6} {'-':>12}"
            )
            print(
                f"{n:>7} {done:>8} {tokens:>7} {seconds:>8.2f} {tokens / seconds:>8.1f} {tokens / seconds / base:>7.2f}x "
                f"{percentile(ttfts, 50) * 1000:>7.0f}ms {engine}",
                flush=True,
            )
    if args.repeat > 1:
        first = rates[args.clients[0]]
        print(
            f"median of {args.repeat} alternating repetitions: "
            + ", ".join(
                f"{n} clients {statistics.median(rates[n]):.1f} tok/s "
                f"({statistics.median([r / b for r, b in zip(rates[n], first)]):.2f}x)"
                for n in args.clients
            ),
            flush=True,
        )
    if args.long_prompt:
        with httpx.Client(base_url=url, timeout=60) as client:
            long_ids = long_prompt(client, args.long_prompt)
        n_streams = max(1, max(args.clients) - 2)  # a slot each for the long prompt and the short one
        t = ttft_under_load(url, n_streams, long_ids, args.ttft_samples, args.time_limit)
        idle = percentile(t["idle"], 50)
        print(f"TTFT of a short prompt, p50 (max) of {args.ttft_samples}: idle {idle * 1000:.0f} ms", flush=True)
        for key, what in (
            ("streams", f"while {n_streams} streams decoding"),
            ("streams+long", f"+ a {len(long_ids)}-token prompt being read"),
        ):
            p50 = percentile(t[key], 50)
            print(f"  {what}: {p50 * 1000:.0f} ms ({max(t[key]) * 1000:.0f} ms), {p50 / idle:.2f}x idle", flush=True)
        print(
            f"  the long prompt's own TTFT (its prefill beside the streams): {percentile(t['long'], 50):.2f} s",
            flush=True,
        )
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("stress", help="hostile mixed load; checks every answer")
    s.add_argument("--clients", type=int, default=16)
    s.add_argument("--duration", type=float, default=30, help="seconds of load (then the clients finish)")
    s.add_argument("--parallel", type=int, default=4, help="server slots (with -m)")
    s.add_argument("--max-body-bytes", type=int, default=1 << 20, help="the server's limit (with --url: its own)")
    s.add_argument("--max-rss-growth", type=float, default=64, help="MiB the server's RSS may end above its baseline")
    s.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("scaling", help="decoding throughput and time to first token with 1, 2, 4, 8 clients")
    c.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4, 8])
    c.add_argument("--requests", type=int, default=2, help="requests per client per round")
    c.add_argument("--max-tokens", type=int, default=64)
    c.add_argument(
        "--repeat", type=int, default=1, help="run the rounds this many times, alternating; report the medians"
    )
    c.add_argument("--time-limit", type=float, default=120, help="seconds per round before no new requests")
    c.add_argument("--long-prompt", type=int, default=2000, help="tokens of the long prompt in the TTFT test (0: skip)")
    c.add_argument("--ttft-samples", type=int, default=5, help="short prompts timed per TTFT setting")
    c.add_argument("-b", "--batch-size", type=int, default=None, help="the server's tokens per step (with -m)")
    c.add_argument("--pass-limit", type=float, default=None, help="the server's --pass-limit (with -m)")
    for q in (s, c):
        q.add_argument("-m", "--model", required=True, help="the .gguf (served, and stress's reference)")
        q.add_argument("--url", help="a running loopback server of that model instead, e.g. http://127.0.0.1:8080")
        q.add_argument("-t", "--threads", type=int, default=None, help="server threads (with -m)")
        q.add_argument("-c", "--ctx-size", type=int, default=None, help="server slot context in tokens (with -m)")
    args = p.parse_args(argv)
    limit = int(getattr(args, "duration", 0) or len(args.clients) * getattr(args, "repeat", 1) * args.time_limit) + 600

    def over_time(signum, frame):  # a hung server or client: stop anyway (the finally below ends the server)
        raise SystemExit(f"load_test: still running after {limit} s, stopped")

    signal.signal(signal.SIGALRM, over_time)
    signal.alarm(limit)

    proc = server_log = None
    if args.url:
        url, pid = args.url.rstrip("/"), None
        check_loopback(url)
    else:
        parallel = max(args.clients) if args.mode == "scaling" else args.parallel
        if args.mode == "stress":
            extra = ["--max-body-bytes", str(args.max_body_bytes)]
        else:
            extra = ["-b", str(args.batch_size)] if args.batch_size else []
            extra += ["--pass-limit", str(args.pass_limit)] if args.pass_limit is not None else []
        server_log = tempfile.TemporaryFile("w+")
        proc, url = start_server(args.model, parallel, args.threads, args.ctx_size, extra, server_log)
        pid = proc.pid
    try:
        return (stress if args.mode == "stress" else scaling)(args, url, pid, server_log)
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
