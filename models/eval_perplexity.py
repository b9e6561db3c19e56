"""Held-out perplexity of the embedded model, computed by transformers from the saved checkpoint.

transformers loads the packed checkpoint with its offline `quantization_config` (AutoBitLinear: unpacked
ternary weights times the bf16 weight_scale, per-token int8 activations), in float32, and scores the
held-out stdlib files of models/train_tiny.py in the same 512-token windows that train_tiny.py scores its
trained model with, so the two numbers must agree.

    .venv/bin/python models/eval_perplexity.py models/bitnet-tiny"""
import argparse
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

import torch
from tokenizers import Tokenizer

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from tests.checkpoints import load_reference  # noqa: E402  (transformers' own quantized BitNet, float32)
from train_tiny import HELD_OUT, STDLIB, encode_files, mean_loss  # noqa: E402


def held_out_loss(checkpoint: Path) -> float:
    model = load_reference(str(checkpoint))
    tokenizer = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
    stream = encode_files(tokenizer, [STDLIB / name for name in HELD_OUT])
    return mean_loss(model, stream, model.config.max_position_embeddings)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, nargs="?", default=Path(__file__).parent / "bitnet-tiny")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    loss = held_out_loss(args.checkpoint)
    print(f"held-out loss {loss:.4f}, perplexity {math.exp(loss):.2f} ({len(HELD_OUT)} files: {', '.join(HELD_OUT)})")


if __name__ == "__main__":
    main()
