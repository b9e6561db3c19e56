"""`tritlm bench`: llama-bench-style speed of a GGUF model, plus how close decoding runs to the memory roofline.

pp<p>: p random tokens as ONE prefill of a fresh sequence; tg<n>: n tokens decoded one at a time from an empty
sequence; with a depth d (llama-bench's -d), both start from a sequence already holding d random tokens ("pp<p> @ d<d>"). Each test runs once to warm up, then `reps` times; t/s is the mean ± sample stddev over reps.
Decoding reads every weight once per token, so tg t/s x the bytes the weights occupy is the weight-read
bandwidth; it is compared with the machine's streaming read bandwidth (tl_read_bandwidth, same threads) in `reps`
rounds after the tests, each a tg run and then a probe, as the machine's rate drifts between minutes.
Peak RSS (VmHWM of a child process per model) is compared with the GGUF tensors + the f32 KV cache, and time to first token is measured
from constructing Model() (file already in the page cache) to the first sampled token. With several models,
each is measured in its own child process so peak RSS and the cold start are its own."""

import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

from tritlm.runtime.cli import add_model_options, open_file
from tritlm.runtime.errors import InputError

BANDWIDTH_PROBE_BYTES = 512 << 20  # far beyond any L3, so it measures DRAM
TTFT_PROMPT = "The capital of France is"
GIB = 1 << 30


def kernel_isa() -> str:
    """The SIMD kernels this process runs: TRITLM_ISA's, else the best this CPU has."""
    from tritlm.runtime._native import ffi, lib

    return ffi.string(lib.tl_isa()).decode()


def random_tokens(n_vocab: int, n: int, seed: int = 0) -> list[int]:
    """Token ids like llama-bench's: uniformly random, fixed per seed."""
    return np.random.default_rng(seed).integers(0, n_vocab, size=n).tolist()


def seconds_of(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def timed_reps(run, reps: int) -> list[float]:
    """Seconds of each of `reps` calls of run(), after one warm-up call."""
    run()
    return [seconds_of(run) for _ in range(reps)]


def rate(n_tokens: int, seconds: list[float]) -> tuple[float, float]:
    """(mean, sample stddev) of tokens/s over runs."""
    speeds = [n_tokens / s for s in seconds]
    return statistics.mean(speeds), statistics.stdev(speeds) if len(speeds) > 1 else 0.0


def prefill_run(model, seq, tokens, depth=0):
    def run():
        seq.truncate(depth)
        model.prefill(seq, tokens)

    return run


def decode_run(model, seq, tokens, depth=0):
    def run():
        seq.truncate(depth)
        for token in tokens:
            model.decode([seq], [token])

    return run


# The weights each step of a decoded token reads (Model.phase_ns names): their linear input (ACT_GROUPS index) and
# tl_layer's linears by their GGUF names
PHASE_WEIGHTS = {
    "qkv": (0, ("attn_q", "attn_k", "attn_v")),
    "o": (1, ("attn_output",)),
    "gate_up": (2, ("ffn_gate", "ffn_up")),
    "down": (3, ("ffn_down",)),
}


def decode_phases(model, phase_ns: dict[str, int], seconds: float, n_tokens: int, sparse_mlp: bool) -> list[dict]:
    """Where a decoded token's time went, step by step (Model.phase_ns over n_tokens tokens decoded in `seconds`),
    then "outside" (Python, the call): ms a token, and the weight bytes a token read in the matrix steps that read
    whole matrices (left out: the relu² sparse decode's gate/up and down, sparse_mlp, and top-K inputs' linears, which
    read an unknown part of theirs)."""
    read = model.read_bytes()
    step_bytes = {"output": model.output_bytes}
    for step, (group, linears) in PHASE_WEIGHTS.items():
        if model.mode.topk[group] == 1 and not (sparse_mlp and step in ("gate_up", "down")):
            step_bytes[step] = sum(b for name, b in read.items() if name.split(".")[-2] in linears)
    steps = [{"step": k, "ms": v / 1e6 / n_tokens, "weight_bytes": step_bytes.get(k)} for k, v in phase_ns.items()]
    outside = (seconds * 1e9 - sum(phase_ns.values())) / 1e6 / n_tokens
    return steps + [{"step": "outside", "ms": outside, "weight_bytes": None}]


def warm_page_cache(path: str) -> None:
    """Reads the file once so a cold Model() start measures our loading, not the disk."""
    with open_file(path, "rb") as f:
        while f.read(64 << 20):
            pass


def peak_rss_bytes() -> int:
    """This process's own peak resident memory: VmHWM where Linux has it, since ru_maxrss keeps the parent's
    peak across fork+exec."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def kv_bytes_per_token(model) -> int:
    """K and V of one position, every layer and kv head: f32, f16, or the mode's 3/4-bit rows (codes + an f32 scale)."""
    hp, bits = model.hparams, model.mode.kv_bits
    row = {0: hp.head_dim * 4, 16: hp.head_dim * 2}.get(bits, hp.head_dim * bits // 8 + 4)
    return 2 * hp.n_layer * hp.n_head_kv * row


def kv_cache_bytes(model, n_ctx: int) -> int:
    return kv_bytes_per_token(model) * n_ctx


def weight_layout(
    path: str,
    mode=None,
    down_nonzero: float | None = None,
    up_computed: float | None = None,
    read_bytes: dict[str, int] | None = None,
) -> tuple[str, int]:
    """(ternary type name of the linear weights in the file, bytes of weights read per decoded token).
    Decoding reads every tensor except the token embedding, of which it reads one row, unless the embedding is tied
    and doubles as the output matrix. read_bytes (Model.read_bytes()) gives the linears and the output matrix as the
    engine reads them (repacked at load: tq2_0 as i2_s, a bf16 output matrix smaller), else the file's bytes count. A
    linear whose input keeps a top-K fraction, and a relu² model's down_proj when down_nonzero (the measured fraction
    of nonzero int8 inputs) is given, is read through its by-input-channel copy: 64 bytes per kept input and 256
    output rows (native/kernels/sparse_ref.c); a relu² model's up_proj reads the fraction up_computed of its rows
    (those where relu(gate) > 0)."""
    from tritlm.formats import TERNARY
    from tritlm.runtime.gguf import read_gguf

    with read_gguf(path) as gguf:
        tensors = {t.name: t for t in gguf.tensors}
    ternary_type = tensors["blk.0.attn_q.weight"].type_name
    size = {name: t.nbytes for name, t in tensors.items()} | (read_bytes or {})
    read = sum(size.values())
    input_of = {"attn_q": 0, "attn_k": 0, "attn_v": 0, "attn_output": 1, "ffn_gate": 2, "ffn_up": 2, "ffn_down": 3}
    for name, t in tensors.items():
        linear = name.split(".")[-2] if name.startswith("blk.") else None
        if linear not in input_of or t.type not in TERNARY:
            continue
        if mode is not None and mode.topk[input_of[linear]] < 1:
            keep = max(1, int(mode.topk[input_of[linear]] * t.cols + 0.5))
        elif linear == "ffn_down" and down_nonzero is not None:
            keep = down_nonzero * t.cols
        elif linear == "ffn_up" and up_computed is not None:
            read -= round(size[name] * (1 - up_computed))
            continue
        else:
            continue
        read += round(-(-t.rows // 256) * keep * 64) - size[name]
    if "output.weight" in tensors:
        read -= size["token_embd.weight"]
    return ternary_type, read


def bench_model(
    path: str,
    threads: int | None,
    n_prompt: int,
    n_gen: int,
    reps: int,
    act_topk: float | None = None,
    sparse: bool = True,
    use_mmap: bool = False,
    depth: int = 0,
    kv_type: str | None = None,
) -> list[dict]:
    """Measures one model in this process; returns one record per test (pp, tg), each after depth tokens."""
    from tritlm.runtime import Model
    from tritlm.runtime._native import lib

    warm_page_cache(path)
    n_ctx = max(depth + max(n_prompt, n_gen), 64)
    start = time.perf_counter()
    model = Model(
        path, threads=threads, n_ctx=n_ctx, act_topk=act_topk, sparse=sparse, use_mmap=use_mmap, kv_type=kv_type
    )
    seq = model.new_sequence(n_ctx)
    int(np.argmax(model.prefill(seq, model.tokenize(TTFT_PROMPT))))
    ttft = time.perf_counter() - start
    seq.reset()
    if depth:
        model.prefill(seq, random_tokens(model.n_vocab, depth, seed=2))
    at = f" @ d{depth}" if depth else ""
    try:
        common = {
            "model": model.name,
            "model_path": path,
            "model_bytes": model.model_bytes,
            "mode": model.mode.name,
            "kv_bytes_per_token": kv_bytes_per_token(model),
            "n_threads": model.n_threads,
            "isa": kernel_isa(),
            "reps": reps,
            "n_depth": depth,
        }
        records = []
        if n_prompt > 0:
            seconds = timed_reps(prefill_run(model, seq, random_tokens(model.n_vocab, n_prompt), depth), reps)
            mean, std = rate(n_prompt, seconds)
            records.append(dict(common, test=f"pp{n_prompt}{at}", n_tokens=n_prompt, tokens_per_s=mean, stddev=std))
        if n_gen > 0:
            seconds = timed_reps(decode_run(model, seq, random_tokens(model.n_vocab, n_gen, seed=1), depth), reps)
            mean, std = rate(n_gen, seconds)
            records.append(dict(common, test=f"tg{n_gen}{at}", n_tokens=n_gen, tokens_per_s=mean, stddev=std))
        inputs, nonzero, up_rows, computed = model.sparse_counts()  # what the relu² sparse decode saw (0s: not run)
        down_nonzero = nonzero / inputs if inputs else None
        up_computed = computed / up_rows if up_rows else None
        if down_nonzero is not None:
            records[-1].update(down_zero_pct=100 * (1 - down_nonzero))
        if up_computed is not None:
            records[-1].update(up_skipped_pct=100 * (1 - up_computed))
        ternary_type, weight_bytes = weight_layout(path, model.mode, down_nonzero, up_computed, model.read_bytes())
        for r in records:
            r["type"] = ternary_type
        # Before the bandwidth probe, whose buffer would count as the model's memory.
        resident = {
            "peak_rss_bytes": peak_rss_bytes(),
            "gguf_plus_kv_bytes": os.path.getsize(path) + kv_cache_bytes(model, n_ctx),
            "ttft_ms": 1000 * ttft,
        }
        if n_gen > 0:
            # The machine's read rate swings from one minute to the next (shared hosts): each round decodes, then
            # probes the machine at once, and the roofline is the median of the rounds' ratios.
            run = decode_run(model, seq, random_tokens(model.n_vocab, n_gen, seed=1), depth)
            rounds, decode_seconds, phases_before = [], 0.0, model.phase_ns()
            for _ in range(reps):
                took = seconds_of(run)
                decode_seconds += took
                rounds.append(
                    (weight_bytes * n_gen / took / 1e9, lib.tl_read_bandwidth(BANDWIDTH_PROBE_BYTES, model.n_threads))
                )
            phases = {k: v - phases_before[k] for k, v in model.phase_ns().items()}
            records[-1].update(
                weight_bytes_per_token=weight_bytes,
                weight_read_gbps=statistics.median(a for a, _ in rounds),
                machine_read_gbps=statistics.median(m for _, m in rounds),
                roofline_pct=statistics.median(100 * a / m for a, m in rounds),
                roofline_rounds=rounds,
                phases=decode_phases(model, phases, decode_seconds, reps * n_gen, down_nonzero is not None),
            )
        return [dict(r, **resident) for r in records]
    finally:
        seq.close()
        model.close()


def bench_in_child(
    path: str,
    threads: int | None,
    n_prompt: int,
    n_gen: int,
    reps: int,
    act_topk: float | None = None,
    sparse: bool = True,
    use_mmap: bool = False,
    depth: int = 0,
    kv_type: str | None = None,
) -> list[dict]:
    """bench_model in a fresh process, so its peak RSS and cold start are the model's own."""
    cmd = [
        sys.executable,
        "-m",
        "tritlm",
        "bench",
        "--json",
        "-m",
        path,
        "-p",
        str(n_prompt),
        "-n",
        str(n_gen),
        "-r",
        str(reps),
        "-d",
        str(depth),
    ]
    if threads:
        cmd += ["-t", str(threads)]
    if act_topk is not None:
        cmd += ["--act-topk", str(act_topk)]
    if not sparse:
        cmd += ["--no-sparse"]
    if use_mmap:
        cmd += ["--mmap"]
    if kv_type:
        cmd += ["--cache-type", kv_type]
    done = subprocess.run(cmd, capture_output=True, text=True)
    error = done.stderr.strip().splitlines()[-1:]
    if done.returncode == 1 and error and error[0].startswith("tritlm bench: error: "):  # bad input, as here
        raise InputError(error[0].removeprefix("tritlm bench: error: "))
    if done.returncode:
        raise RuntimeError(f"bench of {path} failed (exit {done.returncode}):\n{done.stderr}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def markdown_table(header: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]

    def line(cells):
        return (
            "| "
            + " | ".join(
                str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
            )
            + " |"
        )

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i in right else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule] + [line(r) for r in rows])


def size(n: int) -> str:
    """Bytes in the largest binary unit that keeps the number >= 1."""
    for unit, scale in (("GiB", GIB), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def format_report(records: list[dict], phases: bool = False) -> str:
    speed = markdown_table(
        ["model", "size", "type", "mode", "threads", "test", "t/s"],
        [
            [
                r["model"],
                f"{r['model_bytes'] / GIB:.2f} GiB",
                r["type"],
                r["mode"],
                r["n_threads"],
                r["test"],
                f"{r['tokens_per_s']:.2f} ± {r['stddev']:.2f}",
            ]
            for r in records
        ],
        right={1, 4, 6},
    )
    decode = [r for r in records if "roofline_pct" in r]

    def ratios(r):
        return [100 * a / m for a, m in r["roofline_rounds"]]

    roofline = markdown_table(
        [
            "model",
            "type",
            "weights/token",
            "down inputs 0",
            "up rows skipped",
            "KV/token",
            "tg weight reads",
            "machine reads",
            "of roofline (rounds)",
            "peak RSS",
            "GGUF + KV",
            "TTFT",
        ],
        [
            [
                r["model"],
                r["type"],
                size(r["weight_bytes_per_token"]),
                f"{r['down_zero_pct']:.1f}%" if "down_zero_pct" in r else "dense",
                f"{r['up_skipped_pct']:.1f}%" if "up_skipped_pct" in r else "dense",
                size(r["kv_bytes_per_token"]),
                f"{r['weight_read_gbps']:.1f} GB/s",
                f"{r['machine_read_gbps']:.1f} GB/s",
                f"{r['roofline_pct']:.0f}% ({min(ratios(r)):.0f}-{max(ratios(r)):.0f})",
                f"{r['peak_rss_bytes'] / GIB:.2f} GiB",
                f"{r['gguf_plus_kv_bytes'] / GIB:.2f} GiB",
                f"{r['ttft_ms']:.0f} ms",
            ]
            for r in decode
        ],
        right={2, 3, 4, 5, 6, 7, 8, 9, 10, 11},
    )
    isa = records[0]["isa"] if records else "?"
    report = f"{speed}\n\nkernels: {isa}\n\n{roofline}" if decode else f"{speed}\n\nkernels: {isa}"
    return report + "".join(f"\n\n{phase_table(r)}" for r in decode) if phases else report


def phase_table(r: dict) -> str:
    """Where one model's decoded token went (its tg record's "phases"), with the rate of each weight-reading step."""
    total = sum(p["ms"] for p in r["phases"])
    rows = []
    for p in r["phases"]:
        gbps = p["weight_bytes"] / p["ms"] / 1e6 if p["weight_bytes"] and p["ms"] > 0 else None
        rows.append(
            [
                p["step"],
                f"{p['ms']:.3f}",
                f"{100 * p['ms'] / total:.1f}%",
                size(p["weight_bytes"]) if p["weight_bytes"] else "",
                f"{gbps:.1f} GB/s" if gbps else "",
                f"{100 * gbps / r['machine_read_gbps']:.0f}%" if gbps else "",
            ]
        )
    header = [f"{r['model']} {r['test']}: step", "ms/token", "share", "weights", "read at", "of machine"]
    return markdown_table(header, rows + [["total", f"{total:.3f}", "100%", "", "", ""]], right={1, 2, 3, 4, 5})


def run(args) -> int:
    if args.reps < 1 or args.n_prompt < 0 or args.n_gen < 0 or (args.n_prompt == 0 and args.n_gen == 0):
        raise InputError("need -r >= 1 and at least one of -p, -n positive")
    if args.n_depth < 0:
        raise InputError(f"-d must be 0 or more, got {args.n_depth}")
    for path in args.model:
        if not os.path.isfile(path):
            raise InputError(f"no such model file: {path}")
    measure = bench_model if len(args.model) == 1 else bench_in_child
    records = []
    for path in args.model:
        records += measure(
            path,
            args.threads,
            args.n_prompt,
            args.n_gen,
            args.reps,
            args.act_topk,
            not args.no_sparse,
            args.mmap,
            args.n_depth,
            args.cache_type,
        )
    if args.json:
        for r in records:
            print(json.dumps(r))
    else:
        print(format_report(records, args.phases))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="prompt (pp) and generation (tg) speed, memory roofline, RSS, TTFT")
    p.add_argument("-m", "--model", required=True, action="append", help="GGUF file (repeat for several)")
    p.add_argument("-p", "--n-prompt", type=int, default=128, help="prompt tokens, one prefill (default 128)")
    p.add_argument("-n", "--n-gen", type=int, default=64, help="tokens decoded one at a time (default 64)")
    p.add_argument(
        "-d", "--n-depth", type=int, default=0, help="tokens already in the sequence before each test (default 0)"
    )
    p.add_argument("-t", "--threads", type=int, default=None, help="threads (default: physical cores)")
    p.add_argument("-r", "--reps", type=int, default=5, help="repetitions after one warm-up (default 5)")
    p.add_argument("--json", action="store_true", help="one JSON object per test instead of tables")
    p.add_argument(
        "--phases", action="store_true", help="also where a decoded token's time goes, step by step (tg's last rounds)"
    )
    add_model_options(p)
    p.set_defaults(func=run, errors=(InputError,))
