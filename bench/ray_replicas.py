"""Ray Serve replicas against one plain `tritlm serve`, on this machine, over HTTP from the same load generator.

1. Overhead: the median latency of a 1-token completion, sent one at a time, through the plain server
   (uvicorn in its own process) and through Ray's proxy to one replica; the difference is what Ray adds.
2. Throughput: `--clients` threads each send completions of --max-tokens tokens (greedy, so every answer is
   equally long) until --requests are done; aggregate tokens/s with 1 and with 2 replicas, each replica one
   thread and one CPU of Ray's, and the plain server at one thread as the reference.

usage: python bench/ray_replicas.py MODEL.gguf [--requests 24] [--clients 4] [--max-tokens 32] [--parallel 2]
(pip install 'tritlm[ray]'; the configurations run one after the other, so a busy machine hurts them alike
only roughly: run it on a quiet one.)"""
import argparse
import concurrent.futures
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


def latency_ms(url: str, n: int = 40) -> float:
    with httpx.Client(timeout=60) as client:
        for _ in range(5):  # warm-up
            complete(client, url, 1)
        times = []
        for _ in range(n):
            start = time.perf_counter()
            complete(client, url, 1)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def tokens_per_second(url: str, requests: int, clients: int, max_tokens: int) -> float:
    with httpx.Client(timeout=600, limits=httpx.Limits(max_connections=clients)) as client, \
            concurrent.futures.ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):  # every replica warmed up
            complete(client, url, 2)
        start = time.perf_counter()
        tokens = sum(pool.map(lambda _: complete(client, url, max_tokens), range(requests)))
        return tokens / (time.perf_counter() - start)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--requests", type=int, default=24)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--parallel", type=int, default=2, help="slots per server / replica")
    a = p.parse_args()
    rows = []

    port = free_port()
    plain = subprocess.Popen([sys.executable, "-m", "runtime.cli", "serve", "-m", a.model, "-t", "1", "--port",
                              str(port), "--parallel", str(a.parallel)], cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url)
        rows.append(("plain tritlm serve, 1 thread", latency_ms(url),
                     tokens_per_second(url, a.requests, a.clients, a.max_tokens)))
    finally:
        plain.terminate()
        plain.wait(30)

    from ray import serve

    from cluster import connect
    from cluster.serve import application, deploy
    ray = connect(None)
    try:
        for replicas in (1, 2):  # the second run replaces the first's deployment
            url = deploy(application(a.model, threads=1, parallel=a.parallel, replicas=replicas, replica_cpus=1),
                         port=port)
            wait_ready(url)
            rows.append((f"Ray Serve, {replicas} replica{'s' if replicas > 1 else ''} x 1 thread",
                         latency_ms(url) if replicas == 1 else None,
                         tokens_per_second(url, a.requests, a.clients, a.max_tokens)))
        serve.shutdown()
    finally:
        ray.shutdown()

    print(f"\n{os.path.basename(a.model)}: {a.requests} requests x {a.max_tokens} tokens from {a.clients} clients, "
          f"{a.parallel} slots per server; latency: 1-token completion, median of 40, one at a time\n")
    print("| server | 1-token latency (ms) | aggregate tokens/s |\n|---|---:|---:|")
    for name, ms, tps in rows:
        print(f"| {name} | {'' if ms is None else f'{ms:.1f}'} | {tps:.1f} |")
    print(f"\nRay adds {rows[1][1] - rows[0][1]:.1f} ms per request; 2 replicas / 1 replica: {rows[2][2] / rows[1][2]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
