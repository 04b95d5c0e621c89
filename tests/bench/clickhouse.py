"""clickhouse-migrate vs a hand-issued native `INSERT ... SELECT FROM remote()` on the same data.

Two real servers (the test fixture code), 20 million rows generated on the source with numbers().
Each round copies the table once with the tool in its default mode (`--strategy swap`, whole process:
connect, identity, route check, plan, staging DDL, copy, per-partition count+checksum verification,
swap, cleanup) and once by hand; the best round of each is compared (the machine is shared: best-of
filters out other load). Target: tool rows/s >= 0.9 x native rows/s.
After each tool round, the tool runs again with nothing changed (it compares per-partition counts and
checksums and copies nothing): target under 5% of the full copy's time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

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


def native_copy(source: ServerInfo, destination: ServerInfo, database: str) -> float:
    """Seconds for the hand-issued copy, executed on the destination (the tool's default mode)."""
    clean_destination(destination)
    client = destination.client()
    client.execute(f"CREATE DATABASE {database}")
    ddl = source.client().execute(f"SHOW CREATE TABLE {SOURCE_DB}.{TABLE}")[0][0]
    client.execute(ddl.replace(f"{SOURCE_DB}.{TABLE}", f"{database}.{TABLE}", 1))
    remote = f"remote('{source.host}:{source.port}', {SOURCE_DB}, {TABLE}, 'default', '')"
    started = time.monotonic()
    client.execute(f"INSERT INTO {database}.{TABLE} SELECT * FROM {remote}")
    seconds = time.monotonic() - started
    assert client.execute(f"SELECT count() FROM {database}.{TABLE}")[0][0] == ROWS
    return seconds


def tool_copy(source: ServerInfo, destination: ServerInfo, database: str) -> tuple[float, float]:
    """Seconds for the whole tool process (start to exit), and for its copy phase as it reports it."""
    clean_destination(destination)
    completed, seconds = run_tool(source, destination, database)
    copy_line = next(line for line in completed.stdout.splitlines() if line.startswith("[copy]"))
    print(f"[bench]   tool: {copy_line}", flush=True)
    copy_seconds = float(copy_line.split(" seconds=")[1].split()[0])
    return seconds, copy_seconds


def tool_rerun(source: ServerInfo, destination: ServerInfo, database: str) -> float:
    """Seconds for a re-run with nothing changed (the destination is left from the previous copy)."""
    completed, seconds = run_tool(source, destination, database)
    unchanged = [line for line in completed.stdout.splitlines() if line.startswith("[unchanged]")]
    if not unchanged or any(line.startswith("[copy]") for line in completed.stdout.splitlines()):
        raise RuntimeError(f"the re-run copied again:\n{completed.stdout}")
    return seconds


def run_tool(
    source: ServerInfo, destination: ServerInfo, database: str
) -> tuple[subprocess.CompletedProcess[str], float]:
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
    started = time.monotonic()
    completed = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    seconds = time.monotonic() - started
    if completed.returncode != 0:
        raise RuntimeError(f"clickhouse-migrate failed ({completed.returncode}): {completed.stderr.strip()}")
    return completed, seconds


def run() -> dict[str, object]:
    with clickhouse_pair() as (source, destination):
        load_source(source)
        native_seconds: list[float] = []
        tool_seconds: list[float] = []
        copy_phase_seconds: list[float] = []
        rerun_seconds: list[float] = []
        for round_number in range(1, ROUNDS + 1):
            # Alternate who goes first, so neither always runs on a warmer (or busier) machine.
            if round_number % 2:
                native_seconds.append(native_copy(source, destination, "bench_native"))
            whole, copy_phase = tool_copy(source, destination, "bench_tool")
            tool_seconds.append(whole)
            copy_phase_seconds.append(copy_phase)
            rerun_seconds.append(tool_rerun(source, destination, "bench_tool"))
            if not round_number % 2:
                native_seconds.append(native_copy(source, destination, "bench_native"))
            print(
                f"[bench] round {round_number}/{ROUNDS}: native {native_seconds[-1]:.2f}s, "
                f"tool {tool_seconds[-1]:.2f}s, re-run with nothing changed {rerun_seconds[-1]:.2f}s",
                flush=True,
            )
    load = os.getloadavg()[0]
    native_rate = ROWS / min(native_seconds)
    tool_rate = ROWS / min(tool_seconds)
    copy_phase_rate = ROWS / min(copy_phase_seconds)
    ratio = tool_rate / native_rate
    resumed_share = min(rerun_seconds) / min(tool_seconds)
    print(f"[bench] rows copied:                 {ROWS:,}")
    print(f"[bench] machine:                     load average {load:.1f} on {os.cpu_count()} CPUs")
    print(f"[bench] native INSERT SELECT remote: {native_rate:,.0f} rows/s (best of {ROUNDS})")
    print(f"[bench] clickhouse-migrate (tool):   {tool_rate:,.0f} rows/s (best of {ROUNDS}, whole process)")
    print(f"[bench] tool copy phase only:        {copy_phase_rate:,.0f} rows/s (its own [copy] line)")
    print(
        f"[bench] ratio tool/native:           {ratio:.3f} (target >= {TARGET_RATIO}: "
        f"{'met' if ratio >= TARGET_RATIO else 'NOT met'})",
        flush=True,
    )
    print(
        f"[bench] re-run, nothing changed:    {min(rerun_seconds):.2f}s = {resumed_share:.1%} of a full copy "
        f"(target < {TARGET_RESUMED_SHARE:.0%}: "
        f"{'met' if resumed_share < TARGET_RESUMED_SHARE else 'NOT met'})",
        flush=True,
    )
    return {
        "rows": ROWS,
        "rounds": ROUNDS,
        "native_rows_per_s": round(native_rate),
        "tool_rows_per_s": round(tool_rate),
        "tool_copy_phase_rows_per_s": round(copy_phase_rate),
        "ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "load_average_1m": round(load, 2),
        "cpus": os.cpu_count(),
        "native_seconds": [round(value, 3) for value in native_seconds],
        "tool_seconds": [round(value, 3) for value in tool_seconds],
        "tool_copy_phase_seconds": [round(value, 3) for value in copy_phase_seconds],
        "rerun_unchanged_seconds": [round(value, 3) for value in rerun_seconds],
        "rerun_share_of_full_copy": round(resumed_share, 4),
        "target_rerun_share": TARGET_RESUMED_SHARE,
        "strategy": "swap",
    }
