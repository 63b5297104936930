"""Read-your-writes: a read that must see a position waits, bounded, until its view reaches it.
Woken by the projector when it runs in this process; otherwise the tracking table is polled."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from domain.errors import LedgerError
from projections.failures import Failure


class ViewUnavailable(LedgerError):
    """The view has not reached the wanted position in time (`view.behind`), or it stopped
    on an event it cannot fold (`view.failed`). Answered 503 (api/errors.py)."""


class Positions:
    """The last known position of each view in this process, with a condition to wait on."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._known: dict[str, int] = {}
        self.local_projector = False
        """True while a projector runs in this process: it notifies, so waiting polls rarely."""

    def known(self, view: str) -> int:
        return self._known.get(view, 0)

    def publish(self, view: str, position: int) -> None:
        """A view's position only moves forward (a rebuild swaps in one at least as far)."""
        with self._changed:
            if position > self._known.get(view, 0):
                self._known[view] = position
                self._changed.notify_all()

    def wake(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def wait(
        self,
        view: str,
        wanted: int,
        timeout: float,
        read: Callable[[], tuple[int, Failure | None]],
        poll: float = 0.015,
    ) -> int:
        """Return once `view` is at `wanted` or beyond; `read()` asks the database for the
        view's position and failure. Raises ViewUnavailable after `timeout` seconds, or at once
        if the view failed before reaching `wanted`."""
        deadline = time.monotonic() + timeout
        next_read = 0.0
        while True:
            position = self.known(view)
            if position >= wanted:
                return position
            now = time.monotonic()
            if now >= next_read:
                position, failure = read()
                self.publish(view, position)
                if position >= wanted:
                    return position
                if failure is not None:
                    raise ViewUnavailable(
                        "view.failed",
                        f"The {view} view stopped at position {position}, before {wanted}: "
                        f"it cannot process event {failure.position} ({failure.topic}).",
                        **_details(view, position, wanted),
                        error=failure.as_json(),
                    )
                # A local projector notifies every page; still look now and then, in case
                # another process (or a rebuild) moved the view.
                next_read = now + (0.1 if self.local_projector else poll)
            if now >= deadline:
                raise ViewUnavailable(
                    "view.behind",
                    f"The {view} view is at position {position}; position {wanted} was not "
                    f"projected within {timeout:g}s. Retry shortly.",
                    **_details(view, position, wanted),
                )
            with self._changed:
                if self.known(view) < wanted:
                    self._changed.wait(max(0.0, min(deadline, next_read) - now))


def _details(view: str, position: int, wanted: int) -> dict[str, Any]:
    return {"view": view, "position": position, "wanted": wanted}
