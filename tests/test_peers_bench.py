"""bench/peers.py with ik_llama.cpp: it runs IK_LLAMA_DIR/bin/llama-bench once per test and repetition with the
arguments llama-bench takes, reads its JSON, and compares each of our files with ik_llama.cpp's fastest file of the
same output matrix type. ik_llama.cpp is not built here, so a script stands in for its llama-bench: it logs its
arguments and reports fixed speeds per file (the bf16-output file slower than the Q6_K one)."""

import os
import shutil
import stat
import subprocess
import sys

from tritlm.converter.write import convert

FAKE_BENCH = """#!/usr/bin/env python3
import json, sys
args = sys.argv[1:]
with open(__file__ + ".log", "a") as log:
    log.write(" ".join(args) + "\\n")
model, n_prompt, n_gen = (args[args.index(flag) + 1] for flag in ("-m", "-p", "-n"))
speed = 400.0 if model.endswith("-q6_k.gguf") else 100.0
if "-gp" in args:  # tg after a prompt: llama-bench reports that test alone
    n_prompt, n_gen = args[args.index("-gp") + 1].split(",")
print(json.dumps([{"n_prompt": int(n_prompt), "n_gen": int(n_gen), "avg_ts": speed}]))
"""


def fake_ik_build(tmp_path):
    bench = tmp_path / "ik" / "bin" / "llama-bench"
    bench.parent.mkdir(parents=True)
    bench.write_text(FAKE_BENCH)
    bench.chmod(bench.stat().st_mode | stat.S_IXUSR)
    return {**os.environ, "IK_LLAMA_DIR": str(tmp_path / "ik")}


def run_peers(args, tmp_path):
    """bench/peers.py with args against the fake llama-bench: the llama-bench calls it logged, and the table's rows
    by (engine, file, test)."""
    done = subprocess.run(
        [sys.executable, "bench/peers.py", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=fake_ik_build(tmp_path),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    calls = (tmp_path / "ik" / "bin" / "llama-bench.log").read_text().splitlines()
    rows = {
        (cells[0], cells[1], cells[4]): cells
        for cells in ([c.strip() for c in line.strip("|").split("|")] for line in done.stdout.splitlines())
        if len(cells) == 9 and cells[0] in ("tritlm", "llama.cpp", "ik_llama.cpp")
    }
    return calls, rows


def assert_ratio_against(ours, peer_speed):
    """Our row's last column (ours / ik_llama.cpp's best, same output type) is our t/s over peer_speed."""
    ratio, speed = float(ours[8].rstrip("x")), float(ours[5].split()[0])
    assert abs(ratio - speed / peer_speed) <= 0.01 * ratio + 0.005, ours


def test_ik_llama_cpp_rows_and_same_output_ratios(tiny_gguf, tiny_checkpoints, tmp_path):
    # stand-ins for ik's IQ*_BN files (which our reader cannot parse): tq2_0 files, which the fake bench only names
    ik_bf16, ik_q6 = tmp_path / "m-ik-iq2_bn.gguf", tmp_path / "m-ik-iq2_bn_r4-q6_k.gguf"
    convert(tiny_checkpoints["packed"], str(ik_bf16), "tq2_0", progress=False)
    shutil.copy(ik_bf16, ik_q6)
    calls, rows = run_peers(
        ["-p", "8", "-n", "4", "-r", "2", "--pause", "0", tiny_gguf, "--ik", str(ik_bf16), str(ik_q6)], tmp_path
    )
    # per file: a warm-up and 2 repetitions of pp8 and of tg4, each its own llama-bench run on 2 threads
    for path in (ik_bf16, ik_q6):
        for test in ("-p 8 -n 0", "-p 0 -n 4"):
            assert calls.count(f"-m {path} {test} -t 2 -r 1 -o json") == 3, calls
    for test in ("pp8", "tg4"):
        assert rows[("ik_llama.cpp", "m-ik-iq2_bn", test)][3] == "bf16"
        assert rows[("ik_llama.cpp", "m-ik-iq2_bn_r4-q6_k", test)][5].startswith("400.00")
        ours = rows[("tritlm", "tiny", test)]
        assert ours[3] == "bf16"  # the tiny model's tied embedding
        assert_ratio_against(ours, 100.0)  # the bf16 file's speed, not the Q6_K one's


def test_ik_llama_cpp_is_not_run_on_an_i2_s_file(tiny_gguf, tmp_path):
    """ik_llama.cpp's i2_s has no matmul (its llama-quantize reads i2_s to requantize it): its llama-bench on an i2_s
    file times a model that computes nothing (here: 1100 t/s pp128 on 2 cores), so peers.py refuses to run it."""
    done = subprocess.run(
        [sys.executable, "bench/peers.py", tiny_gguf, "--ik", tiny_gguf],
        capture_output=True,
        text=True,
        timeout=300,
        env=fake_ik_build(tmp_path),
    )
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].endswith(
        f"--ik {tiny_gguf}: ik_llama.cpp has no i2_s matmul (its llama-quantize only reads i2_s)"
    )
    assert not (tmp_path / "ik" / "bin" / "llama-bench.log").exists()


def test_at_a_depth_ik_llama_cpp_runs_tg_only(tiny_gguf, tiny_checkpoints, tmp_path):
    """-d: our tests start from a sequence holding the depth ("pp8 @ d16"); ik_llama.cpp's llama-bench has no depth
    for a prompt, so it runs tg only, by -gp depth,n (which times the n decoded tokens after the depth's prompt)."""
    ik = tmp_path / "m-ik-iq2_bn.gguf"
    convert(tiny_checkpoints["packed"], str(ik), "tq2_0", progress=False)
    calls, rows = run_peers(
        ["-p", "8", "-n", "4", "-d", "16", "-r", "2", "--pause", "0", tiny_gguf, "--ik", str(ik)], tmp_path
    )
    assert calls == [f"-m {ik} -p 0 -n 0 -gp 16,4 -t 2 -r 1 -o json"] * 3, calls
    assert set(rows) == {
        ("tritlm", "tiny", "pp8 @ d16"),
        ("tritlm", "tiny", "tg4 @ d16"),
        ("ik_llama.cpp", "m-ik-iq2_bn", "tg4 @ d16"),
    }, rows
    assert_ratio_against(rows[("tritlm", "tiny", "tg4 @ d16")], 100.0)


def test_a_negative_depth_is_refused(tiny_gguf):
    done = subprocess.run(
        [sys.executable, "bench/peers.py", "-d", "-5", tiny_gguf], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].endswith("-p, -n and -d take a count of tokens (0 or more)")
