"""`make bench-modes`: b1.58 against its a4.8 / Q-Sparse runs (and `make bench-sparse`: a relu² file's exact sparse
decode against its dense decode), speed side by side on a noisy machine.

Every spec (FILE; FILE:F to run FILE with --act-topk F; FILE:dense to run it with --no-sparse) is loaded in this one
process; repetitions alternate
between them (each model's pp, then each model's tg) so a noisy neighbour hurts all alike, and each repetition's
t/s is divided by the first spec's in the same repetition: the ratio's median and range are what to quote.
Also prints what a decoded token reads: weight bytes (top-K inputs, and a relu² down_proj's nonzero inputs, through
the sparse copies: 64 bytes per kept input and 256 rows), the fraction of zero down_proj inputs the sparse decode saw,
and KV cache bytes per position.

usage: python bench/modes.py [-p 128] [-n 64] [-t 2] [-r 5] SPEC ...
       python bench/modes.py --checkpoint MODE SRC OUT   (SRC's checkpoint with MODE's quantization_config)
       python bench/modes.py --sparsity-of REF SRC OUT   (SRC.gguf biased to REF.gguf's sparsity: with_sparsity_of)"""

import argparse
import json
import os
import shutil
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


def parse_spec(spec: str) -> tuple[str, float | None, bool]:
    """FILE -> (FILE, None, sparse); FILE:F -> (FILE, F, sparse); FILE:dense -> (FILE, None, not sparse)."""
    path, _, option = spec.rpartition(":")
    if path and option.replace(".", "", 1).isdigit():
        return path, float(option), True
    if path and option == "dense":
        return path, None, False
    return spec, None, True


def sparsity_seen(m, n_tokens: int = 32) -> tuple[float, float]:
    """(zero int8 down_proj inputs, skipped up_proj rows) as fractions, while m (a relu² model decoding sparsely)
    decodes random tokens."""
    before = m.sparse_counts()
    with m.new_sequence(n_tokens) as seq:
        for token in random_tokens(m.n_vocab, n_tokens, seed=2):
            m.decode([seq], [token])
    inputs, nonzero, rows, computed = (a - b for a, b in zip(m.sparse_counts(), before))
    return 1 - nonzero / inputs, 1 - computed / rows


def bisect(seen, target: float, lo: float, hi: float, geometric: bool = False) -> float:
    """The knob in [lo, hi] at which seen(knob), increasing, comes within 0.5% of target (or the last tried)."""
    for _ in range(24):
        mid = float(np.sqrt(lo * hi)) if geometric else (lo + hi) / 2
        got = seen(mid)
        if abs(got - target) < 0.005:
            break
        lo, hi = (mid, hi) if got < target else (lo, mid)
    return mid


def with_sparsity_of(ref: str, src: str, out: str, threads: int) -> None:
    """OUT: a copy of the relu² i2_s GGUF src whose decoded tokens skip as many up_proj rows and see as many zero
    int8 down_proj inputs as ref's (the embedded model: random weights give about half of each). Random weights
    give gate > 0 for half the rows whatever the input, so the copy is biased: input channel 0 of every token's
    embedding is made large (~1e6), so it dominates every layer's int8 input; gate column 0 is -1 on a fraction f of
    the rows and +1 on the rest, so those rows' gate is negative (f bisected to ref's skipped rows); and each
    ffn_sub_norm weight gets a few heavy channels (1 in 16, weight H, the rest 1), whose values set the int8 scale so
    more of the others round to 0 (H bisected to ref's zero down inputs). Shapes, types and the kernels' work per
    kept row or input are unchanged: a speed stand-in for a trained model's sparsity, not a model."""
    from tritlm.runtime.gguf import read_gguf

    with Model(ref, threads=threads) as m:
        zeros_target, skip_target = sparsity_seen(m)
    with read_gguf(src) as gguf:
        tensors = {t.name: t for t in gguf.tensors}
    if tensors["blk.0.ffn_gate.weight"].type_name != "i2_s" or tensors["token_embd.weight"].type_name != "bf16":
        raise SystemExit(f"{src}: --sparsity-of edits i2_s weights and a bf16 embedding")
    shutil.copyfile(src, out + ".tmp")
    data = np.memmap(out + ".tmp", mode="r+")
    embd = tensors["token_embd.weight"]
    data[embd.offset : embd.offset + embd.nbytes].view("<u2").reshape(embd.rows, embd.cols)[:, 0] = 0x4974  # ~1e6
    gates = [t for name, t in tensors.items() if name.endswith("ffn_gate.weight")]
    norms = [t for name, t in tensors.items() if name.endswith("ffn_sub_norm.weight")]
    order = np.random.default_rng(0).permutation(gates[0].rows)

    def set_gate_column(f: float) -> None:  # value (row r, col 0) of i2_s: byte 32 * (r * cols / 128), bits 7-6
        codes = np.where(order < f * len(order), 0, 2).astype(np.uint8)  # w + 1: -1 or +1
        for t in gates:
            at = t.offset + 32 * (np.arange(t.rows) * t.cols // 128)
            data[at] = (data[at] & 0x3F) | (codes << 6)
        data.flush()

    heavy = np.random.default_rng(0).random(norms[0].nbytes // 4) < 1 / 16

    def set_heavy(weight: float) -> None:
        for t in norms:
            data[t.offset : t.offset + t.nbytes] = np.where(heavy, np.float32(weight), np.float32(1)).view(np.uint8)
        data.flush()

    set_heavy(1.0)
    with Model(out + ".tmp", threads=threads, use_mmap=True) as m:  # weights edited here change under it
        f = bisect(lambda f: (set_gate_column(f), sparsity_seen(m)[1])[1], skip_target, 0.0, 1.0)
        h = bisect(lambda h: (set_heavy(h), sparsity_seen(m)[0])[1], zeros_target, 1.0, 1e4, geometric=True)
        zeros, skipped = sparsity_seen(m)
    os.replace(out + ".tmp", out)
    print(
        f"{out}: gate column 0 at -1 on {f:.1%} of rows, heavy ffn_sub_norm weight {h:.3g}; zero down inputs "
        f"{zeros:.1%} (target {zeros_target:.1%}), up rows skipped {skipped:.1%} (target {skip_target:.1%})"
    )


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
    parser.add_argument(
        "--sparsity-of",
        nargs=3,
        metavar=("REF", "SRC", "OUT"),
        help="only write OUT: the i2_s GGUF SRC biased to REF's relu² sparsity (see with_sparsity_of)",
    )
    parser.add_argument("specs", nargs="*", metavar="SPEC", help="FILE or FILE:F (FILE run with --act-topk F)")
    parser.add_argument("-p", "--n-prompt", type=int, default=128)
    parser.add_argument("-n", "--n-gen", type=int, default=64)
    parser.add_argument("-t", "--threads", type=int, default=2)
    parser.add_argument("-r", "--reps", type=int, default=5)
    args = parser.parse_args(argv)
    if args.checkpoint:
        return with_mode(*args.checkpoint) or 0
    if args.sparsity_of:
        return with_sparsity_of(*args.sparsity_of, threads=args.threads) or 0
    n_ctx = max(args.n_prompt, args.n_gen) + 1
    models = []
    for spec in args.specs:
        path, topk, sparse = parse_spec(spec)
        models.append((spec, Model(path, threads=args.threads, n_ctx=n_ctx, act_topk=topk, sparse=sparse)))
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
        path, _, _ = parse_spec(spec)
        inputs, nonzero, up_rows, computed = m.sparse_counts()
        _, weights = weight_layout(
            path, m.mode, nonzero / inputs if inputs else None, computed / up_rows if up_rows else None, m.read_bytes()
        )
        row = [os.path.basename(spec), m.mode.name]
        for test in (0, 1):
            r = np.array(rates[spec, test])
            ratio = r / np.array(rates[first, test])
            row += [f"{np.median(r):.1f}", f"{np.median(ratio):.2f} ({ratio.min():.2f}-{ratio.max():.2f})"]
        zeros = f"{1 - nonzero / inputs:.1%}" if inputs else "dense"
        skipped = f"{1 - computed / up_rows:.1%}" if up_rows else "dense"
        rows.append(row + [size(weights), zeros, skipped, size(kv_bytes_per_token(m))])
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
                "down inputs 0",
                "up rows skipped",
                "KV/token",
            ],
            rows,
            right={2, 3, 4, 5, 6, 7, 8, 9},
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
