"""`make up`: the platform on a local kind cluster, the sync DAG run once, the UI address printed.

Each phase prints its progress and duration; a failing phase names itself and says where to look.
Phase timings are written to .cache/timings.json for `make e2e` and `make bench`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import platform_api

ROOT = Path(__file__).resolve().parent.parent
TIMINGS_FILE = ROOT / ".cache" / "timings.json"
SYNC_DAG_ID = "clickhouse_db_sync"


@dataclass(frozen=True)
class Phase:
    name: str
    run: Callable[[], object]
    where_to_look: str


def make(target: str) -> Callable[[], None]:
    def run() -> None:
        subprocess.run(["make", "--no-print-directory", target], cwd=ROOT, check=True)

    return run


def install() -> None:
    platform_api.helm_upgrade_install()


def wait_ready() -> None:
    platform_api.wait_for_api_server()


def run_sync_dag() -> str:
    state = platform_api.run_dag_once(SYNC_DAG_ID)
    if state != "success":
        raise RuntimeError(f"DAG run of {SYNC_DAG_ID} ended in state {state!r}")
    return state


PHASES = [
    Phase("tools", make("tools"), "make tools"),
    Phase("cluster", make("cluster"), "docker ps; kind export logs --name $CLUSTER_NAME"),
    Phase("images", make("images"), "make images"),
    Phase("load", make("load"), "docker images 'airflow-platform/*'"),
    Phase(
        "install",
        install,
        "kubectl -n airflow get pods; kubectl -n airflow get events --sort-by=.lastTimestamp",
    ),
    Phase("ready", wait_ready, "kubectl -n airflow logs deploy/airflow-platform-api-server"),
    Phase(
        "dag run",
        run_sync_dag,
        "kubectl -n airflow logs deploy/airflow-platform-scheduler; kubectl get pods -A -l dag_id",
    ),
]


def run_phases(phases: list[Phase]) -> dict[str, float]:
    timings: dict[str, float] = {}
    for index, phase in enumerate(phases, start=1):
        print(f"==> [{index}/{len(phases)}] {phase.name}", flush=True)
        started = time.monotonic()
        try:
            phase.run()
        except Exception as error:  # any failure: name the phase and where to look, not a stack trace
            elapsed = time.monotonic() - started
            print(f"!!! phase '{phase.name}' failed after {elapsed:.0f} s: {error}", file=sys.stderr)
            print(f"    look here: {phase.where_to_look}", file=sys.stderr)
            raise SystemExit(1) from None
        timings[phase.name] = round(time.monotonic() - started, 1)
        print(f"    {phase.name} done in {timings[phase.name]:.1f} s", flush=True)
    return timings


def write_timings(timings: dict[str, float]) -> None:
    TIMINGS_FILE.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(TIMINGS_FILE.read_text()) if TIMINGS_FILE.exists() else {}
    existing["up"] = timings
    TIMINGS_FILE.write_text(json.dumps(existing, indent=2) + "\n")


def main() -> None:
    timings = run_phases(PHASES)
    write_timings(timings)
    print()
    print(f"Platform is up in {sum(timings.values()):.0f} s. {SYNC_DAG_ID}: success")
    print(f"  Airflow UI:  {platform_api.ui_url()}")
    print(f"  User:        {platform_api.ADMIN_USER}")
    print(f"  Password:    {platform_api.admin_password_command()}")


if __name__ == "__main__":
    main()
