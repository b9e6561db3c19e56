"""Chat templates: render a conversation into prompt text with the GGUF's `tokenizer.chat_template`, the way
transformers' `apply_chat_template` does (sandboxed Jinja2, trim_blocks/lstrip_blocks, `raise_exception`,
`strftime_now`, a `tojson` that keeps non-ASCII), so the model sees exactly the text it was trained on."""

import json
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tritlm.runtime.errors import InputError

# Used when a model carries no template (base models, tiny test models): plain "role: content" lines.
FALLBACK_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


class ChatTemplateError(InputError):
    """The template refused the conversation (raise_exception) or failed to render."""


def _raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt):
    return datetime.now().strftime(fmt)


class ChatTemplate:
    """`ChatTemplate(model).tokenize(messages)` -> prompt ids; `has_own_template` says whether the model brought one."""

    def __init__(self, model):
        self.model = model
        self.has_own_template = bool(model.chat_template)
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
        env.filters["tojson"] = _tojson
        env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)
        try:
            self._template = env.from_string(model.chat_template or FALLBACK_TEMPLATE)
        except jinja2.exceptions.TemplateSyntaxError as e:
            raise ChatTemplateError(f"the model's chat template does not parse: {e}") from None
        tokens = model.metadata.get("tokenizer.ggml.tokens") or []
        eos_id = model.metadata.get("tokenizer.ggml.eos_token_id")
        self._special = {
            "bos_token": tokens[model.bos_id] if model.bos_id is not None and model.bos_id < len(tokens) else "",
            "eos_token": tokens[eos_id] if eos_id is not None and eos_id < len(tokens) else "",
        }

    def render(self, messages: list[dict], add_generation_prompt: bool = True, tools: list[dict] | None = None) -> str:
        """The prompt text; `tools` (OpenAI's tool definitions) go to templates that render them, as in transformers."""
        try:
            return self._template.render(
                messages=messages, add_generation_prompt=add_generation_prompt, tools=tools, **self._special
            )
        except jinja2.exceptions.TemplateError as e:
            raise ChatTemplateError(f"chat template: {e}") from None

    def tokenize(
        self, messages: list[dict], add_generation_prompt: bool = True, tools: list[dict] | None = None
    ) -> list[int]:
        """The rendered prompt as ids, control tokens parsed; BOS added only when the template did not write it."""
        return self.encode(self.render(messages, add_generation_prompt, tools))

    def encode(self, text: str) -> list[int]:
        """Ids of a rendered prompt."""
        bos = self._special["bos_token"]
        return self.model.tokenize(text, add_bos=not (bos and text.startswith(bos)), special=True)
