"""Tool calls in llama.cpp's generic format (runtime/server/tools.py): the embedded model's answers, generated
under the answer schema, always parse into calls of a listed tool whose arguments validate against that tool's
parameters (or, with tool_choice "auto", into a text response)."""

import json

import jsonschema
import pytest

from tests.test_structured import constrained
from tritlm.runtime.server.tools import (
    ToolChoiceError,
    answer_schema,
    functions,
    parse_answer,
    past_call_text,
    system_note,
    with_system_note,
)
from tritlm.runtime.structured import TokenMask
from tritlm.runtime.template import ChatTemplate

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "maxLength": 16},
                    "unit": {"enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city", "unit"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two integers",
            "parameters": {
                "type": "object",
                "properties": {
                    "a": {"type": "integer", "minimum": -1000, "maximum": 1000},
                    "b": {"type": "integer", "minimum": -1000, "maximum": 1000},
                },
                "required": ["a", "b"],
                "additionalProperties": False,
            },
        },
    },
]
PARAMETERS = {tool["function"]["name"]: tool["function"]["parameters"] for tool in TOOLS}
N_SEEDS = 20


def prompt_ids(model, defs) -> list[int]:
    messages = with_system_note([{"role": "user", "content": "What is the weather in Paris?"}], system_note(defs))
    return ChatTemplate(model).tokenize(messages)


@pytest.mark.parametrize(
    "choice, parallel",
    [("required", False), ("required", True), ({"type": "function", "function": {"name": "add"}}, False)],
)
def test_calls_always_validate(embedded, choice, parallel):
    defs = functions(TOOLS, choice)
    schema = answer_schema(defs, choice, parallel)
    names, finished = set(), 0
    for seed in range(N_SEEDS):
        text, ended = constrained(embedded, prompt_ids(embedded, defs), TokenMask.json(embedded, schema), seed, 160)
        assert ended or parallel, text  # a list of calls has no bound: it may outgrow the budget
        if not ended:
            continue
        finished += 1
        jsonschema.validate(json.loads(text), schema)
        content, calls = parse_answer(text)
        assert content is None and calls and (len(calls) == 1 or parallel)
        for call in calls:
            assert call["type"] == "function" and call["id"].startswith("call_")
            jsonschema.validate(json.loads(call["function"]["arguments"]), PARAMETERS[call["function"]["name"]])
            names.add(call["function"]["name"])
    assert finished >= N_SEEDS // 2
    assert names == {"add"} if isinstance(choice, dict) else names <= {"add", "get_weather"} and names


def test_auto_answers_a_call_or_text(embedded):
    defs = functions(TOOLS, "auto")
    schema = answer_schema(defs, "auto", False)
    kinds = set()
    for seed in range(N_SEEDS):
        text, ended = constrained(embedded, prompt_ids(embedded, defs), TokenMask.json(embedded, schema), seed, 160)
        if not ended:  # a free-text response may outgrow the budget
            continue
        content, calls = parse_answer(text)
        if calls:
            jsonschema.validate(json.loads(calls[0]["function"]["arguments"]), PARAMETERS[calls[0]["function"]["name"]])
            kinds.add("call")
        else:
            assert isinstance(content, str) and json.loads(text) == {"response": content}
            kinds.add("text")
    assert kinds


def test_schema_and_history_shapes():
    assert functions(TOOLS, "none") == []
    with pytest.raises(ToolChoiceError):
        functions(TOOLS, {"type": "function", "function": {"name": "nope"}})
    one = answer_schema(functions(TOOLS, "auto"), "auto", False)
    jsonschema.validate({"response": "hi"}, one)
    jsonschema.validate({"tool_call": {"name": "add", "arguments": {"a": 1, "b": 2}}}, one)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"tool_call": {"name": "add", "arguments": {"a": 1}}}, one)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"response": "hi"}, answer_schema(functions(TOOLS, "required"), "required", False))
    call = {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}
    assert json.loads(past_call_text([call])) == {"tool_call": {"name": "add", "arguments": {"a": 1, "b": 2}}}
    assert with_system_note([{"role": "system", "content": "Be brief."}], "NOTE")[0]["content"] == "Be brief.\n\nNOTE"
