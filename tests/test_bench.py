"""tritlm bench on the tiny checkpoint: the JSON records carry the fields with real, positive numbers, and the
byte counts agree with gguf-py's reading of the same file."""

import json
import os
import statistics

import numpy as np
import pytest


@pytest.fixture(scope="module")
def tiny_ggufs(tiny_checkpoints, tmp_path_factory):
    from tritlm.converter.write import convert

    out = tmp_path_factory.mktemp("bench")
    paths = {}
    for ternary_type in ("tq2_0", "tq1_0"):
        paths[ternary_type] = str(out / f"tiny-{ternary_type}.gguf")
        convert(tiny_checkpoints["packed"], paths[ternary_type], ternary_type, progress=False)
    return paths


def kv_bytes_per_token(path: str) -> int:
    """2 (K and V) x layers x KV heads x head_dim x 4 bytes, from gguf-py's reading of the hyperparameters."""
    from gguf import GGUFReader

    fields = GGUFReader(path).fields
    arch = fields["general.architecture"].contents()

    def get(key: str) -> int:
        return int(fields[f"{arch}.{key}"].contents())

    return 2 * get("block_count") * get("attention.head_count_kv") * get("attention.key_length") * 4


def tensor_bytes(path: str) -> dict[str, int]:
    from gguf import GGUFReader

    return {t.name: int(t.n_bytes) for t in GGUFReader(path).tensors}


def read_bytes(path: str) -> dict[str, int]:
    """tensor_bytes, with the tensors the engine repacks at load as it reads them (docs/format.md): tq2_0 linears as
    i2_s (64 bytes per 256 values), and on AVX-512 VBMI tq1_0 linears in their lookup layout (40 bytes per 192 values,
    the rest at 2 bits) and a tied bf16 output matrix in its own (the numpy packer's bytes, tests/test_bf16_lut.py)."""
    from gguf import GGUFReader

    from tests.test_bf16_lut import engine_reads_lut, pack_lut

    sizes, vbmi = tensor_bytes(path), engine_reads_lut()
    for t in GGUFReader(path).tensors:
        rows, cols = int(t.shape[1]) if len(t.shape) > 1 else 1, int(t.shape[0])
        if t.tensor_type.name == "TQ2_0":
            sizes[t.name] = rows * cols // 4
        elif t.tensor_type.name == "TQ1_0" and vbmi:
            sizes[t.name] = rows * (cols // 192 * 40 + cols % 192 // 4)
        elif t.name == "token_embd.weight" and t.tensor_type.name == "BF16" and vbmi and cols % 64 == 0:
            sizes[t.name] = len(pack_lut(np.asarray(t.data).view(np.uint16).reshape(-1, cols)))
    return sizes


def test_json_records(tiny_ggufs, capsys):
    from tritlm.runtime.cli import main

    path = tiny_ggufs["tq2_0"]
    assert main(["bench", "--json", "-m", path, "-p", "32", "-n", "8", "-r", "2", "-t", "2"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["test"] for r in records] == ["pp32", "tg8"]
    sizes = tensor_bytes(path)
    for r in records:
        assert r["n_threads"] == 2 and r["type"] == "tq2_0"
        assert r["model_bytes"] == sum(sizes.values())
        for field in ("tokens_per_s", "ttft_ms"):
            assert r[field] > 0, field
        # an f32 K and V row per layer, position and KV head, for the n_ctx = max(32, 8, 64) bench asks for
        assert r["gguf_plus_kv_bytes"] == os.path.getsize(path) + 64 * kv_bytes_per_token(path)
        assert r["peak_rss_bytes"] >= r["model_bytes"]  # every weight is resident (copied, or read through the mmap)
    tg = records[1]
    # tied embeddings: decoding reads every tensor, the embedding as the output matrix; but this relu² model's
    # down_proj reads only the 64-byte lines (per 256 rows) of its nonzero inputs' columns, and up_proj the rows
    # whose relu(gate) is nonzero
    from gguf import GGUFReader

    tensors = GGUFReader(path).tensors
    downs = [t for t in tensors if t.name.endswith("ffn_down.weight")]
    ups = [t for t in tensors if t.name.endswith("ffn_up.weight")]
    kept, skipped = 1 - tg["down_zero_pct"] / 100, tg["up_skipped_pct"] / 100
    assert 0 < kept < 1 and 0 < skipped < 1
    read_as = read_bytes(path)  # tq2_0 repacked as i2_s, the output matrix as read
    sparse_read = sum(-(-int(t.shape[1]) // 256) * int(t.shape[0]) * kept * 64 - read_as[t.name] for t in downs)
    sparse_read -= sum(read_as[t.name] * skipped for t in ups)
    assert "output.weight" not in sizes
    read = sum(read_as.values())
    assert tg["weight_bytes_per_token"] == pytest.approx(read + sparse_read, abs=2 * len(downs))
    # the roofline: -r rounds of a tg run then a probe, each round's ratio; the medians
    rounds = tg["roofline_rounds"]
    assert len(rounds) == 2
    assert all(m > 0.5 for _, m in rounds)  # any machine this runs on streams more than that
    assert tg["weight_read_gbps"] == pytest.approx(statistics.median(a for a, _ in rounds))
    assert tg["machine_read_gbps"] == pytest.approx(statistics.median(m for _, m in rounds))
    assert tg["roofline_pct"] == pytest.approx(statistics.median(100 * a / m for a, m in rounds))
    # a round's read rate is its tg speed in bytes: the same run as the tg test's reps, timed again
    tg_read = tg["weight_bytes_per_token"] * tg["tokens_per_s"] / 1e9
    assert tg_read / 3 < tg["weight_read_gbps"] < tg_read * 3


def test_no_sparse_reads_every_weight(tiny_ggufs, capsys):
    from tritlm.runtime.cli import main

    path = tiny_ggufs["tq1_0"]
    assert main(["bench", "--json", "-m", path, "-p", "0", "-n", "4", "-r", "1", "-t", "1", "--no-sparse"]) == 0
    (tg,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert "down_zero_pct" not in tg and "up_skipped_pct" not in tg
    assert tg["weight_bytes_per_token"] == sum(read_bytes(path).values())
    # where a token's time went: every step of the pass timed, then what the Python around tl_forward took; the
    # weight-reading steps together read every weight (dense), each its own linears
    phases = {p["step"]: p for p in tg["phases"]}
    steps = ["embed", "norm", "qkv", "rope_kv", "attention", "o", "gate_up", "down", "elementwise", "output", "outside"]
    assert list(phases) == steps
    assert all(p["ms"] > 0 for p in phases.values()), phases
    sizes = read_bytes(path)
    for step, linears in {"qkv": "attn_q attn_k attn_v", "o": "attn_output", "down": "ffn_down"}.items():
        assert phases[step]["weight_bytes"] == sum(b for n, b in sizes.items() if n.split(".")[-2] in linears.split())
    matrices = sum(b for n, b in sizes.items() if not n.endswith("norm.weight"))  # all but the norms' vectors
    assert sum(p["weight_bytes"] or 0 for p in phases.values()) == matrices < tg["weight_bytes_per_token"]
    # the steps add up to a token's time (the rounds are timed again, so loosely)
    assert 1 / 3 < sum(p["ms"] for p in phases.values()) * tg["tokens_per_s"] / 1000 < 3


def test_phases_table(tiny_ggufs, capsys):
    from tritlm.runtime.cli import main

    assert main(["bench", "-m", tiny_ggufs["tq2_0"], "-p", "0", "-n", "4", "-r", "1", "-t", "1", "--phases"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("tg4: step") :].splitlines()
    assert [line.split("|")[1].strip() for line in table[2:]] == [
        "embed", "norm", "qkv", "rope_kv", "attention", "o", "gate_up", "down", "elementwise", "output", "outside", "total"
    ]  # fmt: skip
    # sparse decode (the default): gate/up and down read an unmeasured part of their weights, so no rate for them
    rates = {line.split("|")[1].strip(): line.split("|")[5].strip() for line in table[2:]}
    assert rates["qkv"].endswith("GB/s") and rates["output"].endswith("GB/s")
    assert rates["gate_up"] == rates["down"] == ""


def test_table_of_several_models(tiny_ggufs, capsys):
    from tritlm.runtime.cli import main

    args = ["bench", "-p", "16", "-n", "4", "-r", "1", "-t", "1"]
    for path in tiny_ggufs.values():
        args += ["-m", path]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "| model" in out and "t/s" in out and "of roofline" in out
    for ternary_type in tiny_ggufs:
        rows = [line for line in out.splitlines() if f"| {ternary_type} " in line]
        assert len(rows) == 3, out  # pp16, tg4, roofline row


def test_missing_file(capsys):
    from tritlm.runtime.cli import main

    assert main(["bench", "-m", "/nonexistent/model.gguf"]) == 1
    assert "no such model file" in capsys.readouterr().err


def test_depth_runs_each_test_after_that_many_tokens(tiny_ggufs, capsys):
    """-d D (llama-bench's depth): every test starts from a sequence holding D tokens, the KV cache sized for them."""
    from tritlm.runtime import Model
    from tritlm.runtime.bench import decode_run, prefill_run, random_tokens
    from tritlm.runtime.cli import main

    path = tiny_ggufs["tq2_0"]
    assert main(["bench", "--json", "-m", path, "-p", "16", "-n", "4", "-r", "1", "-t", "1", "-d", "100"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["test"] for r in records] == ["pp16 @ d100", "tg4 @ d100"]
    for r in records:
        assert r["n_depth"] == 100 and r["tokens_per_s"] > 0
        assert r["gguf_plus_kv_bytes"] == os.path.getsize(path) + (100 + 16) * kv_bytes_per_token(path)
    # each run truncates back to the depth tokens: after it, one more token gets the logits of the whole sequence
    with Model(path, threads=1) as model:
        depth, prompt = random_tokens(model.n_vocab, 40, seed=2), random_tokens(model.n_vocab, 6)
        expect = model.logits(depth + prompt + prompt[-1:])[-1]
        seq = model.new_sequence(64)
        model.prefill(seq, depth)
        for run in (prefill_run(model, seq, prompt, 40), decode_run(model, seq, prompt, 40)):
            for _ in range(2):
                run()
                assert seq.pos == 46
                np.testing.assert_array_equal(model.decode([seq], prompt[-1:])[0], expect)
