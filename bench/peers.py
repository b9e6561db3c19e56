"""`make bench-peers`: tritlm against llama.cpp (llama-cpp-python's low-level API) on the very same GGUF files,
and against ik_llama.cpp (its llama-bench) on the files given after `--ik` when IK_LLAMA_DIR names a build of it:
our i2_s file (it reads our i2_s and f16 files, not tq1_0/tq2_0) and its own requantizations of it (IQ2_BN,
IQ2_BN_R4, IQ1_BN; a name ending in -q6_k says its output matrix is Q6_K, else bf16). Each of our files is compared
with ik_llama.cpp's fastest file with the same output matrix type.

In one process every engine loads each file; all runs alternate (each test, each repetition: every engine on
every file in turn) so a noisy neighbour on the machine hurts all alike, with a pause before each run so one
engine's spinning threads do not overlap the next one's. pp = the prompt as one llama_decode / one prefill of a
fresh context; tg = single-token decodes from an empty context, like llama-bench. With -d D (llama-bench's depth) both
start from a context already holding D random tokens, prefilled once and cut back to them before each run
("tg64 @ d2000"); ik_llama.cpp's llama-bench has no depth for pp, so it runs tg only there, by its `-gp D,n`. Both
peers keep an f16 KV cache; `--cache-type f16` gives tritlm one too (default: its lossless f32).
Files llama.cpp cannot read (i2_s) run ours only and are compared with llama.cpp's best file.
Note: llama.cpp's `bitnet` graph always uses SiLU in the MLP; a relu2 model (2B-4T) computes a different
function there, at the same cost, so speeds compare and outputs don't.

usage: python bench/peers.py [-p 128] [-n 64] [-d 0] [-t 2] [-r 5] [--pause 1] [--cache-type f16] FILE.gguf ...
       [--ik IK_FILE.gguf ...]"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tritlm.runtime import Model  # noqa: E402
from tritlm.runtime.bench import (  # noqa: E402
    decode_run,
    kernel_isa,
    markdown_table,
    prefill_run,
    random_tokens,
    rate,
    weight_layout,
)
from tritlm.runtime.cli import add_cache_type_option  # noqa: E402

LLAMA_READS = {"tq1_0", "tq2_0"}


class LlamaCpp:
    """One llama.cpp model + context, driven through llama_decode like llama-bench."""

    def __init__(self, path: str, threads: int, n_ctx: int, n_batch: int, **context):
        """context: further llama_context_params fields (tests: type_k/type_v, flash_attn_type)."""
        import llama_cpp as L

        self.L = L
        L.llama_backend_init()
        self._quiet = L.llama_log_callback(lambda level, text, user: None)  # kept alive: C holds the pointer
        L.llama_log_set(self._quiet, None)
        self.model = L.llama_model_load_from_file(path.encode(), L.llama_model_default_params())
        if not self.model:
            raise OSError(f"llama.cpp cannot load {path}")
        params = L.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch = n_ctx, n_batch, n_batch
        params.n_threads = params.n_threads_batch = threads
        for field, value in context.items():
            setattr(params, field, value)
        self.ctx = L.llama_init_from_model(self.model, params)
        if not self.ctx:
            raise OSError(f"llama.cpp cannot create a context for {path}")
        self.n_batch, self.depth = n_batch, 0

    def hold(self, tokens: list[int]):
        """Prefills tokens once; each run then starts from them (a depth)."""
        self.reset()
        for i in range(0, len(tokens), self.n_batch):
            self.decode(tokens[i : i + self.n_batch])
        self.depth = len(tokens)

    def reset(self):
        memory = self.L.llama_get_memory(self.ctx)
        if not self.depth:
            self.L.llama_memory_clear(memory, True)
        elif not self.L.llama_memory_seq_rm(memory, 0, self.depth, -1):
            raise RuntimeError("llama.cpp cannot cut its context back to the depth")

    def decode(self, tokens: list[int]):
        ids = (self.L.llama_token * len(tokens))(*tokens)
        if self.L.llama_decode(self.ctx, self.L.llama_batch_get_one(ids, len(tokens))):
            raise RuntimeError("llama_decode failed")
        self.L.llama_synchronize(self.ctx)

    def prefill_run(self, tokens):
        def run():
            self.reset()
            self.decode(tokens)

        return run

    def decode_run(self, tokens):
        def run():
            self.reset()
            for token in tokens:
                self.decode([token])

        return run

    def close(self):
        self.L.llama_free(self.ctx)
        self.L.llama_model_free(self.model)


class IkLlamaCpp:
    """ik_llama.cpp's llama-bench on one of its files, one test per call (it loads the model and warms up each time,
    so a call is timed by what llama-bench reports, not by the wall clock)."""

    def __init__(self, build_dir: str, path: str, threads: int):
        self.exe = os.path.join(build_dir, "bin", "llama-bench")
        if not os.access(self.exe, os.X_OK):
            raise OSError(f"IK_LLAMA_DIR: no llama-bench at {self.exe}")
        self.path, self.threads = path, threads

    def run(self, n_prompt: int, n_gen: int, depth: int = 0):
        """A run returning the seconds llama-bench measured for the test; with a depth, tg only (`-gp depth,n_gen`
        times the n_gen tokens decoded after a prompt of depth tokens)."""
        test = ["-p", "0", "-n", "0", "-gp", f"{depth},{n_gen}"] if depth else ["-p", str(n_prompt), "-n", str(n_gen)]

        def run():
            out = subprocess.run(
                [
                    self.exe,
                    "-m",
                    self.path,
                    *test,
                    "-t",
                    str(self.threads),
                    "-r",
                    "1",
                    "-o",
                    "json",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            (result,) = json.loads(out)
            return (n_prompt + n_gen) / result["avg_ts"]

        return run


def alternate(runs: dict, reps: int, pause: float) -> dict:
    """Seconds per run name, the named runs interleaved rep by rep after one warm-up each, `pause` seconds of
    sleep before each. A run may return its own measured seconds (a subprocess's), else it is timed here."""
    for run in runs.values():
        time.sleep(pause)
        run()
    seconds = {name: [] for name in runs}
    for _ in range(reps):
        for name, run in runs.items():
            time.sleep(pause)
            start = time.perf_counter()
            measured = run()
            seconds[name].append(measured if measured is not None else time.perf_counter() - start)
    return seconds


def label(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def output_type(path: str) -> str:
    """The output matrix's type: output.weight's, else the tied embedding's."""
    from tritlm.runtime.gguf import read_gguf

    with read_gguf(path) as gguf:
        tensors = {t.name: t for t in gguf.tensors}
    return tensors.get("output.weight", tensors["token_embd.weight"]).type_name.lower()


def readable_ternary_type(path: str) -> str | None:
    """The linear weights' type of a file our reader parses; None for ik_llama.cpp's own IQ*_BN files."""
    try:
        return weight_layout(path)[0]
    except ValueError:
        return None


def ik_output_type(path: str) -> str:
    """An ik_llama.cpp file's output matrix type, from its name (`...-q6_k.gguf`; bf16 otherwise): our GGUF reader
    does not know its IQ*_BN types."""
    return "q6_k" if label(path).endswith("-q6_k") else "bf16"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="GGUF files tritlm runs (and llama.cpp where it reads them)")
    parser.add_argument(
        "--ik",
        nargs="*",
        default=[],
        help="ik_llama.cpp's own files (its llama-quantize of the same model), run with $IK_LLAMA_DIR/bin/llama-bench",
    )
    parser.add_argument("-p", "--n-prompt", type=int, default=128)
    parser.add_argument("-n", "--n-gen", type=int, default=64)
    parser.add_argument(
        "-d", "--n-depth", type=int, default=0, help="tokens already in the context before each test (default 0)"
    )
    parser.add_argument("-t", "--threads", type=int, default=2)
    parser.add_argument("-r", "--reps", type=int, default=5)
    parser.add_argument("--pause", type=float, default=1.0, help="seconds of sleep before each run (default 1)")
    add_cache_type_option(parser)  # tritlm's
    args = parser.parse_args()
    try:
        import llama_cpp
    except ImportError:  # `make llama-cpp` installs it; without it tritlm (and ik_llama.cpp) run alone
        llama_cpp = None

    if args.ik and not os.environ.get("IK_LLAMA_DIR"):
        parser.error("--ik needs IK_LLAMA_DIR (a local ik_llama.cpp build directory)")
    if min(args.n_prompt, args.n_gen, args.n_depth) < 0:
        parser.error("-p, -n and -d take a count of tokens (0 or more)")
    at = f" @ d{args.n_depth}" if args.n_depth else ""
    pp, tg = f"pp{args.n_prompt}{at}", f"tg{args.n_gen}{at}"
    n_ctx = args.n_depth + max(args.n_prompt, args.n_gen) + 8
    prompt_runs, gen_runs, closers, types, outputs = {}, {}, [], {}, {}
    try:
        for path in args.files:
            name = label(path)
            types[name], _ = weight_layout(path)
            outputs[name] = output_type(path)
            ours = Model(path, threads=args.threads, n_ctx=n_ctx, kv_type=args.cache_type)
            seq = ours.new_sequence(n_ctx)
            closers += [ours.close, seq.close]
            prompt, gen = random_tokens(ours.n_vocab, args.n_prompt), random_tokens(ours.n_vocab, args.n_gen, seed=1)
            held = random_tokens(ours.n_vocab, args.n_depth, seed=2)
            if args.n_depth:
                ours.prefill(seq, held)
            if llama_cpp and types[name] in LLAMA_READS:
                theirs = LlamaCpp(path, args.threads, n_ctx, max(args.n_prompt, 1))
                closers.append(theirs.close)
                if args.n_depth:
                    theirs.hold(held)
                prompt_runs[("llama.cpp", name)], gen_runs[("llama.cpp", name)] = (
                    theirs.prefill_run(prompt),
                    theirs.decode_run(gen),
                )
            prompt_runs[("tritlm", name)], gen_runs[("tritlm", name)] = (
                prefill_run(ours, seq, prompt, args.n_depth),
                decode_run(ours, seq, gen, args.n_depth),
            )
        for path in args.ik:
            if readable_ternary_type(path) == "i2_s":  # its llama-bench would time a model whose matmuls do nothing
                parser.error(f"--ik {path}: ik_llama.cpp has no i2_s matmul (its llama-quantize only reads i2_s)")
            ik = IkLlamaCpp(os.environ["IK_LLAMA_DIR"], path, args.threads)
            outputs[label(path)] = ik_output_type(path)
            if not args.n_depth:  # its llama-bench times no prompt at a depth
                prompt_runs[("ik_llama.cpp", label(path))] = ik.run(args.n_prompt, 0)
            gen_runs[("ik_llama.cpp", label(path))] = ik.run(0, args.n_gen, args.n_depth)
        print(f"benchmarking {len(prompt_runs)} engine/file pairs, alternating ...", file=sys.stderr, flush=True)
        runs = {(engine, name, pp): run for (engine, name), run in prompt_runs.items()}
        runs.update({(engine, name, tg): run for (engine, name), run in gen_runs.items()})
        seconds = alternate(runs, args.reps, args.pause)
    finally:
        for close in reversed(closers):
            close()
    n_tokens = {pp: args.n_prompt, tg: args.n_gen}
    rates = {key: rate(n_tokens[key[2]], s) for key, s in seconds.items()}

    def best(engine, test, output=None):  # the engine's fastest file for a test (with that output matrix type)
        return max(
            (r[0] for (e, n, t), r in rates.items() if e == engine and t == test and output in (None, outputs[n])),
            default=None,
        )

    rows = []
    for (engine, name, test), (mean, sd) in sorted(rates.items(), key=lambda kv: (kv[0][2], kv[0][1], kv[0][0])):
        same_file = rates.get(("llama.cpp", name, test)) if engine == "tritlm" else None
        peers = [best("llama.cpp", test), best("ik_llama.cpp", test, outputs[name])] if engine == "tritlm" else []
        ratios = [f"{mean / peer:.2f}x" if peer else "" for peer in peers] or ["", ""]
        rows.append(
            [
                engine,
                name,
                types.get(name, ""),
                outputs[name],
                test,
                f"{mean:.2f} ± {sd:.2f}",
                f"{mean / same_file[0]:.2f}x" if same_file else "",
                *ratios,
            ]
        )
    print(
        f"llama.cpp: {f'llama-cpp-python {llama_cpp.__version__}' if llama_cpp else 'not installed'}; ik_llama.cpp: {'yes' if args.ik else 'not run'}; "
        f"{args.threads} threads, {args.reps} reps alternating, {args.pause} s pauses, t/s mean ± stddev"
    )
    # the code paths each engine ran (TRITLM_ISA, and what llama.cpp was compiled with: bench-peers-avx2 holds both to AVX2)
    print(f"tritlm ISA: {kernel_isa()}", end="")
    print(f"; llama.cpp {llama_cpp.llama_print_system_info().decode().strip()}" if llama_cpp else "")
    print(
        markdown_table(
            [
                "engine",
                "file",
                "type",
                "output",
                "test",
                "t/s",
                "ours / llama.cpp same file",
                "ours / llama.cpp's best",
                "ours / ik_llama.cpp's best, same output type",
            ],
            rows,
            right={5, 6, 7, 8},
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
