"""A real, throw-away Airflow for tests: Debian's PostgreSQL plus api-server, scheduler and dag-processor.

Everything runs as local processes on loopback ports; the executor is LocalExecutor because these tests
prove parsing, serialisation and triggering, not pod launching (that is the end-to-end suite's job).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import requests
from sqlalchemy.engine import make_url

from scripts.common import exclusive
from scripts.config import CACHE
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


def _postgres_workdir() -> Path:
    """A fresh directory for one PostgreSQL (data, socket, log), owned by the user the server runs as."""
    workdir = Path(tempfile.mkdtemp(prefix="airflow-platform-pg-"))
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
    return workdir


def _initdb(workdir: Path, password: str) -> None:
    """A new cluster in workdir/data whose superuser `airflow` logs in with `password`."""
    pwfile = workdir / "pwfile"
    pwfile.write_text(password)
    if os.geteuid() == 0:
        shutil.chown(pwfile, "postgres", "postgres")
    initdb = [str(POSTGRES_BIN / "initdb"), "--pgdata", str(workdir / "data"), "--username", "airflow"]
    initdb += ["--auth", "scram-sha-256", f"--pwfile={pwfile}"]
    subprocess.run(_as_postgres_user(initdb), check=True, capture_output=True)


def _pg_ctl(workdir: Path, *args: str) -> list[str]:
    return _as_postgres_user([str(POSTGRES_BIN / "pg_ctl"), "-D", str(workdir / "data"), *args])


@contextmanager
def _running_postgres(workdir: Path, password: str) -> Iterator[str]:
    """The cluster of workdir/data serving on a free loopback port; yields the URL of its `airflow`
    database. Stopped at the end (a fast shutdown: a clean data directory, fit to be copied)."""
    port = free_port()
    options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1"
    start = _pg_ctl(workdir, "-l", str(workdir / "log"), "-o", options, "-w", "start")
    subprocess.run(start, check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg2://airflow:{password}@127.0.0.1:{port}/airflow"
    finally:
        subprocess.run(_pg_ctl(workdir, "-m", "fast", "stop"), check=False, capture_output=True)


def _create_airflow_database(sql_alchemy_conn: str) -> None:
    url = make_url(sql_alchemy_conn)
    connection = psycopg2.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, dbname="postgres"
    )
    connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    connection.cursor().execute("CREATE DATABASE airflow")
    connection.close()


@contextmanager
def postgres_server(migrated: bool = False) -> Iterator[str]:
    """A fresh PostgreSQL cluster with an `airflow` database; yields its SQLAlchemy URL.

    migrated: the database already holds what `airflow db migrate` makes of an empty one with Airflow's
    defaults (a copy of the template migrated once per machine, _copy_migrated_template); pair it with
    airflow_processes(..., migrated=True). Without it the database is empty.
    """
    workdir = _postgres_workdir()
    try:
        if migrated:
            password = _copy_migrated_template(workdir)
        else:
            password = secrets.token_urlsafe(16)
            _initdb(workdir, password)
        with _running_postgres(workdir, password) as sql_alchemy_conn:
            if not migrated:
                _create_airflow_database(sql_alchemy_conn)
            yield sql_alchemy_conn
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# `airflow db migrate` of an empty database costs ~7 s of CPU (half of it importing Airflow) and is the
# same work in every live module: it runs once per machine into a template data directory, which each
# module copies (a 44 MB `cp`). Tests of the migration itself (the chart's migration Job script in
# test_fab_live.py) keep running the real one on an empty database.
TEMPLATES = CACHE / "airflow-db-template"
TEMPLATE_LOCK = CACHE / "airflow-db-template.lock"
# Environment options that change what `airflow db migrate` writes (the default pool's slots, the log
# template row, the schema, extra DB managers): the template is built with Airflow's defaults for all of
# them, so a stack that sets one must run the real migration.
MIGRATION_OPTIONS = re.compile(
    r"AIRFLOW__DATABASE__(?!SQL_ALCHEMY_CONN$).*|AIRFLOW__CORE__DEFAULT_POOL_TASK_SLOT_COUNT"
    r"|AIRFLOW__LOGGING__LOG_FILENAME_TEMPLATE|AIRFLOW__ELASTICSEARCH__LOG_ID_TEMPLATE"
)


def template_key() -> str:
    """What decides the migrated database: every installed distribution (Airflow, its providers, their
    migrations) and the PostgreSQL major version (the data directory's format)."""
    installed = sorted(
        f"{dist.metadata['Name']}=={dist.version}" for dist in importlib.metadata.distributions()
    )
    fingerprint = json.dumps({"postgres": str(POSTGRES_BIN), "installed": installed})
    return hashlib.sha256(fingerprint.encode()).hexdigest()[:16]


def _build_migrated_template(template: Path) -> None:
    """initdb, `airflow db migrate` with Airflow's defaults, clean stop; the data directory and its
    password land in `template` (renamed into place last, so a half-built template never exists)."""
    workdir = _postgres_workdir()
    try:
        password = secrets.token_urlsafe(16)
        _initdb(workdir, password)
        with _running_postgres(workdir, password) as sql_alchemy_conn:
            _create_airflow_database(sql_alchemy_conn)
            home = workdir / "airflow-home"
            home.mkdir()
            # none of the caller's AIRFLOW* settings (a test may have patched os.environ): defaults only
            env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
            env |= {"AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn}
            env |= {"AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
            _migrate([_airflow_cli(), "db", "migrate"], env)
        partial = template.with_name(template.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        subprocess.run(["cp", "-a", str(workdir / "data"), str(partial / "data")], check=True)
        (partial / "password").write_text(password)
        partial.rename(template)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _copy_migrated_template(workdir: Path) -> str:
    """Copies the migrated template's data directory to workdir/data (built first if this machine has
    none for template_key()); the password of its `airflow` superuser."""
    template = TEMPLATES / template_key()
    # One builder at a time (two pytest-xdist workers start live modules together); copies hold the
    # lock too, so a builder never removes a template while it is being copied.
    with exclusive(TEMPLATE_LOCK):
        if not template.exists():
            for stale in TEMPLATES.glob("*"):  # other Airflow/PostgreSQL versions: one template a machine
                shutil.rmtree(stale, ignore_errors=True)
            _build_migrated_template(template)
        subprocess.run(["cp", "-a", str(template / "data"), str(workdir / "data")], check=True)
    return (template / "password").read_text()


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
        # Re-parsing an unchanged DAG file (default every 30 s) is only CPU, ~0.1 core per stack on this
        # 2-core machine: once is enough. A new or modified file is still parsed at the next refresh
        # (file_parsing_sort_mode modified_time); a stack that needs re-parses sets its own interval.
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "_ADMIN_PASSWORD": admin_password,
    }


def _airflow_cli() -> str:
    return str(Path(sys.executable).parent / "airflow")


def _migrate(command: list[str], env: dict[str, str]) -> str:
    """Runs the migration step; its stdout (what a migration Job would log)."""
    migrate = subprocess.run(command, env=env, capture_output=True, text=True)
    if migrate.returncode:
        raise RuntimeError(f"the migration failed:\n{migrate.stdout[-2000:]}{migrate.stderr[-4000:]}")
    return migrate.stdout


@contextmanager
def airflow_processes(
    sql_alchemy_conn: str,
    dags: Path,
    presets: Path,
    home: Path,
    extra_env: dict[str, str] | None = None,
    component_env: dict[str, dict[str, str]] | None = None,
    migrate_command: list[str] | None = None,
    migrated: bool = False,
) -> Iterator[LiveAirflow]:
    """`airflow db migrate`, then api-server, scheduler and dag-processor until the block ends.

    extra_env goes to every process; component_env to one component only (name -> env), as the chart
    gives credentials only to the components that need them ("migrate" is the migration step).
    migrate_command replaces `airflow db migrate` (e.g. the chart's migration Job script, which must
    finish before the api-server starts, as the init containers make it in the cluster).
    migrated: the database comes migrated (postgres_server(migrated=True)): no migration step runs.
    """
    api_port = free_port()
    env = {**_airflow_env(home, sql_alchemy_conn, api_port, dags, presets), **(extra_env or {})}
    airflow = _airflow_cli()
    migrate_env = {**env, **(component_env or {}).get("migrate", {})}
    if migrated:
        if migrate_command:
            raise ValueError("a migrated database runs no migrate_command")
        changed = sorted(key for key in migrate_env if MIGRATION_OPTIONS.fullmatch(key))
        if changed:
            raise ValueError(f"{changed} change what the migration writes: run it (migrated=False)")
    migrate_output = "" if migrated else _migrate(migrate_command or [airflow, "db", "migrate"], migrate_env)
    commands = {
        "api-server": [airflow, "api-server", "--host", "127.0.0.1", "--port", str(api_port)],
        "scheduler": [airflow, "scheduler"],
        "dag-processor": [airflow, "dag-processor"],
    }
    processes: list[subprocess.Popen] = []
    live = LiveAirflow(
        f"http://127.0.0.1:{api_port}", env["_ADMIN_PASSWORD"], env, migrate_output=migrate_output
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
