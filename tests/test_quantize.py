"""The output matrix in another type: quants.encode (Q6_K/Q4_K: ports of ggml's quantizers) read back by gguf-py,
`tritlm convert --output-type` and `tritlm quantize` on the tiny checkpoint (tied embedding), and the engine on
those files."""

import os

import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT
from gguf import quants as gguf_quants

from tests.peer_files import quantize_q6_k
from tritlm import quants
from tritlm.converter.write import convert
from tritlm.runtime import Model
from tritlm.runtime.cli import main
from tritlm.runtime.gguf import GGUFFile

RNG = np.random.default_rng(0)
# relative RMS error of each type on Gaussian rows (ggml's quantizers measure about 0.5%, 1.8% and 7% for the
# 8-, 6- and 4-bit types here; bf16 keeps 8 bits of mantissa)
MAX_REL_RMSE = {"bf16": 0.002, "f16": 0.0003, "q8_0": 0.007, "q6_k": 0.022, "q4_k": 0.08}


def rel_rmse(got, want):
    return float(np.sqrt(((got - want) ** 2).mean() / (want**2).mean()))


def decode(encoded, type_name, shape):
    return gguf_quants.dequantize(encoded, getattr(QT, type_name.upper())).reshape(shape)


@pytest.mark.parametrize("type_name", quants.OUTPUT_MATRIX_TYPES)
def test_encode_is_read_back_by_gguf_py(type_name):
    x = (RNG.standard_normal((40, 512)) * 0.02).astype(np.float32)
    x[3] = 0  # an all-zero row: exact zeros, no nan
    x[5, :256] = 0.5  # a constant block
    encoded = quants.encode(x, type_name)
    assert (
        encoded.dtype == np.uint8
        and encoded.nbytes
        == 40
        * 512
        // {"q6_k": 256, "q4_k": 256}.get(type_name, 32)
        * {"bf16": 64, "f16": 64, "q8_0": 34, "q6_k": 210, "q4_k": 144}[type_name]
    )
    y = decode(encoded, type_name, x.shape)
    assert np.all(y[3] == 0)
    np.testing.assert_allclose(y[5, :256], 0.5, rtol=0.01)
    rows = [r for r in range(40) if r not in (3, 5)]
    assert rel_rmse(y[rows], x[rows]) < MAX_REL_RMSE[type_name]


def test_q6_k_search_beats_a_plain_absmax_encoding():
    """ggml's scale search (make_qx_quants) must fit better than the absmax choice of tests/peer_files."""
    x = (RNG.standard_normal((64, 1024)) * 0.02).astype(np.float32)
    ours = rel_rmse(decode(quants.encode(x, "q6_k"), "q6_k", x.shape), x)
    plain = rel_rmse(decode(quantize_q6_k(x), "q6_k", x.shape), x)
    assert ours < 0.95 * plain, (ours, plain)  # measured: 0.0178 vs 0.0193


def test_rows_that_are_not_whole_blocks_are_refused():
    with pytest.raises(ValueError, match="whole 256-value blocks"):
        quants.encode(np.zeros((2, 96), np.float32), "q6_k")


def same_metadata(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def tensors(path):
    f = GGUFFile(path)
    try:
        return {
            t.name: (t.type, t.dims, bytes(f.buffer[t.offset : t.offset + t.nbytes])) for t in f.tensors
        }, f.metadata
    finally:
        f.close()


@pytest.fixture(scope="module")
def files(tiny_checkpoints, tmp_path_factory):
    root = tmp_path_factory.mktemp("output-types")
    out = {"lossless": str(root / "lossless.gguf")}
    convert(tiny_checkpoints["packed"], out["lossless"], "i2_s", progress=False)
    out["q8_0"] = str(root / "q8_0.gguf")
    convert(tiny_checkpoints["packed"], out["q8_0"], "i2_s", progress=False, output_type="q8_0")
    out["q6_k"] = str(root / "q6_k.gguf")
    assert main(["convert", tiny_checkpoints["packed"], "-o", out["q6_k"], "--output-type", "q6_k"]) == 0
    return out


@pytest.mark.parametrize("type_name", ["q8_0", "q6_k"])
def test_convert_writes_a_separate_output_matrix(files, type_name):
    base, base_meta = tensors(files["lossless"])
    got, meta = tensors(files[type_name])
    assert "output.weight" not in base and same_metadata(meta, base_meta)
    assert set(got) == set(base) | {"output.weight"}
    assert all(got[name] == base[name] for name in base)  # the embedding (bf16) and every other tensor as they were
    out_type, dims, data = got["output.weight"]
    assert out_type == getattr(QT, type_name.upper()) and dims == base["token_embd.weight"][1]
    embd = base["token_embd.weight"][2]
    want = (np.frombuffer(embd, np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(dims[1], dims[0])
    assert data == quants.encode(want, type_name).tobytes()


@pytest.mark.parametrize("type_name", ["q8_0", "q6_k"])
def test_quantize_equals_convert(files, tmp_path, type_name):
    out = str(tmp_path / "requantized.gguf")
    assert main(["quantize", files["lossless"], out, "--output-type", type_name]) == 0
    (got, meta), (want, want_meta) = tensors(out), tensors(files[type_name])
    assert got == want and same_metadata(meta, want_meta)


def test_quantize_replaces_an_existing_output_matrix(files, tmp_path):
    out = str(tmp_path / "q8_0-from-q6_k.gguf")
    assert main(["quantize", files["q6_k"], out, "--output-type", "q8_0"]) == 0
    got, _ = tensors(out)
    source, _ = tensors(files["q6_k"])
    assert set(got) == set(source) and got["output.weight"][0] == QT.Q8_0
    dims = source["output.weight"][1]
    want = gguf_quants.dequantize(np.frombuffer(source["output.weight"][2], np.uint8).reshape(dims[1], -1), QT.Q6_K)
    assert got["output.weight"][2] == quants.encode(want, "q8_0").tobytes()


def test_token_embedding_type_reencodes_the_tied_matrix(embedded_gguf, tmp_path):
    """--token-embedding-type re-encodes token_embd in place: a tied file stays tied (no output.weight), every other
    tensor and the metadata as they were; the engine reads the q8_0 rows for the lookup and the logits alike. The
    trained embedded model: a random one amplifies the embedding's rounding through every int8 activation."""
    out = str(tmp_path / "tied-q8_0.gguf")
    assert main(["quantize", embedded_gguf, out, "--token-embedding-type", "q8_0"]) == 0
    (got, meta), (base, base_meta) = tensors(out), tensors(embedded_gguf)
    assert set(got) == set(base) and same_metadata(meta, base_meta)
    assert all(got[name] == base[name] for name in base if name != "token_embd.weight")
    embd_type, dims, data = got["token_embd.weight"]
    assert embd_type == QT.Q8_0 and dims == base["token_embd.weight"][1]
    bf16 = np.frombuffer(base["token_embd.weight"][2], np.uint16).astype(np.uint32) << 16
    assert data == quants.encode(bf16.view(np.float32).reshape(dims[1], dims[0]), "q8_0").tobytes()
    with Model(embedded_gguf, threads=1) as ref_model, Model(out, threads=1) as model:
        tokens = [int(t) for t in np.random.default_rng(2).integers(0, model.n_vocab, 24)]
        ref = np.array(ref_model.prefill(ref_model.new_sequence(), tokens))
        logits = np.array(model.prefill(model.new_sequence(), tokens))
    assert 0 < rel_rmse(logits, ref) < 2 * MAX_REL_RMSE["q8_0"] and logits.argmax() == ref.argmax()


def test_the_same_type_for_both_options_keeps_a_tied_file_tied(embedded_gguf, tmp_path):
    """--output-type T --token-embedding-type T on a tied file: one matrix, the same bytes as
    --token-embedding-type T alone (not a second copy as output.weight)."""
    both, embd_only = str(tmp_path / "both.gguf"), str(tmp_path / "embd.gguf")
    assert main(["quantize", embedded_gguf, both, "--output-type", "q8_0", "--token-embedding-type", "q8_0"]) == 0
    assert main(["quantize", embedded_gguf, embd_only, "--token-embedding-type", "q8_0"]) == 0
    got, want = tensors(both)[0], tensors(embd_only)[0]
    assert "output.weight" not in got and got == want


def test_llama_cpp_loads_a_tied_q8_0_file_but_not_a_separate_output_matrix(tiny_checkpoints, tmp_path):
    """llama.cpp's bitnet graph always takes the logits from token_embd: it refuses an extra output.weight."""
    llama_cpp = pytest.importorskip("llama_cpp")
    tq2_0, tied, separate = (str(tmp_path / f"{name}.gguf") for name in ("tq2_0", "tied", "separate"))
    convert(tiny_checkpoints["packed"], tq2_0, "tq2_0", progress=False)
    assert main(["quantize", tq2_0, tied, "--token-embedding-type", "q8_0"]) == 0
    assert main(["quantize", tq2_0, separate, "--output-type", "q8_0"]) == 0
    llama_cpp.Llama(tied, n_ctx=32, verbose=False).close()
    with pytest.raises(ValueError):
        llama_cpp.Llama(separate, n_ctx=32, verbose=False)


def test_engine_logits_with_each_output_matrix(files):
    """Same tokens, the lossless tied file vs the q8_0 / q6_k output matrix: logits within the encoding's error,
    and the same greedy token."""
    logits = {}
    for name, path in files.items():
        with Model(path, threads=1) as m:
            tokens = [int(t) for t in np.random.default_rng(1).integers(0, m.n_vocab, 24)]
            seq = m.new_sequence()
            logits[name] = np.array(m.prefill(seq, tokens))
    ref = logits["lossless"]
    for name in ("q8_0", "q6_k"):
        assert rel_rmse(logits[name], ref) < 2 * MAX_REL_RMSE[name], name
        assert logits[name].argmax() == ref.argmax()
    assert not np.array_equal(logits["q8_0"], ref)  # the output matrix really is the q8_0 one


def test_quantize_bad_input(files, tmp_path, capsys):
    assert main(["quantize", str(tmp_path / "missing.gguf"), str(tmp_path / "x.gguf"), "--output-type", "q8_0"]) == 1
    assert "cannot open" in capsys.readouterr().err
    assert main(["quantize", files["lossless"], files["lossless"], "--output-type", "q8_0"]) == 1
    assert "must differ" in capsys.readouterr().err
    assert main(["quantize", files["lossless"], str(tmp_path / "z.gguf")]) == 1
    assert "needs --output-type and/or --token-embedding-type" in capsys.readouterr().err
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + bytes(20))
    assert main(["quantize", str(bad), str(tmp_path / "y.gguf"), "--output-type", "q8_0"]) == 1
    assert not os.path.exists(tmp_path / "y.gguf") and not os.path.exists(tmp_path / "y.gguf.tmp")
