"""The auditors' commands: verify (online, or offline from an export), checkpoint, export and
keygen."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from api.integrity import (
    Stored,
    Verdict,
    check,
    check_checkpoint,
    export_line,
    ledger_as_stored,
    load_private,
    load_public,
    new_key,
    read_export,
    sign_checkpoint,
)
from api.settings import Settings


@contextmanager
def _stored(settings: Settings) -> Iterator[Iterator[Stored]]:
    """The ledger as stored, read as the connecting user (no migration, no DDL)."""
    from api.database import require_schema, resolve_database
    from api.service import Service

    db = resolve_database(settings)
    try:
        require_schema(db)
        service = Service.open(settings, db, roles=None)
    except BaseException:
        db.close()
        raise
    try:
        with ledger_as_stored(service.ledger.recorder) as stored:
            yield stored
    finally:
        service.close()


def _progress(count: int) -> None:
    print(f"  {count} events checked ...", flush=True)


def _report(verdict: Verdict) -> int:
    if verdict.ok:
        print(
            f"verified: {verdict.count} events, head at position {verdict.head_position}, "
            f"hash {verdict.head_hash}",
            flush=True,
        )
        return 0
    bad = verdict.first_bad or {}
    print(
        f"NOT VERIFIED: event at position {bad.get('position')} (record {bad.get('record')} "
        f"v{bad.get('version')}, {bad.get('type')}): {bad.get('reason')}. "
        f"{verdict.count} events before it verify.",
        flush=True,
    )
    return 1


def verify(args: argparse.Namespace, settings: Settings) -> int:
    checkpoint = json.loads(Path(args.checkpoint).read_text()) if args.checkpoint else None
    if checkpoint is not None and not args.public_key:
        print("verify --checkpoint needs --public-key (the signer's public key)", file=sys.stderr)
        return 2
    if args.offline:
        print(f"verifying the export {args.offline} (no database) ...", flush=True)

        def rows() -> Iterator[Stored]:
            with open(args.offline, encoding="utf-8") as lines:
                yield from read_export(lines)

        return _verify(rows, checkpoint, args.public_key)
    print("verifying the hash chain of every stored event ...", flush=True)

    def from_database() -> Iterator[Stored]:
        with _stored(settings) as stored:
            yield from stored

    return _verify(from_database, checkpoint, args.public_key)


def _verify(rows: Any, checkpoint: dict[str, Any] | None, public_key: str | None) -> int:
    status = _report(check(rows(), progress=_progress))
    if checkpoint is not None and public_key is not None:
        holds, why = check_checkpoint(checkpoint, load_public(Path(public_key)), rows())
        print(("checkpoint holds: " if holds else "CHECKPOINT FAILS: ") + why, flush=True)
        status = status or (0 if holds else 1)
    return status


def checkpoint(args: argparse.Namespace, settings: Settings) -> int:
    key_file = Path(args.key) if args.key else settings.signing_key_file
    if key_file is None:
        print(
            "checkpoint needs a signing key: --key FILE or INCIDENT_LEDGER_SIGNING_KEY_FILE "
            "(make one with `incident-ledger keygen`)",
            file=sys.stderr,
        )
        return 2
    key = load_private(key_file)
    with _stored(settings) as stored:
        verdict = check(stored, progress=_progress)
    if _report(verdict):
        return 1
    signed = json.dumps(sign_checkpoint(verdict, key), indent=2)
    if args.out:
        Path(args.out).write_text(signed + "\n")
        print(f"checkpoint written to {args.out}", flush=True)
    else:
        print(signed, flush=True)
    return 0


def export(args: argparse.Namespace, settings: Settings) -> int:
    count = 0
    with _stored(settings) as stored, open(args.events, "w", encoding="utf-8") as out:
        for row in stored:
            out.write(export_line(row) + "\n")
            count += 1
            if count % 10_000 == 0:
                _progress(count)
    print(f"exported {count} events to {args.events}", flush=True)
    return 0


def keygen(args: argparse.Namespace, settings: Settings) -> int:
    private, public = new_key()
    base = Path(args.out)
    private_path, public_path = base.with_suffix(".pem"), base.with_suffix(".pub.pem")
    if private_path.exists():
        print(f"{private_path} exists; not overwritten", file=sys.stderr)
        return 2
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private)
    public_path.write_bytes(public)
    print(
        f"private key: {private_path} (keep it off the database's machine); public key: "
        f"{public_path} (give it to auditors)",
        flush=True,
    )
    return 0


def replay(args: argparse.Namespace, settings: Settings) -> int:
    """A record's history as a story, from its events (never a view)."""
    from datetime import datetime

    from api.database import require_schema, resolve_database
    from api.service import Service
    from domain.base import Aggregate, DomainEvent
    from domain.context import resolve
    from domain.user import User
    from projections.folds import changes_of

    as_of = datetime.fromisoformat(args.as_of) if args.as_of else None
    if as_of is not None and as_of.tzinfo is None:
        print("--as-of needs a time zone, e.g. 2026-01-31T09:30:00Z", file=sys.stderr)
        return 2
    db = resolve_database(settings)
    try:
        require_schema(db)
        service = Service.open(settings, db, roles=None)
    except BaseException:
        db.close()
        raise
    try:
        ledger = service.ledger
        record_id = resolve(args.record, "record")
        events = cast(list[DomainEvent], list(ledger.events.get(record_id)))
        if not events:
            print(f"no record {args.record}", file=sys.stderr)
            return 1
        shown = 0
        for event in events:
            meta = event.meta
            basis = event.timestamp if args.as_of_basis == "recorded" else meta.occurred_at
            if as_of is not None and basis > as_of:
                break
            actor = ledger.get_or_none(meta.actor) if meta.actor else None
            who = (
                f"{actor.full_name} ({actor.role.value})"
                if isinstance(actor, User)
                else "the ledger"
            )
            changes = "; ".join(
                f"{field}: {before!r} → {after!r}" if before is not None else f"{field}: {after!r}"
                for field, (before, after) in changes_of(event).items()
            )
            print(
                f"v{event.originator_version} {meta.occurred_at.isoformat()} "
                f"(recorded {event.timestamp.isoformat()}) {who} — "
                f"{type(event).__qualname__} via {meta.command}: {changes}",
                flush=True,
            )
            shown += 1
        if shown == 0:
            print(f"{args.record} did not exist yet at {args.as_of}", file=sys.stderr)
            return 1
        state: Aggregate = ledger.repository.get(
            record_id, version=events[shown - 1].originator_version
        )
        print(f"state after version {shown}: {json.dumps(state.state(), indent=2)}", flush=True)
    finally:
        service.close()
    return 0


def add_commands(add: Any) -> None:
    """Register the commands on the CLI's parser (`add(name, func, help)` → subparser)."""
    p = add(
        "verify",
        _with_settings(verify),
        "Recompute the hash chain of every stored event and name the first that does not "
        "match; exit 1 if one does not.",
    )
    p.add_argument("--offline", metavar="EXPORT", help="verify an export (no database)")
    p.add_argument("--checkpoint", metavar="FILE", help="also check this signed checkpoint")
    p.add_argument("--public-key", metavar="PEM", help="the checkpoint signer's public key")
    p = add(
        "checkpoint",
        _with_settings(checkpoint),
        "Verify the ledger, then sign its head (position, hash, count) with an Ed25519 key.",
    )
    p.add_argument("--key", help="private key PEM (default INCIDENT_LEDGER_SIGNING_KEY_FILE)")
    p.add_argument("--out", help="write the checkpoint here (default: print it)")
    p = add(
        "export",
        _with_settings(export),
        "Write every stored event with its chain hash as NDJSON (for verify --offline).",
    )
    p.add_argument("--events", required=True, metavar="FILE", help="the NDJSON file to write")
    p = add(
        "replay",
        _with_settings(replay),
        "Tell a record's history from its events: who did what, when, what changed; then its "
        "state (as of a moment with --as-of).",
    )
    p.add_argument("record", help="the record's number (INC0000042) or id")
    p.add_argument("--as-of", help="stop at this moment (ISO 8601 with a time zone)")
    p.add_argument(
        "--as-of-basis",
        choices=["recorded", "occurred"],
        default="recorded",
        help="compare --as-of with when each event was recorded (default) or happened",
    )
    p = add("keygen", _with_settings(keygen), "Make an Ed25519 key pair for checkpoints.")
    p.add_argument("--out", required=True, help="path prefix: writes PREFIX.pem, PREFIX.pub.pem")


def _with_settings(func: Any) -> Any:
    from api.cli import _settings

    return lambda args: func(args, _settings(args))
