"""The db-clean CronJob's own command against a real Postgres holding a migrated Airflow metadata DB:
rows older than the retention go, recent rows stay, and only the listed tables are touched."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from tests.chart.rendering import RELEASE, find, render
from tests.dags.live_airflow import postgres_server

AIRFLOW = Path(sys.executable).parent / "airflow"
EVENTS = {"old-200d": 200, "old-91d": 91, "recent-89d": 89, "recent-1d": 1}


def cron_container(*extra: str) -> dict:
    manifests = render("values.yaml", "--set", "housekeeping.dbClean.enabled=true", *extra)
    cron_job = find(manifests, "CronJob", f"{RELEASE}-db-clean")
    return cron_job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]


def run_db_clean(container: dict, sql_alchemy_conn: str, home: Path) -> subprocess.CompletedProcess[str]:
    """Runs the rendered command with the rendered env (the Secret's URL in place of secretKeyRef)."""
    env = {item["name"]: item["value"] for item in container["env"] if "value" in item}
    env |= {
        "PATH": f"{AIRFLOW.parent}:{os.environ['PATH']}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    return subprocess.run(container["command"], env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("airflow-home")
    with postgres_server(migrated=True) as url:
        yield url, home


def psycopg2_url(url: str) -> str:
    return url.replace("postgresql+psycopg2://", "postgresql://")


def seed(url: str) -> None:
    """Audit-log and job rows at known ages (both are tables `airflow db clean` handles)."""
    with psycopg2.connect(psycopg2_url(url)) as connection, connection.cursor() as cursor:
        cursor.execute("DELETE FROM log; DELETE FROM job")
        for event, days in EVENTS.items():
            cursor.execute(
                "INSERT INTO log (dttm, event) VALUES (now() - make_interval(days => %s), %s)", (days, event)
            )
            cursor.execute(
                "INSERT INTO job (dag_id, state, job_type, start_date, latest_heartbeat, hostname)"
                " VALUES (%s, 'success', 'SchedulerJob', now() - make_interval(days => %s),"
                " now() - make_interval(days => %s), 'test')",
                (event, days, days),
            )


def remaining(url: str) -> tuple[set[str], set[str]]:
    with psycopg2.connect(psycopg2_url(url)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT event FROM log WHERE event = ANY(%s)", (list(EVENTS),))
        log = {row[0] for row in cursor.fetchall()}
        cursor.execute("SELECT dag_id FROM job WHERE dag_id = ANY(%s)", (list(EVENTS),))
        return log, {row[0] for row in cursor.fetchall()}


def test_old_rows_go_recent_rows_stay(database: tuple[str, Path]) -> None:
    url, home = database
    seed(url)
    result = run_db_clean(cron_container("--set", "housekeeping.dbClean.retentionDays=90"), url, home)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "90 days" in result.stdout
    recent = {"recent-89d", "recent-1d"}
    assert remaining(url) == (recent, recent)


def test_only_the_listed_tables_are_cleaned(database: tuple[str, Path]) -> None:
    url, home = database
    seed(url)
    container = cron_container(
        "--set", "housekeeping.dbClean.retentionDays=90", "--set", "housekeeping.dbClean.tables={log}"
    )
    result = run_db_clean(container, url, home)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert remaining(url) == ({"recent-89d", "recent-1d"}, set(EVENTS))


def test_retention_is_read_at_run_time_not_render_time(database: tuple[str, Path]) -> None:
    """A longer retention keeps more: the cutoff follows retentionDays, nothing is hard-coded."""
    url, home = database
    seed(url)
    result = run_db_clean(cron_container("--set", "housekeeping.dbClean.retentionDays=150"), url, home)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    kept = {"old-91d", "recent-89d", "recent-1d"}
    assert remaining(url) == (kept, kept)
