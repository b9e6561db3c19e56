"""The sampler: temperature 0 is argmax; sampling follows softmax(logits / T) restricted to top-k, then top-p;
a seed makes it reproducible, -1 is a random seed; settings it cannot sample with are refused."""
import warnings

import numpy as np
import pytest

from runtime.sampler import Sampler, SamplingError

LOGITS = np.log(np.array([0.5, 0.3, 0.15, 0.05], dtype=np.float32))


def frequencies(sampler, logits, n=20000):
    return np.bincount([sampler.sample(logits) for _ in range(n)], minlength=len(logits)) / n


def test_temperature_zero_is_argmax():
    rng = np.random.default_rng(0)
    for _ in range(20):
        logits = rng.standard_normal(1000).astype(np.float32)
        assert Sampler(temperature=0, seed=1).sample(logits) == int(np.argmax(logits))


def test_samples_follow_the_softmax():
    got = frequencies(Sampler(temperature=1.0, top_k=0, top_p=1.0, seed=0), LOGITS)
    np.testing.assert_allclose(got, [0.5, 0.3, 0.15, 0.05], atol=0.015)


def test_temperature_sharpens():
    got = frequencies(Sampler(temperature=0.5, top_k=0, top_p=1.0, seed=0), LOGITS)
    want = np.array([0.5, 0.3, 0.15, 0.05]) ** 2
    np.testing.assert_allclose(got, want / want.sum(), atol=0.015)


def test_top_k_and_top_p_cut_the_tail():
    top_k = frequencies(Sampler(temperature=1.0, top_k=2, top_p=1.0, seed=0), LOGITS)
    np.testing.assert_allclose(top_k, [0.625, 0.375, 0, 0], atol=0.015)
    top_p = frequencies(Sampler(temperature=1.0, top_k=0, top_p=0.7, seed=0), LOGITS)  # 0.5 + 0.3 reaches 0.7
    np.testing.assert_allclose(top_p, [0.625, 0.375, 0, 0], atol=0.015)
    assert frequencies(Sampler(temperature=1.0, top_k=0, top_p=0.4, seed=0), LOGITS, 500)[0] == 1


def test_seed_reproduces():
    logits = np.random.default_rng(1).standard_normal(5000).astype(np.float32)
    a, b = Sampler(1.0, 40, 0.95, seed=5), Sampler(1.0, 40, 0.95, seed=5)
    assert [a.sample(logits) for _ in range(50)] == [b.sample(logits) for _ in range(50)]


def test_seed_minus_one_is_random():
    logits = np.zeros(1000, dtype=np.float32)
    runs = [[Sampler(1.0, 0, 1.0, seed=-1).sample(logits) for _ in range(20)] for _ in range(2)]
    assert runs[0] != runs[1]  # equal with probability 1e-60


@pytest.mark.parametrize("temperature", [1e-300, 2.3e-308, 1e-30])
def test_tiny_temperature_is_argmax_without_overflow(temperature):
    logits = np.random.default_rng(2).standard_normal(1000).astype(np.float32) * 30
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or invalid-value warning either
        assert Sampler(temperature, top_k=0, top_p=1.0, seed=0).sample(logits) == int(np.argmax(logits))


@pytest.mark.parametrize("kwargs, param", [
    ({"temperature": -1}, "temperature"), ({"temperature": 1e-320}, "temperature"),
    ({"temperature": float("nan")}, "temperature"), ({"temperature": float("inf")}, "temperature"),
    ({"top_k": -1}, "top_k"), ({"top_p": 0}, "top_p"), ({"top_p": 1.5}, "top_p"), ({"top_p": float("nan")}, "top_p"),
    ({"seed": -2}, "seed")])
def test_bad_settings(kwargs, param):
    with pytest.raises(SamplingError) as e:
        Sampler(**kwargs)
    assert e.value.param == param
