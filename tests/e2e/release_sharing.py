"""The kind release shared between `make e2e` lanes (tests/conftest.py KIND_RELEASE_SHARED and
KIND_RELEASE_EXCLUSIVE): a reader-writer lock over the release, and the barrier the final module waits at.

Both live in files of one directory per test run (pytest-xdist's testrun_uid), which every worker of the
run sees: a `flock` on `release.lock` (shared for sharers, exclusive for disruptors; the kernel drops it
if a worker dies), and one `done/<hash>` file per finished sharer test. A serial run takes the same locks
uncontended.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

from scripts import config

LOCK_BUDGET_S = 1200  # the longest module of the other kind holds it for ~3 min; a stuck lane for longer
SHARERS_BUDGET_S = 1800  # the sharers' lane, all of it, under load


def run_directory(testrun_uid: str) -> Path:
    directory = config.CACHE / "e2e-runs" / testrun_uid
    (directory / "done").mkdir(parents=True, exist_ok=True)
    return directory


@contextlib.contextmanager
def holding_release(directory: Path, *, exclusive: bool, what: str) -> Iterator[None]:
    """The release lock for the block, shared or exclusive; says so when it has to wait for it."""
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    with (directory / "release.lock").open("a") as lock:
        started = time.monotonic()
        said = False
        while True:
            try:
                fcntl.flock(lock, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited > LOCK_BUDGET_S:
                    message = f"{what}: the kind release in use by another lane for {waited:.0f} s"
                    raise TimeoutError(message) from None
                if not said:
                    print(f"[e2e] {what}: waiting for another lane's test on the kind release", flush=True)
                    said = True
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _done_file(directory: Path, nodeid: str) -> Path:
    return directory / "done" / hashlib.sha256(nodeid.encode()).hexdigest()[:32]


def mark_done(directory: Path, nodeid: str) -> None:
    _done_file(directory, nodeid).touch()


def wait_for_sharers(directory: Path, sharers: list[str]) -> None:
    """Until every sharer test of this run (node ids) has finished, passed or not."""
    started = time.monotonic()
    next_report = 0.0
    while pending := [nodeid for nodeid in sharers if not _done_file(directory, nodeid).exists()]:
        waited = time.monotonic() - started
        if waited > SHARERS_BUDGET_S:
            raise TimeoutError(f"tests sharing the kind release not done after {waited:.0f} s: {pending}")
        if waited >= next_report:
            print(
                f"[e2e] waiting for {len(pending)} tests sharing the kind release ({pending[0]}, ...)",
                flush=True,
            )
            next_report += 60
        time.sleep(1)
