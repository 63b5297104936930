"""`incident-ledger import PATH` as a library call: read a legacy folder (SPEC 10; 22 tables, one
JSON object of key → row each), plan its records and events (domain/legacy, pure), find what the
ledger already holds, and append the rest in batches, each one append below MAX_APPEND_BYTES.

Nothing is appended before the whole folder has been read, checked and planned, and the plan
checked against the ledger: a malformed file (named with its key and field) or a conflict with
records the ledger holds from elsewhere records nothing. An append that fails midway (the
database went away) leaves whole batches recorded; running the import again resumes: every
record is skipped up to the version the ledger holds, so the same folder imported twice
appends nothing the second time."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from eventsourcing.persistence import Mapper, StoredEvent
from psycopg.sql import SQL, Identifier

from api.store import MAX_APPEND_BYTES, AppendTooLarge
from domain.base import DomainEvent
from domain.ledger import IncidentLedger
from domain.legacy import (
    DEFERRED,
    TABLES,
    Plan,
    Stored,
    TableCounts,
    follow_ups,
    plan_import,
    tally,
    to_append,
)
from domain.legacy.rows import malformed
from domain.numbering import Counter
from domain.user import AdministratorRoster

Progress = Callable[[str], None]
BATCH_BYTES = 128 * 1024
"""Default size of one append of an import (stored state and topic): a quarter of
MAX_APPEND_BYTES, because the statement carries each state hex-encoded (twice its size) and
psycopg's pipeline hangs near 1 MB: measured with the reference folder, appends of 256 KiB
committed and appends of 384 KiB hung."""


@dataclass
class ImportSummary:
    """What one import run did."""

    path: str
    tables: dict[str, TableCounts]
    events: int
    """Events appended by this run."""
    appends: int
    planned: int
    """Events the folder makes in all (appended now or by an earlier run)."""
    seconds: float
    findings: dict[str, list[str]] = field(default_factory=dict)

    @property
    def nothing_new(self) -> bool:
        return self.events == 0


def read_folder(path: Path) -> dict[str, Any]:
    """Each table's JSON; a missing or unreadable file is an `import.malformed` error naming it."""
    if not path.is_dir():
        raise malformed(str(path), None, "is not a folder of legacy tables")
    data: dict[str, Any] = {}
    for table in TABLES:
        file = path / f"{table}.json"
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise malformed(file.name, None, "is missing from the folder") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise malformed(file.name, None, f"cannot be read: {exc}") from None
        try:
            data[table] = json.loads(text)
        except json.JSONDecodeError as exc:
            raise malformed(
                file.name, None, f"is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                f"{exc.msg})"
            ) from None  # fmt: skip
    return data


def import_folder(
    target: Any,
    path: str | Path,
    *,
    progress: Progress | None = None,
    batch_bytes: int = BATCH_BYTES,
    deferred: frozenset[str] = DEFERRED,
) -> ImportSummary:
    """Import the legacy folder at `path` into `target` (a Service or an IncidentLedger), as the
    ledger itself (a system operation: no acting user), in appends of at most `batch_bytes`
    (never over MAX_APPEND_BYTES). Reports progress lines to `progress`."""
    if not 0 < batch_bytes <= MAX_APPEND_BYTES:
        raise ValueError(f"batch_bytes must be between 1 and {MAX_APPEND_BYTES}")
    ledger: IncidentLedger = getattr(target, "ledger", target)
    say = progress or (lambda _line: None)
    started = time.perf_counter()
    folder = Path(path)
    data = read_folder(folder)
    plan = plan_import(data, deferred)
    rows = sum(plan.rows.values())
    say(f"read {rows} rows of {len(TABLES)} tables from {folder}; they make "
        f"{len(plan.events)} events of {len(plan.sources)} records")  # fmt: skip
    stored = stored_heads(ledger, list(plan.sources))
    events = to_append(plan, stored)
    moved = follow_ups(plan, *_shared(ledger, plan))
    follow = [e for record in moved for e in cast(list[DomainEvent], record.collect_events())]
    todo = events + follow
    if not todo:
        say(f"nothing to import: the ledger holds every record of {folder} already "
            "(imported before); appended nothing")  # fmt: skip
    elif stored:
        say(f"{len(plan.events) - len(events)} of those events are in the ledger already; "
            f"appending the other {len(events)}")  # fmt: skip
    done, appends = 0, 0
    for batch in batches(ledger.mapper, todo, batch_bytes):
        ledger.save(*batch)
        done, appends = done + len(batch), appends + 1
        say(_progress_line(done, len(todo), time.perf_counter() - started))
    for record in moved:
        ledger.get_or_none(record.id)  # this process's cached copy catches up
    return ImportSummary(
        path=str(folder),
        tables=tally(plan, events, follow),
        events=done,
        appends=appends,
        planned=len(plan.events),
        seconds=time.perf_counter() - started,
        findings=plan.findings,
    )


def _progress_line(done: int, total: int, elapsed: float) -> str:
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = (total - done) / rate if rate else 0.0
    return (
        f"  {done}/{total} events ({100 * done // max(total, 1)}%), "
        f"{rate:,.0f} events/s, ETA {eta:.1f} s"
    )


def _shared(
    ledger: IncidentLedger, plan: Plan
) -> tuple[dict[str, Counter | None], AdministratorRoster | None, list[DomainEvent]]:
    counters: dict[str, Counter | None] = {}
    for prefix in plan.numbers:
        found = ledger.get_or_none(Counter.create_id(prefix))
        counters[prefix] = found if isinstance(found, Counter) else None
    roster_id = AdministratorRoster.create_id()
    roster = ledger.get_or_none(roster_id)
    history = cast(list[DomainEvent], list(ledger.events.get(roster_id)))
    return counters, roster if isinstance(roster, AdministratorRoster) else None, history


def batches(
    mapper: Mapper[Any], events: Sequence[DomainEvent], limit: int
) -> Iterator[list[DomainEvent]]:
    """Consecutive events in appends of at most `limit` bytes (stored state and topic, as the
    recorder measures them)."""
    batch: list[DomainEvent] = []
    size = 0
    for event in events:
        stored = mapper.to_stored_event(event)
        n = len(stored.state) + len(stored.topic)
        if n > limit:
            raise AppendTooLarge(
                "append.too_large",
                f"{event.meta.source}: one event of {n} bytes is over the {limit} bytes an "
                "append may hold.",
                size=n,
                limit=limit,
            )
        if batch and size + n > limit:
            yield batch
            batch, size = [], 0
        batch.append(event)
        size += n
    if batch:
        yield batch


def stored_heads(ledger: IncidentLedger, ids: Iterable[UUID]) -> dict[UUID, Stored]:
    """For each of `ids` the ledger holds: its version and the source of its first event."""
    wanted = list(ids)
    recorder: Any = ledger.recorder
    if hasattr(recorder, "datastore"):
        return _stored_heads_sql(ledger, recorder, wanted)
    found: dict[UUID, Stored] = {}
    for record_id in wanted:  # the in-memory store
        last = recorder.select_events(record_id, desc=True, limit=1)
        if last:
            first = recorder.select_events(record_id, lte=1)
            found[record_id] = Stored(last[0].originator_version, _source(ledger, first[0]))
    return found


def _stored_heads_sql(ledger: IncidentLedger, recorder: Any, ids: list[UUID]) -> dict[UUID, Stored]:
    table = SQL("{}.{}").format(
        Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name)
    )
    with recorder.datastore.transaction(commit=False) as curs:
        curs.execute(
            SQL(
                "SELECT originator_id, max(originator_version) AS version FROM {} "
                "WHERE originator_id = ANY(%s::uuid[]) GROUP BY originator_id"
            ).format(table),
            (ids,),
        )
        versions = {row["originator_id"]: row["version"] for row in curs.fetchall()}
        if not versions:
            return {}
        curs.execute(
            SQL(
                "SELECT originator_id, topic, state FROM {} "
                "WHERE originator_id = ANY(%s::uuid[]) AND originator_version = 1"
            ).format(table),
            (list(versions),),
        )
        firsts = {
            row["originator_id"]: StoredEvent(
                originator_id=row["originator_id"],
                originator_version=1,
                topic=row["topic"],
                state=bytes(row["state"]),
            )
            for row in curs.fetchall()
        }
    return {
        record_id: Stored(
            version, _source(ledger, firsts[record_id]) if record_id in firsts else None
        )
        for record_id, version in versions.items()
    }


def _source(ledger: IncidentLedger, stored: StoredEvent) -> str | None:
    try:
        event = ledger.mapper.to_domain_event(stored)
    except Exception:  # a stored event of another kind: certainly not this import's
        return None
    meta = getattr(event, "meta", None)
    return getattr(meta, "source", None)
