"""Request bodies of the OpenAI-compatible and llama-server endpoints. Strict: wrong types are rejected, not
coerced; unknown fields are ignored (clients send many we do not use)."""
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, allow_inf_nan=False)  # Python's JSON reader accepts NaN and Infinity


class StreamOptions(_Strict):
    include_usage: bool = False


class Sampling(_Strict):
    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = 0.8  # ranges: the Sampler checks them (SamplingError -> 400)
    top_p: float = 0.95
    top_k: int = 40
    seed: int | None = None  # -1: a random seed, as in llama.cpp
    stop: str | list[str] | None = None
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None

    @field_validator("n")
    @classmethod
    def _only_one_choice(cls, n):
        if n != 1:
            raise ValueError("only n=1 is supported")
        return n

    @property
    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class CompletionRequest(Sampling):
    prompt: str | list[int]


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def as_template_dict(self) -> dict:
        content = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        return {"role": self.role, "content": content}


class ChatRequest(Sampling):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)  # the newer name of max_tokens


class TokenizeRequest(_Strict):
    content: str
    add_special: bool = False
    parse_special: bool = True
    with_pieces: bool = False


class DetokenizeRequest(_Strict):
    tokens: list[int]
