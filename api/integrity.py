"""Tamper evidence. Each stored event is chained: its hash is SHA-256 over the previous event's
hash and the event's stored bytes (position, record id, version, topic, state), computed by the
append itself under the events table's lock (api/store.py), so the chain's order is the ledger's.
`verify` recomputes it from the database, or offline from an export, and names the first event
that does not match. A checkpoint is the head (position, hash, count) signed with an Ed25519 key
that lives outside the database: a rewrite of the whole chain cannot match an earlier checkpoint.

The bytes hashed, for an event at `position` (all integers big-endian):
  previous hash (empty for the first event) || position (8 bytes) || record id (16 bytes)
  || version (4 bytes) || length of the UTF-8 topic (4 bytes) || topic || state."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from api.store import CHAIN_TABLE

GENESIS = b""


def link(
    previous: bytes, position: int, record: UUID, version: int, topic: str, state: bytes
) -> bytes:
    """The chain hash of one stored event (the same arithmetic as the append's SQL function)."""
    name = topic.encode()
    header = struct.pack(">q", position) + record.bytes + struct.pack(">ii", version, len(name))
    return hashlib.sha256(previous + header + name + state).digest()


@dataclass(frozen=True)
class Stored:
    """One position of the ledger as stored: the event (None if absent) and its chain hash (None
    if the chain has none)."""

    position: int
    record: UUID | None
    version: int | None
    topic: str | None
    state: bytes | None
    hash: bytes | None


@dataclass(frozen=True)
class Verdict:
    ok: bool
    count: int
    """Events checked."""
    head_position: int | None
    head_hash: str | None
    """Hex hash of the last event checked (the head, when `ok`)."""
    first_bad: dict[str, Any] | None = None
    """The first event that does not match: position, record, type, reason."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check(stored: Iterable[Stored], progress: Any = None) -> Verdict:
    """Walk the ledger in order, recomputing each hash from the one before."""
    previous, count, head = GENESIS, 0, None
    for row in stored:
        reason = None
        if row.topic is None or row.state is None or row.record is None or row.version is None:
            reason = "missing: the chain has an event here that is no longer stored"
        elif row.hash is None:
            reason = "not in the chain: stored without the ledger's append"
        else:
            computed = link(previous, row.position, row.record, row.version, row.topic, row.state)
            if computed != row.hash:
                reason = (
                    "does not match the chain: this event, or the one before it, was altered, "
                    "removed or moved"
                )
        if reason is not None:
            return Verdict(
                ok=False,
                count=count,
                head_position=head,
                head_hash=previous.hex() if head else None,
                first_bad={
                    "position": row.position,
                    "record": None if row.record is None else str(row.record),
                    "version": row.version,
                    "type": None if row.topic is None else row.topic.rpartition(":")[2],
                    "reason": reason,
                },
            )
        assert row.hash is not None
        previous, head, count = row.hash, row.position, count + 1
        if progress is not None and count % 10_000 == 0:
            progress(count)
    return Verdict(
        ok=True, count=count, head_position=head, head_hash=previous.hex() if head else None
    )


CHAIN_QUERY = """
    SELECT coalesce(e.notification_id, c.notification_id) AS position, e.originator_id,
           e.originator_version, e.topic, e.state, c.hash
    FROM {events} e FULL OUTER JOIN {chain} c ON c.notification_id = e.notification_id
    ORDER BY 1"""


@contextmanager
def ledger_as_stored(recorder: Any) -> Iterator[Iterator[Stored]]:
    """The ledger as stored, streamed in order from a server-side cursor (a PostgreSQL
    recorder: its datastore's pool, in one read-only transaction)."""
    datastore = recorder.datastore
    with datastore.get_connection() as conn, conn.transaction():
        conn.execute("SET TRANSACTION READ ONLY")
        schema = datastore.schema or "public"
        yield _walk(
            conn,
            f'"{schema}"."{recorder.events_table_name}"',
            f'"{schema}"."{CHAIN_TABLE}"',
        )


def _walk(conn: Any, events: str, chain: str) -> Iterator[Stored]:
    with conn.cursor(name="integrity_walk") as curs:
        curs.itersize = 2000
        curs.execute(CHAIN_QUERY.format(events=events, chain=chain))
        for row in curs:
            values = list(row.values()) if isinstance(row, dict) else list(row)
            position, record, version, topic, state, hashed = values
            yield Stored(
                position,
                record,
                version,
                topic,
                None if state is None else bytes(state),
                None if hashed is None else bytes(hashed),
            )


# --- export, and verification without the database ----------------------------------------------


def export_line(row: Stored) -> str:
    return json.dumps(
        {
            "position": row.position,
            "record": None if row.record is None else str(row.record),
            "version": row.version,
            "topic": row.topic,
            "state": None if row.state is None else base64.b64encode(row.state).decode(),
            "hash": None if row.hash is None else row.hash.hex(),
        }
    )


def read_export(lines: TextIO) -> Iterator[Stored]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            yield Stored(
                int(data["position"]),
                None if data["record"] is None else UUID(data["record"]),
                data["version"],
                data["topic"],
                None if data["state"] is None else base64.b64decode(data["state"]),
                None if data["hash"] is None else bytes.fromhex(data["hash"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"line {number} of the export is not an exported event: {exc}"
            ) from exc


# --- signed checkpoints --------------------------------------------------------------------------


def new_key() -> tuple[bytes, bytes]:
    """A new Ed25519 key pair as PEM: (private, public)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return private, public_pem(key)


def public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key


def _signed_bytes(checkpoint: dict[str, Any]) -> bytes:
    fields = {k: checkpoint[k] for k in ("position", "hash", "count", "signed_at")}
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def sign_checkpoint(verdict: Verdict, key: Ed25519PrivateKey) -> dict[str, Any]:
    """The head of a verified ledger, signed."""
    if not verdict.ok:
        raise ValueError("the ledger does not verify: no checkpoint is signed over a broken chain")
    checkpoint: dict[str, Any] = {
        "position": verdict.head_position,
        "hash": verdict.head_hash,
        "count": verdict.count,
        "signed_at": datetime.now(UTC).isoformat(),
    }
    checkpoint["signature"] = base64.b64encode(key.sign(_signed_bytes(checkpoint))).decode()
    checkpoint["public_key"] = public_pem(key).decode()
    return checkpoint


def check_checkpoint(
    checkpoint: dict[str, Any], public_key: Ed25519PublicKey, stored: Iterable[Stored]
) -> tuple[bool, str]:
    """Whether the checkpoint's signature holds and the ledger (verified as it is walked) still
    holds the checkpoint's head: the same hash at its position, after as many events."""
    try:
        public_key.verify(base64.b64decode(checkpoint["signature"]), _signed_bytes(checkpoint))
    except (InvalidSignature, KeyError, ValueError):
        return False, "the checkpoint's signature does not verify with this public key"

    def upto() -> Iterator[Stored]:
        for row in stored:
            if row.position > checkpoint["position"]:
                return
            yield row

    verdict = check(upto())
    if not verdict.ok:
        return False, f"the ledger does not verify: {verdict.first_bad}"
    if verdict.head_position != checkpoint["position"] or verdict.head_hash != checkpoint["hash"]:
        return False, (
            f"the checkpoint's head (position {checkpoint['position']}, hash "
            f"{checkpoint['hash']}) is not in this ledger (it has {verdict.head_position}, "
            f"{verdict.head_hash})"
        )
    if verdict.count != checkpoint["count"]:
        return False, f"{verdict.count} events up to the checkpoint, signed: {checkpoint['count']}"
    return True, f"checkpoint at position {checkpoint['position']} holds ({verdict.count} events)"
