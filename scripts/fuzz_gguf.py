"""`make fuzz`: coverage-guided fuzzing of the GGUF loader with atheris (libFuzzer's engine, for Python).

Each input is written to a file and loaded with Model(), the way a downloaded file is: it must load, or raise one
ModelError with a one-line message. Anything else is a finding: another exception (a traceback), a crash
(libFuzzer also catches signals from the C core), an input slower than --timeout seconds (a hang), or RSS above
--rss-mb (memory not bounded by the file: inputs are at most a few hundred kB). libFuzzer saves each finding as
crash-*/timeout-*/oom-* in the current folder and stops.

The seeds are our own files: a micro checkpoint of each family (BitNet packed, 1bitLLM fp16 with a SentencePiece
tokenizer, Llama with BitNet quantization) converted to every type, written once to CACHE/fuzz-seeds. Inputs
libFuzzer finds interesting accumulate in CACHE/fuzz-gguf, so each run starts where the last stopped.

    python scripts/fuzz_gguf.py [--seconds 60] [--cache .cache]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# family -> (form, converted types): small shapes, so a load takes ~10 ms
MICRO = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=1,
    num_attention_heads=2,
    num_key_value_heads=1,
    vocab_size=384,
    max_position_embeddings=64,
)
SEEDS = {
    "bitnet": ("packed", ("i2_s", "tq1_0", "tq2_0", "f16")),
    "1bitllm": ("fp16", ("tq2_0",)),
    "llama": ("packed", ("tq1_0",)),
}


def make_seeds(folder: str) -> list[str]:
    """Our own GGUF files of the micro checkpoints, made once."""
    from tritlm.converter import synth
    from tritlm.converter.write import convert

    paths = []
    for family, (form, types) in SEEDS.items():
        for type_name in types:
            path = os.path.join(folder, f"{family}-{type_name}.gguf")
            if not os.path.exists(path):
                with tempfile.TemporaryDirectory() as ckpt:
                    synth.write_checkpoint(ckpt, MICRO, form, seed=1, family=family)
                    convert(ckpt, path, type_name, progress=False)
            paths.append(path)
    return paths


def fuzz(corpus: str, work: str, libfuzzer_args: list[str]) -> None:
    """The fuzzing process (libFuzzer ends it with _exit): counts go to work/counts.json after every input."""
    import atheris

    with atheris.instrument_imports(include=["runtime", "formats"]):
        from tritlm.runtime import Model, ModelError
    path, counts_path = os.path.join(work, "input.gguf"), os.path.join(work, "counts.json")
    counts = {"loaded": 0, "refused": 0}

    def one_input(data: bytes) -> None:
        with open(path, "wb") as f:
            f.write(data)
        try:
            Model(path, threads=1).close()
            counts["loaded"] += 1
        except ModelError as e:
            counts["refused"] += 1
            if "\n" in str(e):
                raise AssertionError(f"a ModelError of more than one line: {str(e)!r}") from None
        with open(counts_path, "w") as f:
            json.dump(counts, f)

    atheris.Setup([sys.argv[0], corpus] + libfuzzer_args, one_input)
    atheris.Fuzz()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=60, help="how long to fuzz (default 60)")
    p.add_argument("--cache", default=os.path.join(ROOT, ".cache"), help="where seeds and the corpus live")
    p.add_argument("--timeout", type=int, default=10, help="seconds an input may take (default 10)")
    p.add_argument("--rss-mb", type=int, default=2048, help="RSS limit of the fuzzing process (default 2048)")
    p.add_argument("--child", nargs=2, metavar=("CORPUS", "WORK"), help=argparse.SUPPRESS)
    args, libfuzzer_args = p.parse_known_args()
    if args.child:
        fuzz(*args.child, libfuzzer_args)
        return 0

    os.makedirs(os.path.join(args.cache, "fuzz-seeds"), exist_ok=True)
    seeds = make_seeds(os.path.join(args.cache, "fuzz-seeds"))
    corpus = os.path.join(args.cache, "fuzz-gguf")
    os.makedirs(corpus, exist_ok=True)
    for seed in seeds:
        if not os.path.exists(os.path.join(corpus, os.path.basename(seed))):
            shutil.copy(seed, corpus)
    max_len = 2 * max(os.path.getsize(s) for s in seeds)
    with tempfile.TemporaryDirectory(prefix="tritlm-fuzz-") as work:
        started = time.monotonic()
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                corpus,
                work,
                f"-max_total_time={args.seconds}",
                f"-timeout={args.timeout}",
                f"-rss_limit_mb={args.rss_mb}",
                f"-max_len={max_len}",
                "-print_final_stats=1",
            ]
        )
        counts_path = os.path.join(work, "counts.json")
        counts = json.load(open(counts_path)) if os.path.exists(counts_path) else {"loaded": 0, "refused": 0}
    n = counts["loaded"] + counts["refused"]
    print(
        f"fuzz: {n} executions in {time.monotonic() - started:.0f} s ({counts['loaded']} loaded, {counts['refused']} "
        f"refused with a one-line ModelError), {'no findings' if done.returncode == 0 else 'a FINDING (see above)'}; "
        f"corpus {corpus}: {len(os.listdir(corpus))} files"
    )
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
