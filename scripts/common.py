"""Small helpers every step uses: prefixed progress lines, timed phases, commands, polling."""

from __future__ import annotations

import fcntl
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from scripts import config


class Logger:
    """Prints `[prefix] message` lines, flushed at once (the output is read live by people and CI)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, message: str) -> None:
        print(f"[{self.prefix}] {message}", flush=True)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Logs the start of a named phase and, when it ends, how long it took."""
        start = time.monotonic()
        self(f"--- {name}")
        yield
        self(f"--- {name} done in {time.monotonic() - start:.1f} s")


def run(*args: str | Path, capture: bool = False, check: bool = True, **kwargs: object) -> str:
    """Runs a command with the pinned tools first on PATH; returns its stdout when captured."""
    kwargs.setdefault("env", config.tool_env())
    result = subprocess.run([str(a) for a in args], check=check, text=True, capture_output=capture, **kwargs)
    return result.stdout if capture else ""


def docker_answers() -> bool:
    """Whether a Docker engine answers (a clean machine has none until `make docker`)."""
    try:
        return subprocess.run(["docker", "info"], capture_output=True, env=config.tool_env()).returncode == 0
    except FileNotFoundError:
        return False


def wait_until(predicate: Callable[[], object], what: str, timeout_s: float, interval_s: float = 2) -> object:
    """Polls until predicate returns something truthy (returned); TimeoutError names what it waited for."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


@contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Holds an exclusive lock on `lock_file` (created if missing) for the block: steps that change one
    machine-wide thing (the registry container, its login files) may be run by several processes at
    once (`make e2e` runs its lanes on parallel workers; two people may run `make push`). The kernel
    releases the lock when the holder exits, so a killed process leaves no stale lock."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
