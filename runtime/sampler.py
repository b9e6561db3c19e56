"""Picks the next token from logits: temperature, then top-k, then top-p (nucleus), as transformers orders
them; temperature 0 is greedy (argmax). A seed makes the choices reproducible."""
import numpy as np


class Sampler:
    def __init__(self, temperature: float = 0.8, top_k: int = 40, top_p: float = 0.95, seed: int | None = None):
        if not temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = all tokens), got {top_k}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.rng = np.random.default_rng(seed)

    def sample(self, logits) -> int:
        logits = np.asarray(logits, dtype=np.float32)
        if self.temperature == 0:
            return int(np.argmax(logits))
        # The candidates: the top_k highest logits (all when top_k is 0), best first.
        ids = np.argpartition(logits, -self.top_k)[-self.top_k:] if 0 < self.top_k < logits.size else np.arange(logits.size)
        scaled = logits[ids].astype(np.float64) / self.temperature
        order = np.argsort(-scaled, kind="stable")
        ids, scaled = ids[order], scaled[order]
        probs = np.exp(scaled - scaled[0])
        probs /= probs.sum()
        if self.top_p < 1:  # the smallest head of the list whose probability reaches top_p
            keep = int(np.searchsorted(np.cumsum(probs), self.top_p)) + 1
            ids, probs = ids[:keep], probs[:keep] / probs[:keep].sum()
        return int(ids[self.rng.choice(ids.size, p=probs)])
