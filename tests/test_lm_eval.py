"""lm-evaluation-harness (PyPI lm_eval, its `local-completions` model) scores a small multiple-choice task
defined over a local JSONL file against a tritlm server on the embedded model, through echo + logprobs; every
loglikelihood it reports equals the sum of log_softmax(Model.logits) over the continuation's tokens."""

import json
from pathlib import Path

import numpy as np
import pytest

from tests.test_server import serving
from tritlm.runtime import Model
from tritlm.runtime.server.app import create_app

CHECKPOINT = Path(__file__).resolve().parent.parent / "models" / "bitnet-tiny"
DOCS = [
    {"context": "def add(a, b):\n    return", "choices": [" a + b", " a - b", " None"], "gold": 0},
    {"context": "import os\nimport", "choices": [" sys", " the", " 42"], "gold": 0},
    {"context": "class Stack:\n    def __init__(self", "choices": ["):", ", items):", "]"], "gold": 0},
    {"context": "for i in range(", "choices": ["10):", "'a'):", "def"], "gold": 0},
    {"context": "if __name__ == ", "choices": ["'__main__':", "None:", "'x'"], "gold": 0},
    {"context": "    raise ValueError(", "choices": ["'bad value')", "0", "while"], "gold": 0},
]
TASK = """task: tritlm_python
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{gold}}}}"
target_delimiter: ""
metric_list:
  - metric: acc
"""


def continuation_loglikelihood(model, context: str, continuation: str) -> float:
    """lm-eval's split of a request into tokens (the context's trailing spaces moved to the continuation; the
    context's own tokens, then the whole text's tokens past as many), scored by a full forward: the sum over the
    continuation of log_softmax(logits of the token before)."""
    stripped = context.rstrip()
    context, continuation = stripped, context[len(stripped) :] + continuation
    context_ids = model.tokenize(context, add_bos=False)
    whole = context_ids + model.tokenize(context + continuation, add_bos=False)[len(context_ids) :]
    n_ctx = len(context_ids)
    logits = model.logits(whole).astype(np.float64)
    logprobs = logits - logits.max(-1, keepdims=True)
    logprobs -= np.log(np.exp(logprobs).sum(-1, keepdims=True))
    return float(sum(logprobs[i - 1, whole[i]] for i in range(n_ctx, len(whole))))


@pytest.mark.slow
def test_lm_eval_local_completions_equals_model_logits(embedded_gguf, tmp_path, capsys):
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import make_table

    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    (tmp_path / "tritlm_python.yaml").write_text(TASK.format(data=data))
    with Model(embedded_gguf, threads=2) as model:
        with serving(create_app(model, parallel=2)) as url:
            results = lm_eval.simple_evaluate(
                model="local-completions",
                model_args=f"model=bitnet-tiny,base_url={url}/v1/completions,tokenizer_backend=huggingface,"
                f"tokenizer={CHECKPOINT},tokenized_requests=True,num_concurrent=1,max_retries=1",
                tasks=["tritlm_python"],
                task_manager=TaskManager(include_path=str(tmp_path)),
                log_samples=True,
                batch_size=4,
            )
        table = make_table(results)
        with capsys.disabled():
            print("\n" + table)
        samples = results["samples"]["tritlm_python"]
        assert len(samples) == len(DOCS)
        n_scored = 0
        for sample in samples:
            for (context, continuation), response in zip(sample["arguments"], sample["resps"]):
                reported = response[0][0]
                assert reported == pytest.approx(continuation_loglikelihood(model, context, continuation), abs=1e-9)
                n_scored += 1
    assert n_scored == sum(len(d["choices"]) for d in DOCS)
    acc = results["results"]["tritlm_python"]["acc,none"]
    assert 0 <= acc <= 1
