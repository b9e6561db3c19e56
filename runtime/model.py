"""Model: a ternary GGUF file loaded into the C engine, with its tokenizer. The weights are loaded once (copied onto
huge pages, or read where the file is mapped) and shared; each Sequence is a value of its own (a KV cache and a
position), so one model serves many.

Python does no work per token beyond the sampler: a prompt goes through the engine in batches of up to
PREFILL_BATCH tokens, and decode() advances any number of sequences by one token in one pass. The engine's model is
read-only, so threads may call a Model at the same time (on different sequences): each call borrows an engine
context (the scratch of one pass) from a small pool."""

import mmap
import os
import threading
import weakref
from contextlib import contextmanager

import numpy as np

from tritlm.formats import LAYER_TENSORS
from tritlm.runtime._native import ffi, lib
from tritlm.runtime.errors import InputError, ModelError
from tritlm.runtime.gguf import GGUFFile, huge_pages_available
from tritlm.runtime.tokenizer import GGUFTokenizer
from tritlm.runtime.weights import native_weights, read_hparams, read_mode

DEFAULT_MAX_CTX = 4096
PREFILL_BATCH = 256  # tokens per engine call; bounds the engine's per-token scratch memory
ERR_LEN = 256
MAX_THREADS_PER_CPU = 4  # more threads than this only thrash; a larger request is a mistake
INT32_MAX = 2**31 - 1


def whole_number(value, what: str) -> int:
    """value as a Python int (ints and numpy integers; not bools, floats or strings), else ModelError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ModelError(f"{what} must be an integer, got {value!r}")
    return int(value)


def token_array(tokens, n_vocab: int) -> np.ndarray:
    """Token ids (a sequence of integers, or an integer array) as int32, each in [0, n_vocab), else ModelError."""
    if isinstance(tokens, np.ndarray):
        if tokens.dtype.kind not in "iu":
            raise ModelError(f"token ids must be integers, got an array of {tokens.dtype}")
        ids = tokens.reshape(-1).tolist()
    elif isinstance(tokens, (list, tuple, range)):
        ids = [whole_number(t, "a token id") for t in tokens]
    else:
        raise ModelError(f"token ids must be a list of integers, got {type(tokens).__name__}")
    for t in ids:
        if not 0 <= t < n_vocab:
            raise ModelError(f"token id {t} is out of range [0, {n_vocab})")
    return np.array(ids, dtype=np.int32)


def isa_names() -> list[str]:
    """The kernel sets of this build, fastest first (this CPU may not run them all)."""
    names, i = [], 0
    while (name := lib.tl_isa_name(i)) != ffi.NULL:
        names.append(ffi.string(name).decode())
        i += 1
    return names


def check_isa_override() -> None:
    """TRITLM_ISA, when set, must name one of this build's kernel sets: the engine would take an unknown name for the
    plain C reference, many times slower. (A set this CPU cannot run gives the fastest one below it that it can.)"""
    forced = os.environ.get("TRITLM_ISA")
    if forced is not None and forced not in isa_names():
        raise InputError(f"TRITLM_ISA={forced!r} names no kernel set; this build has {', '.join(isa_names())}")


def check_threads(threads) -> int:
    """The engine's thread count: None or <= 0 for one per physical core, at most MAX_THREADS_PER_CPU per CPU."""
    if threads is None:
        return physical_cores()
    threads = whole_number(threads, "the thread count")
    limit = MAX_THREADS_PER_CPU * (os.cpu_count() or 1)
    if threads > limit:
        raise ModelError(f"{threads} threads is more than {MAX_THREADS_PER_CPU} per CPU ({limit})")
    return threads if threads > 0 else physical_cores()


def physical_cores() -> int:
    """CPU cores available to this process, counting hyper-threads of one core once."""
    cpus = os.sched_getaffinity(0)
    cores = set()
    for cpu in cpus:
        try:
            with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list") as f:
                cores.add(f.read().strip())
        except OSError:
            return len(cpus)
    return max(1, len(cores))


class Sequence:
    """One token sequence: its own KV cache of n_ctx positions. Made by Model.new_sequence."""

    def __init__(self, model: "Model", n_ctx: int):
        n_ctx = model.check_context_size(n_ctx)
        ptr = lib.tl_seq_new(model._handle(), n_ctx)
        if ptr == ffi.NULL:
            raise ModelError(f"out of memory for a KV cache of {n_ctx} positions")
        self._ptr = ffi.gc(ptr, lib.tl_seq_free)
        self.model, self.n_ctx = model, n_ctx

    @property
    def pos(self) -> int:
        """Tokens held in the cache (the next token goes to this position)."""
        return lib.tl_seq_len(self._handle())

    def truncate(self, n: int) -> None:
        """Keeps the first n tokens, so a prompt that shares them continues from there (no re-prefill)."""
        n = whole_number(n, "the length to keep")
        if lib.tl_seq_truncate(self._handle(), n) != 0:
            raise ModelError(f"cannot truncate a sequence of {self.pos} tokens to {n}")

    def reset(self) -> None:
        self.truncate(0)

    def close(self) -> None:
        if self._ptr is not None:
            ffi.release(self._ptr)
            self._ptr = None

    def _handle(self):
        if self._ptr is None:
            raise ModelError("the sequence is closed")
        return self._ptr

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Model:
    def __init__(
        self,
        path: str,
        threads: int | None = None,
        n_ctx: int | None = None,
        act_topk: float | None = None,
        sparse: bool = True,
        use_mmap: bool = False,
        kv_type: str | None = None,
    ):
        """act_topk: keep only that fraction of every linear input (largest |x|, per token), whatever the file says;
        lossy on a b1.58 file (Q-Sparse without training). None: the file's own mode (docs/format.md).
        sparse: a relu² model decodes single tokens reading only the down_proj weight columns of nonzero inputs
        (exact: the same logits); False runs it dense, for comparison.
        use_mmap: read the weights where the file is mapped (the page cache, shared by every process mapping the
        file) instead of a private copy on 2 MiB pages (the default where Linux offers transparent huge pages:
        decoding ran 1.03-1.08x faster on the Zen 5 machine; loading copies the file once, README: Benchmarks). The
        engine repacks a bf16 output matrix smaller in that copy on AVX-512 VBMI, and tq2_0 linears as i2_s (both
        lossless, docs/format.md); with use_mmap it reads the file's bf16 and tq2_0.
        kv_type: the KV cache's rows, "f32" (exact) or "f16" (half the memory, and of the reads at depth; each key and
        value rounded to 11 significant bits). None: the file's own (f32, or its mode's 3/4-bit rows)."""
        self.path = str(path)
        self._ptr = None
        file = GGUFFile(self.path)
        self._file: GGUFFile | None = file  # None once closed
        self._copy: mmap.mmap | None = None  # the weights' private copy (without use_mmap), None once closed
        try:
            self._load(file, threads, n_ctx, act_topk, sparse, use_mmap, kv_type)
        except ModelError as e:
            self.close()
            raise ModelError(f"{self.path}: {e}") from None
        except BaseException:
            self.close()
            raise

    def _load(
        self,
        file: GGUFFile,
        threads: int | None,
        n_ctx: int | None,
        act_topk: float | None,
        sparse: bool,
        use_mmap: bool,
        kv_type: str | None,
    ) -> None:
        check_isa_override()
        md = self.metadata = file.metadata
        self.arch = md.get("general.architecture")
        hp = self.hparams = read_hparams(md, {t.name for t in file.tensors})
        self.mode = read_mode(md, act_topk, kv_type)
        self.tokenizer = GGUFTokenizer(md)
        if len(self.tokenizer.tokens) > hp.n_vocab:
            raise ModelError(
                f"the tokenizer has {len(self.tokenizer.tokens)} tokens, more than the {hp.n_vocab} logits"
            )
        self.n_vocab = hp.n_vocab
        self.context_length = hp.context_length
        self.n_ctx = self.check_context_size(n_ctx if n_ctx is not None else min(hp.context_length, DEFAULT_MAX_CTX))
        self.n_threads = check_threads(threads)
        self.name = md.get("general.name") or os.path.splitext(os.path.basename(self.path))[0]
        self.chat_template = md.get("tokenizer.chat_template")
        self.bos_id = self.tokenizer.bos_id
        self.eos_ids = self.tokenizer.end_ids
        self.model_bytes = sum(t.nbytes for t in file.tensors)
        tied = all(t.name != "output.weight" for t in file.tensors)
        self._output_name = "token_embd.weight" if tied else "output.weight"  # the output matrix's tensor

        if use_mmap or not huge_pages_available():
            self._base = ffi.from_buffer(file.buffer)  # the mmap's first byte, for the C side
            base = ffi.cast("const char *", self._base)  # a tensor at file offset o is at base + o
        else:
            self._copy, start = file.copy_tensor_data()
            self._base = ffi.from_buffer(self._copy)
            base = ffi.cast("const char *", self._base) + start - file.data_offset
        # where file offset 0 would be: tensor t is at _origin + t.offset
        self._origin = int(ffi.cast("uintptr_t", base))
        # --mmap keeps the page cache shared: a bf16 output matrix and tq2_0 linears are read there, not repacked into
        # a private copy
        self._structs = native_weights(
            file, hp, base, ffi, self.mode, sparse, keep_file_layout=use_mmap, writable=self._copy is not None
        )
        err = ffi.new("char[]", ERR_LEN)
        ptr = lib.tl_model_new(*self._structs, self.n_threads, err, ERR_LEN)
        if ptr == ffi.NULL:
            raise ModelError(ffi.string(err).decode(errors="replace"))
        self._ptr = ffi.gc(ptr, lib.tl_model_free)
        # Idle engine contexts (cffi pointers); a call borrows one, so there are as many as concurrent calls.
        self._contexts: list[object] = []
        self._contexts_lock = threading.Lock()
        self._sequences: weakref.WeakSet[Sequence] = weakref.WeakSet()

    # ---- text ----

    def tokenize(self, text: str, add_bos: bool = True, special: bool = False) -> list[int]:
        return self.tokenizer.tokenize(text, add_bos=add_bos, special=special)

    def detokenize(self, ids) -> str:
        return self.tokenizer.detokenize(ids)

    # ---- sequences and the forward pass ----

    def new_sequence(self, n_ctx: int | None = None) -> Sequence:
        seq = Sequence(self, n_ctx or self.n_ctx)
        self._sequences.add(seq)
        return seq

    def forward(self, seqs, tokens, logit_rows=None) -> np.ndarray:
        """One engine pass: token i goes to seqs[i] (see tl_forward in native/tritlm.h). Returns logits
        [len(tokens), n_vocab], or with logit_rows [max row + 1, n_vocab] (row -1: no logits for that token)."""
        tokens = token_array(tokens, self.n_vocab)
        if len(seqs) != len(tokens) or (logit_rows is not None and len(logit_rows) != len(tokens)):
            raise ModelError(
                f"forward: {len(seqs)} sequences, {len(tokens)} tokens"
                + ("" if logit_rows is None else f", {len(logit_rows)} logit rows")
                + ": lengths differ"
            )
        if logit_rows is not None:
            logit_rows = [whole_number(r, "a logit row") for r in logit_rows]
            wanted = [r for r in logit_rows if r != -1]
            if any(not 0 <= r < len(tokens) for r in wanted) or len(set(wanted)) != len(wanted):
                raise ModelError(f"forward: logit rows must be -1 or distinct rows in [0, {len(tokens)})")
        n_rows = len(tokens) if logit_rows is None else max(logit_rows, default=-1) + 1
        out = np.empty((n_rows, self.n_vocab), dtype=np.float32)
        self._forward_into(seqs, tokens, logit_rows, out)
        return out

    def prefill(self, seq: Sequence, ids) -> np.ndarray:
        """Appends a prompt to seq; returns the logits [n_vocab] of its last token."""
        ids = token_array(ids, self.n_vocab)  # every batch checked before the first changes seq
        if len(ids) == 0:
            raise ModelError("prefill: no tokens")
        self._check_room(seq, len(ids))
        out = np.empty((1, self.n_vocab), dtype=np.float32)
        for start in range(0, len(ids), PREFILL_BATCH):
            batch = ids[start : start + PREFILL_BATCH]
            last = start + len(batch) == len(ids)
            self._forward_into([seq] * len(batch), batch, [-1] * (len(batch) - 1) + [0 if last else -1], out)
        return out[0]

    def decode(self, seqs, tokens) -> np.ndarray:
        """One new token for each sequence, all in one pass over the weights: logits [len(seqs), n_vocab]."""
        if len({id(s) for s in seqs}) != len(seqs):
            raise ModelError("decode: a sequence appears twice (one token per sequence)")
        return self.forward(seqs, tokens)

    def logits(self, ids) -> np.ndarray:
        """Logits [len(ids), n_vocab] of every position of ids, run from position 0 in a fresh sequence."""
        ids = token_array(ids, self.n_vocab)
        out = np.empty((len(ids), self.n_vocab), dtype=np.float32)
        with self.new_sequence(max(len(ids), 1)) as seq:
            for start in range(0, len(ids), PREFILL_BATCH):
                batch = ids[start : start + PREFILL_BATCH]
                self._forward_into([seq] * len(batch), batch, None, out[start : start + len(batch)])
        return out

    def generate(
        self,
        prompt,
        max_tokens: int,
        temperature: float = 0.8,
        top_k: int = 40,
        top_p: float = 0.95,
        seed: int | None = None,
        stop=None,
        **penalties,
    ):
        """The completion of prompt (text, or token ids), piece by piece; stops at max_tokens, an end-of-sequence
        token, a stop string (not included) or a full context. The returned Generation also counts and times.
        penalties: Sampler's min_p, repeat_penalty, repeat_last_n, presence/frequency_penalty, logit_bias."""
        from tritlm.runtime.generate import Generation, TokenLoop
        from tritlm.runtime.sampler import Sampler

        ids = self.tokenize(prompt, add_bos=True, special=True) if isinstance(prompt, str) else list(prompt)
        sampler = Sampler(temperature, top_k, top_p, seed, **penalties)
        sampler.accept(ids)  # the prompt counts for the repetition penalties, as in llama-server
        return Generation(self, ids, TokenLoop(self, sampler, max_tokens, stop))

    def reset(self) -> None:
        """Empties every sequence of this model."""
        for seq in list(self._sequences):
            seq.reset()

    @property
    def output_bytes(self) -> int:
        """Bytes of the output matrix as the engine reads them per logits row: a bf16 one repacked at load
        (docs/format.md) is ~0.76 of the file's."""
        return int(lib.tl_model_output_bytes(self._ptr))

    def read_bytes(self) -> dict[str, int]:
        """Bytes of each linear weight and of the output matrix (output.weight, or token_embd.weight when tied) as the
        engine reads them whole: their repacked forms where they were repacked at load (docs/format.md; tq2_0 as i2_s
        is 64 bytes per 256 values, not the file's 66)."""
        names = [n for n in LAYER_TENSORS if not n.endswith("norm")]  # tl_layer's order of its linears
        read = {
            f"blk.{layer}.{name}.weight": int(lib.tl_model_linear_bytes(self._ptr, layer, i))
            for layer in range(self.hparams.n_layer)
            for i, name in enumerate(names)
        }
        read[self._output_name] = self.output_bytes
        return read

    def sparse_counts(self) -> tuple[int, int, int, int]:
        """(down_proj inputs, nonzero ones, up_proj rows, computed ones) of the tokens decoded so far by the relu² sparse
        path (tl_ctx_sparse_counts summed over this model's contexts; call it between calls). The down_proj counts are
        of single tokens; the up_proj ones also of decode steps of several sequences (rows computed for any of them)."""
        counts = ffi.new("int64_t[4]")
        total = [0, 0, 0, 0]
        with self._contexts_lock:
            for ctx in self._contexts:
                lib.tl_ctx_sparse_counts(ctx, counts)
                total = [a + b for a, b in zip(total, counts)]
        return total[0], total[1], total[2], total[3]

    def phase_ns(self) -> dict[str, int]:
        """Nanoseconds this model's forward passes spent so far in each step (tl_ctx_phase_ns summed over the contexts,
        by TL_PHASE_* name in lower case: "qkv", "attention", "output", ...; call it between calls)."""
        names = sorted(
            (getattr(lib, n), n.removeprefix("TL_PHASE_").lower()) for n in dir(lib) if n.startswith("TL_PHASE_")
        )
        ns = ffi.new("int64_t[]", lib.TL_N_PHASES)
        total = dict.fromkeys((name for _, name in names), 0)
        with self._contexts_lock:
            for ctx in self._contexts:
                lib.tl_ctx_phase_ns(ctx, ns)
                for i, name in names:
                    total[name] += ns[i]
        return total

    def close(self) -> None:
        """Frees the engine, the sequences and the file mapping; the model cannot be used after."""
        for seq in list(getattr(self, "_sequences", ())):
            seq.close()
        for ctx in getattr(self, "_contexts", ()):
            ffi.release(ctx)
        self._contexts = []
        if self._ptr is not None:
            ffi.release(self._ptr)
            self._ptr = None
        self._structs = None
        if getattr(self, "_base", None) is not None:
            ffi.release(self._base)
            self._base = None
        if self._copy is not None:
            self._copy.close()
            self._copy = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- helpers ----

    def check_context_size(self, n_ctx) -> int:
        """A sequence's size: a whole number in [1, the model's context length] (the positions it was trained on)."""
        n_ctx = whole_number(n_ctx, "the context size")
        if not 0 < n_ctx <= min(self.context_length, INT32_MAX):
            raise ModelError(
                f"context size {n_ctx} is outside [1, {min(self.context_length, INT32_MAX)}], "
                f"the model's context length"
            )
        return n_ctx

    def _handle(self):
        if self._ptr is None:
            raise ModelError("the model is closed")
        return self._ptr

    def _check_room(self, seq: Sequence, n: int) -> None:
        if seq.pos + n > seq.n_ctx:
            raise ModelError(f"context full: {n} more tokens do not fit in a context of {seq.n_ctx} ({seq.pos} in use)")

    def _forward_into(self, seqs, tokens, logit_rows, out: np.ndarray) -> None:
        """tl_forward writing logits into out (a C-contiguous float32 array with enough rows)."""
        model = self._handle()
        tokens = token_array(tokens, self.n_vocab)
        seq_ptrs = ffi.new("tl_seq *[]", [self._own(s)._handle() for s in seqs])
        c_tokens = ffi.from_buffer("int32_t[]", tokens)
        rows = ffi.NULL if logit_rows is None else ffi.from_buffer("int32_t[]", np.asarray(logit_rows, dtype=np.int32))
        err = ffi.new("char[]", ERR_LEN)
        with self._context(model) as ctx:
            rc = lib.tl_forward(
                ctx, seq_ptrs, c_tokens, len(tokens), rows, ffi.from_buffer("float[]", out), err, ERR_LEN
            )
        if rc != 0:
            raise ModelError(ffi.string(err).decode(errors="replace"))

    @contextmanager
    def _context(self, model):
        """An engine context for one call: an idle one, or a new one when every context is in use."""
        with self._contexts_lock:
            ctx = self._contexts.pop() if self._contexts else None
        if ctx is None:
            ptr = lib.tl_ctx_new(model)
            if ptr == ffi.NULL:
                raise ModelError("out of memory for an engine context")
            ctx = ffi.gc(ptr, lib.tl_ctx_free)
        try:
            yield ctx
        finally:
            with self._contexts_lock:
                self._contexts.append(ctx)

    def _own(self, seq: Sequence) -> Sequence:
        if not isinstance(seq, Sequence) or seq.model is not self:
            raise ModelError("the sequence belongs to another model")
        return seq
