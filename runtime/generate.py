"""The token loop, the one place where logits become text: TokenLoop.step(logits) runs the logits processors,
samples, ends at an end-of-sequence token, decodes the UTF-8 text stream, holds back what may begin a stop
string and flushes both at every end. Generation drives one TokenLoop over one sequence (Model.generate,
`tritlm run`, the terminal chat); the server's Scheduler drives one per slot, its decode passes batched."""

import time
from dataclasses import dataclass

from tritlm.runtime.errors import ModelError
from tritlm.runtime.logprobs import TokenLogprob, of_token
from tritlm.runtime.textstream import TextStream


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
            out, self.pending = self.pending[: min(hits)], ""
            return out, True
        keep = max(
            (
                k
                for s in self.stops
                for k in range(min(len(s) - 1, len(self.pending)), 0, -1)
                if self.pending.endswith(s[:k])
            ),
            default=0,
        )
        out, self.pending = self.pending[: len(self.pending) - keep], self.pending[len(self.pending) - keep :]
        return out, False

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


@dataclass
class Step:
    """What one position's logits gave."""

    token: int | None  # the sampled token (None when the loop was ended from outside)
    text: str  # text now safe to show ('' while a character or a possible stop string is open)
    finish: str | None  # None: go on; "stop" (end-of-sequence token or stop string) or "length"
    logprob: TokenLogprob | None = None  # the token's log-probability and the top alternatives (when asked for)


class TokenLoop:
    """One completion's state from logits to text. `logits_processors` are called in order as
    `process(tokens, logits) -> logits` (tokens: the completion so far; they may edit logits in place), before
    sampling: the place for token masks (structured output). With `logprobs` (a number of alternatives, 0 for
    none), each Step carries the chosen token's log-probability and the `logprobs` most likely tokens, under the
    model's logits as they came (before processors and sampling settings, as OpenAI and llama-server report
    them). The completion (`tokens`) stops at max_tokens, an end-of-sequence
    token (not part of it) or a stop string (its text cut there)."""

    def __init__(self, model, sampler, max_tokens: int, stop=None, logits_processors=(), logprobs: int | None = None):
        self.sampler, self.max_tokens = sampler, max_tokens
        self.eos_ids = model.eos_ids
        self.logits_processors, self.logprobs = list(logits_processors), logprobs
        self.text = TextStream(model)
        self.stop = StopText(stop)
        self.tokens: list[int] = []

    def step(self, logits) -> Step:
        """The next token from this position's logits, and the text it completes."""
        raw = logits
        for process in self.logits_processors:
            logits = process(self.tokens, logits)
        token = self.sampler.sample(logits)
        logprob = None if self.logprobs is None else of_token(raw, token, self.logprobs)
        if token in self.eos_ids:
            return self._end(token, "", "stop", logprob)
        self.tokens.append(token)
        text, stopped = self.stop.push(self.text.push(token))
        if stopped:  # what the decoder still holds lies past the stop string
            return Step(token, text, "stop", logprob)
        if len(self.tokens) >= self.max_tokens:
            return self._end(token, text, "length", logprob)
        return Step(token, text, None, logprob)

    def end(self, finish: str = "length") -> Step:
        """Ends the completion from outside (the context is full): the text still held back."""
        return self._end(None, "", finish)

    def _end(self, token, text, finish, logprob=None) -> Step:
        tail, stopped = self.stop.push(self.text.flush())
        return Step(token, text + tail + ("" if stopped else self.stop.flush()), "stop" if stopped else finish, logprob)


class Generation:
    """Drives a TokenLoop over one sequence: prefills `ids` into `seq` (a fresh one when None, closed at the
    end), then decodes each chosen token, yielding the text pieces until the loop finishes or the sequence is
    full. Counts and times the prompt pass and the decode passes for `tritlm run`'s report."""

    def __init__(self, model, ids: list[int], loop: TokenLoop, seq=None):
        room = model.n_ctx if seq is None else seq.n_ctx - seq.pos
        if not ids:
            raise ModelError("the prompt is empty")
        if len(ids) > room:
            raise ModelError(f"the prompt has {len(ids)} tokens, more than the context of {room} has room for")
        self.model, self.ids, self.loop, self.seq = model, ids, loop, seq
        self.finish = None  # why it ended: "stop" or "length"
        self.prompt_seconds = 0.0  # the prefill pass
        self.n_decoded, self.decode_seconds = 0, 0.0
        self._pieces = self._run()

    @property
    def tokens(self) -> list[int]:
        """The generated token ids."""
        return self.loop.tokens

    def __iter__(self):
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        self._pieces.close()

    def _run(self):
        seq = self.seq or self.model.new_sequence()
        try:
            start = time.perf_counter()
            logits = self.model.prefill(seq, self.ids)
            self.prompt_seconds = time.perf_counter() - start
            while True:
                step = self.loop.step(logits)
                if step.finish is None and seq.pos >= seq.n_ctx:  # no room to decode this token
                    last = self.loop.end("length")
                    step.text, step.finish = step.text + last.text, last.finish
                if step.text:
                    yield step.text
                if step.finish is not None:
                    self.finish = step.finish
                    return
                start = time.perf_counter()
                logits = self.model.decode([seq], [step.token])[0]
                self.decode_seconds += time.perf_counter() - start
                self.n_decoded += 1
        finally:
            if self.seq is None:
                seq.close()
