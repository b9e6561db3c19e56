"""The HTTP API: OpenAI's /v1/chat/completions, /v1/completions and /v1/models, llama-server's /health,
/tokenize, /detokenize and /apply-template, Prometheus' /metrics, and the chat page at /. Handlers validate,
tokenize and queue Jobs; the Scheduler thread generates; answers stream back as server-sent events or as one
JSON body. The handlers are module-level functions over the app's ServerState (request.app.state.server);
create_app builds one.

Structured output (response_format json_object / json_schema) and tool calls (runtime/server/tools.py) put a
TokenMask (runtime/structured.py) among the job's logits processors; logprobs come from the model's own logits
(runtime/logprobs.py), for generated tokens and, with `echo`, for the prompt's."""

import asyncio
import json
import logging
import os
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from tritlm.runtime import logprobs as lp
from tritlm.runtime.generate import Step
from tritlm.runtime.sampler import Sampler, SamplingError
from tritlm.runtime.server import DEFAULT_BATCH_SIZE, DEFAULT_PASS_LIMIT, MAX_BODY_BYTES, tools
from tritlm.runtime.server.errors import AllowedHosts, APIError, BearerAuth, BodyLimit, install_error_handlers
from tritlm.runtime.server.metrics import Metrics, RequestLog
from tritlm.runtime.server.scheduler import ContextOverflowError, Job, QueueFullError, Scheduler
from tritlm.runtime.server.schemas import (
    ApplyTemplateRequest,
    ChatRequest,
    CompletionRequest,
    DetokenizeRequest,
    Message,
    Sampling,
    TokenizeRequest,
)
from tritlm.runtime.structured import StructuredOutputError, TokenMask
from tritlm.runtime.template import ChatTemplate, ChatTemplateError

if TYPE_CHECKING:  # the app is handed a loaded model
    from tritlm.runtime.model import Model

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
log = logging.getLogger("tritlm.server")

router = APIRouter()


@dataclass
class ServerState:
    """What the handlers share: the model, its scheduler and chat template, and the metrics."""

    model: "Model"
    scheduler: Scheduler
    template: ChatTemplate
    metrics: Metrics
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self):  # the most bytes one token spells: bounds the tokens of a text from below
        self.max_token_bytes = max(len(self.model.tokenizer.token_bytes(i)) for i in range(self.model.n_vocab))


def create_app(
    model,
    parallel: int = 4,
    n_ctx: int | None = None,
    api_key: str | None = None,
    max_waiting: int | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    allowed_hosts: list[str] | None = None,
    cors_origins: list[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    pass_limit: float | None = DEFAULT_PASS_LIMIT,
) -> FastAPI:
    """An app serving `model` with `parallel` slots of `n_ctx` tokens each and steps of up to `batch_size` tokens
    (prompt chunks cut to `pass_limit` one-token passes; None: by tokens only); the scheduler runs while the app does.
    `allowed_hosts` (None: any) are the Host header values accepted; `cors_origins` the origins whose browser
    pages may call the API (None: the same origin only; ["*"]: any, as llama-server's default)."""
    app = FastAPI(title="tritlm", lifespan=_lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    scheduler = Scheduler(model, parallel, n_ctx, max_waiting, batch_size, pass_limit)
    metrics = Metrics(scheduler)
    app.state.server = ServerState(model, scheduler, ChatTemplate(model), metrics)
    install_error_handlers(app)
    # The last added runs first: the Host check, CORS (a preflight carries no key), the request log, the key,
    # then the body is read (up to its limit).
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    if api_key:
        app.add_middleware(BearerAuth, api_key=api_key, open_paths=("/health", "/"), open_prefix="/static/")
    app.add_middleware(RequestLog, metrics=metrics)
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=cors_origins, allow_methods=["*"], allow_headers=["*"])
    if allowed_hosts is not None:
        app.add_middleware(AllowedHosts, hosts=allowed_hosts)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(router)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI):
    app.state.server.scheduler.start()
    yield
    app.state.server.scheduler.stop()


def _state(request: Request) -> ServerState:
    return request.app.state.server


# ---- helpers of the generating endpoints ----


def _check_fields(body: Sampling, request: Request):
    """A documented field we cannot honour is a 400 naming it; fields outside the spec are logged and ignored."""
    if (refused := body.refused_field()) is not None:
        raise APIError(400, f"{refused}: not supported by this server", param=refused, code="unsupported_parameter")
    if unknown := body.unknown_fields():
        log.info("%s: ignoring fields outside the OpenAI API: %s", request.url.path, ", ".join(unknown))


def _sampler(body: Sampling, n_vocab: int) -> Sampler:
    bias = {}
    for key, value in (body.logit_bias or {}).items():
        if not (key.lstrip("-").isdigit() and 0 <= int(key) < n_vocab):
            raise APIError(400, f"logit_bias: '{key}' is not a token id in [0, {n_vocab})", param="logit_bias")
        bias[int(key)] = value
    try:
        return Sampler(
            body.temperature,
            body.top_k,
            body.top_p,
            body.seed,
            min_p=body.min_p,
            repeat_penalty=body.repeat_penalty,
            repeat_last_n=body.repeat_last_n,
            frequency_penalty=body.frequency_penalty,
            presence_penalty=body.presence_penalty,
            logit_bias=bias,
        )
    except SamplingError as e:
        raise APIError(400, str(e), param=e.param) from None


async def _mask(model, schema: dict | None, param: str) -> TokenMask:
    """The token mask of schema, built in a worker thread (a large schema's grammar, or the first mask's view of
    a large vocabulary, takes a while)."""
    try:
        return await asyncio.to_thread(TokenMask.json, model, schema)
    except StructuredOutputError as e:
        raise APIError(400, f"{param}: {e}", param=param) from None


def _format_schema(body: Sampling) -> tuple[bool, dict | None]:
    """(whether the answer must be JSON, its schema: None for any object) from response_format."""
    fmt = body.response_format
    if fmt is None or fmt.type == "text":
        return False, None
    if fmt.type == "json_object":
        return True, None
    if fmt.json_schema is None or fmt.json_schema.schema_ is None:
        raise APIError(
            400, "response_format.json_schema.schema is required for type json_schema", param="response_format"
        )
    return True, fmt.json_schema.schema_


async def _prompt_ids(state: ServerState, text: str, encode, param: str) -> list[int]:
    """encode(text) in a worker thread, so a long prompt does not stall the event loop; a text with more
    characters than a slot's tokens can spell is refused without tokenizing it."""
    if len(text) > state.scheduler.n_ctx * state.max_token_bytes:
        raise APIError(
            400,
            f"{param}: {len(text)} characters are more than the context of {state.scheduler.n_ctx} tokens can hold",
            param=param,
            code="context_length_exceeded",
        )
    return await asyncio.to_thread(encode, text)


def _submit(
    state: ServerState, ids: list[int], body: Sampling, max_tokens: int | None, processors=(), n_top: int | None = None
) -> Job:
    if not ids:
        raise APIError(400, "prompt: no tokens to complete", param="prompt")
    sampler = _sampler(body, state.model.n_vocab)
    sampler.accept(ids)  # the prompt counts for the repetition penalties, as in llama-server
    try:
        return state.scheduler.submit(ids, max_tokens, sampler, body.stops, processors, n_top)
    except ContextOverflowError as e:
        raise APIError(400, str(e), param="max_tokens", code="context_length_exceeded") from None
    except QueueFullError as e:
        raise APIError(429, str(e), type="rate_limit_error", code="queue_full") from None


@dataclass
class Answer:
    """One job's result so far (job None: max_tokens 0)."""

    prompt_tokens: int
    job: Job | None
    text: str = ""
    finish: str | None = None
    logprobs: list = field(default_factory=list)  # runtime.logprobs.TokenLogprob per token (EOS included)

    @property
    def n_generated(self) -> int:
        return 0 if self.job is None else self.job.n_generated

    def add(self, step, finish) -> None:
        """Takes in one event of _events."""
        if step is not None:
            self.text += step.text
            if step.logprob is not None:
                self.logprobs.append(step.logprob)
        self.finish = finish or self.finish


def _usage(answers: list[Answer]) -> dict:
    prompt, generated = sum(a.prompt_tokens for a in answers), sum(a.n_generated for a in answers)
    return {"prompt_tokens": prompt, "completion_tokens": generated, "total_tokens": prompt + generated}


async def _events(state: ServerState, jobs: list[Job | None]):
    """(index, Step | None, finish | None) of every job as they come; a job that is None (max_tokens 0) finishes
    at once with "length". Jobs still running when the consumer stops (a client that hung up) are cancelled."""
    queue: asyncio.Queue[tuple[int, Step | None, str | None, str | None]] = asyncio.Queue()  # (i, step, finish, error)

    async def pump(i, job):
        if job is None:
            return await queue.put((i, None, "length", None))
        async for kind, value in job.events():
            await queue.put(
                (i, value, None, None)
                if kind == "step"
                else (i, None, value, None)
                if kind == "done"
                else (i, None, None, value)
            )

    tasks = [asyncio.create_task(pump(i, job)) for i, job in enumerate(jobs)]
    try:
        for _ in range(len(jobs)):
            while True:
                i, step, finish, error = await queue.get()
                if error is not None:
                    raise APIError(500, error, type="server_error")
                yield i, step, finish
                if finish is not None:
                    break
    finally:
        for task in tasks:
            task.cancel()
        for job in jobs:
            if job is not None:
                state.scheduler.cancel(job)


async def _collect(state: ServerState, jobs: list[Job | None], answers: list[Answer], request: Request):
    """Waits for every job to finish, filling `answers`; a client that hangs up cancels them."""

    async def cancel_on_disconnect():
        while (await request.receive())["type"] != "http.disconnect":
            pass
        for job in jobs:
            if job is not None:
                state.scheduler.cancel(job)

    watcher = asyncio.create_task(cancel_on_disconnect())
    try:
        async for i, step, finish in _events(state, jobs):
            answers[i].add(step, finish)
    finally:
        watcher.cancel()
    for answer in answers:
        state.metrics.finished(answer.prompt_tokens, answer.n_generated)


def _sse(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _sse_response(events) -> StreamingResponse:
    async def guarded():
        try:
            async for event in events:
                yield event
        except APIError as e:  # a job failed mid-stream: its error is the last event
            yield _sse(e.body())
            yield "data: [DONE]\n\n"

    return StreamingResponse(guarded(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _piece(model, token: int) -> str:
    return model.tokenizer.token_bytes(token).decode("utf-8", errors="replace")


# ---- /v1/completions ----


def _legacy_logprobs(model, entries: list, offset: int) -> dict:
    """The completions API's logprobs object: tokens, token_logprobs, top_logprobs, text_offset."""
    tokens = [_piece(model, e.token) for e in entries]
    offsets = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": [e.logprob for e in entries],
        "top_logprobs": [None if e.top is None else {_piece(model, t): p for t, p in e.top} for e in entries],
        "text_offset": offsets,
    }


async def _prompts(state: ServerState, prompt) -> list[tuple[str | None, list[int]]]:
    """(text or None, ids) of each prompt: a string, a list of strings, token ids or a list of token-id lists."""
    if isinstance(prompt, str):
        prompt = [prompt]
    elif not prompt:
        raise APIError(400, "prompt: must not be empty", param="prompt")
    elif isinstance(prompt[0], int):
        prompt = [prompt]
    model = state.model
    out: list[tuple[str | None, list[int]]] = []
    for p in prompt:
        if isinstance(p, str):
            out.append((p, await _prompt_ids(state, p, partial(model.tokenize, add_bos=True, special=True), "prompt")))
        elif not p:
            raise APIError(400, "prompt: no tokens to complete", param="prompt")
        elif all(0 <= i < model.n_vocab for i in p):
            out.append((None, list(p)))
        else:
            raise APIError(400, f"prompt: token ids must be in [0, {model.n_vocab})", param="prompt")
    return out


@router.post("/v1/completions")
async def completions(body: CompletionRequest, request: Request):
    state = _state(request)
    model = state.model
    _check_fields(body, request)
    prompts = await _prompts(state, body.prompt)
    as_json, schema = _format_schema(body)
    echoed = [(text if text is not None else model.detokenize(ids)) if body.echo else "" for text, ids in prompts]
    prompt_logprobs = (
        [await asyncio.to_thread(lp.of_prompt, model, ids, body.logprobs) for _, ids in prompts]
        if body.echo and body.logprobs is not None
        else [[] for _ in prompts]
    )
    jobs = []
    try:
        for _, ids in prompts:
            processors = [await _mask(model, schema, "response_format")] if as_json else []
            jobs.append(
                None if body.max_tokens == 0 else _submit(state, ids, body, body.max_tokens, processors, body.logprobs)
            )
    except APIError:
        for job in jobs:
            if job is not None:
                state.scheduler.cancel(job)
        raise
    answers = [Answer(len(ids), job) for (_, ids), job in zip(prompts, jobs)]
    base = {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model.name,
    }

    def choice(i, text, entries, offset, finish=None):
        logprobs = None if body.logprobs is None else _legacy_logprobs(model, entries, offset)
        return {"index": i, "text": text, "logprobs": logprobs, "finish_reason": finish}

    if body.stream:

        async def events():
            offsets = [len(e) for e in echoed]
            for i, text in enumerate(echoed):
                if text or prompt_logprobs[i]:
                    yield _sse({**base, "choices": [choice(i, text, prompt_logprobs[i], 0)]})
            pending = [[] for _ in prompts]  # logprobs of tokens whose text is still held back
            async for i, step, finish in _events(state, jobs):
                answers[i].add(step, finish)
                if step is not None and step.logprob is not None:
                    pending[i].append(step.logprob)
                if finish is not None or step.text:
                    yield _sse(
                        {
                            **base,
                            "choices": [choice(i, "" if step is None else step.text, pending[i], offsets[i], finish)],
                        }
                    )
                    offsets[i] += sum(len(_piece(model, e.token)) for e in pending[i])
                    pending[i] = []
            for answer in answers:
                state.metrics.finished(answer.prompt_tokens, answer.n_generated)
            if body.stream_options and body.stream_options.include_usage:
                yield _sse({**base, "choices": [], "usage": _usage(answers)})
            yield "data: [DONE]\n\n"

        return _sse_response(events())
    await _collect(state, jobs, answers, request)
    return {
        **base,
        "usage": _usage(answers),
        "choices": [
            choice(i, echoed[i] + a.text, prompt_logprobs[i] + a.logprobs, 0, a.finish) for i, a in enumerate(answers)
        ],
    }


# ---- /v1/chat/completions ----


def _template_messages(messages: list[Message]) -> list[dict]:
    """The conversation as the chat template reads it; earlier tool calls written back in the answer format."""
    out: list[dict] = []
    for i, m in enumerate(messages):
        if m.role == "assistant" and m.tool_calls:
            out.append({"role": "assistant", "content": tools.past_call_text([c.model_dump() for c in m.tool_calls])})
        elif m.content is None:
            raise APIError(400, f"messages.{i}.content: Field required", param=f"messages.{i}.content")
        else:
            out.append(
                {"role": m.role, "content": m.text} | ({"tool_call_id": m.tool_call_id} if m.tool_call_id else {})
            )
    return out


def _chat_logprobs(model, entries: list) -> dict:
    def item(token, logprob):
        piece = model.tokenizer.token_bytes(token)
        return {"token": piece.decode("utf-8", errors="replace"), "logprob": logprob, "bytes": list(piece)}

    return {
        "content": [
            item(e.token, e.logprob) | {"top_logprobs": [item(t, p) for t, p in e.top]}
            for e in entries
            if e.token not in model.eos_ids
        ]
    }


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatRequest, request: Request):
    state = _state(request)
    model = state.model
    _check_fields(body, request)
    tool_choice = body.tool_choice if body.tool_choice is not None else ("auto" if body.tools else "none")
    choice = tool_choice if isinstance(tool_choice, str) else tool_choice.model_dump()
    tool_list = [t.model_dump(exclude_none=True) for t in body.tools or []]
    try:
        defs = tools.functions(tool_list, choice)
    except tools.ToolChoiceError as e:
        raise APIError(400, str(e), param="tool_choice") from None
    messages = _template_messages(body.messages)
    if defs:
        messages = tools.with_system_note(messages, tools.system_note(defs))
    try:
        text = await asyncio.to_thread(state.template.render, messages, tools=tool_list if defs else None)
    except ChatTemplateError as e:
        raise APIError(400, str(e), param="messages") from None
    ids = await _prompt_ids(state, text, state.template.encode, "messages")
    as_json, schema = _format_schema(body)
    if defs:
        answer_schema = tools.answer_schema(
            defs, choice, body.parallel_tool_calls, (schema or {"type": "object"}) if as_json else None
        )
        processors = [await _mask(model, answer_schema, "tools")]
    else:
        processors = [await _mask(model, schema, "response_format")] if as_json else []
    n_top = (body.top_logprobs or 0) if body.logprobs else None
    job = _submit(state, ids, body, body.max_completion_tokens or body.max_tokens, processors, n_top)
    answer = Answer(len(ids), job)
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model.name,
    }

    def message():
        """(content, tool_calls, finish) of the finished answer."""
        if not defs or answer.finish != "stop":  # a call cut short by max_tokens is no call: its text is returned
            return answer.text, None, answer.finish
        content, calls = tools.parse_answer(answer.text, response_is_json=as_json)
        return content, calls or None, "tool_calls" if calls else "stop"

    def chunk(delta, finish=None, entries=None):
        logprobs = None if entries is None else _chat_logprobs(model, entries)
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]}

    if body.stream:

        async def events():
            yield _sse(chunk({"role": "assistant", "content": ""}))
            pending = []
            async for _, step, finish in _events(state, [job]):
                answer.add(step, finish)
                if step is not None and step.logprob is not None:
                    pending.append(step.logprob)
                if defs:  # the answer is one JSON document: it becomes content or tool_calls once complete
                    continue
                if step is not None and step.text:
                    yield _sse(chunk({"content": step.text}, entries=pending if n_top is not None else None))
                    pending = []
            content, calls, finish = message()
            if defs:
                delta = (
                    {"tool_calls": [c | {"index": k} for k, c in enumerate(calls)]} if calls else {"content": content}
                )
                yield _sse(chunk(delta, entries=pending if n_top is not None else None))
                pending = []
            yield _sse(chunk({}, finish, entries=pending if n_top is not None and pending else None))
            state.metrics.finished(answer.prompt_tokens, answer.n_generated)
            if body.stream_options and body.stream_options.include_usage:
                yield _sse({**base, "choices": [], "usage": _usage([answer])})
            yield "data: [DONE]\n\n"

        return _sse_response(events())
    await _collect(state, [job], [answer], request)
    content, calls, finish = message()
    reply = {"role": "assistant", "content": content} | ({"tool_calls": calls} if calls else {})
    return {
        **base,
        "object": "chat.completion",
        "usage": _usage([answer]),
        "choices": [
            {
                "index": 0,
                "message": reply,
                "finish_reason": finish,
                "logprobs": None if n_top is None else _chat_logprobs(model, answer.logprobs),
            }
        ],
    }


# ---- the rest ----


@router.get("/v1/models")
async def models(request: Request):
    state = _state(request)
    model = state.model
    return {
        "object": "list",
        "data": [
            {
                "id": model.name,
                "object": "model",
                "created": state.created,
                "owned_by": "tritlm",
                "meta": {
                    "n_ctx": state.scheduler.n_ctx,
                    "n_vocab": model.n_vocab,
                    "size": model.model_bytes,
                    "chat_template": state.template.has_own_template,
                },
            }
        ],
    }


@router.get("/health")
async def health(request: Request):
    scheduler = _state(request).scheduler
    busy = scheduler.n_busy
    return {
        "status": "ok",
        "slots_processing": busy,
        "slots_idle": scheduler.n_slots - busy,
        "requests_waiting": scheduler.n_waiting,
    }


@router.get("/metrics")
async def metrics(request: Request):
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(_state(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.post("/apply-template")
async def apply_template(body: ApplyTemplateRequest, request: Request):
    """llama-server's: the prompt text the chat template makes of `messages` (the chat page counts its tokens)."""
    try:
        return {"prompt": _state(request).template.render(_template_messages(body.messages))}
    except ChatTemplateError as e:
        raise APIError(400, str(e), param="messages") from None


@router.post("/tokenize")
async def tokenize(body: TokenizeRequest, request: Request):
    model = _state(request).model

    def run():  # in a worker thread, pieces included: a long text must not stall the event loop
        ids = model.tokenize(body.content, add_bos=body.add_special, special=body.parse_special)
        return {"tokens": [{"id": i, "piece": model.detokenize([i])} for i in ids] if body.with_pieces else ids}

    return JSONResponse(await asyncio.to_thread(run))  # a plain list: no need for FastAPI's slow encoder


@router.post("/detokenize")
async def detokenize(body: DetokenizeRequest, request: Request):
    model = _state(request).model
    if not all(0 <= i < model.n_vocab for i in body.tokens):
        raise APIError(400, f"tokens: ids must be in [0, {model.n_vocab})", param="tokens")
    return {"content": await asyncio.to_thread(model.detokenize, body.tokens)}


@router.get("/")
async def chat_page():
    return FileResponse(os.path.join(STATIC_DIR, "index.html"))
