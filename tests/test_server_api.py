"""The OpenAI surface beyond plain text, with the clients people use (openai SDK, LangChain) against a server
on the embedded model (its real chat template): any model name; prompts as a string, a list of strings or
token ids; logprobs equal to log_softmax of Model.logits (torch as the reference), streamed and not, and the
prompt's with echo + max_tokens 0; response_format and tools whose answers always validate (jsonschema);
documented-but-unsupported fields refused by name, unknown ones ignored with a log line; CORS, the request log
line and /metrics."""

import json
import logging

import httpx
import jsonschema
import numpy as np
import openai
import pytest
import torch

from tests.checkpoints import full_forward_greedy
from tests.test_server import serving
from tests.test_tools import PARAMETERS, TOOLS
from tritlm.runtime import Model
from tritlm.runtime.server.app import create_app

PROMPT = "def read(path):\n    "
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 10},
        "age": {"type": "integer", "minimum": 0, "maximum": 99},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def model(embedded_gguf):
    with Model(embedded_gguf, threads=2) as m:
        yield m


@pytest.fixture(scope="module")
def server(model):
    app = create_app(model, parallel=2, cors_origins=["*"])
    with serving(app) as url:
        yield url, app


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key="none", max_retries=0, timeout=120)


def reference_logprobs(model, ids: list[int]) -> torch.Tensor:
    """log_softmax of a fresh full forward: row i scores the token after ids[i]."""
    return torch.log_softmax(torch.from_numpy(model.logits(ids)).double(), -1)


def test_any_model_name_and_prompt_forms(client, model):
    ids = model.tokenize(PROMPT, add_bos=True, special=True)
    want = model.detokenize(full_forward_greedy(model, ids, 8))
    one = client.completions.create(model="gpt-3.5-turbo-instruct", prompt=PROMPT, max_tokens=8, temperature=0)
    assert one.model == model.name and one.choices[0].text == want
    other = "class Node:\n    def __init__(self"
    other_want = model.detokenize(full_forward_greedy(model, model.tokenize(other, add_bos=True, special=True), 8))
    many = client.completions.create(model="anything", prompt=[PROMPT, other], max_tokens=8, temperature=0)
    assert [c.index for c in many.choices] == [0, 1] and [c.text for c in many.choices] == [want, other_want]
    assert many.usage.prompt_tokens == len(ids) + len(model.tokenize(other, add_bos=True, special=True))
    by_ids = client.completions.create(model="x", prompt=[ids, ids], max_tokens=8, temperature=0)
    assert [c.text for c in by_ids.choices] == [want, want]
    streamed = client.completions.create(model="x", prompt=[PROMPT, other], max_tokens=8, temperature=0, stream=True)
    texts = ["", ""]
    for chunk in streamed:
        for c in chunk.choices:
            texts[c.index] += c.text
    assert texts == [want, other_want]


def test_completion_logprobs_are_the_models(client, model):
    ids = model.tokenize(PROMPT, add_bos=True, special=True)
    out = client.completions.create(model="x", prompt=ids, max_tokens=6, temperature=0, logprobs=3)
    lp = out.choices[0].logprobs
    generated = full_forward_greedy(model, ids, 6)
    ref = reference_logprobs(model, ids + generated)
    assert lp.tokens == [model.detokenize([t]) for t in generated]
    for k, token in enumerate(generated):
        row = ref[len(ids) - 1 + k]
        assert lp.token_logprobs[k] == pytest.approx(row[token].item(), abs=1e-6)
        top = torch.topk(row, 3)
        want = {model.detokenize([int(t)]): v.item() for t, v in zip(top.indices, top.values)}
        assert lp.top_logprobs[k] == pytest.approx(want, abs=1e-6)
    assert lp.text_offset == list(np.cumsum([0] + [len(t) for t in lp.tokens[:-1]]))
    chunks = client.completions.create(model="x", prompt=ids, max_tokens=6, temperature=0, logprobs=3, stream=True)
    streamed = [v for c in chunks if c.choices and c.choices[0].logprobs for v in c.choices[0].logprobs.token_logprobs]
    assert streamed == lp.token_logprobs


def test_echo_with_max_tokens_zero_scores_the_prompt(client, model):
    ids = model.tokenize(PROMPT + "return open(path).read()", add_bos=True, special=True)
    out = client.completions.create(model="x", prompt=ids, max_tokens=0, echo=True, logprobs=1, temperature=0)
    choice = out.choices[0]
    ref = reference_logprobs(model, ids)
    assert choice.text == model.detokenize(ids) and out.usage.completion_tokens == 0
    assert choice.logprobs.token_logprobs[0] is None and len(choice.logprobs.token_logprobs) == len(ids)
    np.testing.assert_allclose(
        choice.logprobs.token_logprobs[1:], [ref[i, t].item() for i, t in enumerate(ids[1:])], atol=1e-9
    )
    text = client.completions.create(model="x", prompt=PROMPT, max_tokens=0, echo=True).choices[0].text
    assert text == PROMPT


def test_chat_logprobs_stream_and_not(client, model):
    messages = [{"role": "user", "content": "Write a function."}]
    out = client.chat.completions.create(
        model="x", messages=messages, max_tokens=6, temperature=0, logprobs=True, top_logprobs=2
    )
    entries = out.choices[0].logprobs.content
    ids = httpx.post(str(client.base_url).replace("/v1/", "/apply-template"), json={"messages": messages}).json()
    prompt = model.tokenize(ids["prompt"], add_bos=False, special=True)
    generated = full_forward_greedy(model, prompt, 6)
    ref = reference_logprobs(model, prompt + generated)
    assert [bytes(e.bytes) for e in entries] == [model.tokenizer.token_bytes(t) for t in generated]
    for k, (entry, token) in enumerate(zip(entries, generated)):
        assert entry.logprob == pytest.approx(ref[len(prompt) - 1 + k, token].item(), abs=1e-6)
        assert [t.logprob for t in entry.top_logprobs] == pytest.approx(
            torch.topk(ref[len(prompt) - 1 + k], 2).values.tolist(), abs=1e-6
        )
    stream = client.chat.completions.create(
        model="x", messages=messages, max_tokens=6, temperature=0, logprobs=True, top_logprobs=2, stream=True
    )
    streamed = [e.logprob for c in stream if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert streamed == [e.logprob for e in entries]


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_response_format_json_schema_always_validates(client, endpoint):
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
    for seed in range(8):  # sampled from the whole distribution (top_k 0): only the mask keeps it valid
        kwargs = dict(model="x", max_tokens=60, temperature=1.0, seed=seed)
        if endpoint == "chat":
            text = (
                client.chat.completions.create(
                    messages=[{"role": "user", "content": "A person as JSON"}],
                    response_format=fmt,
                    extra_body={"top_k": 0},
                    **kwargs,
                )
                .choices[0]
                .message.content
            )
        else:
            text = (
                client.completions.create(prompt="person = ", extra_body={"response_format": fmt, "top_k": 0}, **kwargs)
                .choices[0]
                .text
            )
        jsonschema.validate(json.loads(text), PERSON)


def test_json_object_mode_streams_a_json_object(client):
    chunks = client.chat.completions.create(
        model="x",
        messages=[{"role": "user", "content": "JSON please"}],
        response_format={"type": "json_object"},
        max_tokens=120,
        temperature=0,
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert isinstance(json.loads(text), dict)


def test_tool_calls(client):
    for seed in range(6):
        out = client.chat.completions.create(
            model="x",
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=TOOLS,
            tool_choice="required",
            max_tokens=100,
            seed=seed,
            temperature=1.0,
        )
        choice = out.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        call = choice.message.tool_calls[0]
        jsonschema.validate(json.loads(call.function.arguments), PARAMETERS[call.function.name])
    named = {"type": "function", "function": {"name": "add"}}
    chunks = client.chat.completions.create(
        model="x",
        messages=[{"role": "user", "content": "1 + 2?"}],
        tools=TOOLS,
        tool_choice=named,
        max_tokens=100,
        temperature=0,
        stream=True,
    )
    calls, finish = [], None
    for chunk in chunks:
        if chunk.choices and chunk.choices[0].delta.tool_calls:
            calls += chunk.choices[0].delta.tool_calls
        finish = chunk.choices[0].finish_reason if chunk.choices and chunk.choices[0].finish_reason else finish
    assert finish == "tool_calls" and calls[0].function.name == "add"
    jsonschema.validate(json.loads(calls[0].function.arguments), PARAMETERS["add"])
    # The call and its result go back into the conversation.
    history = [
        {"role": "user", "content": "1 + 2?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": calls[0].id,
                    "type": "function",
                    "function": {"name": "add", "arguments": calls[0].function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": calls[0].id, "content": "3"},
    ]
    reply = client.chat.completions.create(model="x", messages=history, tools=TOOLS, max_tokens=40, temperature=0)
    assert reply.choices[0].finish_reason in ("stop", "tool_calls", "length")


def test_langchain(server, model):
    langchain_openai = pytest.importorskip("langchain_openai")
    url = server[0] + "/v1"
    chat = langchain_openai.ChatOpenAI(base_url=url, api_key="none", temperature=0, max_tokens=8)  # sends gpt-3.5-turbo
    assert isinstance(chat.invoke("Hello").content, str)
    schema = PERSON | {"title": "Person", "description": "a person"}
    for method in ("function_calling", "json_schema"):  # through tools, and through response_format
        structured = langchain_openai.ChatOpenAI(
            base_url=url, api_key="none", model="bitnet-tiny", temperature=0, max_tokens=60
        )
        jsonschema.validate(structured.with_structured_output(schema, method=method).invoke("A person"), PERSON)
    llm = langchain_openai.OpenAI(base_url=url, api_key="none", temperature=0, max_tokens=8)
    texts = llm.batch([PROMPT, "import os\n"])  # one request, a list of prompts
    assert texts[0] == model.detokenize(
        full_forward_greedy(model, model.tokenize(PROMPT, add_bos=True, special=True), 8)
    )


@pytest.mark.parametrize(
    "field, value",
    [
        ("suffix", "end"),
        ("best_of", 3),
        ("audio", {"voice": "alloy"}),
        ("modalities", ["text", "audio"]),
        ("functions", []),
    ],
)
def test_unsupported_fields_are_refused_by_name(server, field, value):
    path = "/v1/chat/completions" if field in ("audio", "modalities", "functions") else "/v1/completions"
    body = {"messages": [{"role": "user", "content": "hi"}]} if "chat" in path else {"prompt": "hi"}
    response = httpx.post(server[0] + path, json=body | {field: value, "max_tokens": 2}, timeout=60)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == field and field in error["message"]


def test_unknown_fields_are_ignored_with_a_log_line(server, caplog):
    with caplog.at_level(logging.INFO, logger="tritlm.server"):
        response = httpx.post(
            server[0] + "/v1/completions",
            timeout=60,
            json={"prompt": "hi", "max_tokens": 2, "cache_prompt": True, "mirostat": 0, "user": "u"},
        )
    assert response.status_code == 200
    assert any(
        "ignoring fields outside the OpenAI API: cache_prompt, mirostat" in r.getMessage() for r in caplog.records
    )
    assert any(r.getMessage().startswith("POST /v1/completions 200 ") for r in caplog.records)


def test_cors(model):
    app = create_app(model, parallel=1, cors_origins=["*"], api_key="secret")
    with serving(app) as url:
        preflight = httpx.options(
            url + "/v1/chat/completions",
            headers={
                "Origin": "http://other.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "*"
        answer = httpx.get(
            url + "/v1/models", headers={"Origin": "http://other.example", "Authorization": "Bearer secret"}
        )
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "*"
    with serving(create_app(model, parallel=1, cors_origins=None)) as url:
        refused = httpx.options(
            url + "/v1/models", headers={"Origin": "http://other.example", "Access-Control-Request-Method": "GET"}
        )
        assert "access-control-allow-origin" not in refused.headers


def test_metrics(model):
    from prometheus_client.parser import text_string_to_metric_families

    with serving(create_app(model, parallel=2)) as url:
        answers = [
            httpx.post(
                url + "/v1/completions", json={"prompt": PROMPT, "max_tokens": n, "temperature": 0}, timeout=60
            ).json()
            for n in (3, 5)
        ]
        httpx.post(url + "/v1/completions", json={"prompt": 7})
        text = httpx.get(url + "/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("tritlm_requests_total", (("endpoint", "/v1/completions"), ("status", "200")))] == 2
    assert samples[("tritlm_requests_total", (("endpoint", "/v1/completions"), ("status", "400")))] == 1
    assert samples[("tritlm_generated_tokens_total", ())] == sum(a["usage"]["completion_tokens"] for a in answers)
    assert samples[("tritlm_prompt_tokens_total", ())] == sum(a["usage"]["prompt_tokens"] for a in answers)
    assert samples[("tritlm_slots", ())] == 2 and samples[("tritlm_requests_waiting", ())] == 0
    assert (
        samples[("tritlm_prompt_tokens_per_second", ())] > 0
        and samples[("tritlm_generation_tokens_per_second", ())] > 0
    )
    # one after the other: each request's prompt pass gives its first token, then a pass for each further one
    assert [a["choices"][0]["finish_reason"] for a in answers] == ["length", "length"]
    assert samples[("tritlm_passes_total", ())] == 3 + 5
    assert samples[("tritlm_decoded_tokens_total", ())] == 2 + 4
    assert 0 < samples[("tritlm_pass_seconds_total", ())] < 60


@pytest.mark.parametrize(
    "path, body",
    [("/v1/completions", {"prompt": "x"}), ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]})],
)
def test_a_failure_mid_stream_is_the_last_event(server, monkeypatch, path, body):
    import tritlm.runtime.server.app as app_module
    from tests.test_server import FailingSampler

    monkeypatch.setattr(app_module, "_sampler", lambda body, n_vocab: FailingSampler(3))
    with httpx.stream("POST", server[0] + path, json=body | {"max_tokens": 10, "stream": True}, timeout=60) as r:
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["message"] == "generation failed: Probabilities contain NaN"
    assert all("choices" in json.loads(e) for e in events[:-2])
