"""CSV answers of the analysts' reads: one header of every column met, text cells a spreadsheet
would run as a formula (starting with =, +, -, @, tab or carriage return) quoted with `'`."""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi.responses import PlainTextResponse

from api.queries import VIEW_POSITION


def _safe(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, quoted."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_answer(rows: list[dict[str, Any]], filename: str, position: int) -> PlainTextResponse:
    out = io.StringIO()
    fields = list(dict.fromkeys(name for row in rows for name in row))
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _safe(v) for k, v in row.items()})
    return PlainTextResponse(
        out.getvalue(),
        media_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            VIEW_POSITION: str(position),
        },
    )


def flat(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested JSON object as one row: `response.status` becomes `response_status`; lists
    (provenance) are left out."""
    cells: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            cells |= flat(value, f"{prefix}{key}_")
        elif not isinstance(value, list):
            plain = value is None or isinstance(value, int | float | bool)
            cells[f"{prefix}{key}"] = value if plain else str(value)
    return cells
