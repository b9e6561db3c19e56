"""Generation: the completion of a prompt as an iterator of text pieces (what Model.generate returns), counting
and timing the prompt pass and the decode passes for `tritlm run`'s report."""
import time

from runtime.errors import ModelError
from runtime.textstream import TextStream


class StopText:
    """Holds back streamed text that may be the start of a stop string, and cuts the text at one."""

    def __init__(self, stops):
        self.stops = [s for s in ([stops] if isinstance(stops, str) else stops or []) if s]
        self.pending = ""

    def push(self, text: str) -> tuple[str, bool]:
        """(text safe to emit, whether a stop string was reached)."""
        self.pending += text
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.pending = self.pending[:min(hits)], ""
            return out, True
        keep = max((k for s in self.stops for k in range(min(len(s) - 1, len(self.pending)), 0, -1)
                    if self.pending.endswith(s[:k])), default=0)
        out, self.pending = self.pending[:len(self.pending) - keep], self.pending[len(self.pending) - keep:]
        return out, False

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


class Generation:
    """Iterates over the completion's text pieces. Stops at max_tokens, an end-of-sequence token (not
    emitted), a stop string (not emitted) or a full context."""

    def __init__(self, model, ids: list[int], max_tokens: int, sampler, stop=None):
        if not ids:
            raise ModelError("the prompt is empty")
        if len(ids) > model.n_ctx:
            raise ModelError(f"the prompt has {len(ids)} tokens, more than the context of {model.n_ctx}")
        self.model, self.ids, self.max_tokens, self.sampler = model, ids, max_tokens, sampler
        self.stop = StopText(stop)
        self.tokens = []             # the generated token ids
        self.prompt_seconds = 0.0    # the prefill pass
        self.n_decoded, self.decode_seconds = 0, 0.0
        self._pieces = self._run()

    def __iter__(self):
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        self._pieces.close()

    def _run(self):
        seq = self.model.new_sequence()
        try:
            start = time.perf_counter()
            logits = self.model.prefill(seq, self.ids)
            self.prompt_seconds = time.perf_counter() - start
            stream = TextStream(self.model)
            for i in range(self.max_tokens):
                if i:  # the previous token's pass
                    if seq.pos >= seq.n_ctx:
                        break
                    start = time.perf_counter()
                    logits = self.model.decode([seq], [self.tokens[-1]])[0]
                    self.decode_seconds += time.perf_counter() - start
                    self.n_decoded += 1
                token = self.sampler.sample(logits)
                if token in self.model.eos_ids:
                    break
                self.tokens.append(token)
                text, stopped = self.stop.push(stream.push(token))
                if text:
                    yield text
                if stopped:
                    return
            tail = self.stop.flush()
            if tail:
                yield tail
        finally:
            seq.close()
