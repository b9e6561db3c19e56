"""Continuous batching, as llama-server's update_slots. One thread owns the model: each step it admits waiting
requests into free slots, then runs ONE `model.forward` over every generating slot's next token plus chunks of the
prompts still being read, up to `batch_size` tokens in all, so a long prompt is read a chunk per step while the
other streams go on decoding. Each slot whose last position was in the pass steps its TokenLoop
(runtime/generate.py) and the Step goes to the request's asyncio queue on the event loop's thread.

A pass cannot be interrupted, so a request that arrives waits for the one under way. With `pass_limit` L, the
prompt tokens of a pass are also capped so the pass lasts about L one-token passes (PassTimes: the costs timed at
start), and at least half as many as the pass's decode tokens take, so a prompt gets a third of the passes however
many streams decode (half made 6 streams' passes twice a decode pass, and an arriving prompt waited half of one). A
prompt token costs more the more positions it attends to (a 48-token chunk at position 1,950 of the 2B-4T shape took
2.8x one at 0), so the cap counts the chunk's starting position too: a long prompt's chunks shrink as it goes, and
its passes keep their length (without that, they grew to ~2x the limit by the end of a 2,000-token prompt, and a
short prompt arriving then waited that much longer). The costs timed at start still miss: a pass of streams and a
chunk cost 1.3-1.5x their sum on a Xeon (a few tokens of each of several sequences, where the start times 64 of one),
so each such pass's time corrects the estimate for the next ones (PassTimes.observe).

A new prompt that a pass can read whole (a short one, just admitted) gets a pass of its own when the pass limit is on:
its first token then comes after a pass as short as on an idle server, where beside many streams their tokens
would lengthen it (6 streams on the 2B-4T shape: 345 ms against 215); the streams lose that one pass, and never two
in a row. Within any pass, the first tokens of new requests are sampled and sent before the streams' next ones.

A pass's events go to the event loop in one call (at most two: the first tokens, then the streams'), not one per
token: each call wakes the loop, which then took the GIL from this thread token by token and did the streams' HTTP
work while the engine waited (8 streams: 1.5 ms between passes of ~50 ms; batched, ~0.5 ms, and that work overlaps
the next pass, whose C call releases the GIL)."""

import asyncio
import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tritlm.runtime.errors import InputError, ModelError
from tritlm.runtime.generate import TokenLoop
from tritlm.runtime.server import DEFAULT_BATCH_SIZE

if TYPE_CHECKING:  # the scheduler is handed a model; it never loads one
    from tritlm.runtime.model import Sequence

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
        self.n_fed = 0  # prompt tokens in the slot's cache so far
        self.next_token = None  # the sampled token the next step feeds in, once the prompt is in
        self.cancelled = False
        self.event_loop = asyncio.get_running_loop()
        self._events: asyncio.Queue[tuple[str, object]] = asyncio.Queue()

    def send(self, kind, value):  # from any thread
        self.event_loop.call_soon_threadsafe(self._events.put_nowait, (kind, value))

    async def events(self):
        while True:
            kind, value = await self._events.get()
            yield kind, value
            if kind != "step":
                return

    @property
    def n_generated(self) -> int:
        return len(self.loop.tokens)

    @property
    def reading_prompt(self) -> bool:
        return self.n_fed < len(self.prompt_ids)


@dataclass
class Stats:
    """Work done since start (for /metrics): passes run, prompt tokens and generated tokens fed to the model, and the
    seconds spent on each (a pass mixing both splits its time by their share of its tokens)."""

    passes: int = 0
    prompt_tokens: int = 0
    prompt_seconds: float = 0.0
    decoded_tokens: int = 0
    decode_seconds: float = 0.0


class PassTimes:
    """What a pass costs on this machine, timed once at start on a scratch sequence: one token with its logits
    (`one`: mostly reading the weights), what each further token adds (`token`), and what a token adds for each
    position before it that it attends to (`position`). chunk_tokens() turns a pass limit into prompt tokens; other
    load on the machine slows all alike, so the count holds under it."""

    # A further token's cost is timed on a pass this long: up to 8 or so, the tokens of a pass cost about as much as
    # one (the weights' reading, shared), and a cost timed there made 250-token chunks of a 2,000-token prompt
    TOKENS = 64
    # ... and again after this many positions, for the cost of attending to them (at most the context less TOKENS)
    DEPTH = 256

    # observe(): the weight of the newest pass in the running ratio of passes' times to their estimates
    CORRECTION_WEIGHT = 0.3

    def __init__(self, model):
        self.correction = 1.0  # passes with prompt chunks: their seconds over the estimate (observe())
        n = self.TOKENS
        depth = max(min(self.DEPTH, model.n_ctx - n), 0)
        seq = model.new_sequence(depth + n)
        try:
            self.one = min(self._time(model, seq, 1) for _ in range(2))
            at_start = min(self._time(model, seq, n) for _ in range(2))
            self.token = max((at_start - self.one) / (n - 1), self.one / 256)
            self.position = 0.0
            if depth:
                model.forward([seq] * depth, [0] * depth, [-1] * depth)
                at_depth = min(self._time(model, seq, n) for _ in range(2))
                self.position = max(at_depth - at_start, 0.0) / (n * depth)
        finally:
            seq.close()

    @staticmethod
    def _time(model, seq, n: int) -> float:
        """Seconds of a pass of n tokens on seq after its tokens so far, with the last one's logits (seq is left as
        it was)."""
        before = seq.pos
        start = time.perf_counter()
        model.forward([seq] * n, [0] * n, [-1] * (n - 1) + [0])
        seconds = time.perf_counter() - start
        seq.truncate(before)
        return seconds

    def estimate(self, n_generating: int, chunks) -> float:
        """Seconds of a pass with n_generating decode tokens and the prompt chunks (start position, tokens), by the
        costs timed at start."""
        decoding = self.one + max(n_generating - 1, 0) * self.token
        return decoding + sum(n * (self.token + depth * self.position) for depth, n in chunks)

    def observe(self, estimate: float, seconds: float) -> None:
        """A pass with prompt chunks took seconds where estimate() gave estimate: the running correction moves toward
        their ratio (kept within 0.5x-4x, so one pass slowed by something else cannot swing it far)."""
        ratio = min(max(seconds / estimate, 0.5), 4.0)
        self.correction += self.CORRECTION_WEIGHT * (ratio - self.correction)

    def chunk_tokens(self, pass_limit: float, n_generating: int, depth: int = 0) -> int:
        """Prompt tokens from position depth that bring a pass with n_generating decode tokens to about pass_limit
        one-token passes, as corrected by the passes so far; at least half as long as the rest of the pass, so many
        streams decoding cannot starve a prompt (it gets a third)."""
        decoding = self.estimate(n_generating, ())
        budget = pass_limit * self.one / self.correction - decoding
        return max(round(max(budget, decoding / 2) / (self.token + depth * self.position)), 1)


class Scheduler:
    """`Scheduler(model, n_slots, n_ctx, max_waiting, batch_size, pass_limit)`; `start()`, `submit(...)` from the
    event loop, `stop()`. batch_size: the tokens of one step (every generating slot has one in it, however many
    that is; prompt chunks fill the rest). pass_limit: None, or the one-token passes a pass reading prompt chunks
    may last (see the module's note)."""

    def __init__(
        self,
        model,
        n_slots: int,
        n_ctx: int | None = None,
        max_waiting: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        pass_limit: float | None = None,
    ):
        if n_slots < 1:
            raise InputError(f"--parallel must be at least 1, got {n_slots}")
        if batch_size < 1:
            raise InputError(f"--batch-size must be at least 1, got {batch_size}")
        if pass_limit is not None and not pass_limit >= 1:
            raise InputError(f"--pass-limit must be at least 1 (0: off), got {pass_limit}")
        self.model, self.n_slots, self.batch_size, self.pass_limit = model, n_slots, batch_size, pass_limit
        self.times = None  # PassTimes, timed by start() (with a pass_limit)
        self.n_ctx = n_ctx or model.n_ctx
        self.max_waiting = 4 * n_slots if max_waiting is None else max_waiting
        self._free = [model.new_sequence(self.n_ctx) for _ in range(n_slots)]
        self._active: list[tuple[Sequence, Job]] = []  # in order of admission; touched only by the scheduler thread
        self._waiting: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._solo_last = False  # the last pass read only prompts that it finished (see _batch)
        self._outbox: list[tuple[Job, tuple[str, object]]] = []  # events not yet handed to the event loop (_flush)
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
        if self.pass_limit:
            self.times = PassTimes(self.model)
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
                f"prompt ({len(prompt_ids)} tokens) + max_tokens ({max_tokens}) exceeds the context of {self.n_ctx} tokens"
            )
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
                    self._admit(seq, job)
                for seq, job in [(seq, job) for seq, job in self._active if job.cancelled]:
                    self._finish(seq, job)
                if self._active:
                    self._forward(self._batch())
            except Exception as e:  # a bug in the step itself: never leave a client waiting, keep serving
                for seq, job in list(self._active):
                    self._fail(seq, job, e)
            finally:
                self._flush()

    def _admit(self, seq, job):
        self._active.append((seq, job))
        try:
            seq.reset()
        except Exception as e:
            self._fail(seq, job, e)

    def _flush(self) -> None:
        """Hands the events of the step so far to the event loop, in one call per loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Job, tuple[str, object]]]] = {}
        for job, event in self._outbox:
            by_loop.setdefault(job.event_loop, []).append((job, event))
        self._outbox.clear()
        for loop, events in by_loop.items():
            loop.call_soon_threadsafe(_deliver, events)

    def _finish(self, seq, job, event=("error", "cancelled")):
        """Frees the job's slot, sending it its last event (so nothing waits forever on a cancelled job)."""
        self._outbox.append((job, event))
        self._active.remove((seq, job))
        self._free.append(seq)

    def _fail(self, seq, job, error: Exception):
        if not isinstance(error, ModelError):  # a ModelError is this request's fault (a bad token id); else a bug
            log.error("request failed", exc_info=error)
        self._finish(seq, job, ("error", f"generation failed: {error}"))

    def _batch(self):
        """This step's (sequence, job, tokens): each generating slot's next token, then prompt chunks up to the
        budget (with a pass_limit, the smaller budget it gives), the prompt with the fewest tokens left first, so a
        short prompt's first token does not wait behind a long prompt. A pass that finishes a prompt carries no
        partial chunk of a longer one: that first token comes out after a short pass, and the long prompt loses
        one step's budget per short prompt at most."""
        generating = [(seq, job, [job.next_token]) for seq, job in self._active if not job.reading_prompt]
        reading = sorted(
            (slot for slot in self._active if slot[1].reading_prompt),
            key=lambda slot: len(slot[1].prompt_ids) - slot[1].n_fed,
        )
        solo = self._solo_pass(reading) if self.times and generating and not self._solo_last else []
        self._solo_last = bool(solo)
        if solo:
            return solo
        budget = self.batch_size - len(generating)
        if self.times and reading:
            depth = reading[0][1].n_fed  # where the first chunk starts: the one the budget mostly goes to
            budget = min(budget, self.times.chunk_tokens(self.pass_limit, len(generating), depth))
        parts, finishes_one = [], False
        for seq, job in reading:
            rest = len(job.prompt_ids) - job.n_fed
            if budget <= 0 or (finishes_one and rest > budget):
                break
            chunk = job.prompt_ids[job.n_fed : job.n_fed + budget]
            parts.append((seq, job, chunk))
            budget -= len(chunk)
            finishes_one = finishes_one or len(chunk) == rest
        return generating + parts

    def _solo_pass(self, reading):
        """The new prompts (none of them read yet; the shortest first) that one pass of pass_limit one-token passes
        can read whole: a pass of their own while other slots decode."""
        budget, parts = min(self.batch_size, self.times.chunk_tokens(self.pass_limit, 0)), []
        for seq, job in reading:
            if job.n_fed == 0 and len(job.prompt_ids) <= budget:
                parts.append((seq, job, job.prompt_ids))
                budget -= len(job.prompt_ids)
        return parts

    def _forward(self, parts):
        """One pass over parts; logits only at each slot's last position when it needs a token (a generated token,
        or a prompt's last). If the pass fails (it changed no sequence), each part runs alone, so only the
        request at fault fails."""
        seqs, tokens, rows, sampled = [], [], [], []
        for seq, job, chunk in parts:
            seqs += [seq] * len(chunk)
            tokens += chunk
            needs_token = not job.reading_prompt or job.n_fed + len(chunk) == len(job.prompt_ids)
            rows += [-1] * (len(chunk) - 1) + [len(sampled) if needs_token else -1]
            if needs_token:
                sampled.append((seq, job))
        try:
            start = time.perf_counter()
            logits = self.model.forward(seqs, tokens, rows)
            seconds = time.perf_counter() - start
        except Exception as e:
            if len(parts) == 1:
                self._fail(parts[0][0], parts[0][1], e)
            else:
                for part in parts:
                    self._forward([part])
            return
        n_prompt = sum(len(chunk) for _, job, chunk in parts if job.reading_prompt)
        if self.times and n_prompt:
            chunks = [(job.n_fed, len(chunk)) for _, job, chunk in parts if job.reading_prompt]
            self.times.observe(self.times.estimate(len(tokens) - n_prompt, chunks), seconds)
        self.stats.passes += 1
        self.stats.prompt_tokens += n_prompt
        self.stats.prompt_seconds += seconds * n_prompt / len(tokens)
        self.stats.decoded_tokens += len(tokens) - n_prompt
        self.stats.decode_seconds += seconds * (len(tokens) - n_prompt) / len(tokens)
        for _, job, chunk in parts:
            if job.reading_prompt:
                job.n_fed += len(chunk)
        first = [i for i, (_, job) in enumerate(sampled) if job.n_generated == 0]  # new requests' first tokens
        streams = [i for i, (_, job) in enumerate(sampled) if job.n_generated > 0]
        for i in first:
            self._advance(*sampled[i], logits[i])
        if first and streams:  # sent before the streams' tokens are sampled
            self._flush()
        for i in streams:
            self._advance(*sampled[i], logits[i])

    def _advance(self, seq, job, logits):
        """Steps the job's token loop and sends the Step; finishes the job when the loop does. An error here (a
        sampler fed NaN logits, say) fails only this job."""
        try:
            step = job.loop.step(logits)
        except Exception as e:
            self._fail(seq, job, e)
            return
        self._outbox.append((job, ("step", step)))
        if step.finish is not None:
            self._finish(seq, job, ("done", step.finish))
        job.next_token = step.token


def _deliver(events):
    """On the event loop: each job's events into its queue, in order."""
    for job, event in events:
        job._events.put_nowait(event)
