"""Held-out perplexity of the embedded model, computed by transformers from the saved checkpoint.

transformers loads the packed checkpoint with its offline `quantization_config` (AutoBitLinear: unpacked
ternary weights times the bf16 weight_scale, per-token int8 activations), in float32, and scores the
held-out stdlib files of models/train_tiny.py in the same 512-token windows that train_tiny.py scores its
trained model with, so the two numbers must agree.

With `--text FILE` it also writes the held-out files as one text and scores it as `tritlm perplexity -f FILE`
does (llama-perplexity's windows: runtime/perplexity.py's rule, transformers' logits), so the engine's number
can be compared with transformers':

    .venv/bin/python models/eval_perplexity.py models/bitnet-tiny --text .cache/held-out.txt
    .venv/bin/tritlm perplexity -m models/bitnet-tiny.i2_s.gguf -f .cache/held-out.txt -c 512"""

import argparse
import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

import numpy as np
import torch
from tokenizers import Tokenizer

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from train_tiny import HELD_OUT, STDLIB, encode_files, mean_loss, read_text  # noqa: E402
from train_variant import load_variant  # noqa: E402

from tests.checkpoints import load_reference  # noqa: E402  (transformers' own quantized BitNet, float32)
from tritlm.runtime.perplexity import negative_log_likelihoods, summarize, window_first_scored  # noqa: E402


def load_model(checkpoint: Path):
    """transformers' BitNet for a b1.58 checkpoint; models/train_variant.py's exact forward for an a4.8 or Q-Sparse
    one (its quantization_config names activation bits, top-K fractions, KV cache bits)."""
    quant = json.loads((checkpoint / "config.json").read_text()).get("quantization_config") or {}
    if any(key in quant for key in ("activation_bits", "activation_topk", "kv_cache_bits")):
        return load_variant(checkpoint)
    return load_reference(str(checkpoint))


def held_out_loss(checkpoint: Path) -> float:
    model = load_model(checkpoint)
    tokenizer = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
    stream = encode_files(tokenizer, [STDLIB / name for name in HELD_OUT])
    return mean_loss(model, stream, model.config.max_position_embeddings)


@torch.no_grad()
def llama_perplexity(checkpoint: Path, text: str, n_ctx: int):
    """transformers' logits scored with llama-perplexity's windows, exactly as `tritlm perplexity` scores ours."""
    model = load_model(checkpoint)
    tokens = Tokenizer.from_file(str(checkpoint / "tokenizer.json")).encode(text).ids  # with BOS, as Model.tokenize
    first, nll = window_first_scored(n_ctx), []
    for i in range(len(tokens) // n_ctx):
        window = tokens[i * n_ctx : (i + 1) * n_ctx]
        window[0] = tokens[0]  # BOS
        logits = model(input_ids=torch.tensor([window])).logits[0, first : n_ctx - 1].float().numpy()
        nll.append(negative_log_likelihoods(logits, np.asarray(window[first + 1 :])))
    return summarize(np.concatenate(nll), len(nll))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, nargs="?", default=Path(__file__).parent / "bitnet-tiny")
    parser.add_argument(
        "--text", type=Path, help="also write the held-out text here and score it as tritlm perplexity does"
    )
    parser.add_argument("-c", "--ctx", type=int, default=512, help="window length for --text (default 512)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    loss = held_out_loss(args.checkpoint)
    print(f"held-out loss {loss:.4f}, perplexity {math.exp(loss):.2f} ({len(HELD_OUT)} files: {', '.join(HELD_OUT)})")
    if args.text:
        text = "\n".join(read_text(STDLIB / name) for name in HELD_OUT)
        args.text.write_text(text, encoding="utf-8")
        result = llama_perplexity(args.checkpoint, text, args.ctx)
        print(
            f"{args.text}: transformers, llama-perplexity windows of {args.ctx}: {result.n_tokens} tokens scored, "
            f"PPL = {result.ppl:.4f} +/- {result.ppl_err:.5f}"
        )


if __name__ == "__main__":
    main()
