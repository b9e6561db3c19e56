"""`make bench-modes`: b1.58 against its a4.8 / Q-Sparse runs, speed side by side on a noisy machine.

Every spec (FILE, or FILE:F to run FILE with --act-topk F) is loaded in this one process; repetitions alternate
between them (each model's pp, then each model's tg) so a noisy neighbour hurts all alike, and each repetition's
t/s is divided by the first spec's in the same repetition: the ratio's median and range are what to quote.
Also prints what a decoded token reads: weight bytes (top-K inputs through the sparse copies: 64 bytes per kept
input and 256-row tile) and KV cache bytes per position.

usage: python bench/modes.py [-p 128] [-n 64] [-t 2] [-r 5] SPEC ...
       python bench/modes.py --checkpoint MODE SRC OUT   (SRC's checkpoint with MODE's quantization_config)"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tritlm.formats import ACT_MODES  # noqa: E402
from tritlm.runtime import Model  # noqa: E402
from tritlm.runtime.bench import (
    decode_run,
    kv_bytes_per_token,
    markdown_table,
    prefill_run,
    random_tokens,
    size,  # noqa: E402
    weight_layout,
)


def parse_spec(spec: str) -> tuple[str, float | None]:
    """FILE -> (FILE, None); FILE:F -> (FILE, F)."""
    path, _, topk = spec.rpartition(":")
    if path and topk.replace(".", "", 1).isdigit():
        return path, float(topk)
    return spec, None


def with_mode(mode: str, src: str, out: str) -> None:
    """A checkpoint folder `out`: links to src's files, and src's config.json with mode's quantization_config
    (for speed runs of a shape whose weights were not trained in that mode, such as the 2B-4T preset)."""
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(src):
        if name != "config.json" and not os.path.lexists(os.path.join(out, name)):
            os.symlink(os.path.abspath(os.path.join(src, name)), os.path.join(out, name))
    with open(os.path.join(src, "config.json")) as f:
        config = json.load(f)
    config["quantization_config"] = {**config.get("quantization_config", {}), **ACT_MODES[mode]}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint",
        nargs=3,
        metavar=("MODE", "SRC", "OUT"),
        help=f"only write OUT: SRC with MODE's quantization_config ({', '.join(ACT_MODES)})",
    )
    parser.add_argument("specs", nargs="*", metavar="SPEC", help="FILE or FILE:F (FILE run with --act-topk F)")
    parser.add_argument("-p", "--n-prompt", type=int, default=128)
    parser.add_argument("-n", "--n-gen", type=int, default=64)
    parser.add_argument("-t", "--threads", type=int, default=2)
    parser.add_argument("-r", "--reps", type=int, default=5)
    args = parser.parse_args(argv)
    if args.checkpoint:
        return with_mode(*args.checkpoint) or 0
    n_ctx = max(args.n_prompt, args.n_gen) + 1
    models = []
    for spec in args.specs:
        path, topk = parse_spec(spec)
        models.append((spec, Model(path, threads=args.threads, n_ctx=n_ctx, act_topk=topk)))
    runs = {}
    for spec, m in models:
        seq = m.new_sequence(n_ctx)
        runs[spec] = (
            prefill_run(m, seq, random_tokens(m.n_vocab, args.n_prompt)),
            decode_run(m, seq, random_tokens(m.n_vocab, args.n_gen, seed=1)),
        )
        runs[spec][0](), runs[spec][1]()  # warm-up
    rates = {(spec, test): [] for spec, _ in models for test in (0, 1)}
    for _ in range(args.reps):
        for test, n in ((0, args.n_prompt), (1, args.n_gen)):
            for spec, _ in models:
                start = time.perf_counter()
                runs[spec][test]()
                rates[spec, test].append(n / (time.perf_counter() - start))
    first = models[0][0]
    rows = []
    for spec, m in models:
        path, _ = parse_spec(spec)
        _, weights = weight_layout(path, m.mode)
        row = [os.path.basename(spec), m.mode.name]
        for test in (0, 1):
            r = np.array(rates[spec, test])
            ratio = r / np.array(rates[first, test])
            row += [f"{np.median(r):.1f}", f"{np.median(ratio):.2f} ({ratio.min():.2f}-{ratio.max():.2f})"]
        rows.append(row + [size(weights), size(kv_bytes_per_token(m))])
    print(
        markdown_table(
            [
                "model",
                "mode",
                f"pp{args.n_prompt} t/s",
                "pp ratio",
                f"tg{args.n_gen} t/s",
                "tg ratio",
                "weights read/token",
                "KV/token",
            ],
            rows,
            right={2, 3, 4, 5, 6, 7},
        )
    )
    print(
        f"\n{args.threads} threads, median of {args.reps} alternating repetitions; ratio: vs {os.path.basename(first)} "
        "in the same repetition (min-max)"
    )
    for _, m in models:
        m.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
