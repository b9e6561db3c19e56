"""scripts/load_test.py itself: a few seconds of its hostile mixed load against the tiny model's server find
every answer right (it exits 1 on any wrong answer or status, a busy slot, a server traceback or RSS growth)."""

import re
import subprocess
import sys


def test_stress_passes_briefly(tiny_gguf):
    done = subprocess.run(
        [
            sys.executable,
            "scripts/load_test.py",
            "stress",
            "-m",
            tiny_gguf,
            "-c",
            "256",
            "--clients",
            "6",
            "--duration",
            "3",
            "-t",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "0 wrong answers or statuses" in done.stdout
    served = int(done.stdout.split(" requests in ")[0].split()[-1])
    assert served >= 20, done.stdout


def test_scaling_reports_throughput_and_time_to_first_token(tiny_gguf):
    done = subprocess.run(
        [
            sys.executable,
            "scripts/load_test.py",
            "scaling",
            "-m",
            tiny_gguf,
            "-c",
            "256",
            "-t",
            "1",
            "--clients",
            "1",
            "3",
            "--requests",
            "1",
            "--max-tokens",
            "4",
            "--long-prompt",
            "100",
            "--ttft-samples",
            "1",
            "-b",
            "32",
            "--repeat",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [line.split() for line in done.stdout.splitlines() if line.split()[:1] in (["1"], ["3"])]
    assert [(int(r[0]), int(r[1])) for r in rows] == [(1, 1), (3, 3)] * 2  # clients, requests done; alternating
    assert all(0 < int(r[2]) <= 4 * int(r[1]) and r[6].endswith("ms") for r in rows)  # tokens, TTFT
    # the engine's share of the round, and the streams' tokens in an average pass: at most the clients, and one
    # client's 1-4 tokens take a prompt pass and up to 3 decode passes (0-3 streams' tokens)
    assert all(0 < float(r[7][:-1]) <= 100 and 0 <= float(r[8]) <= int(r[0]) for r in rows), done.stdout
    assert all(float(r[8]) < 1 for r in rows[::2]), done.stdout
    # each speed-up is over the one-client round just before it
    assert [float(r[5][:-1]) for r in rows[::2]] == [1.0, 1.0]
    for one, three in (rows[0:2], rows[2:4]):
        assert abs(float(three[5][:-1]) - float(three[4]) / float(one[4])) < 0.01, rows
    median = re.search(
        r"median of 2 alternating repetitions: 1 clients [\d.]+ tok/s \(1\.00x\), 3 clients", done.stdout
    )
    assert median, done.stdout
    ratios = re.findall(r"(\d+\.\d+)x idle", done.stdout)  # a short prompt's TTFT beside streams, + the long one
    assert "streams decoding" in done.stdout and "a 100-token prompt being read" in done.stdout and len(ratios) == 2
    assert re.search(r"the long prompt.s own TTFT .*: \d+\.\d\d s", done.stdout), done.stdout
