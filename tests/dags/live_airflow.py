"""A real, throw-away Airflow for tests: Debian's PostgreSQL plus api-server, scheduler and dag-processor.

Everything runs as local processes on loopback ports; the executor is LocalExecutor because these tests
prove parsing, serialisation and triggering, not pod launching (that is the end-to-end suite's job).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import requests

from tests.clickhouse.servers import free_port

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
ADMIN_USER = "admin"


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; drop to the packaged `postgres` user when we are root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def wait_until(check: object, what: str, timeout: float, logs: list[Path] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except Exception as error:
            last_error = str(error)
        time.sleep(1)
    tails = "".join(f"\n--- {log} ---\n{log.read_text()[-3000:]}" for log in logs or [] if log.exists())
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s: {last_error}{tails}")


@contextmanager
def postgres_server() -> Iterator[str]:
    """A fresh PostgreSQL cluster with an `airflow` database; yields its SQLAlchemy URL."""
    workdir = Path(tempfile.mkdtemp(prefix="airflow-platform-pg-"))
    password = secrets.token_urlsafe(16)
    port = free_port()
    (workdir / "pwfile").write_text(password)
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
        shutil.chown(workdir / "pwfile", "postgres", "postgres")
    data = workdir / "data"
    initdb = [str(POSTGRES_BIN / "initdb"), "--pgdata", str(data), "--username", "airflow"]
    initdb += ["--auth", "scram-sha-256", f"--pwfile={workdir / 'pwfile'}"]
    subprocess.run(_as_postgres_user(initdb), check=True, capture_output=True)
    options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1"
    start = [str(POSTGRES_BIN / "pg_ctl"), "-D", str(data), "-l", str(workdir / "log"), "-o", options, "-w"]
    subprocess.run(_as_postgres_user([*start, "start"]), check=True, capture_output=True)
    try:
        connection = psycopg2.connect(
            host="127.0.0.1", port=port, user="airflow", password=password, dbname="postgres"
        )
        connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        connection.cursor().execute("CREATE DATABASE airflow")
        connection.close()
        yield f"postgresql+psycopg2://airflow:{password}@127.0.0.1:{port}/airflow"
    finally:
        subprocess.run(
            _as_postgres_user([*start[:3], "-m", "fast", "stop"]), check=False, capture_output=True
        )
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class LiveAirflow:
    base_url: str
    admin_password: str
    env: dict[str, str] = field(default_factory=dict)
    logs: list[Path] = field(default_factory=list)
    migrate_output: str = ""  # stdout of the migration step (what a migration Job would log)

    def token(self) -> str:
        response = requests.post(
            f"{self.base_url}/auth/token",
            json={"username": ADMIN_USER, "password": self.admin_password},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def wait_healthy(self, timeout: float = 180) -> None:
        """Until the api-server answers its health check: the tests reach Airflow only through it."""
        health = f"{self.base_url}/api/v2/monitor/health"
        wait_until(lambda: requests.get(health, timeout=5).ok, "api-server", timeout, self.logs)


def _airflow_env(
    home: Path, sql_alchemy_conn: str, api_port: int, dags: Path, presets: Path
) -> dict[str, str]:
    passwords = home / "passwords.json"
    admin_password = secrets.token_urlsafe(16)
    passwords.write_text(json.dumps({ADMIN_USER: admin_password}))
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_PLATFORM_PRESETS": str(presets),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__FERNET_KEY": "",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn,
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "_ADMIN_PASSWORD": admin_password,
    }


@contextmanager
def airflow_processes(
    sql_alchemy_conn: str,
    dags: Path,
    presets: Path,
    home: Path,
    extra_env: dict[str, str] | None = None,
    component_env: dict[str, dict[str, str]] | None = None,
    migrate_command: list[str] | None = None,
) -> Iterator[LiveAirflow]:
    """`airflow db migrate`, then api-server, scheduler and dag-processor until the block ends.

    extra_env goes to every process; component_env to one component only (name -> env), as the chart
    gives credentials only to the components that need them ("migrate" is the migration step).
    migrate_command replaces `airflow db migrate` (e.g. the chart's migration Job script, which must
    finish before the api-server starts, as the init containers make it in the cluster).
    """
    api_port = free_port()
    env = {**_airflow_env(home, sql_alchemy_conn, api_port, dags, presets), **(extra_env or {})}
    airflow = str(Path(os.sys.executable).parent / "airflow")
    migrate_env = {**env, **(component_env or {}).get("migrate", {})}
    migrate = subprocess.run(
        migrate_command or [airflow, "db", "migrate"], env=migrate_env, capture_output=True, text=True
    )
    if migrate.returncode:
        raise RuntimeError(f"the migration failed:\n{migrate.stdout[-2000:]}{migrate.stderr[-4000:]}")
    commands = {
        "api-server": [airflow, "api-server", "--host", "127.0.0.1", "--port", str(api_port)],
        "scheduler": [airflow, "scheduler"],
        "dag-processor": [airflow, "dag-processor"],
    }
    processes: list[subprocess.Popen] = []
    live = LiveAirflow(
        f"http://127.0.0.1:{api_port}", env["_ADMIN_PASSWORD"], env, migrate_output=migrate.stdout
    )
    try:
        for name, command in commands.items():
            log = home / f"{name}.log"
            live.logs.append(log)
            with log.open("w") as output:
                process_env = {**env, **(component_env or {}).get(name, {})}
                # a session of its own: the teardown can kill what the component started too
                # (the LocalExecutor's task processes)
                processes.append(
                    subprocess.Popen(
                        command, env=process_env, stdout=output, stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )  # fmt: skip
        yield live
    finally:
        _stop(processes)


STOP_GRACE_S = 10  # a graceful stop is not under test here; a scheduler waits for running tasks


def _stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM to every component, then SIGKILL to the process group of each one still running after
    STOP_GRACE_S in all (a scheduler that waits for a task a test left sleeping, and that task)."""
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
