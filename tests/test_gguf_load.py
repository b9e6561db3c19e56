"""runtime/gguf.py against gguf-py's GGUFReader on files gguf-py can read, i2_s sizes and trailer scale as
docs/format.md defines them, and a strict parser: every truncation and random corruption of a file is a
ModelError (never another exception or a hang); Model refuses files that do not describe a BitNet model."""

import struct
import time

import gguf
import numpy as np
import pytest

from tests.gguf_edit import rewrite
from tritlm.converter.write import convert
from tritlm.formats import TYPES
from tritlm.runtime import Model, ModelError
from tritlm.runtime.gguf import SCALAR_FORMATS, parse_gguf, read_gguf


@pytest.fixture(scope="module")
def tq2_0_gguf(tiny_checkpoints, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("gguf") / "tiny-tq2_0.gguf")
    convert(tiny_checkpoints["packed"], path, "tq2_0", progress=False)
    return path


@pytest.fixture(scope="module")
def every_value_type(tmp_path_factory):
    """A file with every metadata value type, nested arrays, a custom alignment and several tensor types."""
    path = str(tmp_path_factory.mktemp("gguf") / "types.gguf")
    w = gguf.GGUFWriter(path, "test")
    w.add_custom_alignment(64)
    V = gguf.GGUFValueType
    for key, value, vtype in [
        ("u8", 200, V.UINT8),
        ("i8", -100, V.INT8),
        ("u16", 60000, V.UINT16),
        ("i16", -30000, V.INT16),
        ("u32", 4000000000, V.UINT32),
        ("i32", -2000000000, V.INT32),
        ("f32", 0.5, V.FLOAT32),
        ("bool", True, V.BOOL),
        ("str", "héllo 🦙", V.STRING),
        ("u64", 2**63 + 5, V.UINT64),
        ("i64", -(2**62), V.INT64),
        ("f64", 1 / 3, V.FLOAT64),
    ]:
        w.add_key_value(f"t.{key}", value, vtype)
    w.add_array("t.ints", [1, -2, 3])
    w.add_array("t.floats", [0.25, -1.5])
    w.add_array("t.strings", ["a", "", "ünï"])
    w.add_array("t.nested", [[1, 2], [3]])
    w.add_array("t.empty", [])
    rng = np.random.default_rng(0)
    w.add_tensor("f32", rng.standard_normal((3, 5)).astype(np.float32))
    w.add_tensor("f16", rng.standard_normal((2, 7)).astype(np.float16))
    w.add_tensor("i32", np.arange(6, dtype=np.int32))
    w.add_tensor("q8_0", rng.integers(0, 255, (2, 34), dtype=np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize("which", ["every_value_type", "tq2_0_gguf"])
def test_same_as_gguf_py(which, request):
    path = request.getfixturevalue(which)
    reader = gguf.GGUFReader(path)
    with read_gguf(path) as ours:
        fields = {k: f for k, f in reader.fields.items() if not k.startswith("GGUF.")}
        assert list(ours.metadata) == list(fields)
        for key, field in fields.items():
            value = ours.metadata[key]
            if field.types[:2] == [gguf.GGUFValueType.ARRAY] * 2:  # gguf-py's contents() flattens nested arrays
                assert [v.tolist() for v in value] == [[1, 2], [3]]
                continue
            want = field.contents()
            if isinstance(value, np.ndarray):  # numeric arrays: numpy, of the file's element type
                assert value.dtype == np.dtype(SCALAR_FORMATS[field.types[-1]]) and value.tolist() == want, key
                continue
            if isinstance(want, float):
                want = float(np.float32(want)) if field.types[0] == gguf.GGUFValueType.FLOAT32 else want
            assert (
                ours.metadata[key] == pytest.approx(want) if isinstance(want, float) else ours.metadata[key] == want
            ), key
        assert [t.name for t in ours.tensors] == [t.name for t in reader.tensors]
        for t, want in zip(ours.tensors, reader.tensors):
            assert (t.type, t.dims, t.nbytes, t.offset) == (
                want.tensor_type,
                tuple(int(d) for d in want.shape),
                int(want.n_bytes),
                int(want.data_offset),
            )
            view = ours.view(t)
            assert view.tobytes() == want.data.tobytes()
            assert not view.flags.writeable and not view.flags.owndata  # a view of the read-only map, no copy
        del view


def test_i2_s_size_and_trailer_scale(tiny_gguf):
    with read_gguf(tiny_gguf) as f:
        ternary = [t for t in f.tensors if t.type == TYPES["i2_s"].id]
        assert ternary and all(t.nbytes == t.cols * t.rows // 4 + 32 for t in ternary)
        for t in ternary:
            trailer = f.view(t)[-32:]
            assert trailer[:4].view(np.float32)[0] == np.float32(f.metadata[f"tritlm.weight_scale.{t.name}"])
            assert not trailer[4:].any()
            del trailer


def test_every_truncation_is_a_model_error(tq2_0_gguf):
    data = open(tq2_0_gguf, "rb").read()
    header_end = parse_gguf(data).data_offset
    cuts = sorted(
        set(range(0, 200))
        | set(np.linspace(0, len(data) - 1, 600, dtype=int).tolist())
        | {header_end - 1, header_end, len(data) - 1}
    )
    for cut in cuts:
        with pytest.raises(ModelError):
            parse_gguf(data[:cut])


def test_random_corruption_is_parsed_or_refused(tq2_0_gguf):
    data = bytearray(open(tq2_0_gguf, "rb").read())
    header_end = parse_gguf(bytes(data)).data_offset
    rng = np.random.default_rng(0)
    start, refused = time.perf_counter(), 0
    for _ in range(400):
        bad = bytearray(data)
        for at in rng.integers(0, header_end, rng.integers(1, 4)):
            bad[at] = rng.integers(0, 256)
        try:
            parse_gguf(bytes(bad))
        except ModelError:
            refused += 1
    assert refused > 50 and time.perf_counter() - start < 60


def header(n_tensors=0, kvs=b"", n_kv=1, version=3):
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv) + kvs


def kv(key: str, vtype: int, payload: bytes) -> bytes:
    return struct.pack("<Q", len(key)) + key.encode() + struct.pack("<I", vtype) + payload


def tensor_info(name: str, dims, type_id: int, offset: int) -> bytes:
    return (
        struct.pack("<Q", len(name))
        + name.encode()
        + struct.pack("<I", len(dims))
        + struct.pack(f"<{len(dims)}Q", *dims)
        + struct.pack("<IQ", type_id, offset)
    )


@pytest.mark.parametrize(
    "data, message",
    [
        (b"GGML" + bytes(20), "bad magic"),
        (header(version=1), "version 1"),
        (header(kvs=kv("a", 9, struct.pack("<IQ", 4, 2**60))), "runs past the end"),
        (header(kvs=kv("a", 9, struct.pack("<IQ", 8, 2**60))), "runs past the end"),
        (header(kvs=kv("a", 8, struct.pack("<Q", 2**63))), "runs past the end"),
        (header(kvs=kv("a", 13, b"\0" * 8)), "unknown value type"),
        (header(kvs=kv("a", 9, struct.pack("<IQ", 9, 1) * 5000)), "nests arrays"),
        (header(kvs=kv("a", 8, struct.pack("<Q", 2) + b"\xff\xfe")), "not UTF-8"),
        (header(kvs=kv("a", 4, bytes(4)) + kv("a", 4, bytes(4)), n_kv=2), "appears twice"),
        (header(kvs=kv("general.alignment", 4, struct.pack("<I", 3))), "power of two"),
        (header(1, n_kv=0, kvs=tensor_info("w", [4], 99, 0) + bytes(64)), "unknown tensor type"),
        (
            header(1, n_kv=0, kvs=tensor_info("w", [5, 1], 35, 0) + bytes(200)),
            "not a whole number of tq2_0 blocks of 256 values",
        ),
        (header(1, n_kv=0, kvs=tensor_info("w", [4], 0, 3) + bytes(64)), "not aligned"),
        (header(1, n_kv=0, kvs=tensor_info("w", [0], 0, 0) + bytes(64)), "empty dimension"),
        (header(1, n_kv=0, kvs=tensor_info("w", [1, 1, 1, 1, 1], 0, 0) + bytes(64)), "5 dimensions"),
        (header(2, n_kv=0, kvs=tensor_info("a", [16], 0, 0) + tensor_info("b", [16], 0, 32) + bytes(128)), "overlap"),
        (header(1, n_kv=0, kvs=tensor_info("w", [2**40], 0, 0) + bytes(64)), "past the end of the file"),
    ],
)
def test_corrupt_headers(data, message):
    with pytest.raises(ModelError, match=message):
        parse_gguf(data)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"arch": "gpt2"}, "unsupported architecture 'gpt2'"),
        ({"drop": ["blk.1.ffn_up.weight"]}, "missing tensor blk.1.ffn_up.weight"),
        (
            {"reshape": ("blk.0.attn_k.weight", (64, 512))},
            r"blk.0.attn_k.weight has shape \[512, 64\], expected \[256, 128\]",
        ),
        # head_dim is attention.key_length (as llama.cpp reads it); RoPE over part of a head is not supported
        (
            {
                "values": {
                    f"bitnet.{key}": 32
                    for key in ("attention.key_length", "attention.value_length", "rope.dimension_count")
                }
            },
            r"blk.0.attn_q.weight has shape \[256, 256\], expected \[256, 128\]",
        ),
        ({"values": {"bitnet.rope.dimension_count": 32}}, "rope.dimension_count is 32, not the head size 64"),
    ],
)
def test_model_refuses_what_is_not_a_bitnet_model(tq2_0_gguf, tmp_path, change, message):
    bad = rewrite(tq2_0_gguf, str(tmp_path / "bad.gguf"), **change)
    with pytest.raises(ModelError, match=message) as error:
        Model(bad, threads=1)
    assert "\n" not in str(error.value)


def test_a_good_rewrite_still_loads(tq2_0_gguf, tmp_path):
    """The rewrite itself changes nothing that matters: the failures above are the changes'."""
    copy = rewrite(tq2_0_gguf, str(tmp_path / "copy.gguf"))
    with Model(copy, threads=1) as a, Model(tq2_0_gguf, threads=1) as b:
        ids = a.tokenize("the cache")
        np.testing.assert_array_equal(a.logits(ids), b.logits(ids))


def without_scale_keys(src: str, dst) -> str:
    """src with its tritlm.weight_scale.* keys renamed away (same length), as llama.cpp and bitnet.cpp write files."""
    data = open(src, "rb").read()
    assert data.count(b"tritlm.weight_scale.") == 14  # 7 ternary tensors x 2 layers
    dst.write_bytes(data.replace(b"tritlm.weight_scale.", b"others.weight_scale."))
    return str(dst)


def test_scales_of_files_made_by_others(tq2_0_gguf, tiny_gguf, tmp_path):
    from tritlm.runtime.weights import weight_scale

    for path, exact_type in [(tq2_0_gguf, np.float16), (tiny_gguf, np.float32)]:  # d in fp16; i2_s trailer f32
        keyless = without_scale_keys(path, tmp_path / "keyless.gguf")
        with read_gguf(path) as f, read_gguf(keyless) as g:
            for t in (t for t in f.tensors if f"tritlm.weight_scale.{t.name}" in f.metadata):
                assert weight_scale(g, t) == float(exact_type(f.metadata[f"tritlm.weight_scale.{t.name}"])), t.name
        with Model(keyless, threads=1) as m:
            assert m.logits(m.tokenize("the cache")).shape == (4, m.n_vocab)


def test_tq2_0_blocks_with_two_scales_are_refused(tq2_0_gguf, tmp_path):
    keyless = without_scale_keys(tq2_0_gguf, tmp_path / "keyless.gguf")
    with read_gguf(keyless) as f:
        t = next(t for t in f.tensors if t.name == "blk.0.ffn_up.weight")
        first_d, second_d = t.offset + 64, t.offset + 66 + 64
    data = bytearray(open(keyless, "rb").read())
    data[first_d : first_d + 2] = bytes(2)  # an all-zero block's d = 0: allowed
    data[second_d : second_d + 2] = np.float16(0.123).tobytes()  # a second nonzero d: refused
    bad = tmp_path / "two-scales.gguf"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="blk.0.ffn_up.weight: its blocks have different scales"):
        Model(str(bad), threads=1)
    data[second_d : second_d + 2] = bytes(2)
    bad.write_bytes(bytes(data))
    Model(str(bad), threads=1).close()


def test_close_while_a_view_is_alive(tiny_gguf):
    f = read_gguf(tiny_gguf)
    view = f.view(next(t for t in f.tensors if t.name == "token_embd.weight"))
    before = view.copy()
    f.close()  # no error: the map stays until the view goes
    np.testing.assert_array_equal(view, before)
