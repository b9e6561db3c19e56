"""The sampler: temperature 0 is argmax; sampling follows softmax(logits / T) restricted to top-k, then top-p;
a seed makes it reproducible, -1 is a random seed; settings it cannot sample with are refused."""

import warnings

import numpy as np
import pytest

from tritlm.runtime.sampler import Sampler, SamplingError, top_k_ids

LOGITS = np.log(np.array([0.5, 0.3, 0.15, 0.05], dtype=np.float32))


def frequencies(sampler, logits, n=20000):
    return np.bincount([sampler.sample(logits) for _ in range(n)], minlength=len(logits)) / n


def test_temperature_zero_is_argmax():
    rng = np.random.default_rng(0)
    for _ in range(20):
        logits = rng.standard_normal(1000).astype(np.float32)
        assert Sampler(temperature=0, seed=1).sample(logits) == int(np.argmax(logits))


@pytest.mark.parametrize("kind", ["normal", "peaked", "ties", "masked", "nan"])
def test_top_k_ids_are_those_argpartition_finds(kind):
    """The bounded top-k over a 128,256-token vocabulary keeps the same logits as numpy's full argpartition: random
    logits, a few far above the rest, many ties (rounded), all but ten masked to -inf, and one NaN (ranked highest)."""
    rng = np.random.default_rng(0)
    for _ in range(25):
        logits = rng.standard_normal(128256).astype(np.float32)
        if kind == "peaked":
            logits[rng.integers(0, logits.size, 5)] += 30
        elif kind == "ties":
            logits = np.round(2 * logits).astype(np.float32)
        elif kind == "masked":
            logits[:] = -np.inf
            logits[rng.integers(0, logits.size, 10)] = rng.standard_normal(10)
        elif kind == "nan":
            logits[rng.integers(0, logits.size)] = np.nan
        for k in (1, 5, 40, 300, 5000):
            ids = top_k_ids(logits, k)
            assert len(set(ids.tolist())) == k
            want = np.sort(logits[np.argpartition(logits, -k)[-k:]])
            np.testing.assert_array_equal(np.sort(logits[ids]), want)


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


@pytest.mark.parametrize(
    "kwargs, param",
    [
        ({"temperature": -1}, "temperature"),
        ({"temperature": 1e-320}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": float("inf")}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_p": float("nan")}, "top_p"),
        ({"seed": -2}, "seed"),
    ],
)
def test_bad_settings(kwargs, param):
    with pytest.raises(SamplingError) as e:
        Sampler(**kwargs)
    assert e.value.param == param


def llama_cpp_penalties(logits, history, last_n, repeat, freq, present, bias):
    """llama.cpp's logit-bias then penalties samplers, token by token in float32 (llama-sampling.cpp)."""
    out = [np.float32(x) for x in logits]
    for token, b in bias.items():
        out[token] = np.float32(out[token] + np.float32(b))
    window = history[-last_n:] if last_n > 0 else (history if last_n == -1 else [])
    counts = {}
    for t in window:
        counts[t] = counts.get(t, 0) + 1
    for token, count in counts.items():
        x = out[token]
        x = x * np.float32(repeat) if x <= 0 else x / np.float32(repeat)
        out[token] = np.float32(
            x - (np.float32(count) * np.float32(freq) + np.float32(float(count > 0)) * np.float32(present))
        )
    return np.array(out, dtype=np.float32)


@pytest.mark.parametrize("last_n", [64, 5, -1])
def test_penalties_and_bias_are_llama_cpps(last_n):
    rng = np.random.default_rng(3)
    logits = rng.standard_normal(300).astype(np.float32) * 3
    prompt = rng.integers(0, 300, 40).tolist()
    bias = {7: 2.5, 11: -100.0, int(prompt[-1]): 0.75}
    kwargs = dict(repeat_penalty=1.3, frequency_penalty=0.4, presence_penalty=0.25, logit_bias=bias)
    sampler = Sampler(temperature=1.0, seed=0, repeat_last_n=last_n, **kwargs)
    sampler.accept(prompt)
    history = list(prompt)
    for _ in range(30):  # each sampled token joins the window
        want = llama_cpp_penalties(logits, history, last_n, 1.3, 0.4, 0.25, bias)
        np.testing.assert_array_equal(sampler.adjust(logits), want)
        history.append(sampler.sample(logits))
    assert want[11] < logits.min() - 90


def test_penalties_off_leave_logits_alone():
    logits = np.random.default_rng(4).standard_normal(50).astype(np.float32)
    sampler = Sampler(temperature=0, repeat_last_n=64)
    sampler.accept([1, 2, 3, 1])
    np.testing.assert_array_equal(sampler.adjust(logits), logits)
    assert sampler.recent is None
    zero_window = Sampler(repeat_penalty=2.0, repeat_last_n=0)
    zero_window.accept([1, 2])
    np.testing.assert_array_equal(zero_window.adjust(logits), logits)


def test_repeat_penalty_stops_a_greedy_loop():
    logits = np.log(np.array([0.6, 0.3, 0.1], dtype=np.float32))
    plain, penalized = Sampler(temperature=0), Sampler(temperature=0, repeat_penalty=4.0, repeat_last_n=1)
    assert [plain.sample(logits) for _ in range(4)] == [0, 0, 0, 0]
    # log 0.6 = -0.51 becomes -2.04 once 0 was just drawn, below log 0.3 = -1.2; a window of 1 forgets it next step.
    assert [penalized.sample(logits) for _ in range(4)] == [0, 1, 0, 1]


def test_min_p_keeps_tokens_near_the_top():
    # p = 0.5, 0.3, 0.15, 0.05: min_p 0.35 keeps p >= 0.175 (0.5 and 0.3), whatever the temperature does later.
    got = frequencies(Sampler(temperature=1.0, top_k=0, top_p=1.0, min_p=0.35, seed=0), LOGITS)
    np.testing.assert_allclose(got, [0.625, 0.375, 0, 0], atol=0.015)
    hot = frequencies(Sampler(temperature=3.0, top_k=0, top_p=1.0, min_p=0.35, seed=0), LOGITS)
    want = np.array([0.5, 0.3]) ** (1 / 3)
    np.testing.assert_allclose(hot, [*(want / want.sum()), 0, 0], atol=0.015)
    assert frequencies(Sampler(temperature=1.0, top_k=0, top_p=1.0, min_p=0.9, seed=0), LOGITS, 300)[0] == 1


def test_masked_tokens_are_never_drawn():
    logits = LOGITS.copy()
    logits[[0, 2]] = -np.inf  # what a grammar mask leaves
    got = frequencies(Sampler(temperature=1.0, top_k=0, top_p=1.0, seed=0), logits, 2000)
    np.testing.assert_allclose(got, [0, 0.3 / 0.35, 0, 0.05 / 0.35], atol=0.03)
    assert Sampler(temperature=0).sample(logits) == 1
    assert (
        frequencies(Sampler(temperature=0.7, top_k=40, top_p=0.95, min_p=0.05, seed=0), logits, 500)[[0, 2]].sum() == 0
    )


@pytest.mark.parametrize(
    "kwargs, param",
    [
        ({"min_p": -0.1}, "min_p"),
        ({"min_p": 1.5}, "min_p"),
        ({"min_p": float("nan")}, "min_p"),
        ({"repeat_penalty": 0}, "repeat_penalty"),
        ({"repeat_penalty": float("inf")}, "repeat_penalty"),
        ({"repeat_last_n": -2}, "repeat_last_n"),
        ({"presence_penalty": float("nan")}, "presence_penalty"),
        ({"frequency_penalty": float("-inf")}, "frequency_penalty"),
        ({"logit_bias": {3: float("nan")}}, "logit_bias"),
    ],
)
def test_bad_penalty_settings(kwargs, param):
    with pytest.raises(SamplingError) as e:
        Sampler(**kwargs)
    assert e.value.param == param
