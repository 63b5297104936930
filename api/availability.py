"""Is PostgreSQL answering? How long to wait for it, and its reasons in one line."""

from __future__ import annotations

CONNECT_TIMEOUT = 5
"""Seconds libpq may spend opening one connection (libpq's minimum is 2)."""


def one_line(exc: BaseException) -> str:
    """A connection error as one line (libpq's messages span several, with hints)."""
    return " ".join(str(exc).split()) or type(exc).__name__
