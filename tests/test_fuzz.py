"""`make fuzz` (scripts/fuzz_gguf.py) for a few seconds: it makes its seeds, runs libFuzzer over the loader and
reports its executions; an input that ends in anything but a one-line ModelError would fail it."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_fuzz_gguf_runs_and_reports(tmp_path):
    pytest.importorskip("atheris")
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "fuzz_gguf.py"), "--seconds", "5", "--cache", str(tmp_path)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
        timeout=300,
    )
    ours = done.stdout.strip().splitlines()[-1]
    print(ours)
    assert done.returncode == 0, done.stderr[-3000:]
    executions, loaded, refused = map(
        int,
        re.fullmatch(
            r"fuzz: (\d+) executions in \d+ s \((\d+) loaded, (\d+) refused with a one-line ModelError\), no findings; "
            r"corpus .*",
            ours,
        ).groups(),
    )
    seeds = os.listdir(tmp_path / "fuzz-seeds")
    assert len(seeds) == 6 and loaded >= len(seeds) and refused > 0 and executions == loaded + refused
    assert not [f for f in os.listdir(tmp_path) if f.startswith(("crash-", "timeout-", "oom-"))]
