"""Log-probabilities of tokens under the model's own logits (before any sampling setting or token mask, as
OpenAI and llama-server report them): a generated token's, with the most likely alternatives, and every
prompt token's (what `echo` returns and lm-evaluation-harness scores)."""

from dataclasses import dataclass

import numpy as np


@dataclass
class TokenLogprob:
    token: int
    logprob: float | None  # None for a prompt's first token: nothing predicts it
    top: list[tuple[int, float]] | None  # the most likely tokens at that position, best first


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, in float64."""
    rows = np.asarray(logits, dtype=np.float64)
    peak = rows.max(axis=-1, keepdims=True)
    return rows - peak - np.log(np.exp(rows - peak).sum(axis=-1, keepdims=True))


def most_likely(logprobs: np.ndarray, n: int) -> list[tuple[int, float]]:
    """The n (token, logprob) pairs of highest logprob, best first (ties: lower id first)."""
    if n <= 0:
        return []
    ids = np.argpartition(-logprobs, n - 1)[:n] if n < logprobs.size else np.arange(logprobs.size)
    ids = ids[np.lexsort((ids, -logprobs[ids]))]
    return [(int(i), float(logprobs[i])) for i in ids]


def of_token(logits, token: int, n_top: int) -> TokenLogprob:
    """A sampled token's logprob under the logits that predicted it, and the n_top most likely tokens there."""
    logprobs = log_softmax(logits)
    return TokenLogprob(int(token), float(logprobs[token]), most_likely(logprobs, n_top))


def of_prompt(model, ids: list[int], n_top: int) -> list[TokenLogprob]:
    """Every prompt token's logprob given the tokens before it (one forward pass over the prompt)."""
    logprobs = log_softmax(model.logits(ids)) if len(ids) > 1 else np.empty((0, model.n_vocab))
    return [TokenLogprob(int(ids[0]), None, None)] + [
        TokenLogprob(int(token), float(row[token]), most_likely(row, n_top)) for token, row in zip(ids[1:], logprobs)
    ]
