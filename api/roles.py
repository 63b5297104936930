"""The two roles the service logs in as, and what each may do: the API's role appends events and
writes command records but only reads the views; the projector's role writes the views and their
tracking but only reads the events. Neither is a superuser nor a member of any role, so a session
cannot become anyone else. Passwords come from the settings or are generated once into the data
directory (mode 0600); the migration sets them, as SCRAM verifiers (no plaintext in statements)."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.sql import SQL, Composed, Identifier, Literal

from api.settings import Settings
from api.store import CHAIN_TABLE, COMMANDS_TABLE, IDEMPOTENCY_TABLE
from projections.views import VIEW_TABLES

EVENTS_TABLE = "incidentledger_events"
SNAPSHOTS_TABLE = "incidentledger_snapshots"
"""Counters' snapshots (domain/base.py RecordSnapshot): the API reads and adds them; nobody
changes one (the owner may delete them: records load from their events without them)."""
SCHEMA_TABLE = "ledger_schema"
PASSWORD_FILE = "role-passwords.json"
IMMUTABLE_TABLES = (EVENTS_TABLE, COMMANDS_TABLE, CHAIN_TABLE)
"""The ledger's own records: triggers refuse UPDATE, DELETE and TRUNCATE for everyone."""


@dataclass(frozen=True, repr=False)
class Login:
    role: str
    password: str

    def __repr__(self) -> str:
        return f"Login({self.role})"


@dataclass(frozen=True)
class ServiceRoles:
    api: Login
    projector: Login

    @classmethod
    def of(cls, settings: Settings, data_dir: Path) -> ServiceRoles:
        """The roles named in the settings, each with its password from the settings or, if
        not set there, from PASSWORD_FILE in `data_dir` (generated on first use)."""
        given = {
            settings.app_role: settings.app_password,
            settings.projector_role: settings.projector_password,
        }
        missing = [role for role, password in given.items() if password is None]
        stored = stored_passwords(data_dir / PASSWORD_FILE, missing) if missing else {}

        def login(role: str) -> Login:
            password = given[role]
            return Login(role, password.get_secret_value() if password else stored[role])

        return cls(login(settings.app_role), login(settings.projector_role))


def stored_passwords(path: Path, roles: list[str]) -> dict[str, str]:
    """The passwords kept in `path` for `roles`, generating those it lacks. Locked, so that
    processes starting together agree; readable by this user only."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+", encoding="utf-8") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        os.fchmod(file.fileno(), 0o600)
        text = file.read()
        passwords: dict[str, str] = json.loads(text) if text.strip() else {}
        if any(role not in passwords for role in roles):
            for role in roles:
                passwords.setdefault(role, secrets.token_urlsafe(32))
            file.seek(0)
            file.truncate()
            json.dump(passwords, file, indent=1)
            file.flush()
            os.fsync(file.fileno())
    return {role: passwords[role] for role in roles}


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802/7677), computed here so
    that the plaintext never reaches the server's statement log."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac(
        "sha256", unicodedata.normalize("NFKC", password).encode(), salt, iterations
    )
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def login_statements(roles: ServiceRoles) -> list[Composed]:
    """Create each role if need be and set its password; run at every migration (not part of
    the schema's fingerprint). Roles belong to the cluster, not the database, so the migration's
    advisory lock does not cover a migration of another database: tolerate a concurrent
    creation."""
    statements = []
    for login in (roles.api, roles.projector):
        role = Identifier(login.role)
        statements += [
            SQL(
                "DO $$ BEGIN CREATE ROLE {} LOGIN; "
                "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
            ).format(role),
            SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
                role, Literal(scram_verifier(login.password))
            ),
        ]
    return statements


def schema_statements(roles: ServiceRoles, server_version: int) -> list[SQL | Composed]:
    """Immutability triggers and each role's grants; run in one transaction, safe to repeat."""
    api, projector = Identifier(roles.api.role), Identifier(roles.projector.role)
    both = SQL("{}, {}").format(api, projector)
    events = Identifier(EVENTS_TABLE)
    idempotency = Identifier(IDEMPOTENCY_TABLE)
    statements: list[SQL | Composed] = [
        # The owner may act as the API's role (tools, tests); never the other way round.
        SQL("GRANT {} TO CURRENT_USER").format(api),
        SQL(
            """
            CREATE OR REPLACE FUNCTION incident_ledger_refuse_change() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
              RAISE EXCEPTION 'stored events are immutable: % refused on %',
                TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
            END $$
            """
        ),
    ]
    # ENABLE ALWAYS: they fire under session_replication_role = replica too.
    for table in IMMUTABLE_TABLES:
        t = Identifier(table)
        for trigger, when in (("immutable", "UPDATE OR DELETE"), ("no_truncate", "TRUNCATE")):
            name = Identifier(f"{table}_{trigger}")
            each = "ROW" if trigger == "immutable" else "STATEMENT"
            statements += [
                SQL("DROP TRIGGER IF EXISTS {} ON {}").format(name, t),
                SQL(
                    "CREATE TRIGGER {} BEFORE " + when + " ON {} "
                    "FOR EACH " + each + " EXECUTE FUNCTION incident_ledger_refuse_change()"
                ).format(name, t),
                SQL("ALTER TABLE {} ENABLE ALWAYS TRIGGER {}").format(t, name),
            ]
    # The library's append locks the table IN EXCLUSIVE MODE, which needs more than INSERT:
    # MAINTAIN from PostgreSQL 17, UPDATE before (the trigger still refuses it).
    lock_privilege = SQL("MAINTAIN") if server_version >= 170000 else SQL("UPDATE")
    statements += [
        SQL("GRANT USAGE ON SCHEMA public TO {}").format(both),
        SQL("REVOKE ALL ON {}, {}, {}, {} FROM {}").format(
            events, idempotency, Identifier(COMMANDS_TABLE), Identifier(CHAIN_TABLE), both
        ),
        SQL("GRANT SELECT, INSERT, {} ON {} TO {}").format(lock_privilege, events, api),
        SQL("GRANT SELECT ON {} TO {}").format(events, projector),
        SQL("GRANT SELECT, INSERT, DELETE ON {} TO {}").format(idempotency, api),
        SQL("GRANT SELECT, INSERT ON {} TO {}").format(Identifier(COMMANDS_TABLE), api),
        SQL("GRANT SELECT, INSERT ON {} TO {}").format(Identifier(CHAIN_TABLE), api),
        SQL("GRANT SELECT ON {} TO {}").format(Identifier(CHAIN_TABLE), projector),
        SQL("REVOKE ALL ON {} FROM {}").format(Identifier(SNAPSHOTS_TABLE), both),
        SQL("GRANT SELECT, INSERT ON {} TO {}").format(Identifier(SNAPSHOTS_TABLE), api),
        *(
            SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
                Identifier(f"{IDEMPOTENCY_TABLE}_{t}"), idempotency
            )
            for t in ("immutable", "no_truncate")
        ),
        SQL("GRANT SELECT ON {} TO {}").format(Identifier(SCHEMA_TABLE), both),
        SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(api),
    ]
    for table in VIEW_TABLES:
        t = Identifier(table)
        statements += [
            SQL("REVOKE ALL ON {} FROM {}").format(t, both),
            SQL("GRANT SELECT ON {} TO {}").format(t, api),
            SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(t, projector),
        ]
    return statements


def owner_powers(conn: psycopg.Connection[Any]) -> list[str]:
    """What the connecting role may do beyond owning the schema: superuser, BYPASSRLS,
    REPLICATION (empty for a plain owner)."""
    row = conn.execute(
        "SELECT rolsuper, rolbypassrls, rolreplication FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    names = ("superuser", "BYPASSRLS", "REPLICATION")
    return [name for name, flag in zip(names, row or (), strict=False) if flag]


def session_powers(conn: psycopg.Connection[Any]) -> list[str]:
    """Why this session could act beyond its grants: its login role's attributes, and every
    role it is a member of (empty for a plain login role, as the service's must be)."""
    row = conn.execute(
        "SELECT r.rolsuper, r.rolbypassrls, r.rolreplication, r.rolcreaterole, r.rolcreatedb, "
        "session_user <> current_user, ARRAY(SELECT g.rolname::text FROM pg_auth_members m "
        "JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid ORDER BY 1) "
        "FROM pg_roles r WHERE r.rolname = session_user"
    ).fetchone()
    if row is None:
        return ["no such role"]
    *flags, memberships = tuple(row.values()) if isinstance(row, dict) else row
    names = ("superuser", "BYPASSRLS", "REPLICATION", "CREATEROLE", "CREATEDB", "SET ROLE")
    return [n for n, flag in zip(names, flags, strict=True) if flag] + [
        f"member of {m}" for m in memberships
    ]
