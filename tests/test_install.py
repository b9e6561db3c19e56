"""`pip install .` (pyproject.toml's build, setup.py's package map) gives a working tritlm wherever it is run:
`from tritlm import Model` loads a model even from a folder holding a user's own runtime/ and converter/
packages, and the installed `tritlm serve` serves the chat page. Installed with --target (no dependencies:
those of this environment are used), so nothing outside the test's folder changes."""

import os
import re
import subprocess
import sys

import httpx
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_pip_install_gives_one_namespace_and_the_chat_page(tiny_gguf, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            ROOT,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert (target / "tritlm" / "runtime" / "server" / "static" / "index.html").exists()
    assert list((target / "tritlm" / "runtime").glob("_native*.so"))
    work = tmp_path / "work"  # a user's project with folders named like ours
    for name in ("runtime", "converter", "formats"):
        (work / name).mkdir(parents=True)
        (work / name / "__init__.py").write_text("raise ImportError('the user\\'s own package')\n")
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = (
        "import sys; sys.path.insert(0, ''); from tritlm import Model; import tritlm.runtime.model as m; "
        "print(m.__file__); print(Model(sys.argv[1]).n_vocab)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, tiny_gguf], cwd=work, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    where, n_vocab = out.stdout.split()
    assert where.startswith(str(target)) and int(n_vocab) > 0
    server = subprocess.Popen(
        [str(target / "bin" / "tritlm"), "serve", "-m", tiny_gguf, "--port", "0"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in server.stdout:
            if match := re.search(r"chat page: (http://\S+?)/?$", line.strip()):
                url = match.group(1)
                break
        page = httpx.get(url + "/", timeout=30)
        assert page.status_code == 200 and "<title>tritlm chat</title>" in page.text
        assert httpx.get(url + "/static/markdown.js", timeout=30).status_code == 200
    finally:
        server.terminate()
        server.wait(30)
