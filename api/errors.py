"""One table from errors to HTTP answers: every refusal is JSON with a stable dotted `code`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from api.availability import CONNECTION_ERRORS, DatabaseUnavailable, one_line
from domain.base import LedgerError

log = logging.getLogger("incident_ledger.api")


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


async def _database_unavailable(_: Request, exc: Exception) -> JSONResponse:
    """PostgreSQL unreachable or lost mid-request: 503 with the usual JSON shape (and, for
    /health, its usual keys), never a 500 after the pool's 30 s wait."""
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
        return JSONResponse(
            status_code=exc.status,
            content={"code": exc.code, "message": exc.message, **exc.details},
            headers={"WWW-Authenticate": "Bearer"} if exc.status == 401 else None,
        )

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _invalid(_field_errors(exc.errors()))

    @app.exception_handler(ValidationError)
    async def command_invalid(_: Request, exc: ValidationError) -> JSONResponse:
        return _invalid(_field_errors(exc.errors()))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "route.not_found", 405: "route.method_not_allowed"}.get(
            exc.status_code, "http.error"
        )
        return JSONResponse(
            status_code=exc.status_code, content={"code": code, "message": str(exc.detail)}
        )

    for error in CONNECTION_ERRORS:
        app.add_exception_handler(error, _database_unavailable)
