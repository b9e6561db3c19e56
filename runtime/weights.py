"""A GGUF file's metadata and tensors -> the C engine's tl_config, tl_tensor and tl_layer (docs/format.md).
The metadata is checked here, so a bad key fails with a message naming it. Which types and shapes each tensor may
have is the engine's rule (tl_model_new, which must refuse a bad tensor from any caller): its one-line message
names the tensor, and Model raises it as a ModelError.

Tensor data is not copied here: each tl_tensor points at base + its file offset (the file's mmap, or Model's copy
of the tensor data)."""

import math
from dataclasses import dataclass

import numpy as np

from tritlm.formats import ACT_GROUPS, ACT_MODES, BY_ID, FFN_ACTS, LAYER_TENSORS, MAX_SIZE, TERNARY, TYPES, HParams
from tritlm.runtime.errors import ModelError
from tritlm.runtime.gguf import GGUFFile, TensorInfo, describe

# architecture -> feed-forward activation when tritlm.ffn_act is absent
ARCHITECTURES = {"bitnet": "silu", "bitnet-b1.58": "relu2", "bitnet-25": "relu2", "llama": "silu"}
ROPE_INTERLEAVED = {"llama"}  # llama.cpp's q/k row order: RoPE on adjacent pairs (docs/format.md)
KV_TYPES = {"f32": 0, "f16": 16}  # a KV cache type one asks for -> tl_config.kv_bits


def read_hparams(metadata: dict, tensor_names: set[str]) -> HParams:
    arch = metadata.get("general.architecture")
    if arch not in ARCHITECTURES:
        raise ModelError(f"unsupported architecture {arch!r} (supported: {', '.join(ARCHITECTURES)})")

    def number(key: str, kind, default=None):
        value = metadata.get(f"{arch}.{key}", default)
        if value is None:
            raise ModelError(f"missing metadata key {arch}.{key}")
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (kind is int and not isinstance(value, int))
        ):
            wanted = "an integer" if kind is int else "a number"
            raise ModelError(f"metadata key {arch}.{key} holds {describe(value)}, not {wanted}")
        if kind is int and not 0 < value <= MAX_SIZE:
            raise ModelError(f"metadata key {arch}.{key} is {value}, not a size from 1 to {MAX_SIZE}")
        if not math.isfinite(value) or value < 0:
            raise ModelError(f"metadata key {arch}.{key} is {value}, not a finite number >= 0")
        return kind(value)

    n_embd, n_head = number("embedding_length", int), number("attention.head_count", int)
    act = metadata.get("tritlm.ffn_act", ARCHITECTURES[arch])
    if act not in FFN_ACTS:
        raise ModelError(f"unsupported tritlm.ffn_act {act!r} (supported: {', '.join(FFN_ACTS)})")
    # head_dim as llama.cpp reads it: attention.key_length, else n_embd / n_head. RoPE must rotate all of it.
    head_dim = number("attention.key_length", int, n_embd // n_head or None)
    for key in ("attention.value_length", "rope.dimension_count"):
        if number(key, int, head_dim) != head_dim:
            raise ModelError(
                f"metadata key {arch}.{key} is {metadata[f'{arch}.{key}']}, not the head size {head_dim} "
                f"(partial rotary embeddings and value heads of another size are not supported)"
            )
    tokens = metadata.get("tokenizer.ggml.tokens") or []
    hp = HParams(
        n_layer=number("block_count", int),
        n_embd=n_embd,
        n_ff=number("feed_forward_length", int),
        n_head=n_head,
        n_head_kv=number("attention.head_count_kv", int, n_head),
        head_dim=head_dim,
        n_vocab=number("vocab_size", int, len(tokens) or None),
        context_length=number("context_length", int),
        rms_eps=number("attention.layer_norm_rms_epsilon", float),
        rope_theta=number("rope.freq_base", float, 10000.0),
        ffn_act=act,
        sub_norms="blk.0.attn_sub_norm.weight" in tensor_names,
        rope_interleaved=arch in ROPE_INTERLEAVED,
    )
    if hp.problem():
        raise ModelError(hp.problem())
    if len(tokens) > hp.n_vocab:  # before the tokenizer is built from them
        raise ModelError(f"the tokenizer has {len(tokens)} tokens, more than the {hp.n_vocab} logits")
    return hp


@dataclass(frozen=True)
class ActMode:
    """How linear inputs and the KV cache are quantized (BitNet a4.8, Q-Sparse); the default is b1.58's."""

    bits: tuple[int, ...] = (8, 8, 8, 8)  # per ACT_GROUPS: 8 = INT8 absmax, 4 = INT4 absmean
    topk: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)  # fraction of |x| kept per token (1: dense)
    kv_bits: int = 0  # 3 or 4: quantized KV cache; 16: f16 (Model's kv_type); 0: f32
    kv_bits_first: int = 0  # position 0's (the BOS token's) bits

    @property
    def lossless(self) -> bool:
        return self == ActMode()

    @property
    def name(self) -> str:
        """b1.58, a4.8 (the paper's settings), qsparse-K (either with ", kv f16"), or the settings spelled out."""
        if self.lossless:
            return "b1.58"
        if self == mode_of(ACT_MODES["a4.8"]):
            return "a4.8"
        if self.bits == (8, 8, 8, 8) and len(set(self.topk)) == 1 and self.kv_bits in (0, 16):
            base = "b1.58" if self.topk[0] == 1 else f"qsparse-{self.topk[0]:g}"
            return base + (", kv f16" if self.kv_bits else "")
        return self.describe()

    def describe(self) -> str:
        parts = [f"{g} int{b}" + (f" top-{k:g}" if k < 1 else "") for g, b, k in zip(ACT_GROUPS, self.bits, self.topk)]
        kv = {0: "kv f32", 16: "kv f16"}.get(self.kv_bits, f"kv {self.kv_bits}-bit (first {self.kv_bits_first})")
        return ", ".join(parts + [kv])


def mode_of(q: dict) -> ActMode:
    """The ActMode of a quantization_config's mode entries (formats.ACT_MODES)."""
    return ActMode(
        tuple(q["activation_bits"][g] for g in ACT_GROUPS),
        tuple(q["activation_topk"][g] for g in ACT_GROUPS),
        q.get("kv_cache_bits", 0),
        q.get("kv_cache_bits_first", q.get("kv_cache_bits", 0)),
    )


def read_mode(metadata: dict, act_topk: float | None = None, kv_type: str | None = None) -> ActMode:
    """The file's tritlm.activation_* / tritlm.kv_cache_* keys (absent: b1.58); act_topk, when given, replaces every
    input's top-K fraction (a training-free, lossy option); kv_type "f32" or "f16", the KV cache's rows."""

    def value(key, kinds, allowed, default):
        v = metadata.get(key, default)
        if isinstance(v, bool) or not isinstance(v, kinds) or not allowed(v):
            raise ModelError(f"metadata key {key} is {v!r}, not a supported value")
        return v

    bits = tuple(value(f"tritlm.activation_bits.{g}", int, lambda b: b in (4, 8), 8) for g in ACT_GROUPS)
    topk = tuple(
        float(value(f"tritlm.activation_topk.{g}", (int, float), lambda k: 0 < k <= 1, 1.0)) for g in ACT_GROUPS
    )
    kv = value("tritlm.kv_cache_bits", int, lambda b: b in (0, 3, 4), 0)
    first = value("tritlm.kv_cache_bits_first", int, lambda b: b in (0, 3, 4), kv)
    if act_topk is not None:
        if not 0 < act_topk <= 1:
            raise ModelError(f"--act-topk {act_topk}: must be a fraction in (0, 1]")
        topk = (float(act_topk),) * len(ACT_GROUPS)
    if kv_type is not None:
        if kv_type not in KV_TYPES:
            raise ModelError(f"KV cache type {kv_type!r}: supported {', '.join(KV_TYPES)}")
        kv = first = KV_TYPES[kv_type]
    return ActMode(bits, topk, kv, first or kv)


def weight_scale(file: GGUFFile, t: TensorInfo) -> float:
    """The exact scale of a ternary tensor: tritlm.weight_scale.<name> when written; else the type's own
    (i2_s: the f32 after the data; tq1_0/tq2_0: the blocks' fp16 d, which must all agree)."""
    if t.type not in TERNARY:
        return 1.0
    exact = file.metadata.get(f"tritlm.weight_scale.{t.name}")
    if exact is not None:
        if not isinstance(exact, float) or not np.isfinite(exact):
            raise ModelError(f"tritlm.weight_scale.{t.name} is {exact!r}, not a finite number")
        return exact
    data, kind = file.view(t), BY_ID[t.type]
    if kind.scale == "trailer":
        return float(data[t.nbytes - kind.trailer :][:4].view(np.float32)[0])
    d = data.reshape(-1, kind.block_bytes)[:, -2:].copy().view(np.float16).ravel()  # each block ends with d
    d = d[d != 0]  # llama.cpp gives an all-zero block d = 0
    if d.size == 0:
        return 0.0
    if (d != d[0]).any():
        raise ModelError(
            f"tensor {t.name}: its blocks have different scales d and the file has no "
            f"tritlm.weight_scale.{t.name} (per-block scales are not supported yet)"
        )
    return float(d[0])


def layer_tensors(hp: HParams) -> tuple[str, ...]:
    """The tl_layer fields a layer of this model fills (its blk.N.<name>.weight tensors)."""
    return tuple(name for name in LAYER_TENSORS if hp.sub_norms or not name.endswith("_sub_norm"))


def native_weights(
    file: GGUFFile,
    hp: HParams,
    base,
    ffi,
    mode: ActMode = ActMode(),
    sparse: bool = True,
    keep_file_layout: bool = False,
    writable: bool = False,
):
    """(tl_config, token_embd, output_norm, output, layers) as cffi structs; `base` is the file's first byte. A
    tensor the model needs but the file lacks is left empty (data NULL) for the engine to name; a tensor the
    model does not use is refused here. sparse=False: decode a relu² model's MLP densely (tl_config.no_sparse).
    keep_file_layout: read a bf16 output matrix and tq2_0 linears as the file has them, not repacked
    (tl_config.keep_file_layout). writable: `base` is a private copy of the file the engine may rewrite
    (tl_config.weights_writable)."""
    tensors = {t.name: t for t in file.tensors}
    fields = layer_tensors(hp)
    if hp.n_layer * len(fields) > len(tensors):  # before anything is made per layer: block_count may be anything
        raise ModelError(
            f"block_count {hp.n_layer} needs {hp.n_layer * len(fields)} layer tensors; the file has "
            f"{len(tensors)} tensors"
        )
    names = ["token_embd.weight", "output_norm.weight", "output.weight"]
    names += [f"blk.{i}.{name}.weight" for i in range(hp.n_layer) for name in fields]
    unexpected = sorted(set(tensors) - set(names))
    if unexpected:
        raise ModelError(f"unexpected tensor {unexpected[0]} (not part of a {hp.n_layer}-layer BitNet model)")

    def tensor(name: str):
        t = tensors.get(name)
        if t is None:  # the engine names it missing (output.weight may be: it is then tied to the embedding)
            return ffi.new("tl_tensor *")
        if t.type not in BY_ID:
            raise ModelError(
                f"tensor {name} has type {t.type_name}, which the engine does not read (it reads {', '.join(TYPES)})"
            )
        if len(t.dims) > 2:  # a tl_tensor is a vector or a matrix
            raise ModelError(f"tensor {name} has shape {list(t.dims)}, more than 2 dimensions")
        return ffi.new(
            "tl_tensor *",
            {"data": base + t.offset, "type": t.type, "rows": t.rows, "cols": t.cols, "scale": weight_scale(file, t)},
        )

    cfg = ffi.new(
        "tl_config *",
        {
            "n_layer": hp.n_layer,
            "n_embd": hp.n_embd,
            "n_ff": hp.n_ff,
            "n_head": hp.n_head,
            "n_head_kv": hp.n_head_kv,
            "head_dim": hp.head_dim,
            "n_vocab": hp.n_vocab,
            "rms_eps": hp.rms_eps,
            "rope_theta": hp.rope_theta,
            "act": FFN_ACTS.index(hp.ffn_act),
            "sub_norms": int(hp.sub_norms),
            "rope_interleaved": int(hp.rope_interleaved),
            "act_bits": list(mode.bits),
            "act_topk": list(mode.topk),
            "kv_bits": mode.kv_bits,
            "kv_bits_first": mode.kv_bits_first,
            "no_sparse": int(not sparse),
            "weights_mapped": 1,  # the file's read-only mmap, or Model's copy of it: nothing else reads them
            "keep_file_layout": int(keep_file_layout),
            "weights_writable": int(writable),
        },
    )
    layers = ffi.new("tl_layer[]", hp.n_layer)
    for i in range(hp.n_layer):
        for name in fields:
            setattr(layers[i], name, tensor(f"blk.{i}.{name}.weight")[0])
    return cfg, tensor("token_embd.weight"), tensor("output_norm.weight"), tensor("output.weight"), layers
