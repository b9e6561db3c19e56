"""`tritlm run`: the streamed greedy completion equals a from-scratch greedy reference, timings go to stderr, and bad input
(missing file, truncated GGUF, a prompt longer than the context) is one line on stderr and exit code 1."""

import subprocess
import sys

import numpy as np
import pytest

from tests.checkpoints import full_forward_greedy
from tritlm.runtime.cli import main

PROMPT = "The weight of the model"


def test_greedy_run_equals_the_full_forward_reference(tiny_gguf, model, capsys):
    # argmax of a fresh full forward at every step: none of the token loop, KV cache reuse or text streaming
    want = model.detokenize(full_forward_greedy(model, model.tokenize(PROMPT, add_bos=True, special=True), 24))
    assert main(["run", "-m", tiny_gguf, "-p", PROMPT, "-n", "24", "--temp", "0", "-t", "1"]) == 0
    out, err = capsys.readouterr()
    assert want and out == want + "\n"
    assert "load time" in err and "prompt eval" in err and "tokens/s" in err


def test_echo_and_seeded_sampling(tiny_gguf, model, capsys):
    args = ["run", "-m", tiny_gguf, "-p", PROMPT, "-n", "16", "--temp", "1.0", "--seed", "7", "-t", "1", "--echo"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first
    assert first == PROMPT + "".join(model.generate(PROMPT, 16, temperature=1.0, seed=7)) + "\n"


def test_prompt_from_a_file(tiny_gguf, tmp_path, capsys):
    path = tmp_path / "prompt.txt"
    path.write_text(PROMPT + " café\n", encoding="utf-8")
    common = ["run", "-m", tiny_gguf, "-n", "12", "--temp", "0", "-t", "1"]
    assert main(common + ["-f", str(path)]) == 0
    from_file = capsys.readouterr().out
    assert main(common + ["-p", PROMPT + " café\n"]) == 0
    assert capsys.readouterr().out == from_file
    assert "not both" in one_line_error(capsys, common + ["-f", str(path), "-p", "x"])
    assert "No such file" in one_line_error(capsys, common + ["-f", str(tmp_path / "none.txt")])


def test_pieces_are_flushed_as_generated(tiny_gguf, model, monkeypatch):
    class Recorder:
        def __init__(self):
            self.events = []

        def write(self, text):
            self.events.append(("write", text))

        def flush(self):
            self.events.append(("flush", None))

    recorder = Recorder()
    monkeypatch.setattr(sys, "stdout", recorder)
    assert main(["run", "-m", tiny_gguf, "-p", PROMPT, "-n", "12", "--temp", "0", "-t", "1"]) == 0
    pieces = list(model.generate(PROMPT, 12, temperature=0))
    writes = [text for kind, text in recorder.events if kind == "write" and text]
    assert writes[: len(pieces)] == pieces
    for i, event in enumerate(recorder.events[:-1]):  # every piece is followed by a flush
        if event[0] == "write" and event[1]:
            assert recorder.events[i + 1] == ("flush", None)


def one_line_error(capsys, argv) -> str:
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("tritlm run: error: ")
    return err


def test_missing_file(tmp_path, capsys):
    assert "No such file" in one_line_error(capsys, ["run", "-m", str(tmp_path / "none.gguf"), "-p", "hi"])


@pytest.mark.parametrize("keep", [0.001, 0.5, 0.999])
def test_truncated_gguf(tiny_gguf, tmp_path, capsys, keep):
    data = open(tiny_gguf, "rb").read()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: int(len(data) * keep)])
    assert "truncated GGUF file" in one_line_error(capsys, ["run", "-m", str(cut), "-p", "hi"])


def test_prompt_beyond_context(tiny_gguf, capsys):
    err = one_line_error(capsys, ["run", "-m", tiny_gguf, "-p", "the " * 80, "-c", "32"])
    assert "more than the context of 32" in err


def test_exit_code_of_the_command(tiny_gguf, tmp_path):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(open(tiny_gguf, "rb").read()[:1000])
    proc = subprocess.run(
        [sys.executable, "-m", "tritlm", "run", "-m", str(cut), "-p", "hi"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "truncated GGUF file" in proc.stderr


def test_llama_cpp_habits(tiny_gguf, model, capsys):
    """-ngl is accepted and ignored with a note; -no-cnv completes; options are never prefix-matched."""
    want = "".join(model.generate(PROMPT, 8, temperature=0))
    assert (
        main(["run", "-m", tiny_gguf, "-p", PROMPT, "-n", "8", "--temp", "0", "-t", "1", "-ngl", "99", "-no-cnv"]) == 0
    )
    out, err = capsys.readouterr()
    assert out == want + "\n"
    assert "note: -ngl/--n-gpu-layers ignored" in err
    for argv in (
        ["run", "-m", tiny_gguf, "-p", PROMPT, "--ctx", "64"],
        ["run", "-m", tiny_gguf, "--prom", PROMPT],
        ["perplexity", "-m", tiny_gguf, "-f", "x", "--ctx", "64"],
    ):
        with pytest.raises(SystemExit) as exit:
            main(argv)
        assert exit.value.code == 2
        assert "unrecognized arguments" in capsys.readouterr().err


def test_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out == f"tritlm {version('tritlm')}\n"


def test_penalties_follow_llama_cpp(tiny_gguf, model, capsys):
    """Greedy with a repeat penalty, a presence penalty and min-p: every step is the argmax of the full-forward
    logits after llama.cpp's penalties over the last 16 tokens (prompt included), computed here with numpy."""
    from tests.test_run_sampler import llama_cpp_penalties

    ids = model.tokenize(PROMPT, add_bos=True, special=True)
    want = []
    for _ in range(20):
        logits = model.logits(ids + want)[-1]
        want.append(int(np.argmax(llama_cpp_penalties(logits, ids + want, 16, 1.5, 0.0, 0.3, {}))))
    plain = model.tokenize("".join(model.generate(PROMPT, 20, temperature=0)), add_bos=False)
    assert want != plain, "the penalties changed nothing: the test proves nothing"
    assert (
        main(
            [
                "run",
                "-m",
                tiny_gguf,
                "-p",
                PROMPT,
                "-n",
                "20",
                "--temp",
                "0",
                "-t",
                "1",
                "--repeat-penalty",
                "1.5",
                "--repeat-last-n",
                "16",
                "--presence-penalty",
                "0.3",
                "--min-p",
                "0.05",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out == model.detokenize(want) + "\n"
