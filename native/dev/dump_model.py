"""A GGUF model's engine inputs and this machine's engine outputs in one flat file, for native/dev/run_forward.c:
the tl_config and tl_tensors exactly as runtime/weights.py hands them to tl_model_new (with each tensor's bytes),
a few forward passes (a prompt, then greedy decode steps), and the logits this build's engine gave for them.
run_forward.c, built for another CPU (make test-arm: ARM64 under qemu), replays the passes and compares logits.

Usage (from the repo root): PYTHONPATH=. python native/dev/dump_model.py MODEL.gguf OUT [--prompt TEXT] [--steps N]

Layout (little-endian): b"TLFWD001", tl_config, int32 tensor count, then per tensor (token_embd, output_norm,
output, each layer's tl_layer fields in order) int32 type, int32 present, int64 rows, int64 cols, float32 scale,
int32 0, int64 nbytes, the bytes; int32 pass count, per pass int32 n and n int32 tokens; float32 logits
[tokens of all passes][n_vocab]."""

import argparse
import os
import struct
import sys

import numpy as np

from tritlm.formats import LAYER_TENSORS
from tritlm.runtime._native import ffi
from tritlm.runtime.errors import ModelError
from tritlm.runtime.gguf import GGUFFile, tensor_nbytes
from tritlm.runtime.model import Model
from tritlm.runtime.weights import native_weights, read_hparams

MAGIC = b"TLFWD001"
N_CTX = 64  # positions of the sequence, here and in run_forward.c


def tensor_record(t) -> bytes:
    """One tl_tensor and its bytes (none when absent: a tied output, a model without sub-norms)."""
    present = t.data != ffi.NULL
    nbytes = tensor_nbytes(t.type, (t.cols, t.rows)) if present else 0
    head = struct.pack("<iiqqfiq", t.type, int(present), t.rows, t.cols, t.scale, 0, nbytes)
    return head + (bytes(ffi.buffer(t.data, nbytes)) if present else b"")


def dump(model_path: str, out_path: str, prompt: str, steps: int) -> None:
    # its outputs: the prompt at once (prefill), then one greedy token at a time (decode)
    with Model(model_path, threads=2, n_ctx=N_CTX) as m:
        passes, logits = [m.tokenize(prompt)], []
        if len(passes[0]) + steps > N_CTX:
            raise ModelError(f"the prompt ({len(passes[0])} tokens) and {steps} steps do not fit in {N_CTX} positions")
        with m.new_sequence() as seq:
            for step in range(steps + 1):
                logits.append(m.forward([seq] * len(passes[-1]), passes[-1]))
                if step < steps:
                    passes.append([int(np.argmax(logits[-1][-1]))])
    # its inputs, as runtime.model.Model builds them
    file = GGUFFile(model_path)
    base = ffi.from_buffer(file.buffer)
    try:
        hp = read_hparams(file.metadata, {t.name for t in file.tensors})
        cfg, token_embd, output_norm, output, layers = native_weights(file, hp, ffi.cast("const char *", base), ffi)
        tensors = [token_embd[0], output_norm[0], output[0]]
        tensors += [getattr(layers[i], f) for i in range(hp.n_layer) for f in LAYER_TENSORS]
        tmp = out_path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(MAGIC + bytes(ffi.buffer(cfg)) + struct.pack("<i", len(tensors)))
            for t in tensors:
                f.write(tensor_record(t))
            f.write(struct.pack("<i", len(passes)))
            for ids in passes:
                f.write(struct.pack(f"<i{len(ids)}i", len(ids), *ids))
            f.write(np.concatenate(logits).astype("<f4").tobytes())
        os.replace(tmp, out_path)
    finally:
        ffi.release(base)
        file.close()
    print(f"{out_path}: {len(tensors)} tensors, passes of {[len(p) for p in passes]} tokens")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--prompt", default="class Stack:\n    def push(self, item):")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    try:
        dump(args.model, args.out, args.prompt, args.steps)
    except (ModelError, OSError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
