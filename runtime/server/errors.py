"""OpenAI-shaped errors: every failure answers `{"error": {"message", "type", "param", "code"}}` with a 4xx/5xx
status, and the bearer-key check that guards every endpoint but /health and the chat page."""

import asyncio
import ctypes
import ctypes.util
import gc
import hmac
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

TRIM_AFTER_BYTES = 1 << 16
_malloc_trim: Callable[[int], int] | None
try:  # glibc's; elsewhere memory is left to the allocator
    _malloc_trim = ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
except (AttributeError, OSError, TypeError):
    _malloc_trim = None


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


_UNION_TAGS = {"str", "int", "float", "bool"}  # pydantic names the union branch in `loc`; users need the field


def _validation_error(exc: RequestValidationError) -> APIError:
    first = exc.errors()[0]
    if first.get("type") == "json_invalid":
        return APIError(
            400,
            f"request body is not valid JSON: {first.get('ctx', {}).get('error', '')}".rstrip(": "),
            code="invalid_json",
        )
    loc = [
        str(part)
        for part in first.get("loc", ())[1:]
        if not (part in _UNION_TAGS or "[" in str(part) or str(part)[:1].isupper())
    ]
    where = ".".join(loc) or "body"
    return APIError(400, f"{where}: {first.get('msg')}", param=where)


def install_error_handlers(app: FastAPI):
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return _validation_error(exc).response()

    @app.exception_handler(Exception)  # a bug: still an OpenAI-shaped body (the traceback goes to the log)
    async def _bug(request: Request, exc: Exception):
        return APIError(500, "internal server error", type="server_error").response()

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return APIError(exc.status_code, str(exc.detail), type=kind).response()


async def _refuse(error: APIError, scope, receive, send):
    await error.response()(scope, receive, send)


class BearerAuth:
    """ASGI middleware: every request except `open_paths` and paths under `open_prefix` needs
    `Authorization: Bearer <api_key>` (401 otherwise; the scheme is case-insensitive, RFC 7235). It runs before
    the body is read, so a bad key is refused whatever the body holds."""

    def __init__(self, app, api_key: str, open_paths, open_prefix: str):
        self.app, self.expected = app, api_key.encode()
        self.open_paths, self.open_prefix = set(open_paths), open_prefix

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] == "http" and path not in self.open_paths and not path.startswith(self.open_prefix):
            scheme, _, key = dict(scope["headers"]).get(b"authorization", b"").partition(b" ")
            if not (hmac.compare_digest(key.strip(), self.expected) and scheme.lower() == b"bearer"):
                return await _refuse(
                    APIError(
                        401,
                        "invalid or missing API key: send 'Authorization: Bearer <key>'",
                        type="authentication_error",
                        code="invalid_api_key",
                    ),
                    scope,
                    receive,
                    send,
                )
        await self.app(scope, receive, send)


class AllowedHosts:
    """ASGI middleware: refuses (400) a request whose Host header is not one of `hosts` (port ignored; "*" allows
    all, "*.example.com" its subdomains). A web page on another site that rebinds its DNS name to 127.0.0.1 can
    reach a loopback server, but its requests carry its own name in Host."""

    def __init__(self, app, hosts):
        self.app, self.hosts = app, [h.lower() for h in hosts]

    def allows(self, host: str) -> bool:
        host = host.lower()
        if host.startswith("["):  # [IPv6]:port
            host = host[1:].partition("]")[0]
        elif host.count(":") == 1:  # name:port
            host = host.partition(":")[0]
        return any(h == "*" or h == host or (h.startswith("*.") and host.endswith(h[1:])) for h in self.hosts)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if not self.allows(host):
                return await _refuse(
                    APIError(
                        400,
                        f"Host '{host}' is not allowed: start the server with --allowed-hosts to accept it",
                        code="host_not_allowed",
                    ),
                    scope,
                    receive,
                    send,
                )
        await self.app(scope, receive, send)


class BodyLimit:
    """ASGI middleware: reads the request body, refusing with 413 one longer than `max_bytes` as soon as its
    Content-Length or its bytes say so (nothing past the limit is kept), then hands the body on. After a
    request with a long body, the memory its parsing and tokenization freed goes back to the system: glibc
    keeps it in the worker threads' arenas otherwise, and RSS stays up by tens of MB per long request."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = APIError(
            413,
            f"request body larger than {self.max_bytes} bytes (the server's --max-body-bytes)",
            code="request_too_large",
        )
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.max_bytes:
            return await _refuse(too_large, scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await _refuse(too_large, scope, receive, send)
            if not message.get("more_body"):
                break
        pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]
        del chunks

        async def replay():  # the body once (not kept after), then the client's own messages (a disconnect, say)
            return pending.pop() if pending else await receive()

        try:
            await self.app(scope, replay, send)
        finally:
            if size > TRIM_AFTER_BYTES:
                await asyncio.to_thread(_give_back_memory)


def _give_back_memory():
    gc.collect()  # the request's objects may sit in reference cycles until a rare full collection
    if _malloc_trim is not None:
        _malloc_trim(0)
