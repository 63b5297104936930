"""Slows repeated authentication failures from one client: past a number of failures within a
window, that client's requests answer 429 with `Retry-After` until the window has passed."""

from __future__ import annotations

import threading
import time
from collections import deque

from domain.errors import LedgerError


class TooManyFailures(LedgerError):
    """Too many failed authentications from this client; carries `retry_after` seconds."""


class AuthThrottle:
    def __init__(self, limit: int, window_seconds: float) -> None:
        self.limit = limit
        self.window = window_seconds
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        """Refuse (429) while `client` has failed `limit` times within the window."""
        with self._lock:
            failures = self._recent(client, time.monotonic())
            if len(failures) >= self.limit:
                retry_after = max(1, int(failures[0] + self.window - time.monotonic()) + 1)
                raise TooManyFailures(
                    "auth.too_many_failures",
                    f"Too many failed authentications from this client; try again in "
                    f"{retry_after} s.",
                    retry_after=retry_after,
                )

    def failed(self, client: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._recent(client, now).append(now)
            if len(self._failures) > 10_000:  # bounded memory under a spray of addresses
                self._failures = {c: f for c, f in self._failures.items() if f}

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures
