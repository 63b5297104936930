"""Reading a legacy system's tables (SPEC 10): each table is a JSON object of key → row, read into
`Tables`; a `Row` hands out its fields already checked (text, times, enums, references to rows of
other tables), so a malformed value is an error naming its file, key and field. Also the ids
legacy rows map to, and the metadata every imported event carries. No IO here."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, TypeVar
from uuid import UUID

from domain.base import Meta, record_id, stable_id
from domain.errors import InvalidInput

E = TypeVar("E", bound=StrEnum)

NUMBERED: dict[str, tuple[str, str]] = {
    "incidents": ("incident_number", "INC"),
    "problem_tickets": ("problem_number", "PRB"),
    "bridges": ("bridge_number", "BRG"),
    "change_requests": ("change_number", "CHG"),
    "rollback_requests": ("rollback_number", "RBK"),
    "incident_reports": ("report_number", "RPT"),
    "root_cause_analyses": ("rca_number", "RCA"),
}
"""Tables whose rows carry a human number: their records keep it, and its id (`record_id`)."""
COMMAND = "Import"
"""`meta.command` of every imported event."""


class LegacyDataError(InvalidInput):
    """A legacy file that cannot be imported as it is (`import.malformed`): its details name
    the file, the row's key and the field. Nothing of the run is recorded."""

    @property
    def file(self) -> str:
        return str(self.details["file"])

    @property
    def key(self) -> str | None:
        return self.details.get("key")

    @property
    def field(self) -> str | None:
        return self.details.get("field")


def malformed(
    file: str, key: str | None, message: str, field: str | None = None
) -> LegacyDataError:
    """The error for a value that cannot be imported, named by file, key and field."""
    where = file + (f", key {key!r}" if key is not None else "")
    where += f", field {field!r}" if field is not None else ""
    return LegacyDataError(
        "import.malformed", f"{where}: {message}", file=file, key=key, field=field
    )


def legacy_id(table: str, key: str) -> UUID:
    """The id of an unnumbered legacy record: the same in every import of the same row."""
    return stable_id(f"legacy:{table}", key)


def command_id(source: str) -> UUID:
    """Every event imported from one row shares one command id."""
    return stable_id("legacy-command", source)


def meta(source: str, occurred_at: datetime, actor: UUID | None) -> Meta:
    return Meta(
        actor=actor,
        occurred_at=occurred_at,
        command_id=command_id(source),
        command=COMMAND,
        source=source,
    )


def moment(value: Any) -> datetime:
    """A legacy timestamp: ISO 8601 text; a naive one is UTC."""
    if not isinstance(value, str):
        raise ValueError(f"is {value!r}, not an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"is {value!r}, not an ISO 8601 time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _order(key: str) -> tuple[int, int | str]:
    return (0, int(key)) if key.isdigit() else (1, key)


class Tables:
    """The legacy tables, checked for shape: every table an object of key → row object."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data: dict[str, dict[str, dict[str, Any]]] = {}
        for table, rows in data.items():
            if not isinstance(rows, Mapping):
                raise malformed(f"{table}.json", None, "is not a JSON object of key → row")
            for key, row in rows.items():
                if not isinstance(row, Mapping):
                    raise malformed(f"{table}.json", str(key), "the row is not an object")
            self.data[table] = {str(k): dict(v) for k, v in rows.items()}

    def rows(self, table: str) -> Iterator[Row]:
        for key in sorted(self.data.get(table, {}), key=_order):
            yield Row(self, table, key)

    def count(self, table: str) -> int:
        return len(self.data.get(table, {}))

    def has(self, table: str, key: str) -> bool:
        return key in self.data.get(table, {})

    def id(self, table: str, key: str) -> UUID:
        """The id of a row's record: from its number (like the live ledger's) if it has one."""
        if table in NUMBERED:
            return record_id(Row(self, table, key).number())
        return legacy_id(table, key)


class Row:
    """One legacy row, with checked access to its fields."""

    def __init__(self, tables: Tables, table: str, key: str) -> None:
        self.tables = tables
        self.table = table
        self.key = key
        self.data = tables.data[table][key]

    @property
    def source(self) -> str:
        return f"{self.table}:{self.key}"

    @property
    def id(self) -> UUID:
        return self.tables.id(self.table, self.key)

    def error(self, field: str | None, message: str) -> LegacyDataError:
        return malformed(f"{self.table}.json", self.key, message, field)

    def raw(self, field: str) -> Any:
        if field not in self.data:
            raise self.error(field, "is missing")
        return self.data[field]

    def text(self, field: str) -> str:
        value = self.raw(field)
        if not isinstance(value, str):
            raise self.error(field, f"is {value!r}, not text")
        return value

    def opt_text(self, field: str) -> str | None:
        return None if self.raw(field) is None else self.text(field)

    def integer(self, field: str) -> int:
        value = self.raw(field)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(field, f"is {value!r}, not a whole number")
        return value

    def time(self, field: str) -> datetime:
        try:
            return moment(self.raw(field))
        except ValueError as exc:
            raise self.error(field, str(exc)) from None

    def opt_time(self, field: str) -> datetime | None:
        return None if self.raw(field) is None else self.time(field)

    def day(self, field: str) -> date:
        value = self.text(field)
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise self.error(field, f"is {value!r}, not a date (YYYY-MM-DD)") from None

    def opt_day(self, field: str) -> date | None:
        return None if self.raw(field) is None else self.day(field)

    def enum(self, field: str, kind: type[E]) -> E:
        value = self.text(field)
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(sorted(v.value for v in kind))
            raise self.error(field, f"is {value!r}, not one of: {allowed}") from None

    def key_of(self, field: str, table: str) -> str | None:
        """The key of the row a reference names (None for null), checked to exist."""
        value = self.raw(field)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise self.error(field, f"is {value!r}, not a key of {table}.json")
        if not self.tables.has(table, value):
            raise self.error(field, f"names {table}.json key {value!r}, which is not there")
        return value

    def opt_ref(self, field: str, table: str) -> UUID | None:
        key = self.key_of(field, table)
        return None if key is None else self.tables.id(table, key)

    def ref(self, field: str, table: str) -> UUID:
        found = self.opt_ref(field, table)
        if found is None:
            raise self.error(field, f"is null; it must name a row of {table}.json")
        return found

    def linked(self, field: str, table: str) -> Row | None:
        key = self.key_of(field, table)
        return None if key is None else Row(self.tables, table, key)

    def number(self) -> str:
        field, prefix = NUMBERED[self.table]
        value = self.text(field)
        if not re.fullmatch(rf"{prefix}\d{{7}}", value):
            raise self.error(field, f"is {value!r}, not {prefix} and 7 digits")
        return value

    def actor(self, field: str) -> UUID | None:
        """The legacy user who did it (None when the row names nobody)."""
        return self.opt_ref(field, "users")
