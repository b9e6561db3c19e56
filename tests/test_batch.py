"""`tritlm batch`: every result equals greedy decoding through `Model.logits` (a fresh full forward per token, no
batching), rows come out in input order with bad rows as error lines, a rerun resumes after the rows already
written (a torn last line is redone), and bad input is one line on stderr with no output file. With --ray
(a local Ray cluster): the same bytes as without, greedy and seeded."""

import json
import socket
import subprocess
import sys
import traceback

import pytest

from tests.checkpoints import full_forward_greedy
from tests.conftest import REPO
from tritlm.cluster import first_line
from tritlm.runtime import batch as batch_module
from tritlm.runtime.cli import main
from tritlm.runtime.errors import ModelError

PROMPTS = [
    "The weight of the model",
    "Hello",
    "x = 3.14;",
    "naïve café",
    "if (a != b) { return -1; }",
    "the a of to and in is it that was",
    "Zürich 日本語",
    "one",
]
ROWS = (
    [{"id": f"p{i}", "prompt": p} for i, p in enumerate(PROMPTS[:3])]
    + [{"prompt": 42}, ["not", "an", "object"]]  # bad rows: they get an error field
    + [{"id": i, "prompt": p} for i, p in enumerate(PROMPTS[3:], 3)]
)
MAX_TOKENS = 12


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in ROWS), encoding="utf-8")
    return str(path)


def batch_args(tiny_gguf, prompts, out, *more):
    return [
        "batch",
        "-m",
        tiny_gguf,
        "-i",
        prompts,
        "-o",
        str(out),
        "--max-tokens",
        str(MAX_TOKENS),
        "-t",
        "1",
        "--parallel",
        "3",
        *more,
    ]


def read(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_greedy_results_in_order(tiny_gguf, model, prompts, tmp_path, capsys):
    out = tmp_path / "results.jsonl"
    assert main(batch_args(tiny_gguf, prompts, out, "--temp", "0")) == 0
    results = read(out)
    assert [r["id"] for r in results] == [
        row["id"] if isinstance(row, dict) and "id" in row else n for n, row in enumerate(ROWS, 1)
    ]
    for row, result in zip(ROWS, results):
        if not (isinstance(row, dict) and isinstance(row.get("prompt"), str)):
            assert "error" in result and "text" not in result
            continue
        ids = model.tokenize(row["prompt"], add_bos=True, special=True)
        want = full_forward_greedy(model, ids, MAX_TOKENS)
        assert result["prompt"] == row["prompt"]
        assert result["text"] == model.detokenize(want)
        assert result["prompt_tokens"] == len(ids) and result["completion_tokens"] == len(want)
        assert result["finish_reason"] == ("length" if len(want) == MAX_TOKENS else "stop")


def test_rerun_resumes_after_the_rows_written(tiny_gguf, prompts, tmp_path, monkeypatch):
    out = tmp_path / "results.jsonl"
    assert main(batch_args(tiny_gguf, prompts, out, "--temp", "0.9", "--seed", "3")) == 0
    full = out.read_bytes()
    lines = full.splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:4]) + lines[4][:9])  # 4 rows written, the 5th torn by a crash

    started = []
    complete = batch_module.complete
    monkeypatch.setattr(
        batch_module, "complete", lambda model, todo, *a: started.extend(todo) or complete(model, todo, *a)
    )
    assert main(batch_args(tiny_gguf, prompts, out, "--temp", "0.9", "--seed", "3")) == 0
    assert [index for index, _ in started] == list(range(4, len(ROWS)))  # seeds by row: the same samples
    assert out.read_bytes() == full

    started.clear()
    assert main(batch_args(tiny_gguf, prompts, out, "--temp", "0.9", "--seed", "3")) == 0
    assert started == [] and out.read_bytes() == full


def one_line_error(capsys, argv, command="batch"):
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith(f"tritlm {command}: error: "), err
    return err


def test_bad_input(tiny_gguf, prompts, tmp_path, capsys):
    out = tmp_path / "results.jsonl"
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "a"}\n{"prompt": "b",\n', encoding="utf-8")
    assert f"{broken} line 2: not JSON" in one_line_error(capsys, batch_args(tiny_gguf, str(broken), out))
    assert "no-such.gguf" in one_line_error(capsys, batch_args(str(tmp_path / "no-such.gguf"), prompts, out))
    assert not out.exists()
    out.write_text('{"id": "other"}\n', encoding="utf-8")  # another job's results: not overwritten, not appended to
    assert "id 'other' where" in one_line_error(capsys, batch_args(tiny_gguf, prompts, out))
    assert out.read_text(encoding="utf-8") == '{"id": "other"}\n'


def test_without_ray_installed(tiny_gguf, prompts, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    monkeypatch.delitem(sys.modules, "tritlm.cluster.serve", raising=False)
    out = tmp_path / "results.jsonl"
    assert "Ray is not installed: pip install 'tritlm[ray]'" in one_line_error(
        capsys, batch_args(tiny_gguf, prompts, out, "--ray")
    )
    assert not out.exists()
    assert "Ray is not installed" in one_line_error(capsys, ["serve", "-m", tiny_gguf, "--replicas", "2"], "serve")


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "tritlm", *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow  # a Ray cluster, four jobs on it
def test_ray_results_equal_local(ray_cluster, tiny_gguf, prompts, tmp_path):
    for sampling in (["--temp", "0"], ["--temp", "0.9", "--seed", "5"]):
        local, on_ray = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
        assert main(batch_args(tiny_gguf, prompts, local, *sampling)) == 0
        done = run_cli(
            *batch_args(tiny_gguf, prompts, on_ray, *sampling, "--ray", "--ray-address", ray_cluster, "--workers", "2")
        )
        assert done.returncode == 0, done.stderr
        assert on_ray.read_bytes() == local.read_bytes()
        local.unlink()
        on_ray.unlink()


@pytest.mark.slow
def test_ray_bad_input(ray_cluster, tiny_gguf, prompts, tmp_path):
    out = tmp_path / "results.jsonl"
    missing = run_cli(*batch_args(str(tmp_path / "no-such.gguf"), prompts, out, "--ray", "--ray-address", ray_cluster))
    assert missing.returncode == 1 and missing.stderr.splitlines()[-1] == (
        f"tritlm batch: error: {tmp_path / 'no-such.gguf'}: no such model file on Ray node 127.0.0.1"
    )
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    unreachable = run_cli(*batch_args(tiny_gguf, prompts, out, "--ray", "--ray-address", closed))
    assert unreachable.returncode == 1
    assert unreachable.stderr == f"tritlm batch: error: Ray cluster at {closed} is not reachable: Connection refused\n"
    assert not out.exists()


@pytest.mark.parametrize("raised", [ModelError("worker on h: bad file"), TypeError("unsupported operand")])
def test_a_ray_worker_failure_is_one_line_only_for_bad_input(raised):
    """A worker's InputError (bad input on its node) becomes its message; any other exception there is a bug, and
    the Ray error holding its remote traceback is raised again. Ray's own exception type, built as Ray builds it."""
    exceptions = pytest.importorskip("ray.exceptions")
    try:
        raise raised
    except Exception as e:
        failure = exceptions.RayTaskError("Completer.__call__", traceback.format_exc(), e).as_instanceof_cause()
    if isinstance(raised, ModelError):
        assert first_line(failure) == "worker on h: bad file"
        return
    with pytest.raises(exceptions.RayTaskError) as got:
        first_line(failure)
    assert got.value is failure and "TypeError: unsupported operand" in str(got.value)
