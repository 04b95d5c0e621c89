"""The kind release lock between `make e2e` lanes (tests/e2e/release_sharing.py), with real `flock`s taken by
separate processes as the xdist workers take them."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from tests.e2e import release_sharing

SETTLE_S = 1.5  # long enough for a lock attempt to have blocked (the lock polls every second)


def _hold(directory: Path, exclusive: bool, seconds: float, log: Path, name: str) -> None:
    with release_sharing.holding_release(directory, exclusive=exclusive, what=name):
        with log.open("a") as out:
            out.write(f"{name} in\n")
        time.sleep(seconds)
        with log.open("a") as out:
            out.write(f"{name} out\n")


def _start(directory: Path, exclusive: bool, seconds: float, log: Path, name: str) -> multiprocessing.Process:
    process = multiprocessing.get_context("fork").Process(
        target=_hold, args=(directory, exclusive, seconds, log, name)
    )
    process.start()
    return process


@pytest.fixture
def directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(release_sharing.config, "CACHE", tmp_path)
    return release_sharing.run_directory("run-1")


def test_sharers_hold_the_release_together(directory: Path, tmp_path: Path) -> None:
    log = tmp_path / "log"
    first = _start(directory, False, 3 * SETTLE_S, log, "a")
    time.sleep(SETTLE_S)
    second = _start(directory, False, 0.1, log, "b")
    second.join(timeout=30)
    first.join(timeout=30)
    assert log.read_text().splitlines() == ["a in", "b in", "b out", "a out"]


@pytest.mark.parametrize(
    "first_exclusive", [True, False], ids=["exclusive-then-shared", "shared-then-exclusive"]
)
def test_an_exclusive_holder_is_alone(directory: Path, tmp_path: Path, first_exclusive: bool) -> None:
    log = tmp_path / "log"
    first = _start(directory, first_exclusive, 2 * SETTLE_S, log, "first")
    time.sleep(SETTLE_S)
    second = _start(directory, not first_exclusive, 0.1, log, "second")
    second.join(timeout=30)
    first.join(timeout=30)
    assert log.read_text().splitlines() == ["first in", "first out", "second in", "second out"]


def test_a_dead_holder_does_not_keep_the_release(directory: Path, tmp_path: Path) -> None:
    holder = _start(directory, True, 600, tmp_path / "log", "dies")
    time.sleep(SETTLE_S)
    holder.kill()
    holder.join(timeout=30)
    with release_sharing.holding_release(directory, exclusive=True, what="next"):
        pass


def test_the_final_module_waits_for_every_sharer(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sharers = ["tests/e2e/test_bundles.py::test_a", "tests/e2e/test_worker_killed.py::test_b"]
    release_sharing.mark_done(directory, sharers[0])
    monkeypatch.setattr(release_sharing, "SHARERS_BUDGET_S", 2)
    with pytest.raises(TimeoutError) as waited:
        release_sharing.wait_for_sharers(directory, sharers)
    assert sharers[1] in str(waited.value)
    assert sharers[0] not in str(waited.value)
    release_sharing.mark_done(directory, sharers[1])
    release_sharing.wait_for_sharers(directory, sharers)


def test_runs_do_not_share_their_marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(release_sharing.config, "CACHE", tmp_path)
    release_sharing.mark_done(release_sharing.run_directory("run-1"), "tests/e2e/test_bundles.py::test_a")
    monkeypatch.setattr(release_sharing, "SHARERS_BUDGET_S", 1)
    with pytest.raises(TimeoutError):
        release_sharing.wait_for_sharers(
            release_sharing.run_directory("run-2"), ["tests/e2e/test_bundles.py::test_a"]
        )
