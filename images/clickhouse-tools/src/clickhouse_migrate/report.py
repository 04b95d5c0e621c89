"""Structured progress lines (`[event] key=value ...`, one per line, flushed) and the final summary."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TextIO


def _format_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    text = str(value)
    return f'"{text}"' if (" " in text or not text) else text


@dataclass
class CopyResult:
    name: str
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    started: float = 0.0  # time.monotonic() at start (to merge partition copies)
    error: str | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Reporter:
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def event(self, event: str, /, **fields: object) -> None:
        parts = [f"[{event}]"] + [f"{key}={_format_value(value)}" for key, value in fields.items()]
        with self._lock:
            print(" ".join(parts), file=self.stream, flush=True)

    def copied(self, result: CopyResult, done: int, total: int) -> None:
        self.event(
            "copy",
            object=result.name,
            status="failed" if result.error else "ok",
            rows=result.rows,
            bytes=result.bytes,
            seconds=result.seconds,
            rows_per_s=round(result.rows_per_second),
            progress=f"{done}/{total}",
            **({"error": result.error} if result.error else {}),
        )

    def elapsed(self) -> float:
        return time.monotonic() - self.started
