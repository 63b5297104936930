"""One table from errors to HTTP answers: every refusal is JSON with a stable dotted `code`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException

from api.availability import (
    CONNECTION_ERRORS,
    DatabaseBusy,
    DatabaseUnavailable,
    one_line,
    timed_out,
)
from api.store import AppendTooLarge
from api.throttle import TooManyFailures
from domain.errors import (
    ConcurrencyConflict,
    Forbidden,
    InvalidInput,
    LedgerError,
    NotFound,
    RuleViolation,
    Unauthenticated,
)
from projections.waiting import ViewUnavailable

log = logging.getLogger("incident_ledger.api")


class PreconditionFailed(LedgerError):
    """An `If-Match` header named a version the record is not at (or is not a version)."""


STATUS: dict[type[LedgerError], int] = {
    ViewUnavailable: 503,
    AppendTooLarge: 413,
    TooManyFailures: 429,
    PreconditionFailed: 412,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    RuleViolation: 409,
    ConcurrencyConflict: 409,
    InvalidInput: 422,
}
"""Each refusal type's HTTP status: the one place where domain errors meet HTTP."""


def status_of(exc: LedgerError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


class ErrorBody(BaseModel):
    """Every refusal: a stable dotted code, a message a person can act on, and details."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(examples=["incident.not_open"])
    message: str
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="422 only: one entry per invalid field (field, message, type)."
    )
    current_version: int | None = Field(
        default=None, description="409 concurrency refusals: the record's current version."
    )


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No API key, or a key that is not valid."},
    403: {"model": ErrorBody, "description": "Your role (or account state) does not allow it."},
    404: {"model": ErrorBody, "description": "A record named does not exist."},
    409: {"model": ErrorBody, "description": "A rule refuses it, or the record changed."},
    413: {
        "model": ErrorBody,
        "description": "The request body, or the events it would append, is over the limit.",
    },
    422: {"model": ErrorBody, "description": "Malformed input; `errors` names each field."},
    429: {
        "model": ErrorBody,
        "description": "Too many failed authentications from this client; see Retry-After.",
    },
    503: {
        "model": ErrorBody,
        "description": "PostgreSQL is unreachable (`database.unavailable`) or a statement timed "
        "out (`database.busy`, nothing written); see Retry-After.",
    },
}
"""The documented refusals of every route (OpenAPI)."""


def _field_errors(errors: Any) -> list[dict[str, Any]]:
    out = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body",)]
        out.append(
            {"field": ".".join(loc) or None, "message": error.get("msg"), "type": error.get("type")}
        )
    return out


def _invalid(errors: list[dict[str, Any]]) -> JSONResponse:
    summary = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in errors)
    return JSONResponse(
        status_code=422,
        content={
            "code": "request.invalid",
            "message": f"Invalid request: {summary}",
            "errors": errors,
        },
    )


def _headers(exc: LedgerError, status: int) -> dict[str, str] | None:
    headers = {"Idempotent-Replayed": "true"} if exc.details.get("replayed") else {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status == 429:
        headers["Retry-After"] = str(exc.details.get("retry_after", 60))
    return headers or None


async def _database_unavailable(_: Request, exc: Exception) -> JSONResponse:
    """PostgreSQL unreachable or lost mid-request: 503 with the usual JSON shape (and, for
    /health, its usual keys), never a 500 after the pool's 30 s wait. A statement that timed
    out (a lock held too long, a runaway query) is 503 `database.busy`: nothing was written."""
    if isinstance(exc, DatabaseBusy) or timed_out(exc):
        log.warning("database busy: %s", one_line(exc))
        return JSONResponse(
            status_code=503,
            content={
                "code": "database.busy",
                "message": "The database is busy and this request timed out; nothing was "
                "written. Try again shortly.",
            },
            headers={"Retry-After": "1"},
        )
    reason = exc.reason if isinstance(exc, DatabaseUnavailable) else one_line(exc)
    details = exc.details if isinstance(exc, DatabaseUnavailable) else {}
    log.warning("database unavailable: %s", reason)
    return JSONResponse(
        status_code=503,
        content={
            **details,
            "code": "database.unavailable",
            "message": "The database is unavailable; try again shortly.",
        },
        headers={"Retry-After": "2"},
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(LedgerError)
    async def ledger_error(_: Request, exc: LedgerError) -> JSONResponse:
        log.info("refused %s: %s", exc.code, exc.message)
        status = status_of(exc)
        return JSONResponse(
            status_code=status,
            content={"code": exc.code, "message": exc.message, **exc.details},
            headers=_headers(exc, status),
        )

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _invalid(_field_errors(exc.errors()))

    @app.exception_handler(ValidationError)
    async def command_invalid(_: Request, exc: ValidationError) -> JSONResponse:
        return _invalid(_field_errors(exc.errors()))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI could not read the body (not UTF-8): malformed input
            return _invalid(
                [{"field": None, "message": "the body is not UTF-8 JSON", "type": "json_invalid"}]
            )
        code = {404: "route.not_found", 405: "route.method_not_allowed"}.get(
            exc.status_code, "http.error"
        )
        return JSONResponse(
            status_code=exc.status_code, content={"code": code, "message": str(exc.detail)}
        )

    for error in (*CONNECTION_ERRORS, DatabaseBusy):
        app.add_exception_handler(error, _database_unavailable)
    app.add_exception_handler(Exception, _internal_error)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    """Anything unforeseen: logged with its traceback, answered in the usual JSON shape."""
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        status_code=500,
        content={
            "code": "internal.error",
            "message": "Something went wrong on our side; it has been logged.",
        },
    )
