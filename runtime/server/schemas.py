"""Request bodies of the OpenAI-compatible and llama-server endpoints. Strict: wrong types are rejected, not
coerced. Fields outside the spec land in `model_extra`: the handler logs and ignores them (clients send many we
do not use); a documented OpenAI field set to something this server cannot do is refused (`refused_field`)."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Documented OpenAI fields this server does not implement, and the values that would ask for them.
UNSUPPORTED = {
    "audio": lambda v: v is not None,
    "modalities": lambda v: v not in (None, ["text"]),
    "prediction": lambda v: v is not None,
    "web_search_options": lambda v: v is not None,
    "functions": lambda v: v is not None,  # the deprecated form of tools
    "function_call": lambda v: v is not None,  # the deprecated form of tool_choice
    "best_of": lambda v: v not in (None, 1),
    "suffix": lambda v: v not in (None, ""),
    "store": lambda v: bool(v),
}
# Documented fields that change nothing here: accepted without a word.
HARMLESS = {"metadata", "service_tier", "reasoning_effort", "user", "safety_identifier", "prompt_cache_key"}


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, allow_inf_nan=False)  # Python's JSON reader accepts NaN and Infinity


class StreamOptions(_Strict):
    include_usage: bool = False


class JSONSchemaFormat(_Strict):
    name: str | None = None
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class Sampling(_Strict):
    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="allow")

    model: str | None = None  # any name: the served model answers, as llama-server does
    max_tokens: int | None = Field(None, ge=0)
    temperature: float = 0.8  # ranges: the Sampler checks them (SamplingError -> 400)
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.0
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: dict[str, float] | None = None  # token id (a string, as JSON keys are) -> added to its logit
    seed: int | None = None  # -1: a random seed, as in llama.cpp
    stop: str | list[str] | None = None
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None

    @field_validator("n")
    @classmethod
    def _only_one_choice(cls, n):
        if n != 1:
            raise ValueError("only n=1 is supported")
        return n

    @property
    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def refused_field(self) -> str | None:
        """The first documented field set to something this server does not do."""
        extra = self.model_extra or {}
        return next((name for name, refused in UNSUPPORTED.items() if name in extra and refused(extra[name])), None)

    def unknown_fields(self) -> list[str]:
        """Fields outside the spec (ignored)."""
        return sorted(set(self.model_extra or {}) - set(UNSUPPORTED) - HARMLESS)


class CompletionRequest(Sampling):
    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=20)  # how many alternatives per token (the legacy API's meaning)


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class CalledFunction(_Strict):
    name: str
    arguments: str


class ToolCall(_Strict):
    id: str | None = None
    type: Literal["function"] = "function"
    function: CalledFunction


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None  # None only for an assistant turn that called tools
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    @property
    def text(self) -> str | None:
        return self.content if not isinstance(self.content, list) else "".join(p.text for p in self.content)


class FunctionDefinition(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Strict):
    type: Literal["function"]
    function: FunctionDefinition


class FunctionName(_Strict):
    name: str


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: FunctionName


class ChatRequest(Sampling):
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)  # the newer name of max_tokens
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool = False  # one call per answer unless asked, as llama-server


class ApplyTemplateRequest(_Strict):
    messages: list[Message] = Field(min_length=1)


class TokenizeRequest(_Strict):
    content: str
    add_special: bool = False
    parse_special: bool = True
    with_pieces: bool = False


class DetokenizeRequest(_Strict):
    tokens: list[int]
