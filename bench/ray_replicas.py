"""Ray Serve replicas against one plain `tritlm serve`, on this machine, over HTTP from the same load generator.

All three servers run at once and the measurements alternate between them, round after round, so a noisy
neighbour hurts each alike: the plain server (uvicorn in its own process, 1 thread), and behind Ray's proxy an
application of 1 replica (/one) and one of 2 replicas (/two), each replica 1 thread (and 0.5 of Ray's CPUs, so
all three fit on 2 cores; idle ones cost nothing).
1. Overhead: the median latency of a 1-token completion sent one at a time; Ray's minus the plain server's is
   what Ray adds per request.
2. Throughput: `--clients` threads send completions of --max-tokens tokens (greedy) until --requests are done;
   aggregate completion tokens/s.
Each figure is the median over --rounds rounds.

usage: python bench/ray_replicas.py MODEL.gguf [--rounds 3] [--requests 16] [--clients 4] [--max-tokens 32]
       [--parallel 2] [--latency-requests 20]   (needs pip install 'tritlm[ray]')"""

import argparse
import concurrent.futures
import logging
import os
import socket
import statistics
import subprocess
import sys
import time

import httpx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

PROMPT = "The weight of the model"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not come up")


def complete(client, url, max_tokens) -> int:
    r = client.post(url + "/v1/completions", json={"prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0})
    r.raise_for_status()
    return r.json()["usage"]["completion_tokens"]


def latency_ms(url: str, n: int = 20) -> float:
    with httpx.Client(timeout=60) as client:
        complete(client, url, 1)  # warm-up
        times = []
        for _ in range(n):
            start = time.perf_counter()
            complete(client, url, 1)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def tokens_per_second(url: str, requests: int, clients: int, max_tokens: int) -> float:
    with (
        httpx.Client(timeout=600, limits=httpx.Limits(max_connections=clients)) as client,
        concurrent.futures.ThreadPoolExecutor(clients) as pool,
    ):
        start = time.perf_counter()
        tokens = sum(pool.map(lambda _: complete(client, url, max_tokens), range(requests)))
        return tokens / (time.perf_counter() - start)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--requests", type=int, default=16)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--parallel", type=int, default=2, help="slots per server / replica")
    p.add_argument("--latency-requests", type=int, default=20, help="1-token completions per latency figure")
    a = p.parse_args()

    from ray import serve

    from tritlm.cluster import connect
    from tritlm.cluster.serve import application

    plain_port, ray_port = free_port(), free_port()
    plain = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tritlm",
            "serve",
            "-m",
            a.model,
            "-t",
            "1",
            "--port",
            str(plain_port),
            "--parallel",
            str(a.parallel),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    ray = connect(None)
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": ray_port})
        targets = {"plain tritlm serve, 1 thread": f"http://127.0.0.1:{plain_port}"}
        for name, replicas in (("one", 1), ("two", 2)):
            serve.run(
                application(a.model, threads=1, parallel=a.parallel, replicas=replicas, replica_cpus=0.5),
                name=name,
                route_prefix=f"/{name}",
            )
            targets[f"Ray Serve, {replicas} replica{'s' if replicas > 1 else ''} x 1 thread"] = (
                f"http://127.0.0.1:{ray_port}/{name}"
            )
        for url in targets.values():
            wait_ready(url)
            tokens_per_second(url, a.clients, a.clients, 2)  # every replica warmed up
        figures = {name: ([], []) for name in targets}
        for _ in range(a.rounds):
            for name, url in targets.items():
                figures[name][0].append(latency_ms(url, a.latency_requests))
                figures[name][1].append(tokens_per_second(url, a.requests, a.clients, a.max_tokens))
        serve.shutdown()
    finally:
        ray.shutdown()
        plain.terminate()
        plain.wait(30)

    print(
        f"\n{os.path.basename(a.model)}: {a.requests} requests x {a.max_tokens} tokens from {a.clients} clients, "
        f"{a.parallel} slots per server/replica; 1-token latency: median of "
        f"{a.latency_requests} one at a time; medians of "
        f"{a.rounds} alternating rounds\n"
    )
    print("| server | 1-token latency (ms) | aggregate tokens/s |\n|---|---:|---:|")
    med = {name: (statistics.median(ms), statistics.median(tps)) for name, (ms, tps) in figures.items()}
    for name, (ms, tps) in med.items():
        print(f"| {name} | {ms:.1f} | {tps:.1f} |")
    (plain_ms, plain_tps), (one_ms, one_tps), (two_ms, two_tps) = med.values()
    print(
        f"\nRay adds {one_ms - plain_ms:.1f} ms per request; 2 replicas / 1 replica: {two_tps / one_tps:.2f}x "
        f"aggregate tokens/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
