"""`tritlm perplexity`: perplexity of a model over a text file, scored as llama.cpp's llama-perplexity does.

The text is tokenized once (with BOS when the model has one) and cut into non-overlapping windows of n_ctx
tokens (a trailing partial window is dropped). Each window starts a fresh sequence whose first token is
replaced by BOS, and only the second half is scored: the logits at positions n_ctx/2 .. n_ctx-2 predict the
tokens after them, so every scored token has at least n_ctx/2 tokens of context. The ± is the standard error
of the mean negative log-likelihood carried through exp(), as llama.cpp prints it."""

import math
from dataclasses import dataclass

import numpy as np

from tritlm.runtime.cli import add_cache_type_option, read_text
from tritlm.runtime.errors import InputError
from tritlm.runtime.logprobs import log_softmax

DEFAULT_CTX = 512


@dataclass
class Perplexity:
    ppl: float
    ppl_err: float  # one standard error
    n_tokens: int  # tokens scored
    n_windows: int


def window_first_scored(n_ctx: int) -> int:
    """Position of the first logit row that is scored in a window (llama.cpp's `first`)."""
    return n_ctx // 2


def negative_log_likelihoods(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log softmax(logits)[target] per row, in float64."""
    return -log_softmax(logits)[np.arange(len(targets)), targets]


def summarize(nll: np.ndarray, n_windows: int) -> Perplexity:
    """Perplexity and its ± from per-token negative log-likelihoods (llama.cpp's final estimate)."""
    mean = float(nll.mean())
    ppl = math.exp(mean)
    variance = float((nll * nll).mean()) - mean * mean
    err = ppl * math.sqrt(variance / (len(nll) - 1)) if variance > 0 and len(nll) > 1 else 0.0
    return Perplexity(ppl, err, len(nll), n_windows)


def window_nll(model, seq, window: list[int], n_batch: int) -> np.ndarray:
    """Runs one window through a fresh sequence in batches of n_batch and scores its second half."""
    n_ctx = len(window)
    first = window_first_scored(n_ctx)
    n_scored = n_ctx - 1 - first
    logits = np.empty((n_scored, model.n_vocab), dtype=np.float32)
    seq.reset()
    for start in range(0, n_ctx, n_batch):
        tokens = window[start : start + n_batch]
        scored = [first <= p < n_ctx - 1 for p in range(start, start + len(tokens))]
        rows = np.cumsum(scored) - 1  # the batch's scored tokens fill output rows 0, 1, ...
        out = model.forward([seq] * len(tokens), tokens, logit_rows=np.where(scored, rows, -1).tolist())
        if any(scored):
            begin = max(start, first) - first
            logits[begin : begin + sum(scored)] = out[: sum(scored)]
    return negative_log_likelihoods(logits, np.asarray(window[first + 1 :], dtype=np.int64))


def perplexity(
    model, text: str, n_ctx: int = DEFAULT_CTX, n_batch: int | None = None, progress: bool = True
) -> Perplexity:
    """Perplexity of `model` (a runtime.Model whose n_ctx >= n_ctx) over `text`."""
    from tqdm import tqdm

    if n_ctx < 4:
        raise InputError(f"context {n_ctx} is too small for perplexity (need at least 4 tokens)")
    if n_ctx > model.n_ctx:
        raise InputError(f"context {n_ctx} exceeds the model's context of {model.n_ctx} tokens")
    n_batch = min(n_batch or n_ctx, n_ctx)
    if n_batch < 1:
        raise InputError(f"batch size must be positive, got {n_batch}")
    tokens = model.tokenize(text, add_bos=True)
    n_windows = len(tokens) // n_ctx
    if n_windows == 0:
        raise InputError(f"the text has {len(tokens)} tokens: fewer than one window of {n_ctx} (use a smaller -c)")
    seq = model.new_sequence(n_ctx)
    nll = []
    try:
        bar = tqdm(range(n_windows), desc="perplexity", unit="window", disable=not progress)
        for i in bar:
            window = tokens[i * n_ctx : (i + 1) * n_ctx]
            if model.bos_id is not None:
                window[0] = model.bos_id
            nll.append(window_nll(model, seq, window, n_batch))
            bar.set_postfix(ppl=f"{math.exp(np.concatenate(nll).mean()):.4f}")
    finally:
        seq.close()
    return summarize(np.concatenate(nll), n_windows)


def run(args) -> int:
    from tritlm.runtime import Model

    text = read_text(args.file, errors="replace")
    model = Model(
        args.model, threads=args.threads, n_ctx=args.ctx_size, act_topk=args.act_topk, kv_type=args.cache_type
    )
    try:
        result = perplexity(model, text, args.ctx_size, args.batch_size)
    finally:
        model.close()
    print(
        f"{result.n_windows} windows of {args.ctx_size} tokens, {result.n_tokens} tokens scored (second half of each window)"
    )
    print(f"Final estimate: PPL = {result.ppl:.4f} +/- {result.ppl_err:.5f}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "perplexity", help="perplexity of a GGUF model over a text file (llama-perplexity's windows)"
    )
    p.add_argument("-m", "--model", required=True, help="GGUF file")
    p.add_argument("-f", "--file", required=True, help="UTF-8 text file")
    p.add_argument(
        "-c", "--ctx-size", type=int, default=DEFAULT_CTX, help=f"window length in tokens (default {DEFAULT_CTX})"
    )
    p.add_argument(
        "-b", "--batch-size", type=int, default=None, help="tokens per forward pass (default: the whole window)"
    )
    p.add_argument("-t", "--threads", type=int, default=None, help="threads (default: physical cores)")
    p.add_argument(
        "--act-topk",
        type=float,
        default=None,
        metavar="F",
        help="keep only the top F of every linear input, per token (Q-Sparse without training: lossy on b1.58 files; default: the file's own mode)",
    )
    add_cache_type_option(p)
    p.set_defaults(func=run, errors=(InputError,))
