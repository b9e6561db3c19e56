"""Every runtime command of `tritlm` (run, run --chat, serve, batch, bench, perplexity, quantize): bad input (a
missing model file, a truncated GGUF, a prompt beyond the context, a file it cannot read) is one line on stderr
and exit 1, while a bug (any other exception, even a ValueError or an OSError) keeps its traceback instead of
being printed as an innocent-looking one-line error."""

import io
import sys

import pytest

from tritlm.runtime.cli import main
from tritlm.runtime.model import Model


@pytest.fixture(scope="module")
def files(tiny_gguf, tmp_path_factory):
    """A truncated copy of the tiny model, a text of a few windows and a JSONL of prompts."""
    tmp = tmp_path_factory.mktemp("cli-errors")
    (tmp / "cut.gguf").write_bytes(open(tiny_gguf, "rb").read()[:100_000])
    (tmp / "text.txt").write_text("the cache holds the keys and values of every token. " * 40, encoding="utf-8")
    (tmp / "prompts.jsonl").write_text('{"prompt": "the cache"}\n', encoding="utf-8")
    return tmp


def command(name: str, model: str, tmp) -> list[str]:
    """argv of a command over `model` that would otherwise succeed quickly."""
    return {
        "run": ["run", "-m", model, "-p", "the cache", "-n", "2", "-t", "1"],
        "chat": ["run", "--chat", "-m", model, "-n", "2", "-t", "1"],
        "serve": ["serve", "-m", model, "--port", "0", "-t", "1"],
        "batch": ["batch", "-m", model, "-i", str(tmp / "prompts.jsonl"), "-o", str(tmp / "out.jsonl"), "-t", "1"],
        "bench": ["bench", "-m", model, "-p", "4", "-n", "2", "-r", "1", "-t", "1"],
        "perplexity": ["perplexity", "-m", model, "-f", str(tmp / "text.txt"), "-c", "64", "-t", "1"],
        "quantize": ["quantize", model, str(tmp / "out.gguf"), "--output-type", "q8_0"],
    }[name]


COMMANDS = ["run", "chat", "serve", "batch", "bench", "perplexity", "quantize"]


def one_line_error(capsys, argv) -> str:
    """main(argv) exits 1 with one line on stderr, `tritlm <command>: error: ...`, and nothing on stdout."""
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith(f"tritlm {argv[0]}: error: "), (out, err)
    return err


@pytest.mark.parametrize("name", COMMANDS)
def test_missing_model_file(name, files, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    missing = str(files / "no-such.gguf")
    err = one_line_error(capsys, command(name, missing, files))
    assert missing in err and ("No such file or directory" in err or "no such model file" in err), err
    assert not (files / "out.jsonl").exists() and not (files / "out.gguf").exists()


@pytest.mark.parametrize("name", COMMANDS)
def test_truncated_gguf(name, files, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert "truncated GGUF file" in one_line_error(capsys, command(name, str(files / "cut.gguf"), files))


def test_truncated_gguf_in_a_bench_child(tiny_gguf, files, capsys):
    """With several models each is measured in a child process: its one-line error is the parent's."""
    argv = ["bench", "-m", str(files / "cut.gguf"), "-m", tiny_gguf, "-p", "4", "-n", "2", "-r", "1", "-t", "1"]
    assert "truncated GGUF file" in one_line_error(capsys, argv)


def test_prompt_beyond_the_context(tiny_gguf, files, capsys, monkeypatch):
    err = one_line_error(capsys, ["run", "-m", tiny_gguf, "-p", "the " * 80, "-c", "32", "-t", "1"])
    assert "more than the context of 32" in err
    err = one_line_error(capsys, command("perplexity", tiny_gguf, files)[:-4] + ["-c", "100000", "-t", "1"])
    assert "context size 100000 is outside [1, 512]" in err
    # the chat answers a message too long for its context with one line, and goes on to the next
    monkeypatch.setattr(sys, "stdin", io.StringIO("the " * 80 + "\nhi\n"))
    assert main(["run", "--chat", "-m", tiny_gguf, "-c", "32", "-n", "2", "-t", "1", "--temp", "0"]) == 0
    out = capsys.readouterr().out
    assert out.count("error: message too long") == 1 and out.rstrip().endswith(">"), out


def test_unreadable_input_files(tiny_gguf, files, capsys):
    folder = str(files)
    assert "cannot open" in one_line_error(capsys, ["run", "-m", tiny_gguf, "-f", folder])
    assert "cannot open" in one_line_error(capsys, ["perplexity", "-m", tiny_gguf, "-f", folder])
    assert "cannot open" in one_line_error(capsys, command("batch", tiny_gguf, files)[:3] + ["-i", folder, "-o", "x"])
    latin1 = files / "latin1.txt"
    latin1.write_bytes("café".encode("latin-1"))
    assert "is not UTF-8 text" in one_line_error(capsys, ["run", "-m", tiny_gguf, "-f", str(latin1)])
    out = str(files / "no-such-folder" / "out.gguf")
    assert "cannot open" in one_line_error(capsys, ["quantize", tiny_gguf, out, "--output-type", "q8_0"])


@pytest.mark.parametrize("error", [ValueError, OSError])
@pytest.mark.parametrize("name", COMMANDS)
def test_a_bug_keeps_its_traceback(name, error, tiny_gguf, files, monkeypatch):
    """An exception that is not bad input, raised inside the command (here: loading the model; quantize: encoding
    the matrix), reaches the caller as it was raised: `python -m tritlm` then prints its traceback."""

    def bug(*args, **kwargs):
        raise error("an internal bug")

    monkeypatch.setattr(Model, "_load", bug)
    monkeypatch.setattr("tritlm.runtime.quantize.encode_matrix", bug)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(error, match="an internal bug"):
        main(command(name, tiny_gguf, files))
