"""Hostile GGUF files (issue 12): GGUF files come from strangers and are mmapped, so every file here, each made
from our own tiny model with one thing wrong, must end in a one-line ModelError from Model() within seconds: no
other exception, no crash, no hang, and peak memory bounded by the file's size (measured in a child process).
Classes: counts that do not match the file (block_count 2^31 + 5, a vocabulary larger than the embedding),
metadata keys of the wrong type, hyperparameters out of range, tensors of the wrong type or shape, non-finite
norms and scales, and the file truncated at every section boundary gguf-py finds. One module, so a sanitizer
build can run exactly these."""

import json
import math
import os
import subprocess
import sys
import time

import gguf
import numpy as np
import pytest

from tests.gguf_edit import rewrite
from tritlm.converter.write import convert
from tritlm.runtime import Model, ModelError
from tritlm.runtime.gguf import read_gguf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
V = gguf.GGUFValueType
SECONDS = 10  # a refusal is a parse and a few checks; anything near this is a hang


@pytest.fixture(scope="module")
def tq2_0_gguf(tiny_checkpoints, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("hostile") / "tiny-tq2_0.gguf")
    convert(tiny_checkpoints["packed"], path, "tq2_0", progress=False)
    return path


def refused(path: str, match: str) -> str:
    """Model(path) raises one ModelError with a one-line message matching `match`, quickly."""
    started = time.monotonic()
    with pytest.raises(ModelError, match=match) as error:
        Model(path, threads=1).close()
    assert time.monotonic() - started < SECONDS
    message = str(error.value)
    assert "\n" not in message and message.startswith(path), message
    return message


# ---- metadata: counts, types and ranges ----

ARRAY_OF_INTS = ([1, 2, 3], V.ARRAY, V.INT32)
HOSTILE_METADATA = {
    "block_count 2^31+5": (
        {"bitnet.block_count": 2**31 + 5},
        "block_count is 2147483653, not a size from 1 to 2147483647",
    ),
    "block_count 2^31-1": (
        {"bitnet.block_count": 2**31 - 1},
        "block_count 2147483647 needs 23622320117 layer tensors; the file has 24 tensors",
    ),
    "block_count 2^63": ({"bitnet.block_count": (2**63, V.UINT64)}, "not a size from 1 to 2147483647"),
    "block_count 0": ({"bitnet.block_count": 0}, "block_count is 0, not a size"),
    "embedding_length negative": ({"bitnet.embedding_length": (-256, V.INT32)}, "embedding_length is -256"),
    "embedding_length string": (
        {"bitnet.embedding_length": ("256", V.STRING)},
        "holds a string .'256'., not an integer",
    ),
    "embedding_length float": ({"bitnet.embedding_length": (256.0, V.FLOAT32)}, "holds a float"),
    "head_count array": ({"bitnet.attention.head_count": ARRAY_OF_INTS}, "holds an array of 3 int32, not an integer"),
    "head_count_kv not a divisor": (
        {"bitnet.attention.head_count_kv": 3},
        "4 attention heads do not share 3 key/value heads",
    ),
    "rms_eps nan": ({"bitnet.attention.layer_norm_rms_epsilon": math.nan}, "is nan, not a finite number"),
    "rms_eps -inf": ({"bitnet.attention.layer_norm_rms_epsilon": -math.inf}, "is -inf, not a finite number"),
    "rope_theta inf": ({"bitnet.rope.freq_base": math.inf}, "is inf, not a finite number"),
    "context_length 0": ({"bitnet.context_length": 0}, "context_length is 0"),
    "vocab_size 2^31": ({"bitnet.vocab_size": (2**31, V.UINT64)}, "vocab_size is 2147483648"),
    "vocab_size smaller than the tokens": ({"bitnet.vocab_size": 1000}, "1024 tokens, more than the 1000 logits"),
    "architecture int": (
        {"general.architecture": (7, V.UINT32)},
        r"general.architecture holds an integer \(7\), not a string",
    ),
    "architecture unknown": ({"general.architecture": ("gpt2", V.STRING)}, "unsupported architecture 'gpt2'"),
    "ffn_act int": ({"tritlm.ffn_act": (1, V.UINT32)}, "tritlm.ffn_act holds an integer"),
    "ffn_act unknown": ({"tritlm.ffn_act": "gelu"}, "unsupported tritlm.ffn_act 'gelu'"),
    "alignment string": ({"general.alignment": ("32", V.STRING)}, "general.alignment holds a string"),
    "alignment 48": ({"general.alignment": (48, V.UINT32)}, "not a power of two"),
    "bos_token_id string": ({"tokenizer.ggml.bos_token_id": ("1", V.STRING)}, "bos_token_id holds a string"),
    "bos_token_id out of range": ({"tokenizer.ggml.bos_token_id": 5000}, "bos_token_id 5000 is not a token id"),
    "eos_token_id float": ({"tokenizer.ggml.eos_token_id": (1.0, V.FLOAT32)}, "eos_token_id holds a float"),
    "add_bos_token string": ({"tokenizer.ggml.add_bos_token": ("yes", V.STRING)}, "add_bos_token holds a string"),
    "merges as ints": (
        {"tokenizer.ggml.merges": ARRAY_OF_INTS},
        "merges holds an array of 3 int32, not an array of strings",
    ),
    "merges not pairs": ({"tokenizer.ggml.merges": (["a b c"], V.ARRAY, V.STRING)}, "bad tokenizer.ggml.merges entry"),
    "merges of unknown tokens": ({"tokenizer.ggml.merges": (["zzz qqq"], V.ARRAY, V.STRING)}, "bad tokenizer"),
    "tokens as ints": (
        {"tokenizer.ggml.tokens": ARRAY_OF_INTS},
        "tokens holds an array of 3 int32, not an array of strings",
    ),
    "tokens as arrays": ({"tokenizer.ggml.tokens": ([[1], [2]], V.ARRAY, V.ARRAY)}, "holds an array of 2 arrays"),
    "tokens missing": ({"tokenizer.ggml.tokens": None}, "has no tokenizer.ggml.tokens"),
    "token_type as strings": (
        {"tokenizer.ggml.token_type": (["1"], V.ARRAY, V.STRING)},
        "token_type holds an array of 1 strings",
    ),
    "token_type too short": ({"tokenizer.ggml.token_type": ARRAY_OF_INTS}, "token_type has 3 entries for 1024 tokens"),
    "scores as strings": ({"tokenizer.ggml.scores": (["0"], V.ARRAY, V.STRING)}, "scores holds an array of 1 strings"),
    "tokenizer model int": ({"tokenizer.ggml.model": (2, V.UINT32)}, "tokenizer.ggml.model holds an integer"),
    "pre-tokenizer unknown": ({"tokenizer.ggml.pre": "qwen9"}, "unsupported tokenizer.ggml.pre 'qwen9'"),
    "chat template array": ({"tokenizer.chat_template": ARRAY_OF_INTS}, "chat_template holds an array"),
    "weight scale nan": ({"tritlm.weight_scale.blk.0.attn_q.weight": math.nan}, "is nan, not a finite number"),
    "weight scale string": ({"tritlm.weight_scale.blk.0.attn_q.weight": ("1", V.STRING)}, "not a finite number"),
    "rope dimension partial": ({"bitnet.rope.dimension_count": 32}, "rope.dimension_count is 32, not the head size 64"),
}


@pytest.mark.parametrize("name", HOSTILE_METADATA)
def test_hostile_metadata(tq2_0_gguf, tmp_path, name):
    values, match = HOSTILE_METADATA[name]
    refused(rewrite(tq2_0_gguf, str(tmp_path / "bad.gguf"), values=values), match)


# ---- tensors ----


def patched(src: str, dst, name: str, at: int, raw: bytes) -> str:
    """src with bytes at offset `at` of tensor `name`'s data replaced by raw."""
    with read_gguf(src) as f:
        offset = next(t.offset for t in f.tensors if t.name == name)
    data = bytearray(open(src, "rb").read())
    data[offset + at : offset + at + len(raw)] = raw
    open(dst, "wb").write(data)
    return str(dst)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"drop": ["blk.1.ffn_down.weight"]}, "missing tensor blk.1.ffn_down.weight"),
        (
            {"reshape": ("blk.0.ffn_up.weight", (384, 512))},
            r"ffn_up.weight has shape \[512, 384\], expected \[256, 768\]",
        ),
        (
            {"reshape": ("blk.0.ffn_up.weight", (3, 256, 256))},
            r"ffn_up.weight has shape \[256, 256, 3\], more than 2 dimensions",
        ),
        ({"types": {"blk.0.attn_norm.weight": gguf.GGMLQuantizationType.I32}}, "attn_norm.weight has type i32, which"),
        (
            {"types": {"blk.0.attn_norm.weight": gguf.GGMLQuantizationType.F16}},
            r"attn_norm.weight has type f16, not one the engine runs as a norm \(f32\)",
        ),
        (
            {"types": {"blk.1.attn_q.weight": gguf.GGMLQuantizationType.IQ2_XXS}},
            r"attn_q.weight has type iq2_xxs, which the engine does not read \(it reads f32, f16, bf16, q8_0",
        ),
    ],
)
def test_hostile_tensors(tq2_0_gguf, tmp_path, change, match):
    refused(rewrite(tq2_0_gguf, str(tmp_path / "bad.gguf"), **change), match)


@pytest.mark.parametrize(
    "name, at, raw",
    [
        ("blk.1.ffn_norm.weight", 4 * 7, np.float32(np.nan).tobytes()),
        ("output_norm.weight", 0, np.float32(-np.inf).tobytes()),
        ("token_embd.weight", 2 * 256 * 5 + 2 * 9, np.uint16(0x7F80).tobytes()),  # bf16 +Inf in row 5
    ],
)
def test_non_finite_float_weights_are_refused_at_load(tq2_0_gguf, tmp_path, name, at, raw):
    """A float weight feeds the int8 quantizer (norms directly, the embedding through the residual stream)."""
    path = patched(tq2_0_gguf, tmp_path / "bad.gguf", name, at, raw)
    refused(path, f"{name}: row {at // (2 * 256) if name == 'token_embd.weight' else 0} holds a NaN or Inf")


def test_non_finite_scales_are_refused(tiny_gguf, tq2_0_gguf, tmp_path):
    """Files made by others carry the scale in the data: an i2_s trailer (checked by the C engine) or tq2_0's
    per-block fp16 d (checked in Python)."""

    def keyless(src, dst):
        data = open(src, "rb").read().replace(b"tritlm.weight_scale.", b"others.weight_scale.")
        open(dst, "wb").write(data)
        return str(dst)

    i2_s = keyless(tiny_gguf, tmp_path / "i2_s.gguf")
    with read_gguf(i2_s) as f:
        t = next(t for t in f.tensors if t.name == "blk.0.attn_v.weight")
    refused(
        patched(i2_s, tmp_path / "i2_s-nan.gguf", t.name, t.nbytes - 32, np.float32(np.nan).tobytes()),
        "blk.0.attn_v.weight: weight scale is not finite",
    )
    tq2_0 = keyless(tq2_0_gguf, tmp_path / "tq2_0.gguf")
    refused(
        patched(tq2_0, tmp_path / "tq2_0-nan.gguf", "blk.0.attn_v.weight", 64, np.float16(np.nan).tobytes()),
        "blk.0.attn_v.weight: its blocks have different scales",
    )


# ---- truncation at every section boundary ----


def section_boundaries(path: str) -> list[int]:
    """Byte offsets where a part of the file ends, as gguf-py reads it: the header's fields, each metadata
    key's length, key, type and value (the first and last few elements of arrays), each tensor info's parts,
    the start of the data, and each tensor's first and last byte."""
    reader = gguf.GGUFReader(path)
    ends = set()
    for field in list(reader.fields.values()) + [t.field for t in reader.tensors]:
        pos = field.offset
        ends.add(pos)
        parts = field.parts if len(field.parts) < 40 else field.parts[:12] + field.parts[-12:]
        for part in parts:
            pos = int(part.ctypes.data - field.parts[0].ctypes.data) + part.nbytes + field.offset
            ends.add(pos)
    for t in reader.tensors:
        ends |= {int(t.data_offset), int(t.data_offset) + 1, int(t.data_offset + t.n_bytes) - 1}
    return sorted(ends)


def test_truncation_at_every_section_boundary(tq2_0_gguf, tmp_path):
    size = os.path.getsize(tq2_0_gguf)
    cuts = sorted(
        {c + d for c in section_boundaries(tq2_0_gguf) for d in (-1, 0, 1) if 0 <= c + d < size}, reverse=True
    )
    assert len(cuts) > 300 and cuts[0] == size - 1
    path = str(tmp_path / "cut.gguf")
    with open(tq2_0_gguf, "rb") as src, open(path, "wb") as dst:
        dst.write(src.read())
    for cut in cuts:  # one copy, truncated further and further
        os.truncate(path, cut)
        refused(path, "empty file" if cut == 0 else "bad magic" if cut < 4 else "truncated GGUF file")


# ---- time and memory bounded by the file ----

MEASURE = """
import json, os, sys, time
from tritlm.runtime import Model, ModelError

def status(key):
    return int(next(line.split()[1] for line in open("/proc/self/status") if line.startswith(key))) * 1024

before, started = status("VmRSS"), time.monotonic()
try:
    Model(sys.argv[1], threads=1)
    outcome = "loaded"
except ModelError as e:
    outcome = str(e)
print(json.dumps({"growth": status("VmHWM") - before, "seconds": time.monotonic() - started, "outcome": outcome}))
"""


def load_in_child(path: str) -> dict:
    """Loads path in a fresh interpreter (its own peak RSS, VmHWM: not the test runner's)."""
    done = subprocess.run([sys.executable, "-c", MEASURE, path], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def with_array(src: str, dst: str, elem_type: int, count: int, payload: bytes) -> str:
    """src with one more metadata key, an array, inserted before the others. Its record is made a multiple of the
    alignment long (payload is padded with zero bytes, which the caller's count must account for), so the
    tensor data moves by whole alignment units and stays valid."""
    data = open(src, "rb").read()
    record = (
        (len(b"hostile.array")).to_bytes(8, "little")
        + b"hostile.array"
        + int(V.ARRAY).to_bytes(4, "little")
        + int(elem_type).to_bytes(4, "little")
        + count.to_bytes(8, "little")
        + payload
    )
    assert len(record) % 32 == 0, len(record) % 32
    n_kv = int.from_bytes(data[16:24], "little")
    open(dst, "wb").write(data[:16] + (n_kv + 1).to_bytes(8, "little") + record + data[24:])
    return dst


@pytest.mark.parametrize("kind", ["block_count", "int8 array", "short strings"])
def test_memory_and_time_bounded_by_the_file(tq2_0_gguf, tmp_path, kind):
    """Peak RSS growth while refusing a hostile file is at most 8 x its size + 64 MB. Python needs ~50 bytes for
    each 2-character string that takes 10 bytes in the file (the worst case, ~6x); numbers stay numpy arrays
    (Python ints would take 36 bytes for each int8 byte)."""
    if "san.so" in os.environ.get("LD_PRELOAD", ""):  # make sanitize: its allocator's redzones are not ours
        pytest.skip("peak RSS under a sanitizer's allocator is not the loader's")
    path = rewrite(tq2_0_gguf, str(tmp_path / "count.gguf"), values={"bitnet.block_count": 2**31 - 1})
    n = 3_200_000  # 32 MB of int8, or of 2-character strings; a record is 37 bytes + its payload
    if kind == "int8 array":
        count = 10 * n + 27
        path = with_array(path, str(tmp_path / "big.gguf"), V.INT8, count, np.full(count, -100, np.int8).tobytes())
    elif kind == "short strings":  # n strings of 10 bytes, then one of 8 + 19
        strings = b"".join((2).to_bytes(8, "little") + b"%02x" % (i % 256) for i in range(n))
        path = with_array(
            path, str(tmp_path / "big.gguf"), V.STRING, n + 1, strings + (19).to_bytes(8, "little") + b"x" * 19
        )
    size = os.path.getsize(path)
    got = load_in_child(path)
    print(
        f"{kind}: {size / 2**20:.1f} MB file, peak RSS growth {got['growth'] / 2**20:.1f} MB, "
        f"{got['seconds']:.2f} s: {got['outcome']}"
    )
    assert "block_count 2147483647 needs" in got["outcome"]
    assert got["seconds"] < SECONDS and got["growth"] < 8 * size + 64 * 2**20
