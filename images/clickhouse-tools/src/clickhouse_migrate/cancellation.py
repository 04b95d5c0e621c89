"""Stopping a run for real: SIGTERM (a pod kill) and SIGINT kill the tool's queries on both servers.

Every query the tool sends carries a query_id starting with this run's prefix. The executing server
gives the queries it sends through remote() an `initial_query_id` equal to ours, so one
`KILL QUERY WHERE query_id LIKE ... OR initial_query_id LIKE ...` per server stops the whole copy.
Short critical sections (the table-by-table swap, a few metadata statements) defer the signal until
they are done, so a kill never leaves a half-swapped table.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

KILL_WAIT_SECONDS = 5.0
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Cancelled(BaseException):
    """Raised in the main thread when a signal stopped the run (after the queries were killed)."""


ClientFactory = Callable[[], Any]  # a fresh clickhouse_driver.Client for one server


class Tracker:
    """Query ids of this run, the servers it talks to, and whether it was cancelled."""

    def __init__(self) -> None:
        self.prefix = f"clickhouse-migrate-{uuid.uuid4().hex[:16]}-"
        self.cancelled = threading.Event()
        self._counter = 0
        self._lock = threading.Lock()
        self._servers: dict[str, ClientFactory] = {}
        self._critical_depth = 0
        self._deferred: str | None = None

    def next_query_id(self) -> str:
        with self._lock:
            self._counter += 1
            return f"{self.prefix}{self._counter}"

    def register(self, role: str, factory: ClientFactory) -> None:
        self._servers[role] = factory

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        """Defer a signal until the block is done (the block must be short: metadata only)."""
        self._critical_depth += 1
        try:
            yield
        finally:
            self._critical_depth -= 1
            if self._critical_depth == 0 and self._deferred is not None:
                name, self._deferred = self._deferred, None
                self.cancel(name)

    def handle(self, signal_number: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signal_number).name
        if self._critical_depth:
            self._deferred = name
            return
        self.cancel(name)

    def cancel(self, reason: str) -> None:
        self.cancelled.set()
        self.kill_queries()
        raise Cancelled(reason)

    def kill_queries(self) -> dict[str, int]:
        """KILL QUERY for this run's queries on every server; wait until none is left (bounded)."""
        condition = "query_id LIKE %(prefix)s OR initial_query_id LIKE %(prefix)s"
        params = {"prefix": self.prefix + "%"}
        left: dict[str, int] = {}
        for role, factory in self._servers.items():
            with contextlib.suppress(Exception):  # an unreachable server runs nothing of ours either
                client = factory()
                try:
                    client.execute(f"KILL QUERY WHERE {condition} ASYNC", params)
                    deadline = time.monotonic() + KILL_WAIT_SECONDS
                    while True:
                        count = client.execute(
                            f"SELECT count() FROM system.processes WHERE {condition}", params
                        )
                        left[role] = int(count[0][0])
                        if not left[role] or time.monotonic() > deadline:
                            break
                        time.sleep(0.1)
                finally:
                    client.disconnect()
        return left


TRACKER = Tracker()


@contextlib.contextmanager
def on_signals(_reporter: object = None) -> Iterator[Tracker]:
    """Install the SIGTERM/SIGINT handlers for the block (main thread only)."""
    previous = {number: signal.getsignal(number) for number in SIGNALS}
    for number in SIGNALS:
        signal.signal(number, TRACKER.handle)
    try:
        yield TRACKER
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
