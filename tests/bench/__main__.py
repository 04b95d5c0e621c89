"""Run benchmarks by name (default: all registered). Each bench is a module exposing `run() -> dict`.

Figures are printed and merged into .cache/bench.json under the bench's name. To add a bench, write
tests/bench/<name>.py with a `run()` function and list it in BENCHES.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / ".cache" / "bench.json"
BENCHES = ("clickhouse",)


def record(name: str, figures: dict[str, object]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    existing[name] = figures
    RESULTS.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benches to run (default: {' '.join(BENCHES)})"
    )
    names = parser.parse_args(argv).names or list(BENCHES)
    unknown = sorted(set(names) - set(BENCHES))
    if unknown:
        parser.error(f"unknown bench {', '.join(unknown)} (known: {', '.join(BENCHES)})")
    for name in names:
        started = time.monotonic()
        print(f"[bench] {name}: starting", flush=True)
        figures = importlib.import_module(f"tests.bench.{name}").run()
        figures["bench_seconds"] = round(time.monotonic() - started, 1)
        record(name, figures)
        print(f"[bench] {name}: done in {figures['bench_seconds']}s, figures in {RESULTS}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
