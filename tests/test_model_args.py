"""Bad arguments to Model give one-line ModelErrors (never cffi's OverflowError, a huge allocation or a silently
converted token), and a GGUF whose float weights hold NaN/Inf is refused at load."""

import os
import shutil

import numpy as np
import pytest

from tritlm.runtime import Model, ModelError
from tritlm.runtime.gguf import read_gguf


def one_line_error(call, message):
    with pytest.raises(ModelError, match=message) as error:
        call()
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "n_ctx,message",
    [(2**31, "outside"), (2**64, "outside"), (-1, "outside"), (513, "outside"), (8.0, "integer"), ("64", "integer")],
)
def test_context_sizes(tiny_gguf, model, n_ctx, message):
    assert model.context_length == 512  # the tiny preset's max_position_embeddings
    one_line_error(lambda: Model(tiny_gguf, threads=1, n_ctx=n_ctx), message)
    one_line_error(lambda: model.new_sequence(n_ctx), message)


def test_largest_context_is_the_models(model):
    with model.new_sequence(512) as seq:
        assert seq.n_ctx == 512


@pytest.mark.parametrize(
    "threads,message", [(4 * os.cpu_count() + 1, "more than 4 per CPU"), (2.5, "integer"), ("2", "integer")]
)
def test_thread_counts(tiny_gguf, threads, message):
    one_line_error(lambda: Model(tiny_gguf, threads=threads), message)


def test_thread_count_at_the_limit_loads(tiny_gguf):
    with Model(tiny_gguf, threads=4 * os.cpu_count()) as m:
        assert m.n_threads == 4 * os.cpu_count()


@pytest.mark.parametrize(
    "tokens,message",
    [
        (["5"], "integer"),
        ([5.0], "integer"),
        ([True], "integer"),
        (np.array([1.0]), "integers"),
        ("ab", "list of integers"),
        ([2**70], "out of range"),
        ([-1], "out of range"),
    ],
)
def test_token_ids_must_be_integers(model, tokens, message):
    with model.new_sequence(16) as seq:
        one_line_error(lambda: model.decode([seq], tokens), message)
        one_line_error(lambda: model.prefill(seq, tokens), message)
        assert seq.pos == 0


def test_numpy_token_ids_are_accepted(model):
    ids = model.tokenize("the cache")
    with model.new_sequence(16) as a, model.new_sequence(16) as b:
        np.testing.assert_array_equal(model.prefill(a, np.array(ids, dtype=np.uint16)), model.prefill(b, ids))


def test_prefill_checks_every_batch_first(model):
    with model.new_sequence(512) as seq:
        one_line_error(lambda: model.prefill(seq, [1] * 300 + [model.n_vocab]), "out of range")
        assert seq.pos == 0  # the first batch of 256 did not go in


@pytest.mark.parametrize(
    "rows,message", [([0, 2**40], "logit rows"), ([0, 0], "logit rows"), ([0, -2], "logit rows"), ([0, 1.0], "integer")]
)
def test_logit_rows(model, rows, message):
    with model.new_sequence(16) as seq:
        one_line_error(lambda: model.forward([seq, seq], [1, 2], logit_rows=rows), message)
        assert seq.pos == 0


def poisoned_copy(src, dst, name, row):
    """A copy of the GGUF src with a NaN in row `row` of the float tensor `name`."""
    shutil.copy(src, dst)
    with read_gguf(src) as f:
        t = next(t for t in f.tensors if t.name == name)
        kind = t.type_name
    width = {"f32": 4, "f16": 2, "bf16": 2}[kind]
    nan = {"f32": np.float32(np.nan).tobytes(), "f16": np.float16(np.nan).tobytes(), "bf16": b"\xc0\x7f"}[kind]
    with open(dst, "r+b") as out:
        out.seek(t.offset + (row * t.cols + 3) * width)
        out.write(nan)
    return dst


@pytest.mark.parametrize(
    "name,row", [("token_embd.weight", 700), ("blk.1.ffn_norm.weight", 0), ("output_norm.weight", 0)]
)
def test_nonfinite_float_weights_are_refused_at_load(tiny_gguf, tmp_path, name, row):
    path = poisoned_copy(tiny_gguf, str(tmp_path / "nan.gguf"), name, row)
    one_line_error(lambda: Model(path, threads=2), f"{name}: row {row} holds a NaN or Inf")
