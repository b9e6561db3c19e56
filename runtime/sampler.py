"""Picks the next token from logits. The logits are first adjusted as llama.cpp's sampler chain does: logit
bias added, then the repetition penalties over the last `repeat_last_n` tokens seen (the prompt's and the
sampled ones). Then temperature, top-k and top-p, as transformers orders them, and min-p, which (as in
llama.cpp) keeps the tokens whose probability before temperature is at least min_p times the top one's.
Temperature 0 is greedy (argmax of the adjusted logits). A seed makes the choices reproducible; seed -1 (or
None) is a fresh random one, as in llama.cpp."""

import collections
import math
import sys

import numpy as np

from tritlm.runtime.errors import InputError


class SamplingError(InputError):
    """A setting the sampler cannot work with; `param` names it (the server answers 400 with it)."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param} {message}")
        self.param = param


class Sampler:
    def __init__(
        self,
        temperature: float = 0.8,
        top_k: int = 40,
        top_p: float = 0.95,
        seed: int | None = None,
        *,
        min_p: float = 0.0,
        repeat_penalty: float = 1.0,
        repeat_last_n: int = 64,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        logit_bias: dict | None = None,
    ):
        # Subnormal temperatures overflow logits / T to inf (then NaN); they are refused, not clamped.
        if not (temperature == 0 or (math.isfinite(temperature) and temperature >= sys.float_info.min)):
            raise SamplingError(
                "temperature", f"must be 0 (greedy) or a finite number >= {sys.float_info.min:g}, got {temperature}"
            )
        if top_k < 0:
            raise SamplingError("top_k", f"must be >= 0 (0 = all tokens), got {top_k}")
        if not 0 < top_p <= 1:  # also refuses NaN
            raise SamplingError("top_p", f"must be in (0, 1], got {top_p}")
        if seed is not None and seed < -1:
            raise SamplingError("seed", f"must be >= 0, or -1 for a random seed, got {seed}")
        if not 0 <= min_p <= 1:
            raise SamplingError("min_p", f"must be in [0, 1], got {min_p}")
        if not (math.isfinite(repeat_penalty) and repeat_penalty > 0):
            raise SamplingError("repeat_penalty", f"must be a finite number > 0 (1 = off), got {repeat_penalty}")
        if repeat_last_n < -1:
            raise SamplingError("repeat_last_n", f"must be >= -1 (0 = off, -1 = all tokens seen), got {repeat_last_n}")
        for name, value in (("frequency_penalty", frequency_penalty), ("presence_penalty", presence_penalty)):
            if not math.isfinite(value):
                raise SamplingError(name, f"must be a finite number, got {value}")
        self.logit_bias = {int(t): float(b) for t, b in (logit_bias or {}).items()}
        if not all(math.isfinite(b) for b in self.logit_bias.values()):
            raise SamplingError("logit_bias", "values must be finite numbers")
        self.temperature, self.top_k, self.top_p, self.min_p = temperature, top_k, top_p, min_p
        self.repeat_penalty, self.frequency_penalty, self.presence_penalty = (
            repeat_penalty,
            frequency_penalty,
            presence_penalty,
        )
        penalized = repeat_penalty != 1 or frequency_penalty != 0 or presence_penalty != 0
        # The tokens the penalties look at (llama.cpp's ring buffer); None when no penalty is on.
        self.recent: collections.deque[int] | None = (
            collections.deque(maxlen=None if repeat_last_n == -1 else repeat_last_n)
            if penalized and repeat_last_n != 0
            else None
        )
        self.rng = np.random.default_rng(None if seed == -1 else seed)

    def accept(self, tokens) -> None:
        """Adds tokens to the penalty window: the prompt's before the first sample (sample() adds its own)."""
        if self.recent is not None:
            self.recent.extend(int(t) for t in tokens)

    def adjust(self, logits) -> np.ndarray:
        """The logits (float32, a copy) with logit bias and repetition penalties applied, in llama.cpp's order."""
        logits = np.array(logits, dtype=np.float32)
        for token, bias in self.logit_bias.items():
            if 0 <= token < logits.size:
                logits[token] += bias
        if self.recent:
            ids, counts = np.unique(np.fromiter(self.recent, dtype=np.int64), return_counts=True)
            ids, counts = ids[ids < logits.size], counts[ids < logits.size]
            seen = logits[ids]
            # Dividing a negative logit would raise it: those are multiplied instead (llama.cpp's fix of CTRL).
            seen = np.where(seen <= 0, seen * np.float32(self.repeat_penalty), seen / np.float32(self.repeat_penalty))
            logits[ids] = seen - (
                counts.astype(np.float32) * np.float32(self.frequency_penalty) + np.float32(self.presence_penalty)
            )
        return logits

    def sample(self, logits) -> int:
        """The next token (logits may hold -inf for tokens a constraint forbids); it joins the penalty window."""
        token = self._choose(self.adjust(logits))
        self.accept([token])
        return token

    def _choose(self, logits: np.ndarray) -> int:
        if self.temperature == 0:
            return int(np.argmax(logits))
        # The candidates: the top_k highest logits (all when top_k is 0), best first.
        ids = top_k_ids(logits, self.top_k) if 0 < self.top_k < logits.size else np.arange(logits.size)
        ids = ids[np.argsort(-logits[ids], kind="stable")]
        # The best logit subtracted before dividing: each term is <= 0, so a tiny temperature gives -inf
        # (probability 0), never inf - inf.
        shifted = logits[ids].astype(np.float64) - logits[ids[0]]
        with np.errstate(over="ignore"):
            probs = np.exp(shifted / self.temperature)
        probs /= probs.sum()
        if self.top_p < 1:  # the smallest head of the list whose probability reaches top_p
            keep = int(np.searchsorted(np.cumsum(probs), self.top_p)) + 1
            ids, shifted, probs = ids[:keep], shifted[:keep], probs[:keep] / probs[:keep].sum()
        if self.min_p > 0:  # p_i >= min_p * p_max before temperature: logit_i >= logit_max + log(min_p)
            keep = int(np.count_nonzero(shifted >= np.log(self.min_p)))
            ids, probs = ids[:keep], probs[:keep] / probs[:keep].sum()
        return int(ids[self.rng.choice(ids.size, p=probs)])


def top_k_ids(logits: np.ndarray, k: int) -> np.ndarray:
    """The ids of the k highest logits, in no order: np.argpartition(logits, -k)[-k:]'s answer. Over a large
    vocabulary, the k-th highest of every 16th logit bounds them from below (at least k logits reach it: those k),
    and only the logits that reach it (~16k of them) are partitioned: 128,256 logits, k = 40: 50 us against 141,
    a server's 8 streams at the default top_k 0.7 ms a pass. A NaN is kept as a candidate, as argpartition ranks
    it highest (its probability then fails the sampling, as before)."""
    if logits.size >= 64 * k:
        bound = np.partition(logits[::16], -k)[-k]
        ids = np.flatnonzero(~(logits < bound))
        return ids[np.argpartition(logits[ids], -k)[-k:]]
    return np.argpartition(logits, -k)[-k:]
