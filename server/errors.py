"""Errors as values in the OpenAI shape, and the app-wide handlers that make every
failure — validation, unknown route, our own errors — look the same to clients."""

from __future__ import annotations

import logging
import sys

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.errors import (
    BackendBusy,
    BackendError,
    ConversationNotFound,
    HandoffStateError,
    InvalidRequest,
    LeptonError,
    UnknownSkill,
)
from retrieval.errors import RetrievalError

from .protocol import error_body

__all__ = ["ApiError", "api_error_from", "validation_message", "install_error_handlers"]

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error response ready to send."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return error_body(self.message, self.type, self.param, self.code)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def api_error_from(exc: Exception) -> ApiError:
    """Translate any exception into the error the client sees."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, InvalidRequest):
        return ApiError(400, str(exc), param=exc.param)
    if isinstance(exc, UnknownSkill):
        return ApiError(404, str(exc), param="model", code="model_not_found")
    if isinstance(exc, ConversationNotFound):
        return ApiError(404, str(exc), param="lepton.conversation_id", code="conversation_not_found")
    if isinstance(exc, HandoffStateError):
        return ApiError(409, str(exc), param="conversation_id", code="handoff_state")
    if isinstance(exc, BackendBusy):
        return ApiError(503, f"The model is busy, retry shortly ({exc})", "server_error", code="backend_busy",
                        headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, BackendError):
        return ApiError(503, f"The model backend is unavailable ({exc})", "server_error",
                        code="backend_unavailable", headers={"Retry-After": "5"})
    if isinstance(exc, RetrievalError):
        # Routes that search on the caller's behalf (admin) translate their own; one that
        # reaches here failed inside a turn: the knowledge store, not the request, is at fault.
        log.error("knowledge store failed during a turn: %s", exc)
        return ApiError(503, f"The knowledge store is unavailable ({exc})", "server_error",
                        code="knowledge_unavailable", headers={"Retry-After": "5"})
    if isinstance(exc, LeptonError):
        return ApiError(400, str(exc))
    if _database_unreachable(exc):
        # The connection is opened again on the next request (assistant.database).
        log.error("the records database failed: %s", exc)
        return ApiError(503, "The records database is unavailable, retry shortly", "server_error",
                        code="database_unavailable", headers={"Retry-After": "2"})
    log.exception("unexpected error", exc_info=exc)
    return ApiError(500, "Internal server error", "server_error")


def _database_unreachable(exc: Exception) -> bool:
    """PostgreSQL's connection failed or was lost (psycopg's OperationalError)."""
    psycopg = sys.modules.get("psycopg")  # imported only when the records are in PostgreSQL
    return psycopg is not None and isinstance(exc, psycopg.OperationalError)


def validation_message(exc: ValidationError | RequestValidationError) -> tuple[str, str | None]:
    """First validation problem as 'param: message', with the param path."""
    errors = exc.errors()
    if not errors:
        return "invalid request body", None
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body",)]
    param = ".".join(loc) or None
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON", None
    if first.get("type") == "missing":
        return f"'{param}' is required", param
    message = first.get("msg", "invalid value")
    extra = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return (f"{param}: {message}{extra}" if param else message + extra), param


def _endpoints(app: FastAPI) -> str:
    """The API's endpoints, as an unknown path's 404 lists them (e.g. for a client that
    tried /v1/completions: chat completions is the one to use)."""
    listed = []
    for route in app.routes:
        path = getattr(route, "path", "")
        if path.startswith("/v1/"):
            listed += [f"{method} {path}" for method in sorted(getattr(route, "methods", None) or ()) if method != "HEAD"]
    return ", ".join(listed)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = validation_message(exc)
        return ApiError(400, message, param=param).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404 and exc.detail == "Not Found":  # no route has this path
            return ApiError(404, f"{request.method} {request.url.path} is not an endpoint of this server; "
                                 f"it serves {_endpoints(request.app)}", code="unknown_endpoint").response()
        type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return ApiError(exc.status_code, str(exc.detail), type_, headers=dict(exc.headers or {})).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return api_error_from(exc).response()
