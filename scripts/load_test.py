"""Aggregate decoding throughput of `tritlm serve` with 1, 2, 4... concurrent streaming clients.

    .venv/bin/python scripts/load_test.py -m models/model.gguf --clients 1 2 4 --max-tokens 64

Starts `tritlm serve` on a free loopback port (or uses --url, which must be loopback), then for each client
count runs that many clients, each sending --requests streaming completions one after another. Prints
completion tokens per second over the wall time of each round, and the speed-up over one client.
Bounded: each round stops sending new requests after --time-limit seconds."""
import argparse
import ipaddress
import json
import re
import subprocess
import sys
import threading
import time
import urllib.parse

import httpx

PROMPTS = ["The history of", "def main():", "Once upon a time", "import numpy as np", "The weather today",
           "In mathematics, a", "Dear colleagues,", "class Node:"]


def start_server(model, parallel, threads, ctx_size):
    """`tritlm serve` in a child process on a free loopback port; returns (process, base URL)."""
    cmd = [sys.executable, "-m", "runtime.cli", "serve", "-m", model, "--port", "0", "--parallel", str(parallel)]
    cmd += ["-t", str(threads)] if threads else []
    cmd += ["-c", str(ctx_size)] if ctx_size else []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if match := re.search(r"chat page: (http://\S+?)/?$", line.strip()):
            return proc, match.group(1)
    proc.wait()
    raise SystemExit(f"load_test: the server exited ({proc.returncode}) before printing its URL")


def check_loopback(url):
    host = urllib.parse.urlsplit(url).hostname or ""
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"load_test: refusing non-loopback URL {url}")


def one_request(client, prompt, max_tokens) -> int:
    """Streams one greedy completion; returns its completion tokens (from the usage chunk)."""
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    tokens = 0
    with client.stream("POST", "/v1/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data: {"):
                tokens = (json.loads(line[6:]).get("usage") or {}).get("completion_tokens", tokens)
    return tokens


def run_round(url, n_clients, n_requests, max_tokens, time_limit) -> tuple[int, int, float]:
    """-> (requests done, completion tokens, wall seconds) with n_clients clients at once."""
    done, tokens, lock = [0], [0], threading.Lock()
    deadline = time.monotonic() + time_limit

    def client_loop(index):
        with httpx.Client(base_url=url, timeout=time_limit + 60) as client:
            for k in range(n_requests):
                if time.monotonic() > deadline:
                    return
                n = one_request(client, PROMPTS[(index + k) % len(PROMPTS)], max_tokens)
                with lock:
                    done[0], tokens[0] = done[0] + 1, tokens[0] + n

    start = time.monotonic()
    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0], tokens[0], time.monotonic() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("-m", "--model", help="start `tritlm serve` on this .gguf")
    where.add_argument("--url", help="a running server on this machine, e.g. http://127.0.0.1:8080")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--requests", type=int, default=2, help="requests per client per round")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--time-limit", type=float, default=120, help="seconds per round before no new requests")
    p.add_argument("-t", "--threads", type=int, default=None, help="server threads (with -m)")
    p.add_argument("-c", "--ctx-size", type=int, default=None, help="server slot context (with -m)")
    args = p.parse_args(argv)

    proc = None
    if args.model:
        proc, url = start_server(args.model, max(args.clients), args.threads, args.ctx_size)
    else:
        url = args.url.rstrip("/")
        check_loopback(url)
    try:
        run_round(url, 1, 1, 4, args.time_limit)  # warm-up: page in the weights
        base = None
        print(f"{'clients':>7} {'requests':>8} {'tokens':>7} {'seconds':>8} {'tok/s':>8} {'speed-up':>8}")
        for n in args.clients:
            done, tokens, seconds = run_round(url, n, args.requests, args.max_tokens, args.time_limit)
            rate = tokens / seconds
            base = base or rate
            print(f"{n:>7} {done:>8} {tokens:>7} {seconds:>8.2f} {rate:>8.1f} {rate / base:>7.2f}x", flush=True)
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
