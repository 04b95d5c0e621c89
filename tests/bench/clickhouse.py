"""clickhouse-migrate vs a hand-issued native `INSERT ... SELECT FROM remote()` on the same data.

Two real servers (the test fixture code), 20 million rows generated on the source with numbers().
Each round copies the table once with the tool in its default mode (`--strategy swap`, whole process:
connect, identity, route check, plan, staging DDL, copy, per-partition count+checksum verification,
swap, cleanup) and once by hand with default settings; the order alternates between rounds (neither
always runs on a warmer or busier machine, the source's data is in the page cache for both). The best
round of each is compared (the machine is shared: best-of filters out other load); the per-round
ratios and their median are printed too. Target: tool rows/s >= 0.9 x native rows/s.
For transparency each round also copies by hand the way the tool does (`max_threads = 1`: one stream,
rows already in the sorting key's order, see IN_ORDER_SETTINGS in clickhouse_migrate/copy.py): the
tool's ratio against that copy is what its verification, swap and process cost.
The tool's time is split into phases from the arrival of its output lines: start (process start,
connect, plan, staging DDL), copy (the source's checksums are read meanwhile), verification left after
the copy (the staging table's checksums), swap+cleanup+exit.
After each tool round, the tool runs again with nothing changed (it compares per-partition counts and
checksums and copies nothing): target under 5% of the full copy's time.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from clickhouse_migrate.copy import IN_ORDER_SETTINGS

from tests.clickhouse.servers import MIGRATOR_PASSWORD, MIGRATOR_USER, ServerInfo, clickhouse_pair

# 20M rows (>= 10M asked): the tool's fixed cost (process start, metadata queries: ~0.2 s) is then a small
# part of what is measured, as for real databases; BENCH_ROWS=10000000 gives the minimum size.
ROWS = int(os.environ.get("BENCH_ROWS", "20000000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "4"))
TARGET_RATIO = 0.9
TARGET_RESUMED_SHARE = 0.05
SOURCE_DB = "bench"
TABLE = "events"
TOOL = Path(sys.executable).with_name("clickhouse-migrate")


@dataclass
class ToolRun:
    """One tool process: its stdout lines with their arrival time (seconds since start), and its time."""

    lines: list[tuple[float, str]]
    seconds: float

    def first(self, kind: str) -> tuple[float, str]:
        return next((at, line) for at, line in self.lines if line.startswith(f"[{kind}]"))

    def has(self, kind: str) -> bool:
        return any(line.startswith(f"[{kind}]") for _, line in self.lines)

    def phases(self) -> dict[str, float]:
        """Seconds per phase of a full copy (see the module docstring)."""
        copied_at, copy_line = self.first("copy")
        verified_at, _ = self.first("verify")
        copy_seconds = float(copy_line.split(" seconds=")[1].split()[0])
        return {
            "start": copied_at - copy_seconds,
            "copy": copy_seconds,
            "verify_after_copy": verified_at - copied_at,
            "swap_and_exit": self.seconds - verified_at,
        }


@dataclass
class Rounds:
    native: list[float] = field(default_factory=list)
    native_in_order: list[float] = field(default_factory=list)
    tool: list[float] = field(default_factory=list)
    phases: list[dict[str, float]] = field(default_factory=list)
    rerun: list[float] = field(default_factory=list)


def load_source(source: ServerInfo) -> None:
    client = source.client()
    started = time.monotonic()
    client.execute(f"CREATE DATABASE {SOURCE_DB}")
    client.execute(
        f"""CREATE TABLE {SOURCE_DB}.{TABLE} (id UInt64, ts DateTime, user_id UInt32, value Float64,
            label String) ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (user_id, id)"""
    )
    client.execute(
        f"""INSERT INTO {SOURCE_DB}.{TABLE} SELECT number, toDateTime('2024-01-01 00:00:00') + number,
            number % 100000, number / 7, concat('label-', toString(number % 1000)) FROM numbers({ROWS})"""
    )
    client.execute(f"OPTIMIZE TABLE {SOURCE_DB}.{TABLE} FINAL")
    print(f"[bench] loaded {ROWS:,} rows on the source in {time.monotonic() - started:.1f}s", flush=True)


def clean_destination(destination: ServerInfo) -> None:
    """Drop earlier copies: their background merges would otherwise compete with the next timed copy."""
    client = destination.client()
    for database in (
        "bench_native",
        "bench_tool",
        "bench_tool__migrate_staging",
        "bench_tool__migrate_previous",
    ):
        client.execute(f"DROP DATABASE IF EXISTS {database}")


def native_copy(
    source: ServerInfo, destination: ServerInfo, database: str, settings: dict[str, object] | None = None
) -> float:
    """Seconds for the hand-issued copy, executed on the destination (the tool's default mode)."""
    clean_destination(destination)
    client = destination.client()
    client.execute(f"CREATE DATABASE {database}")
    ddl = source.client().execute(f"SHOW CREATE TABLE {SOURCE_DB}.{TABLE}")[0][0]
    client.execute(ddl.replace(f"{SOURCE_DB}.{TABLE}", f"{database}.{TABLE}", 1))
    remote = f"remote('{source.host}:{source.port}', {SOURCE_DB}, {TABLE}, 'default', '')"
    started = time.monotonic()
    client.execute(f"INSERT INTO {database}.{TABLE} SELECT * FROM {remote}", settings=settings or {})
    seconds = time.monotonic() - started
    assert client.execute(f"SELECT count() FROM {database}.{TABLE}")[0][0] == ROWS
    return seconds


def tool_copy(source: ServerInfo, destination: ServerInfo, database: str) -> ToolRun:
    """The whole tool process (start to exit) of a full copy."""
    clean_destination(destination)
    run = run_tool(source, destination, database)
    print(f"[bench]   tool: {run.first('copy')[1]}", flush=True)
    return run


def tool_rerun(source: ServerInfo, destination: ServerInfo, database: str) -> float:
    """Seconds for a re-run with nothing changed (the destination is left from the previous copy)."""
    run = run_tool(source, destination, database)
    if not run.has("unchanged") or run.has("copy"):
        raise RuntimeError("the re-run copied again:\n" + "\n".join(line for _, line in run.lines))
    return run.seconds


def run_tool(source: ServerInfo, destination: ServerInfo, database: str) -> ToolRun:
    args = [
        str(TOOL),
        *("--source-host", source.host, "--source-port", str(source.port), "--source-user", MIGRATOR_USER),
        *("--source-db", SOURCE_DB, "--destination-host", destination.host),
        *("--destination-port", str(destination.port), "--destination-user", MIGRATOR_USER),
        *("--destination-db", database),
    ]
    env = {
        **os.environ,
        "CLICKHOUSE_SOURCE_PASSWORD": MIGRATOR_PASSWORD,
        "CLICKHOUSE_DESTINATION_PASSWORD": MIGRATOR_PASSWORD,
    }
    lines: list[tuple[float, str]] = []
    with tempfile.TemporaryFile(mode="w+") as stderr:
        started = time.monotonic()
        with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env) as process:
            assert process.stdout is not None
            for line in process.stdout:  # the tool flushes every line: arrival time = event time
                lines.append((time.monotonic() - started, line.rstrip("\n")))
        seconds = time.monotonic() - started
        if process.returncode != 0:
            stderr.seek(0)
            raise RuntimeError(f"clickhouse-migrate failed ({process.returncode}): {stderr.read().strip()}")
    return ToolRun(lines, seconds)


def one_round(source: ServerInfo, destination: ServerInfo, number: int, rounds: Rounds) -> None:
    """Native copies first in odd rounds, last in even ones."""

    def natives() -> None:
        rounds.native.append(native_copy(source, destination, "bench_native"))
        rounds.native_in_order.append(native_copy(source, destination, "bench_native", IN_ORDER_SETTINGS))

    if number % 2:
        natives()
    run = tool_copy(source, destination, "bench_tool")
    rounds.tool.append(run.seconds)
    rounds.phases.append(run.phases())
    rounds.rerun.append(tool_rerun(source, destination, "bench_tool"))
    if not number % 2:
        natives()
    phases = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in rounds.phases[-1].items())
    print(
        f"[bench] round {number}/{ROUNDS}: native {rounds.native[-1]:.2f}s, native in one stream "
        f"{rounds.native_in_order[-1]:.2f}s, tool {rounds.tool[-1]:.2f}s ({phases}), ratio "
        f"{rounds.native[-1] / rounds.tool[-1]:.3f}; re-run with nothing changed {rounds.rerun[-1]:.2f}s",
        flush=True,
    )


def run() -> dict[str, object]:
    rounds = Rounds()
    with clickhouse_pair() as (source, destination):
        load_source(source)
        for number in range(1, ROUNDS + 1):
            one_round(source, destination, number, rounds)
    return report(rounds)


def report(rounds: Rounds) -> dict[str, object]:
    load = os.getloadavg()[0]
    best_tool = min(range(ROUNDS), key=lambda index: rounds.tool[index])
    native_rate = ROWS / min(rounds.native)
    in_order_rate = ROWS / min(rounds.native_in_order)
    tool_rate = ROWS / rounds.tool[best_tool]
    copy_phase_rate = ROWS / min(phases["copy"] for phases in rounds.phases)
    ratio = tool_rate / native_rate
    round_ratios = [native / tool for native, tool in zip(rounds.native, rounds.tool, strict=True)]
    resumed_share = min(rounds.rerun) / rounds.tool[best_tool]
    phases = rounds.phases[best_tool]
    print(f"[bench] rows copied:                 {ROWS:,}")
    print(f"[bench] machine:                     load average {load:.1f} on {os.cpu_count()} CPUs")
    print(f"[bench] native INSERT SELECT remote: {native_rate:,.0f} rows/s (best of {ROUNDS})")
    print(
        f"[bench] same, max_threads = 1:       {in_order_rate:,.0f} rows/s (best of {ROUNDS}; informational)"
    )
    print(f"[bench] clickhouse-migrate (tool):   {tool_rate:,.0f} rows/s (best of {ROUNDS}, whole process)")
    print(f"[bench] tool copy phase only:        {copy_phase_rate:,.0f} rows/s (its own [copy] line)")
    print(
        "[bench] tool phases (best round):     "
        + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in phases.items())
    )
    print(
        f"[bench] ratio tool/native:           {ratio:.3f} (target >= {TARGET_RATIO}: "
        f"{'met' if ratio >= TARGET_RATIO else 'NOT met'}); per round "
        f"{', '.join(f'{value:.3f}' for value in round_ratios)}, "
        f"median {statistics.median(round_ratios):.3f}",
        flush=True,
    )
    print(
        f"[bench] ratio tool/native one stream: {tool_rate / in_order_rate:.3f} "
        "(what verification, swap and process cost)"
    )
    print(
        f"[bench] re-run, nothing changed:    {min(rounds.rerun):.2f}s = {resumed_share:.1%} of a full copy "
        f"(target < {TARGET_RESUMED_SHARE:.0%}: "
        f"{'met' if resumed_share < TARGET_RESUMED_SHARE else 'NOT met'})",
        flush=True,
    )
    return {
        "rows": ROWS,
        "rounds": ROUNDS,
        "native_rows_per_s": round(native_rate),
        "native_max_threads_1_rows_per_s": round(in_order_rate),
        "tool_rows_per_s": round(tool_rate),
        "tool_copy_phase_rows_per_s": round(copy_phase_rate),
        "ratio": round(ratio, 3),
        "ratio_per_round": [round(value, 3) for value in round_ratios],
        "ratio_median": round(statistics.median(round_ratios), 3),
        "ratio_vs_native_max_threads_1": round(tool_rate / in_order_rate, 3),
        "target_ratio": TARGET_RATIO,
        "load_average_1m": round(load, 2),
        "cpus": os.cpu_count(),
        "native_seconds": [round(value, 3) for value in rounds.native],
        "native_max_threads_1_seconds": [round(value, 3) for value in rounds.native_in_order],
        "tool_seconds": [round(value, 3) for value in rounds.tool],
        "tool_phase_seconds": [
            {name: round(seconds, 3) for name, seconds in phases.items()} for phases in rounds.phases
        ],
        "rerun_unchanged_seconds": [round(value, 3) for value in rounds.rerun],
        "rerun_share_of_full_copy": round(resumed_share, 4),
        "target_rerun_share": TARGET_RESUMED_SHARE,
        "strategy": "swap",
    }
