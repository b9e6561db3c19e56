"""The `tritlm` command: one subcommand per module, each a thin wrapper over a Python function.

Each module in SUBCOMMANDS has `register(subparsers)`, which adds its parser and sets `func(args) -> int` and
`errors`: the exception types that mean bad input (printed as one line, exit 1: runtime.errors.InputError, the
converter's ConverterError); anything else is a bug and keeps its traceback.
Heavy imports happen inside the handlers so `tritlm --help` stays fast. Options are matched whole (no argparse
prefix matching: `--ctx` is not `--ctx-size`), and the commands that mirror llama.cpp's tools accept its
`-ngl/--n-gpu-layers` so habitual command lines run (tritlm runs on the CPU, so it is ignored with a note)."""

import argparse
import importlib
import sys

from tritlm.runtime.errors import InputError

SUBCOMMANDS = [
    "tritlm.converter.cli",  # convert, synth
    "tritlm.runtime.run",  # run
    "tritlm.runtime.server.cli",  # serve
    "tritlm.runtime.batch",  # batch
    "tritlm.runtime.bench",  # bench
    "tritlm.runtime.perplexity",  # perplexity
    "tritlm.runtime.quantize",  # quantize
]
LLAMA_CPP_TOOLS = ("run", "serve", "bench", "perplexity")  # llama-cli, llama-server, llama-bench, llama-perplexity


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"tritlm {version('tritlm')}"
    except PackageNotFoundError:
        return "tritlm (not installed: run `make install` or `pip install .`)"


class SubcommandParser(argparse.ArgumentParser):
    """A subcommand's parser: options matched whole, as in the main parser (argparse's parser_class is a class)."""

    def __init__(self, **kwargs):  # add_parser passes keywords only
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(**kwargs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="tritlm", description="Ternary (BitNet b1.58) LLM toolkit for CPUs", allow_abbrev=False
    )
    parser.add_argument("--version", action="version", version=version())
    sub = parser.add_subparsers(dest="command", required=True, parser_class=SubcommandParser)
    for name in SUBCOMMANDS:
        importlib.import_module(name).register(sub)
    for name in LLAMA_CPP_TOOLS:
        sub.choices[name].add_argument(
            "-ngl",
            "--n-gpu-layers",
            "--gpu-layers",
            metavar="N",
            default=None,
            help="accepted for llama.cpp habit and ignored: tritlm runs on the CPU",
        )
    args = parser.parse_args(argv)
    if getattr(args, "n_gpu_layers", None) is not None:
        print(f"tritlm {args.command}: note: -ngl/--n-gpu-layers ignored: tritlm runs on the CPU", file=sys.stderr)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("tritlm: interrupted", file=sys.stderr)
        return 130
    except args.errors as e:
        print(f"tritlm {args.command}: error: {e}", file=sys.stderr)
        return 1


def open_file(path: str, mode: str = "r", **kwargs):
    """open(path, mode), or InputError naming the file: a path given on the command line that cannot be opened
    (missing, a folder, not allowed) is bad input, not a bug."""
    try:
        return open(path, mode, **kwargs)
    except OSError as e:
        raise InputError(f"cannot open {path}: {e.strerror or e}") from None


def add_model_options(parser) -> None:
    """How a command loads its model (Model's act_topk, sparse, use_mmap and kv_type): the options run, serve and bench
    share."""
    parser.add_argument(
        "--act-topk",
        type=float,
        default=None,
        metavar="F",
        help="keep only the top F of every linear input, per token (Q-Sparse without training: lossy on b1.58 files; "
        "default: the file's own mode)",
    )
    parser.add_argument(
        "--no-sparse",
        action="store_true",
        help="decode a relu² model densely (default: skip up rows and down columns that meet zeros; exact)",
    )
    parser.add_argument(
        "--mmap",
        action="store_true",
        help="read the weights in place from the file's mapping, shared with other processes (default: a private "
        "copy on 2 MiB pages, decoding faster, where a bf16 output matrix is repacked into 12 bits a value, exactly, "
        "on CPUs with AVX-512 VBMI)",
    )
    add_cache_type_option(parser)


def add_cache_type_option(parser) -> None:
    """--cache-type (Model's kv_type), also for perplexity, which measures what it costs."""
    parser.add_argument(
        "--cache-type",
        choices=("f32", "f16"),
        default=None,
        help="the KV cache's rows, as llama.cpp's -ctk/-ctv: f16 takes half the memory and reads at depth, each key "
        "and value rounded to 11 significant bits (default: f32, exact; or the file's own 3/4-bit mode)",
    )


def read_text(path: str, errors: str = "strict") -> str:
    """A UTF-8 text file named on the command line; InputError if it cannot be read."""
    with open_file(path, encoding="utf-8", errors=errors) as f:
        try:
            return f.read()
        except UnicodeDecodeError as e:
            raise InputError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason})") from None


if __name__ == "__main__":
    sys.exit(main())
