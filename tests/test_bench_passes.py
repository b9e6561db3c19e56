"""bench/passes.py, the cost of one engine pass by its shape: on the tiny model it prints a time for each chunk size at
the depth asked and for a decode step of several streams, and bad arguments or a missing file get one line and a
non-zero exit."""

import re
import subprocess
import sys


def passes(*args):
    return subprocess.run([sys.executable, "bench/passes.py", *args], capture_output=True, text=True, timeout=300)


def test_chunks_at_a_depth_and_a_decode_step(tiny_gguf):
    done = passes("-m", tiny_gguf, "--depth", "40", "--tokens", "1", "16", "--streams", "4", "-r", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3, done.stdout
    for line, n in zip(lines, (1, 16)):
        m = re.fullmatch(rf"\s*{n} tokens at position 40:\s+([0-9.]+) ms", line)
        assert m and float(m[1]) > 0, line
    m = re.fullmatch(
        r"4 streams' tokens: ([0-9.]+) ms with 4 logit rows, ([0-9.]+) with one; one stream ([0-9.]+)", lines[2]
    )
    assert m and all(float(v) > 0 for v in m.groups()), lines[2]


def test_a_decode_step_by_step(tiny_gguf):
    """--phases: the step's fastest pass by the engine's clocks, every step of a forward pass there, the longest
    first, adding up to at most the pass's time as timed from Python."""
    done = passes("-m", tiny_gguf, "--tokens", "1", "--streams", "3", "-r", "2", "--phases")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3, done.stdout
    step_ms = float(re.match(r"3 streams' tokens: ([0-9.]+) ms", lines[1])[1])
    head, _, listed = lines[2].partition(": ")
    assert head == "3 streams' step by step (ms)", lines[2]
    steps = {name: float(ms) for name, ms in (item.split(" ") for item in listed.split(", "))}
    assert {"qkv", "attention", "o", "gate_up", "down", "output"} <= set(steps), steps
    assert list(steps.values()) == sorted(steps.values(), reverse=True)
    assert 0 < sum(steps.values()) <= step_ms + 0.01, (steps, step_ms)  # rounding: 10 values to 0.001


def test_bad_arguments_and_files(tiny_gguf, tmp_path):
    for args, message in [
        (("-m", tiny_gguf, "--depth", "-1"), "error: --depth and --streams must be >= 0, --tokens and --reps >= 1"),
        (("-m", str(tmp_path / "missing.gguf")), "error: cannot open"),
        (("-m", tiny_gguf, "--depth", "100000"), "context size"),
        (("-m", tiny_gguf, "--phases"), "error: --phases times the --streams step: give --streams"),
    ]:
        done = passes(*args)
        assert done.returncode != 0 and message in done.stderr and len(done.stderr.splitlines()) == 1, (
            args,
            done.stderr,
        )
