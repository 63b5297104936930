"""DATABASE_URL is read by libpq's own rules (through psycopg), every parameter reaches every
connection the service makes, and no password shows in a repr or a message."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from api.database import Database
from api.store import EXTRA_CONNINFO, LedgerPostgresFactory

SECRET = "s3cr@t/pw"


def test_parse_url_with_sslmode_and_encoded_password() -> None:
    db = Database.from_url(
        "postgresql://owner:s3cr%40t%2Fpw@db.example:6543/ledger?sslmode=require"
    )
    assert (db.user, db.password, db.host, db.port, db.dbname) == (
        "owner",
        SECRET,
        "db.example",
        "6543",
        "ledger",
    )
    assert db.params == {"sslmode": "require"}
    assert db.conninfo()["sslmode"] == "require"


def test_parse_url_with_unix_socket_directory_in_query() -> None:
    db = Database.from_url("postgresql:///ledger?host=/tmp/sock")
    assert (db.host, db.dbname, db.user, db.port) == ("/tmp/sock", "ledger", "", "")
    # what the URL leaves out is left to libpq's defaults (PGUSER, PGPORT, ...), not invented
    assert db.conninfo() == {"dbname": "ledger", "host": "/tmp/sock"}


def test_parse_url_with_user_password_and_port_as_query_parameters() -> None:
    db = Database.from_url("postgresql://db.example/ledger?user=owner&password=pw&port=6000")
    assert (db.user, db.password, db.port) == ("owner", "pw", "6000")
    assert db.params == {}


def test_parse_key_value_string() -> None:
    db = Database.from_url(
        "host=db.example port=5433 dbname=ledger user=owner password='a b' "
        "sslmode=verify-full sslrootcert=/etc/ca.pem connect_timeout=3"
    )
    assert (db.host, db.port, db.password) == ("db.example", "5433", "a b")
    assert db.params == {
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ca.pem",
        "connect_timeout": "3",
    }


def test_parse_refuses_other_schemes_without_repeating_the_string() -> None:
    with pytest.raises(ValueError, match="not a PostgreSQL connection string") as caught:
        Database.from_url(f"mysql://owner:{SECRET}@db.example/ledger")
    assert SECRET not in str(caught.value)


def test_repr_and_describe_hide_the_password() -> None:
    db = Database.from_url(
        "postgresql://owner:hunter2-password@db.example:5432/ledger?sslmode=require"
    )
    assert "hunter2" not in repr(db)
    assert "hunter2" not in str(db)
    assert "hunter2" not in db.describe()
    assert db.describe() == "owner@db.example:5432/ledger"


def test_every_url_parameter_reaches_the_pool_with_the_session_role() -> None:
    db = Database.from_url(
        "postgresql://owner:pw@db.example:6543/ledger?sslmode=require&options=-c%20work_mem%3D8MB"
    )
    env = db.ledger_env(role="incident_ledger_app")
    assert conninfo_to_dict(env[EXTRA_CONNINFO]) == {
        "sslmode": "require",
        "options": "-c work_mem=8MB",
    }
    factory = LedgerPostgresFactory(env)
    try:
        kwargs = factory.datastore.pool.kwargs
        assert isinstance(kwargs, dict)
        assert {k: kwargs[k] for k in ("host", "port", "dbname", "user", "password")} == {
            "host": "db.example",
            "port": "6543",
            "dbname": "ledger",
            "user": "owner",
            "password": "pw",
        }
        assert kwargs["sslmode"] == "require"
        assert kwargs["options"] == "-c work_mem=8MB -c role=incident_ledger_app"
        assert kwargs["connect_timeout"] == 5  # a dead host fails within seconds, not minutes
    finally:
        factory.close()


def test_an_exported_variable_cannot_add_connection_parameters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(EXTRA_CONNINFO, "sslmode=disable")
    monkeypatch.setenv("POSTGRES_ROLE", "someone_else")
    env = Database.from_url("postgresql://owner@db.example/ledger").ledger_env(role=None)
    factory = LedgerPostgresFactory(env)
    try:
        kwargs = factory.datastore.pool.kwargs
        assert isinstance(kwargs, dict)
        assert "sslmode" not in kwargs
        assert "options" not in kwargs
    finally:
        factory.close()
