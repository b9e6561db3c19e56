"""`make bench-peers`: tritlm against llama.cpp (llama-cpp-python's low-level API) on the very same GGUF files.

In one process both engines load each file; their runs alternate (llama.cpp pp, ours pp, llama.cpp tg, ours tg,
per repetition) so a noisy neighbour on the machine hurts both alike. pp = the prompt as one llama_decode /
one prefill of a fresh context; tg = single-token decodes from an empty context, like llama-bench.
Files llama.cpp cannot read (i2_s) run ours only and are compared with llama.cpp's best file.
Note: llama.cpp's `bitnet` graph always uses SiLU in the MLP; a relu2 model (2B-4T) computes a different
function there, at the same cost, so speeds compare and outputs don't.

usage: python bench/peers.py [-p 128] [-n 64] [-t 2] [-r 5] FILE.gguf ..."""
import argparse
import ctypes
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tritlm.runtime import Model  # noqa: E402
from tritlm.runtime.bench import decode_run, markdown_table, prefill_run, random_tokens, rate, weight_layout  # noqa: E402

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

    def reset(self):
        self.L.llama_memory_clear(self.L.llama_get_memory(self.ctx), True)

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


def alternate(runs: dict, reps: int) -> dict:
    """Seconds per run name, the named runs interleaved rep by rep after one warm-up each."""
    import time

    for run in runs.values():
        run()
    seconds = {name: [] for name in runs}
    for _ in range(reps):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def bench_file(path: str, threads: int, n_prompt: int, n_gen: int, reps: int) -> dict:
    """{(engine, test): (t/s mean, stddev)} for one GGUF file."""
    ternary_type, _ = weight_layout(path)
    n_ctx = max(n_prompt, n_gen) + 8
    ours = Model(path, threads=threads, n_ctx=n_ctx)
    seq = ours.new_sequence(n_ctx)
    prompt, gen = random_tokens(ours.n_vocab, n_prompt), random_tokens(ours.n_vocab, n_gen, seed=1)
    runs = {("tritlm", f"pp{n_prompt}"): prefill_run(ours, seq, prompt), ("tritlm", f"tg{n_gen}"): decode_run(ours, seq, gen)}
    theirs = None
    if ternary_type in LLAMA_READS:
        theirs = LlamaCpp(path, threads, n_ctx, n_prompt)
        runs = {("llama.cpp", f"pp{n_prompt}"): theirs.prefill_run(prompt), ("tritlm", f"pp{n_prompt}"): runs[("tritlm", f"pp{n_prompt}")],
                ("llama.cpp", f"tg{n_gen}"): theirs.decode_run(gen), ("tritlm", f"tg{n_gen}"): runs[("tritlm", f"tg{n_gen}")]}
    try:
        seconds = alternate(runs, reps)
    finally:
        seq.close()
        ours.close()
        if theirs:
            theirs.close()
    n_tokens = {f"pp{n_prompt}": n_prompt, f"tg{n_gen}": n_gen}
    return {key: rate(n_tokens[key[1]], s) for key, s in seconds.items()}, ternary_type


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("-p", "--n-prompt", type=int, default=128)
    parser.add_argument("-n", "--n-gen", type=int, default=64)
    parser.add_argument("-t", "--threads", type=int, default=2)
    parser.add_argument("-r", "--reps", type=int, default=5)
    args = parser.parse_args()
    import llama_cpp

    results = {}
    for path in args.files:
        print(f"benchmarking {path} ...", file=sys.stderr, flush=True)
        rates, ternary_type = bench_file(path, args.threads, args.n_prompt, args.n_gen, args.reps)
        results[ternary_type] = rates
    tests = [f"pp{args.n_prompt}", f"tg{args.n_gen}"]
    best_theirs = {t: max((r[("llama.cpp", t)][0] for r in results.values() if ("llama.cpp", t) in r), default=None) for t in tests}
    rows = []
    for ternary_type, rates in results.items():
        for test in tests:
            ours = rates[("tritlm", test)]
            theirs = rates.get(("llama.cpp", test))
            if theirs:
                rows.append([ternary_type, test, f"{theirs[0]:.2f} ± {theirs[1]:.2f}", f"{ours[0]:.2f} ± {ours[1]:.2f}",
                             f"{ours[0] / theirs[0]:.2f}x", ""])
            else:
                best = best_theirs[test]
                rows.append([ternary_type, test, "cannot read", f"{ours[0]:.2f} ± {ours[1]:.2f}", "",
                             f"{ours[0] / best:.2f}x" if best else ""])
    print(f"llama.cpp via llama-cpp-python {llama_cpp.__version__}, {args.threads} threads, {args.reps} reps, t/s mean ± stddev")
    print(markdown_table(["type", "test", "llama.cpp t/s", "tritlm t/s", "ours/theirs", "ours/llama.cpp's best"], rows,
                         right={2, 3, 4, 5}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
