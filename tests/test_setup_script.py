"""scripts/setup_and_serve.py end to end, offline: a repo id resolved through a local Hugging Face cache
(HF_HUB_OFFLINE=1), converted, served and queried; a second run finds the GGUF up to date; the embedded-model
path; --list and an unknown repo."""

import os
import re
import shutil
import signal
import subprocess
import sys

import httpx
import numpy as np
import pytest
from gguf import GGUFReader

from tritlm.converter.families import KNOWN_REPOS
from tritlm.converter.write import convert

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "setup_and_serve.py")
REPO = "microsoft/bitnet-b1.58-2B-4T"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_cache_with(checkpoint: str, cache: str, repo: str) -> None:
    """A Hugging Face cache holding `checkpoint` as the main revision of `repo`, as snapshot_download leaves it."""
    repo_dir = os.path.join(cache, "models--" + repo.replace("/", "--"))
    shutil.copytree(checkpoint, os.path.join(repo_dir, "snapshots", COMMIT))
    os.makedirs(os.path.join(repo_dir, "refs"))
    with open(os.path.join(repo_dir, "refs", "main"), "w") as f:
        f.write(COMMIT)


def run_script(*args, env, timeout=120):
    return subprocess.run([sys.executable, SCRIPT, *args], env=env, capture_output=True, text=True, timeout=timeout)


class Serving:
    """The script (or with `command`, another one) started as a child process; `.url` once it printed its
    banner, `.lines` all it printed."""

    def __init__(self, *args, env, command=(sys.executable, SCRIPT)):
        self.proc = subprocess.Popen(
            [*command, *args, "--port", "0"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines = []
        for line in self.proc.stdout:
            self.lines.append(line)
            if match := re.search(r"chat page: (http://\S+?)/?$", line.strip()):
                self.url = match.group(1)
            if "Ctrl-C stops the server" in line:
                assert httpx.get(self.url + "/health", timeout=30).json()["status"] == "ok"  # serving, Ctrl-C handled
                return
        self.proc.wait()
        pytest.fail(f"setup_and_serve exited {self.proc.returncode}:\n{''.join(self.lines)}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=30)


@pytest.fixture
def offline_env(tmp_path):
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}


def tensors(path):
    return {t.name: np.array(t.data) for t in GGUFReader(path).tensors}


def test_list_and_unknown_repo(offline_env):
    listed = run_script("--list", env=offline_env)
    assert listed.returncode == 0 and all(repo in listed.stdout for repo in KNOWN_REPOS)
    refused = run_script("someone/not-a-bitnet", env=offline_env)
    assert refused.returncode == 1
    assert "unsupported repo 'someone/not-a-bitnet'" in refused.stderr and REPO in refused.stderr
    missing = run_script(REPO + "-bf16", "--models-dir", "/nonexistent-models", env=offline_env)
    assert missing.returncode == 1 and "not in the Hugging Face cache" in missing.stderr


def test_hub_repo_from_cache_converts_serves_and_is_reused(tiny_checkpoints, offline_env, tmp_path):
    hub_cache_with(tiny_checkpoints["packed"], offline_env["HF_HUB_CACHE"], REPO)
    models = str(tmp_path / "models")
    os.makedirs(models)
    gguf_path = os.path.join(models, "bitnet-b1.58-2B-4T.tq2_0.gguf")  # tq2_0: a type gguf-py's reader knows

    server = Serving(REPO, "--type", "tq2_0", "--models-dir", models, "--parallel", "1", env=offline_env)
    try:
        assert any("curl " + server.url + "/v1/chat/completions" in line for line in server.lines)
        reply = httpx.post(
            server.url + "/v1/chat/completions",
            timeout=60,
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
        ).json()
        assert reply["usage"]["completion_tokens"] >= 1
    finally:
        assert server.stop() == 0
    # The Hub path delivered the same checkpoint: the same tensors as converting the folder directly.
    direct = str(tmp_path / "direct.gguf")
    convert(tiny_checkpoints["packed"], direct, "tq2_0", progress=False)
    expected, got = tensors(direct), tensors(gguf_path)
    assert expected.keys() == got.keys()
    assert all(np.array_equal(expected[name], got[name]) for name in expected)
    assert GGUFReader(gguf_path).fields["general.name"].contents() == "bitnet-b1.58-2B-4T"

    mtime = os.path.getmtime(gguf_path)
    again = Serving(REPO, "--type", "tq2_0", "--models-dir", models, "--parallel", "1", env=offline_env)
    assert again.stop() == 0
    assert any("up to date" in line for line in again.lines) and os.path.getmtime(gguf_path) == mtime


def test_embedded_model_by_default(tiny_checkpoints, offline_env, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(tiny_checkpoints["packed"], models / "bitnet-tiny")
    server = Serving("--type", "i2_s", "--models-dir", str(models), "--parallel", "1", env=offline_env)
    try:
        ids = httpx.post(server.url + "/tokenize", json={"content": "the model"}).json()["tokens"]
        assert httpx.post(server.url + "/detokenize", json={"tokens": ids}).json()["content"] == "the model"
    finally:
        assert server.stop() == 0
    assert (models / "bitnet-tiny.i2_s.gguf").exists()


def test_tritlm_serve_hf_converts_once_into_the_cache(tiny_checkpoints, offline_env, tmp_path):
    """`tritlm serve -hf REPO:TYPE` (llama-server's flag): the repo from the (offline) Hub cache, converted into
    $TRITLM_CACHE under the script's naming scheme, served; a second start reuses the file."""
    hub_cache_with(tiny_checkpoints["packed"], offline_env["HF_HUB_CACHE"], REPO)
    env = {**offline_env, "TRITLM_CACHE": str(tmp_path / "cache")}
    command = (sys.executable, "-m", "tritlm", "serve", "-hf", REPO + ":tq2_0", "--parallel", "1")
    server = Serving(env=env, command=command)
    try:
        reply = httpx.post(server.url + "/v1/completions", json={"prompt": "the", "max_tokens": 2}, timeout=60)
        assert reply.status_code == 200
    finally:
        assert server.stop() == 0
    gguf_path = tmp_path / "cache" / "bitnet-b1.58-2B-4T.tq2_0.gguf"
    direct = str(tmp_path / "direct.gguf")
    convert(tiny_checkpoints["packed"], direct, "tq2_0", progress=False)
    expected, got = tensors(direct), tensors(str(gguf_path))
    assert expected.keys() == got.keys() and all(np.array_equal(expected[n], got[n]) for n in expected)
    mtime = gguf_path.stat().st_mtime
    again = Serving(env=env, command=command)
    assert again.stop() == 0
    assert any("up to date" in line for line in again.lines) and gguf_path.stat().st_mtime == mtime
    bad = subprocess.run(
        [sys.executable, "-m", "tritlm", "serve", "-hf", REPO + ":q4_0"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "unknown type 'q4_0'" in bad.stderr and bad.stderr.count("\n") == 1
