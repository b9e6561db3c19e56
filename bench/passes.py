"""What one engine pass costs by its shape: the scheduler's passes mix a prompt chunk of n tokens at some position
with the streams' one token each, and these times are what its pass limit is costed from (runtime/server/scheduler.py).

For each n of --tokens: n tokens of one sequence after --depth positions, the last one's logits (a prompt chunk).
With --streams S: S sequences' one token each with all S logit rows (a decode step), with one logit row, and one
sequence's token alone (what an output matrix of S rows adds). Each figure is the fastest of --reps passes, in ms;
compare two builds by running this with each in turn. --phases also prints where the S-stream step's fastest pass
went, step by step (the engine's own clocks: Model.phase_ns; what the steps leave is Python and the call).

usage: python bench/passes.py -m FILE [-t 2] [--depth 0] [--tokens 1 8 16 32] [--streams 8] [-r 5] [--phases]"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tritlm.runtime import Model  # noqa: E402
from tritlm.runtime.bench import random_tokens  # noqa: E402
from tritlm.runtime.errors import InputError  # noqa: E402


def fastest_ms(run, reset, reps: int, phase_ns=None) -> tuple[float, dict[str, float]]:
    """run()'s fastest time of reps in ms, reset() before each (not timed), and with phase_ns (Model.phase_ns) the ms
    that fastest run spent in each step."""
    best, steps = float("inf"), {}
    for _ in range(reps):
        reset()
        before = phase_ns() if phase_ns else {}
        start = time.perf_counter()
        run()
        took = time.perf_counter() - start
        if took < best:
            best = took
            steps = {k: (v - before[k]) / 1e6 for k, v in phase_ns().items()} if phase_ns else {}
    return best * 1e3, steps


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-m", "--model", required=True)
    p.add_argument("-t", "--threads", type=int, default=2)
    p.add_argument("--depth", type=int, default=0, help="positions before a chunk (default 0)")
    p.add_argument("--tokens", type=int, nargs="+", default=[1, 8, 16, 32], help="chunk sizes (default 1 8 16 32)")
    p.add_argument("--streams", type=int, default=0, help="also time a decode step of this many sequences")
    p.add_argument("-r", "--reps", type=int, default=5)
    p.add_argument("--phases", action="store_true", help="also the streams' step by step (with --streams)")
    args = p.parse_args()
    if args.depth < 0 or min(args.tokens) < 1 or args.streams < 0 or args.reps < 1:
        print("error: --depth and --streams must be >= 0, --tokens and --reps >= 1", file=sys.stderr)
        return 2
    if args.phases and not args.streams:
        print("error: --phases times the --streams step: give --streams", file=sys.stderr)
        return 2
    try:
        run(args)
    except InputError as e:  # a missing or bad file, a context the model cannot hold
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def run(args) -> None:
    n_ctx = args.depth + max(args.tokens) + 1
    with Model(args.model, threads=args.threads, n_ctx=n_ctx) as model:
        seq = model.new_sequence(n_ctx)
        prefix = random_tokens(model.n_vocab, args.depth)
        for start in range(0, args.depth, 256):
            chunk = prefix[start : start + 256]
            model.forward([seq] * len(chunk), chunk, [-1] * len(chunk))
        for n in args.tokens:
            tokens = random_tokens(model.n_vocab, n, seed=1)
            ms, _ = fastest_ms(
                lambda n=n, tokens=tokens: model.forward([seq] * n, tokens, [-1] * (n - 1) + [0]),
                lambda: seq.truncate(args.depth),
                args.reps,
            )
            print(f"{n:4d} tokens at position {args.depth}: {ms:8.2f} ms")
        if args.streams:
            seqs = [model.new_sequence(n_ctx) for _ in range(args.streams)]
            tokens = random_tokens(model.n_vocab, args.streams, seed=2)

            def reset():
                for s in seqs:
                    s.truncate(0)
                    model.forward([s], [tokens[0]], [0])  # each stream one token in

            s = args.streams
            phase_ns = model.phase_ns if args.phases else None
            all_rows, steps = fastest_ms(lambda: model.forward(seqs, tokens), reset, args.reps, phase_ns)
            one_row, _ = fastest_ms(lambda: model.forward(seqs, tokens, [-1] * (s - 1) + [0]), reset, args.reps)
            alone, _ = fastest_ms(lambda: model.forward(seqs[:1], tokens[:1]), reset, args.reps)
            print(
                f"{s} streams' tokens: {all_rows:.2f} ms with {s} logit rows, {one_row:.2f} with one; one stream {alone:.2f}"
            )
            if steps:
                by_time = sorted(steps.items(), key=lambda kv: -kv[1])
                print(f"{s} streams' step by step (ms): " + ", ".join(f"{k} {v:.3f}" for k, v in by_time if v > 0))


if __name__ == "__main__":
    sys.exit(main())
