"""The sampler: temperature 0 is argmax; sampling follows softmax(logits / T) restricted to top-k, then top-p;
a seed makes it reproducible."""
import numpy as np
import pytest

from runtime.sampler import Sampler

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


@pytest.mark.parametrize("kwargs", [{"temperature": -1}, {"top_k": -1}, {"top_p": 0}, {"top_p": 1.5}])
def test_bad_settings(kwargs):
    with pytest.raises(ValueError):
        Sampler(**kwargs)
