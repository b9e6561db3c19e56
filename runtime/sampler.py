"""Picks the next token from logits: temperature, then top-k, then top-p (nucleus), as transformers orders
them; temperature 0 is greedy (argmax). A seed makes the choices reproducible; seed -1 (or None) is a fresh
random one, as in llama.cpp."""
import math
import sys

import numpy as np


class SamplingError(ValueError):
    """A setting the sampler cannot work with; `param` names it (the server answers 400 with it)."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param} {message}")
        self.param = param


class Sampler:
    def __init__(self, temperature: float = 0.8, top_k: int = 40, top_p: float = 0.95, seed: int | None = None):
        # Subnormal temperatures overflow logits / T to inf (then NaN); they are refused, not clamped.
        if not (temperature == 0 or (math.isfinite(temperature) and temperature >= sys.float_info.min)):
            raise SamplingError("temperature", f"must be 0 (greedy) or a finite number >= {sys.float_info.min:g}, "
                                               f"got {temperature}")
        if top_k < 0:
            raise SamplingError("top_k", f"must be >= 0 (0 = all tokens), got {top_k}")
        if not 0 < top_p <= 1:  # also refuses NaN
            raise SamplingError("top_p", f"must be in (0, 1], got {top_p}")
        if seed is not None and seed < -1:
            raise SamplingError("seed", f"must be >= 0, or -1 for a random seed, got {seed}")
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.rng = np.random.default_rng(None if seed == -1 else seed)

    def sample(self, logits) -> int:
        logits = np.asarray(logits, dtype=np.float32)
        if self.temperature == 0:
            return int(np.argmax(logits))
        # The candidates: the top_k highest logits (all when top_k is 0), best first.
        ids = np.argpartition(logits, -self.top_k)[-self.top_k:] if 0 < self.top_k < logits.size else np.arange(logits.size)
        order = np.argsort(-logits[ids], kind="stable")
        ids = ids[order]
        # The best logit subtracted before dividing: each term is <= 0, so a tiny temperature gives -inf
        # (probability 0), never inf - inf.
        with np.errstate(over="ignore"):
            probs = np.exp((logits[ids].astype(np.float64) - logits[ids[0]]) / self.temperature)
        probs /= probs.sum()
        if self.top_p < 1:  # the smallest head of the list whose probability reaches top_p
            keep = int(np.searchsorted(np.cumsum(probs), self.top_p)) + 1
            ids, probs = ids[:keep], probs[:keep] / probs[:keep].sum()
        return int(ids[self.rng.choice(ids.size, p=probs)])
