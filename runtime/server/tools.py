"""Tool calls in llama.cpp's generic format (what llama-server does for a chat template without a tool-call
syntax of its own). The template is rendered with `tools` and a system note gives the tools and the answer's
format; the answer is then generated under a JSON schema (runtime/structured.py), so it is always one of

    {"tool_call": {"name": "<a tool>", "arguments": {<valid under that tool's parameters>}}}
    {"tool_calls": [<call>, ...]}                     (parallel_tool_calls)
    {"response": "<text for the user>"}               (tool_choice "auto" only)

and becomes OpenAI's `tool_calls` or `content`. tool_choice "required" or a named function leaves only calls;
"none" leaves the tools out altogether."""

import json
import uuid

FORMAT_NOTE = (
    "Respond in JSON format, either with `tool_call` (a request to call tools) or with `response` "
    "reply to the user's request"
)


class ToolChoiceError(ValueError):
    """tool_choice names a function that is not among the tools."""


def functions(tools: list[dict], tool_choice) -> list[dict]:
    """The function definitions a call may use ([] when tool_choice is "none")."""
    if tool_choice == "none" or not tools:
        return []
    defs = [tool["function"] for tool in tools]
    if isinstance(tool_choice, dict):
        name = tool_choice["function"]["name"]
        defs = [f for f in defs if f["name"] == name]
        if not defs:
            raise ToolChoiceError(f"tool_choice names '{name}', which is not among the tools")
    return defs


def answer_schema(defs: list[dict], tool_choice, parallel: bool, response_schema: dict | None = None) -> dict:
    """The JSON schema of the whole answer (llama.cpp's common_chat_params_init_generic, with no keys beyond
    the format's, so a small model cannot wander off into extra ones)."""
    calls = [
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "const": f["name"]},
                "arguments": f.get("parameters") or {"type": "object", "properties": {}},
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for f in defs
    ]
    call = calls[0] if len(calls) == 1 else {"anyOf": calls}
    if parallel:
        calling = {
            "type": "object",
            "properties": {"tool_calls": {"type": "array", "items": call, "minItems": 1}},
            "required": ["tool_calls"],
            "additionalProperties": False,
        }
    else:
        calling = {
            "type": "object",
            "properties": {"tool_call": call},
            "required": ["tool_call"],
            "additionalProperties": False,
        }
    if tool_choice == "required" or isinstance(tool_choice, dict):
        return calling
    response = {
        "type": "object",
        "properties": {"response": response_schema or {"type": "string"}},
        "required": ["response"],
        "additionalProperties": False,
    }
    return {"anyOf": [calling, response]}


def system_note(defs: list[dict]) -> str:
    """The tools and the answer format, for the system message."""
    listing = json.dumps([{"type": "function", "function": f} for f in defs], ensure_ascii=False)
    return f"You can call any of the following tools to satisfy the user's requests:\n{listing}\n\n{FORMAT_NOTE}"


def with_system_note(messages: list[dict], note: str) -> list[dict]:
    """The messages with the note appended to the system message (or a system message added first)."""
    if messages and messages[0]["role"] in ("system", "developer"):
        first = dict(messages[0], content=f"{messages[0]['content']}\n\n{note}")
        return [first] + messages[1:]
    return [{"role": "system", "content": note}] + messages


def past_call_text(tool_calls: list[dict]) -> str:
    """An earlier assistant turn's tool calls, written back in the format the model answers in."""
    calls = [
        {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"] or "{}")} for c in tool_calls
    ]
    return json.dumps({"tool_call": calls[0]} if len(calls) == 1 else {"tool_calls": calls}, ensure_ascii=False)


def parse_answer(text: str, response_is_json: bool = False) -> tuple[str | None, list[dict]]:
    """(content, OpenAI tool_calls) of a finished answer; a response's text is the content."""
    answer = json.loads(text)
    if "response" in answer:
        response = answer["response"]
        return (json.dumps(response, ensure_ascii=False) if response_is_json else response), []
    calls = answer["tool_calls"] if "tool_calls" in answer else [answer["tool_call"]]
    return None, [
        {
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": c["name"], "arguments": json.dumps(c["arguments"], ensure_ascii=False)},
        }
        for c in calls
    ]
