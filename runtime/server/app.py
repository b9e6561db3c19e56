"""The HTTP API: OpenAI's /v1/chat/completions, /v1/completions and /v1/models, llama-server's /health,
/tokenize and /detokenize, and the chat page at /. Handlers validate, tokenize and queue a Job; the
Scheduler thread generates; answers stream back as server-sent events or as one JSON body. The handlers are
module-level functions over the app's ServerState (request.app.state.server); create_app builds one."""
import asyncio
import json
import os
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from runtime.sampler import Sampler, SamplingError
from runtime.server import MAX_BODY_BYTES
from runtime.server.errors import AllowedHosts, APIError, BearerAuth, BodyLimit, install_error_handlers
from runtime.server.scheduler import ContextOverflowError, Job, QueueFullError, Scheduler
from runtime.server.schemas import ChatRequest, CompletionRequest, DetokenizeRequest, Sampling, TokenizeRequest
from runtime.template import ChatTemplate, ChatTemplateError

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

router = APIRouter()


@dataclass
class ServerState:
    """What the handlers share: the model, its scheduler and chat template, and the names it answers to."""
    model: object
    scheduler: Scheduler
    template: ChatTemplate
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self):  # the most bytes one token spells: bounds the tokens of a text from below
        self.max_token_bytes = max(len(self.model.tokenizer.token_bytes(i)) for i in range(self.model.n_vocab))

    @property
    def model_names(self) -> set[str]:
        path = self.model.path
        return {self.model.name, os.path.basename(path), os.path.splitext(os.path.basename(path))[0]}


def create_app(model, parallel: int = 4, n_ctx: int | None = None, api_key: str | None = None,
               max_waiting: int | None = None, max_body_bytes: int = MAX_BODY_BYTES,
               allowed_hosts: list[str] | None = None) -> FastAPI:
    """An app serving `model` with `parallel` slots of `n_ctx` tokens each; the scheduler runs while the app does.
    `allowed_hosts` (None: any) are the Host header values accepted."""
    app = FastAPI(title="tritlm", lifespan=_lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = ServerState(model, Scheduler(model, parallel, n_ctx, max_waiting), ChatTemplate(model))
    install_error_handlers(app)
    # The last added runs first: the Host check, then the key, then the body is read (up to its limit).
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    if api_key:
        app.add_middleware(BearerAuth, api_key=api_key, open_paths=("/health", "/"), open_prefix="/static/")
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

def _check_model(state: ServerState, name: str | None):
    if name is not None and name not in state.model_names:
        raise APIError(400, f"unknown model '{name}': this server serves '{state.model.name}'", param="model",
                       code="model_not_found")


def _submit(state: ServerState, ids: list[int], body: Sampling, max_tokens: int | None) -> Job:
    if not ids:
        raise APIError(400, "prompt: no tokens to complete", param="prompt")
    try:
        sampler = Sampler(temperature=body.temperature, top_k=body.top_k, top_p=body.top_p, seed=body.seed)
    except SamplingError as e:
        raise APIError(400, str(e), param=e.param) from None
    try:
        return state.scheduler.submit(ids, max_tokens, sampler, body.stops)
    except ContextOverflowError as e:
        raise APIError(400, str(e), param="max_tokens", code="context_length_exceeded") from None
    except QueueFullError as e:
        raise APIError(429, str(e), type="rate_limit_error", code="queue_full") from None


async def _prompt_ids(state: ServerState, text: str, encode, param: str) -> list[int]:
    """encode(text) in a worker thread, so a long prompt does not stall the event loop; a text with more
    characters than a slot's tokens can spell is refused without tokenizing it."""
    if len(text) > state.scheduler.n_ctx * state.max_token_bytes:
        raise APIError(400, f"{param}: {len(text)} characters are more than the context of {state.scheduler.n_ctx} "
                            f"tokens can hold", param=param, code="context_length_exceeded")
    return await asyncio.to_thread(encode, text)


def _usage(job: Job) -> dict:
    return {"prompt_tokens": len(job.prompt_ids), "completion_tokens": job.n_generated,
            "total_tokens": len(job.prompt_ids) + job.n_generated}


async def _collect(state: ServerState, job: Job, request: Request) -> tuple[str, str]:
    """Waits for the whole answer -> (text, finish reason); a client that hangs up cancels the job."""
    async def cancel_on_disconnect():
        while (await request.receive())["type"] != "http.disconnect":
            pass
        state.scheduler.cancel(job)

    watcher = asyncio.create_task(cancel_on_disconnect())
    parts = []
    try:
        async for kind, value in job.events():
            if kind == "step":
                parts.append(value.text)
            elif kind == "error":
                raise APIError(500, value, type="server_error")
            else:
                return "".join(parts), value
    finally:
        watcher.cancel()
        state.scheduler.cancel(job)


def _stream(state: ServerState, job: Job, chunk, body: Sampling, head: dict | None = None) -> StreamingResponse:
    """Server-sent events: `chunk(text=..)` per piece of text, `chunk(finish=..)` at the end, then [DONE]."""
    async def events():
        try:
            if head is not None:
                yield _sse(head)
            async for kind, value in job.events():
                if kind == "step":
                    if value.text:
                        yield _sse(chunk(text=value.text))
                elif kind == "done":
                    yield _sse(chunk(finish=value))
                    if body.stream_options and body.stream_options.include_usage:
                        yield _sse({**chunk(), "choices": [], "usage": _usage(job)})
                else:
                    yield _sse(APIError(500, value, type="server_error").body())
            yield "data: [DONE]\n\n"
        finally:  # also on a client disconnect: free the slot now
            state.scheduler.cancel(job)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _sse(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


# ---- endpoints ----

@router.post("/v1/completions")
async def completions(body: CompletionRequest, request: Request):
    state = _state(request)
    model = state.model
    _check_model(state, body.model)
    if isinstance(body.prompt, str):
        ids = await _prompt_ids(state, body.prompt, partial(model.tokenize, add_bos=True, special=True), "prompt")
    elif all(0 <= i < model.n_vocab for i in body.prompt):
        ids = list(body.prompt)
    else:
        raise APIError(400, f"prompt: token ids must be in [0, {model.n_vocab})", param="prompt")
    job = _submit(state, ids, body, body.max_tokens)
    base = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": model.name}

    def chunk(text="", finish=None):
        return {**base, "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}]}

    if body.stream:
        return _stream(state, job, chunk, body)
    text, finish = await _collect(state, job, request)
    return {**chunk(text, finish), "usage": _usage(job)}


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatRequest, request: Request):
    state = _state(request)
    _check_model(state, body.model)
    try:
        text = await asyncio.to_thread(state.template.render, [m.as_template_dict() for m in body.messages])
    except ChatTemplateError as e:
        raise APIError(400, str(e), param="messages") from None
    ids = await _prompt_ids(state, text, state.template.encode, "messages")
    job = _submit(state, ids, body, body.max_completion_tokens or body.max_tokens)
    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": state.model.name}

    def chunk(text=None, finish=None, role=None):
        delta = {k: v for k, v in (("role", role), ("content", text)) if v is not None}
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    if body.stream:
        return _stream(state, job, chunk, body, head=chunk(text="", role="assistant"))
    text, finish = await _collect(state, job, request)
    return {**base, "object": "chat.completion", "usage": _usage(job),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                         "finish_reason": finish}]}


@router.get("/v1/models")
async def models(request: Request):
    state = _state(request)
    model = state.model
    return {"object": "list", "data": [{
        "id": model.name, "object": "model", "created": state.created, "owned_by": "tritlm",
        "meta": {"n_ctx": state.scheduler.n_ctx, "n_vocab": model.n_vocab, "size": model.model_bytes,
                 "chat_template": state.template.has_own_template}}]}


@router.get("/health")
async def health(request: Request):
    scheduler = _state(request).scheduler
    busy = scheduler.n_busy
    return {"status": "ok", "slots_processing": busy, "slots_idle": scheduler.n_slots - busy,
            "requests_waiting": scheduler.n_waiting}


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
