"""The projector keeps the views caught up, off the request path: a thread inside `serve`, or the
`incident-ledger projector` process. It wakes on the event store's NOTIFY (the library's recorder
notifies its channel on every append) and polls now and then in case one was missed. Several
projectors against one database are safe: each view's advisory lock admits one writer at a time."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg
from psycopg.sql import SQL, Identifier

from projections.postgres import Projections

log = logging.getLogger("incident_ledger.projector")


class Projector:
    def __init__(self, projections: Projections, poll: float = 1.0) -> None:
        self.projections = projections
        self.poll = poll
        self.channel: str = projections.app.recorder.channel_name  # type: ignore[attr-defined]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- as a thread of the service ---------------------------------------------------------

    def start(self) -> None:
        self.projections.positions.local_projector = True
        self._thread = threading.Thread(target=self.run, name="projector", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.projections.positions.local_projector = False

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        """Catch up, then sleep until an append is notified (or `poll` seconds, or a failed
        view is due for a retry); until stopped. Database outages are retried with backoff."""
        listener: psycopg.Connection[Any] | None = None
        outages = 0
        while not self._stop.is_set():
            try:
                if listener is None:
                    listener = self._listen()  # before catching up: no append goes unnoticed
                self.projections.catch_up(stop=self._stop.is_set)
                outages = 0
                self._sleep(listener)
            except Exception as exc:
                outages += 1
                if outages in (1, 10) or outages % 100 == 0:
                    log.warning("projector: %s (attempt %d); retrying", exc, outages)
                if listener is not None:
                    listener.close()
                    listener = None
                self._stop.wait(min(30.0, 0.2 * 2 ** min(outages, 8)))
        if listener is not None:
            listener.close()

    def _listen(self) -> psycopg.Connection[Any]:
        kwargs = self.projections.datastore.pool.kwargs
        assert isinstance(kwargs, dict)  # the connection settings of the ledger's pool
        conn = psycopg.Connection.connect(**kwargs, autocommit=True)
        conn.execute(SQL("LISTEN {}").format(Identifier(self.channel)))
        return conn

    def _sleep(self, listener: psycopg.Connection[Any]) -> None:
        retry = self.projections.next_retry_in()
        deadline = time.monotonic() + (self.poll if retry is None else min(self.poll, retry))
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            # Short slices, so that stop() is prompt.
            if list(listener.notifies(timeout=min(remaining, 0.25), stop_after=1)):
                return
