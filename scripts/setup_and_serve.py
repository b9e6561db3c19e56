"""Download, convert and serve in one command.

    .venv/bin/python scripts/setup_and_serve.py microsoft/bitnet-b1.58-2B-4T --type i2_s
    .venv/bin/python scripts/setup_and_serve.py            # the embedded default model (models/bitnet-tiny)
    .venv/bin/python scripts/setup_and_serve.py --list

Checks (and if needed builds) the C core, downloads the checkpoint with progress bars into models/hub (a
Hugging Face cache; HF_HUB_CACHE overrides it, HF_HUB_OFFLINE=1 uses it without the network), converts it to
models/<name>.<type>.gguf unless an up-to-date one is there (converter/cached.py, as `tritlm serve -hf` does
into its cache), then runs `tritlm serve`, which prints the URL and
a ready-to-paste curl command. Only repos the converter knows are accepted; a local checkpoint folder works too.
--models-dir moves models/ (downloads, GGUFs, and where the embedded model is looked for)."""

import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMBEDDED = "bitnet-tiny"  # the checkpoint folder models/train_tiny.py writes
sys.path.insert(0, ROOT)


def ensure_native():
    """Imports the C core, building it in place first if it is missing."""
    try:
        import tritlm.runtime._native  # noqa: F401

        return
    except ImportError:
        print("setup: building the C core ...", flush=True)
    build = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=ROOT)
    if build.returncode != 0:
        raise OSError("building the C core failed: run `make install` and read its errors")


def source_of(repo: str | None, models_dir: str) -> str:
    """The checkpoint to convert: a folder, or a repo id the converter knows (default: the embedded model)."""
    from tritlm.converter.families import KNOWN_REPOS

    if repo is None:
        embedded = os.path.join(models_dir, EMBEDDED)
        if not os.path.isdir(embedded):
            raise FileNotFoundError(
                f"the embedded model is not at {embedded}: train it with "
                f"models/train_tiny.py, or name a Hub repo (--list shows them)"
            )
        return embedded
    if not os.path.isdir(repo) and repo not in KNOWN_REPOS:
        raise ValueError(f"unsupported repo {repo!r}: supported are {', '.join(KNOWN_REPOS)} (see --list)")
    return repo


def main(argv=None) -> int:
    from tritlm.converter.errors import ConverterError
    from tritlm.converter.pack import OUTPUT_TYPES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("repo", nargs="?", help="Hub repo id (see --list) or checkpoint folder; default: embedded model")
    p.add_argument("--type", choices=OUTPUT_TYPES, default="i2_s", help="storage of the ternary weights")
    p.add_argument("--list", action="store_true", help="list the supported repos and exit")
    p.add_argument("--models-dir", default=os.path.join(ROOT, "models"), help="default: models/ of this repo")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("-t", "--threads", type=int, default=None)
    p.add_argument("-c", "--ctx-size", type=int, default=None)
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--api-key", default=None)
    args = p.parse_args(argv)
    try:
        if args.list:
            from tritlm.converter.families import KNOWN_REPOS

            for repo, note in KNOWN_REPOS.items():
                print(f"{repo:40} {note}")
            return 0
        os.environ.setdefault("HF_HUB_CACHE", os.path.join(args.models_dir, "hub"))  # read when huggingface_hub loads
        ensure_native()
        from tritlm.converter.cached import cached_gguf

        gguf_path = cached_gguf(source_of(args.repo, args.models_dir), args.type, args.models_dir)
        from tritlm.runtime.server.cli import serve

        return serve(gguf_path, args.host, args.port, args.threads, args.ctx_size, args.parallel, args.api_key)
    except KeyboardInterrupt:
        return 130
    except (ConverterError, OSError, ValueError) as e:
        print(f"setup_and_serve: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
