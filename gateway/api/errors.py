"""Every error of the API is JSON with a clear message: `{"error": {"status", "code", "message"}}`.

Clients (the console, scripts) show `message` as it is, so it says what went wrong in words a duty
technician understands; `code` is stable for programs.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rules.alarms import TransitionRefused, UnknownAlarm

CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "invalid",
    429: "throttled",
    503: "unavailable",
}


class ApiError(Exception):
    """Raised by routes: becomes a JSON error response."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.details, self.headers = status, message, details, headers


def error_body(status: int, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {
        "status": status,
        "code": CODES.get(status, "error"),
        "message": message,
    }
    if details is not None:
        error["details"] = details
    return {"error": error}


def _response(
    status: int, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(status, message, details), status_code=status, headers=headers)


def _validation_message(errors: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    details = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body",))
        details.append({"field": where, "message": error.get("msg", "invalid")})
    first = details[0] if details else {"field": "", "message": "invalid input"}
    return f"invalid input: {first['field'] or 'request'}: {first['message']}", details


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return _response(exc.status, exc.message, exc.details, exc.headers)

    async def unknown_alarm(_: Request, exc: Exception) -> JSONResponse:
        return _response(404, f"no alarm {exc.args[0] if exc.args else ''!s}")

    async def refused(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TransitionRefused)
        return _response(409, str(exc), {"alarm": exc.alarm_id, "state": str(exc.state)})

    async def validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        message, details = _validation_message(list(exc.errors()))
        return _response(422, message, details)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        message = str(exc.detail) if exc.detail else CODES.get(status, "error")
        if status == 404 and message == "Not Found":
            message = "no such route"
        return _response(status, message, headers=dict(exc.headers or {}) or None)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(UnknownAlarm, unknown_alarm)
    app.add_exception_handler(TransitionRefused, refused)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
