"""Streamed exports: JSON, CSV and NDJSON written row by row as they are read (never built in
memory), with CSV cells that a spreadsheet would run as a formula made inert."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

from fastapi.responses import StreamingResponse
from pydantic_core import to_jsonable_python

Format = Literal["json", "csv", "ndjson"]
MEDIA = {"json": "application/json", "csv": "text/csv", "ndjson": "application/x-ndjson"}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """A CSV cell: JSON for structures, and text a spreadsheet would evaluate (`=SUM(...)`,
    `+1`, `-1`, `@x`) prefixed with a quote so it stays text."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        text = json.dumps(to_jsonable_python(value), sort_keys=True)
    else:
        plain = to_jsonable_python(value)
        text = plain if isinstance(plain, str) else json.dumps(plain)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv(rows: Iterable[dict[str, Any]], fields: Sequence[str]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(fields)
    yield flush()
    for row in rows:
        writer.writerow([safe_cell(row.get(field)) for field in fields])
        yield flush()


def _ndjson(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(to_jsonable_python(row)) + "\n"


def _json(rows: Iterable[dict[str, Any]], head: dict[str, Any], key: str) -> Iterator[str]:
    opening = json.dumps(to_jsonable_python(head))[:-1]
    yield (opening + ", " if head else "{") + json.dumps(key) + ": ["
    for n, row in enumerate(rows):
        yield ("," if n else "") + json.dumps(to_jsonable_python(row))
    yield "]}"


def export(
    rows: Iterable[dict[str, Any]],
    format: Format,
    *,
    fields: Sequence[str],
    filename: str,
    head: dict[str, Any] | None = None,
    key: str = "items",
    headers: dict[str, str] | None = None,
) -> StreamingResponse:
    """Stream `rows` as JSON (`{**head, key: [rows]}`), CSV (`fields` in order) or NDJSON."""
    if format == "csv":
        body: Iterator[str] = _csv(rows, fields)
    elif format == "ndjson":
        body = _ndjson(rows)
    else:
        body = _json(rows, head or {}, key)
    disposition = (
        {}
        if format == "json"
        else {"Content-Disposition": f'attachment; filename="{filename}.{format}"'}
    )
    return StreamingResponse(
        body, media_type=MEDIA[format], headers={**disposition, **(headers or {})}
    )
