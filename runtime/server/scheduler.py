"""Continuous batching. One thread owns the model: each step it admits waiting requests into free slots
(prefilling each new prompt), then advances every active slot by one token with ONE `model.decode` call,
steps each slot's TokenLoop (runtime/generate.py) and pushes the Step to the request's asyncio queue on the
event loop's thread."""
import asyncio
import collections
import logging
import threading
import time
from dataclasses import dataclass

from tritlm.runtime import ModelError
from tritlm.runtime.generate import TokenLoop

log = logging.getLogger("tritlm.server")


class QueueFullError(ValueError):
    """Every slot is busy and the waiting queue is full."""


class ContextOverflowError(ValueError):
    """prompt + max_tokens does not fit in a slot's context."""


class Job:
    """One request: its prompt, its token loop, and the queue its events go to. Events are ("step", Step) per
    token, then ("done", "stop" | "length") or ("error", message)."""

    def __init__(self, prompt_ids, loop: TokenLoop):
        self.prompt_ids, self.loop = prompt_ids, loop
        self.next_token = None  # the sampled token the next decode step feeds in
        self.cancelled = False
        self._loop = asyncio.get_running_loop()
        self._events = asyncio.Queue()

    def send(self, kind, value):  # called on the scheduler thread
        self._loop.call_soon_threadsafe(self._events.put_nowait, (kind, value))

    async def events(self):
        while True:
            kind, value = await self._events.get()
            yield kind, value
            if kind != "step":
                return

    @property
    def n_generated(self) -> int:
        return len(self.loop.tokens)


@dataclass
class Stats:
    """Work done since start (for /metrics): tokens and seconds of prefill passes and of decode passes."""
    prompt_tokens: int = 0
    prompt_seconds: float = 0.0
    decoded_tokens: int = 0
    decode_seconds: float = 0.0


class Scheduler:
    """`Scheduler(model, n_slots, n_ctx, max_waiting)`; `start()`, `submit(...)` from the event loop, `stop()`."""

    def __init__(self, model, n_slots: int, n_ctx: int | None = None, max_waiting: int | None = None):
        if n_slots < 1:
            raise ValueError(f"--parallel must be at least 1, got {n_slots}")
        self.model, self.n_slots = model, n_slots
        self.n_ctx = n_ctx or model.n_ctx
        self.max_waiting = 4 * n_slots if max_waiting is None else max_waiting
        self._free = [model.new_sequence(self.n_ctx) for _ in range(n_slots)]
        self._active = []  # (sequence, job); touched only by the scheduler thread
        self._waiting = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self.stats = Stats()
        self._thread = threading.Thread(target=self._run, name="tritlm-scheduler", daemon=True)

    @property
    def n_busy(self) -> int:
        """Slots holding a request (read by /health and tests)."""
        return len(self._active)

    @property
    def n_waiting(self) -> int:
        """Requests queued for a slot."""
        return len(self._waiting)

    def start(self):
        self._thread.start()

    def stop(self):
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()
        for job in list(self._waiting) + [job for _, job in self._active]:
            job.send("error", "server shutting down")
        for seq in self._free + [seq for seq, _ in self._active]:
            seq.close()

    def submit(self, prompt_ids, max_tokens, sampler, stop=None, logits_processors=(), logprobs=None) -> Job:
        """Queues a request (its TokenLoop gets sampler, stop, logits_processors and logprobs); raises
        ContextOverflowError / QueueFullError at once rather than letting it wait."""
        if not prompt_ids:
            raise ValueError("the prompt is empty")
        room = self.n_ctx - len(prompt_ids)
        if max_tokens is None:
            max_tokens = room
        if room <= 0 or max_tokens > room:
            raise ContextOverflowError(
                f"prompt ({len(prompt_ids)} tokens) + max_tokens ({max_tokens}) exceeds the context of {self.n_ctx} tokens")
        job = Job(prompt_ids, TokenLoop(self.model, sampler, max_tokens, stop, logits_processors, logprobs))
        with self._cond:
            if len(self._waiting) >= self.max_waiting:
                raise QueueFullError(f"server busy: all slots in use and {len(self._waiting)} requests waiting")
            self._waiting.append(job)
            self._cond.notify()
        return job

    def cancel(self, job: Job):
        """The client went away: drop the job from the queue, or free its slot at the next step."""
        job.cancelled = True
        with self._cond:
            if job in self._waiting:
                self._waiting.remove(job)
                job.send("error", "cancelled")
            self._cond.notify()

    def _run(self):
        while True:
            with self._cond:
                while not (self._stopping or self._waiting or self._active):
                    self._cond.wait()
                if self._stopping:
                    return
                admitted = []
                while self._waiting and self._free:
                    admitted.append((self._free.pop(), self._waiting.popleft()))
            try:
                for seq, job in admitted:  # each is active from here on, or finished by its own error
                    self._start(seq, job)
                for seq, job in [(seq, job) for seq, job in self._active if job.cancelled]:
                    self._finish(seq, job)
                if self._active:
                    self._decode_step()
            except Exception as e:  # a bug in the step itself: never leave a client waiting, keep serving
                for seq, job in list(self._active):
                    self._fail(seq, job, e)

    def _finish(self, seq, job, event=("error", "cancelled")):
        """Frees the job's slot, sending it its last event (so nothing waits forever on a cancelled job)."""
        job.send(*event)
        self._active.remove((seq, job))
        self._free.append(seq)

    def _start(self, seq, job):
        """Prefills the job's prompt and samples its first token; whatever fails fails only this job."""
        self._active.append((seq, job))
        try:
            seq.reset()
            start = time.perf_counter()
            logits = self.model.prefill(seq, job.prompt_ids)
            self.stats.prompt_tokens += len(job.prompt_ids)
            self.stats.prompt_seconds += time.perf_counter() - start
        except Exception as e:
            self._fail(seq, job, e)
            return
        self._advance(seq, job, logits)

    def _fail(self, seq, job, error: Exception):
        if not isinstance(error, ModelError):  # a ModelError is this request's fault (a bad token id); else a bug
            log.error("request failed", exc_info=error)
        self._finish(seq, job, ("error", f"generation failed: {error}"))

    def _decode_step(self):
        active = list(self._active)
        try:
            start = time.perf_counter()
            logits = self.model.decode([seq for seq, _ in active], [job.next_token for _, job in active])
            self.stats.decoded_tokens += len(active)
            self.stats.decode_seconds += time.perf_counter() - start
        except Exception as e:  # the pass itself failed: every request in it fails, the server keeps serving
            for seq, job in active:
                self._fail(seq, job, e)
            return
        for (seq, job), row in zip(active, logits):
            self._advance(seq, job, row)

    def _advance(self, seq, job, logits):
        """Steps the job's token loop and sends the Step; finishes the job when the loop does. An error here (a
        sampler fed NaN logits, say) fails only this job."""
        try:
            step = job.loop.step(logits)
        except Exception as e:
            self._fail(seq, job, e)
            return
        job.send("step", step)
        if step.finish is not None:
            self._finish(seq, job, ("done", step.finish))
        job.next_token = step.token
