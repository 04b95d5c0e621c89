"""Structured progress lines (`[event] key=value ...` or JSON lines, one per line, flushed).

Object names come from the servers and may hold anything (newlines, quotes, `=`): every value is escaped
so that one event is always exactly one line and cannot forge another.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TextIO


def escape(text: str) -> str:
    """`text` with every non-printable character (newline, tab, U+2028, ...) as an escape sequence."""
    return "".join(
        char if char.isprintable() or char == " " else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


def _format_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    text = str(value)
    plain = text and all(char.isprintable() and char not in ' "=\\' for char in text)
    return text if plain else json.dumps(text, ensure_ascii=True)


@dataclass
class CopyResult:
    name: str
    rows: int = 0  # rows written (counted on the target)
    read_rows: int = 0  # rows the copy query read
    bytes: int = 0
    seconds: float = 0.0
    started: float = 0.0  # time.monotonic() at start (to merge partition copies)
    error: str | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def event_fields(self, **row_counts: int) -> dict[str, object]:
        """The fields every event about this copy carries, in their line order; `row_counts` are named
        per event (the [copy] line says rows, the [table] summary rows_written and rows_read)."""
        status = "failed" if self.error else "ok"
        return {
            "object": self.name,
            "status": status,
            **row_counts,
            "bytes": self.bytes,
            "seconds": self.seconds,
        }


@dataclass
class Reporter:
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    json_lines: bool = False
    progress_interval: float = 10.0  # seconds between [progress] lines of one long copy query
    started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def event(self, event: str, /, **fields: object) -> None:
        if self.json_lines:
            values = {
                key: round(value, 3) if isinstance(value, float) else value for key, value in fields.items()
            }
            line = json.dumps({"event": event, **values}, ensure_ascii=True, default=str)
        else:
            parts = [f"[{event}]"] + [f"{key}={_format_value(value)}" for key, value in fields.items()]
            line = " ".join(parts)
        with self._lock:
            print(line, file=self.stream, flush=True)

    def copied(self, result: CopyResult, done: int, total: int) -> None:
        self.event(
            "copy",
            **result.event_fields(rows=result.rows),
            rows_per_s=round(result.rows_per_second),
            progress=f"{done}/{total}",
            **({"error": result.error} if result.error else {}),
        )

    def elapsed(self) -> float:
        return time.monotonic() - self.started
