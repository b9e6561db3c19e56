"""The `tritlm` command: one subcommand per module, each a thin wrapper over a Python function.

Each module in SUBCOMMANDS has `register(subparsers)`, which adds its parser and sets `func(args) -> int` and
optionally `errors`: the exception types that mean bad input (printed as one line, exit 1); anything else is a
bug and keeps its traceback.
Heavy imports happen inside the handlers so `tritlm --help` stays fast."""
import argparse
import importlib
import sys

SUBCOMMANDS = [
    "converter.cli",      # convert, synth
    "runtime.run",        # run
    "runtime.server.cli", # serve
    "runtime.bench",      # bench
    "runtime.perplexity", # perplexity
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tritlm", description="Ternary (BitNet b1.58) LLM toolkit for CPUs")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(name).register(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("tritlm: interrupted", file=sys.stderr)
        return 130
    except getattr(args, "errors", (OSError, ValueError)) as e:  # ModelError is a ValueError
        print(f"tritlm {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
