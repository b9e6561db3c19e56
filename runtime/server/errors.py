"""OpenAI-shaped errors: every failure answers `{"error": {"message", "type", "param", "code"}}` with a 4xx/5xx
status, and the bearer-key check that guards every endpoint but /health and the chat page."""
import hmac

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException


class APIError(Exception):
    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
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
        return APIError(400, f"request body is not valid JSON: {first.get('ctx', {}).get('error', '')}".rstrip(": "),
                        code="invalid_json")
    loc = [str(part) for part in first.get("loc", ())[1:]
           if not (part in _UNION_TAGS or "[" in str(part) or str(part)[:1].isupper())]
    where = ".".join(loc) or "body"
    return APIError(400, f"{where}: {first.get('msg')}", param=where)


def install_error_handlers(app: FastAPI):
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return _validation_error(exc).response()

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return APIError(exc.status_code, str(exc.detail), type=kind).response()


class BearerAuth:
    """ASGI middleware: every request except `open_paths` and paths under `open_prefix` needs
    `Authorization: Bearer <api_key>` (401 otherwise). It runs before the body is read, so a bad key is refused
    whatever the body holds."""

    def __init__(self, app, api_key: str, open_paths, open_prefix: str):
        self.app, self.expected = app, f"Bearer {api_key}".encode()
        self.open_paths, self.open_prefix = set(open_paths), open_prefix

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] == "http" and path not in self.open_paths and not path.startswith(self.open_prefix):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                error = APIError(401, "invalid or missing API key: send 'Authorization: Bearer <key>'",
                                 type="authentication_error", code="invalid_api_key")
                await error.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)
