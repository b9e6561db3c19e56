"""`tritlm serve --replicas`: the server's own tests (tests/test_server.py, imported below so pytest runs them
here too) pass against two Ray Serve replicas of the app; killing one replica's process fails only the requests
it was answering, with an HTTP error, while the other replica's answers complete, and Ray starts a new one.
Bad input (a missing GGUF, an unreachable cluster) is one line on stderr."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.checkpoints import full_forward_greedy
from tests.conftest import REPO
from tests.test_server import (
    PROMPT,
    test_bad_requests_get_openai_errors,  # noqa: F401
)

pytestmark = pytest.mark.slow  # a Ray cluster and two deployments: about a minute

N_CTX = 256  # the context test_server's model fixture uses


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(ray_cluster, tiny_gguf):
    """Two replicas of the app (0.5 CPU and 1 thread each) behind Ray's proxy on a free loopback port, built as
    `serve run tritlm.cluster.serve:build ...` and a RayService build it."""
    from ray import serve

    from tritlm.cluster.serve import build, deploy

    app = build(
        {
            "model": tiny_gguf,
            "threads": "1",
            "ctx_size": str(N_CTX),
            "parallel": "2",
            "replicas": "2",
            "replica_cpus": "0.5",
        }
    )
    url = deploy(app, port=free_port())
    try:
        yield url, None
    finally:
        serve.shutdown()


def replica_pids() -> dict:
    """{replica actor name: its process id} of the running replicas."""
    import ray

    pids = {}
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor["name"].startswith("SERVE_REPLICA::"):
            handle = ray.get_actor(actor["name"], namespace=actor["namespace"])
            pids[actor["name"]] = ray.get(handle.__ray_call__.remote(lambda replica: os.getpid()))
    return pids


def test_killed_replica_fails_only_its_requests(server, model):
    from ray import serve

    from tests.slow_replica import STEP_SECONDS, SlowReplica
    from tritlm.cluster.serve import application

    serve.run(
        application(model.path, threads=1, n_ctx=N_CTX, parallel=2, replicas=2, replica_cpus=0.5, replica=SlowReplica),
        name="tritlm",
        route_prefix="/",
    )
    url = server[0]
    before = replica_pids()
    assert len(before) == 2

    n_tokens = 60  # 3 s per answer at STEP_SECONDS: the kill lands mid-answer
    ids = model.tokenize(PROMPT, add_bos=True, special=True)
    want = model.detokenize(full_forward_greedy(model, ids, n_tokens))
    outcomes = [None] * 4

    def ask(i):
        started = time.monotonic()
        try:
            r = httpx.post(
                url + "/v1/completions", timeout=60, json={"prompt": PROMPT, "max_tokens": n_tokens, "temperature": 0}
            )
            outcomes[i] = (r.status_code, r.json()["choices"][0]["text"] if r.status_code == 200 else r.text)
        except httpx.HTTPError as e:
            outcomes[i] = ("broken", repr(e))
        outcomes[i] += (time.monotonic() - started,)

    askers = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for t in askers:
        t.start()
    time.sleep(20 * STEP_SECONDS)  # all four admitted (two per replica: the proxy routes to the less busy one)
    victim = sorted(before.values())[0]
    os.kill(victim, signal.SIGKILL)
    for t in askers:
        t.join(90)
    answered = [o for o in outcomes if o[0] == 200]
    failed = [o for o in outcomes if o[0] != 200]
    assert all(text == want for _, text, _ in answered), outcomes
    assert len(answered) == 2 and len(failed) == 2, outcomes  # the victim's two, and only those
    assert all(status == 500 for status, _, _ in failed), outcomes  # Ray's proxy: "Internal Server Error"
    assert all(seconds < 30 for _, _, seconds in failed), outcomes  # they fail, they do not hang

    deadline = time.monotonic() + 60  # Ray replaces the dead replica
    while time.monotonic() < deadline:
        after = replica_pids()
        if len(after) == 2 and victim not in after.values():
            break
        time.sleep(0.5)
    assert len(after) == 2 and victim not in after.values(), after
    for _ in range(4):  # both replicas answer again
        r = httpx.post(url + "/v1/completions", json={"prompt": PROMPT, "max_tokens": 8, "temperature": 0}, timeout=60)
        assert r.status_code == 200 and r.json()["choices"][0]["text"] == model.detokenize(
            full_forward_greedy(model, ids, 8)
        )


def run_serve(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "tritlm", "serve", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def test_replica_that_cannot_start_is_one_line(ray_cluster, tiny_gguf, tmp_path):
    from tritlm.cluster.serve import application, deploy

    cut = tmp_path / "cut.gguf"
    cut.write_bytes(open(tiny_gguf, "rb").read()[:100_000])  # on every node (this one), but truncated
    with pytest.raises(ValueError) as error:  # after Ray Serve's three tries
        deploy(application(str(cut), replicas=1, replica_cpus=0.5), port=free_port())
    assert str(error.value).startswith(f"Ray Serve: replica on {socket.gethostname()}: {cut}: truncated GGUF file")
    assert "\n" not in str(error.value)


def test_bad_input(ray_cluster, tiny_gguf, tmp_path):
    missing = run_serve("-m", str(tmp_path / "no-such.gguf"), "--replicas", "2", "--ray-address", ray_cluster)
    assert missing.returncode == 1 and missing.stderr.splitlines()[-1] == (
        f"tritlm serve: error: {tmp_path / 'no-such.gguf'}: no such model file on Ray node 127.0.0.1"
    )
    closed = f"127.0.0.1:{free_port()}"
    unreachable = run_serve("-m", tiny_gguf, "--replicas", "2", "--ray-address", closed)
    assert unreachable.returncode == 1
    assert unreachable.stderr == f"tritlm serve: error: Ray cluster at {closed} is not reachable: Connection refused\n"
