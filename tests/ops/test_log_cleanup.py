"""files/ops/clean_logs.py (the log-cleanup CronJob) against a real S3-compatible server and a real
directory: logs older than the retention go, newer ones and everything outside the prefix stay."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.chart.rendering import CHART, RELEASE, find, render

from .chart_scripts import load_chart_script
from .s3_server import S3Server, s3_server

SCRIPT = CHART / "files" / "ops" / "clean_logs.py"
BUCKET = "retention"
DAY = 86400


clean_logs = load_chart_script("clean_logs")


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


def put(s3: S3Server, bucket: str, key: str, age_days: float) -> None:
    """An object whose Last-Modified is age_days ago (versitygw's posix backend reports the file mtime)."""
    s3.client().put_object(Bucket=bucket, Key=key, Body=b"log line\n")
    stamp = time.time() - age_days * DAY
    os.utime(s3.data / bucket / key, (stamp, stamp))


def keys(s3: S3Server, bucket: str) -> set[str]:
    paginator = s3.client().get_paginator("list_objects_v2")
    return {item["Key"] for page in paginator.paginate(Bucket=bucket) for item in page.get("Contents", [])}


def test_remote_cleanup_deletes_only_old_objects_under_the_prefix(s3: S3Server) -> None:
    bucket = f"{BUCKET}-prefix"
    s3.client().create_bucket(Bucket=bucket)
    old = "airflow/tasks/dag_id=a/run_id=r/task_id=t/attempt=1.log"
    layout = {
        old: 40,
        "airflow/tasks/dag_id=a/run_id=r/task_id=t/attempt=2.log": 2,
        "airflow/tasks-archive/dag_id=a/attempt=1.log": 400,  # sibling folder sharing the prefix text
        "other/attempt=1.log": 400,  # outside the prefix
    }
    for key, age in layout.items():
        put(s3, bucket, key, age)
    cutoff = datetime.now(UTC) - timedelta(days=30)
    deleted = clean_logs.clean_remote(s3.client(), bucket, "airflow/tasks", cutoff)
    assert deleted == 1
    assert keys(s3, bucket) == set(layout) - {old}


def test_remote_cleanup_deletes_more_than_one_batch(s3: S3Server) -> None:
    bucket = f"{BUCKET}-batches"
    s3.client().create_bucket(Bucket=bucket)
    count = clean_logs.DELETE_BATCH + 7
    for index in range(count):
        put(s3, bucket, f"logs/old/{index:05}.log", 10)
    put(s3, bucket, "logs/new.log", 0)
    deleted = clean_logs.clean_remote(s3.client(), bucket, "logs", datetime.now(UTC) - timedelta(days=5))
    assert deleted == count
    assert keys(s3, bucket) == {"logs/new.log"}


def test_local_cleanup_keeps_new_files_and_the_root(tmp_path: Path) -> None:
    old = tmp_path / "dag_id=a" / "run_id=old" / "task_id=t" / "attempt=1.log"
    new = tmp_path / "dag_id=a" / "run_id=new" / "task_id=t" / "attempt=1.log"
    for path, age in ((old, 40), (new, 1)):
        path.parent.mkdir(parents=True)
        path.write_text("log line\n")
        stamp = time.time() - age * DAY
        os.utime(path, (stamp, stamp))
    deleted = clean_logs.clean_local(tmp_path, datetime.now(UTC) - timedelta(days=30))
    assert deleted == 1
    assert new.exists() and not old.exists()
    assert not (tmp_path / "dag_id=a" / "run_id=old").exists(), "emptied directories are removed"
    assert tmp_path.exists()


def test_the_cronjob_command_cleans_what_airflow_cfg_names(s3: S3Server, tmp_path: Path) -> None:
    """The rendered CronJob command, run with the rendered airflow.cfg options and connection env."""
    bucket = f"{BUCKET}-cronjob"
    s3.client().create_bucket(Bucket=bucket)
    put(s3, bucket, "tasks/old.log", 45)
    put(s3, bucket, "tasks/new.log", 3)
    local = tmp_path / "logs"
    (local / "dag_id=x").mkdir(parents=True)
    for name, age in (("old.log", 45), ("new.log", 3)):
        path = local / "dag_id=x" / name
        path.write_text("line\n")
        os.utime(path, (time.time() - age * DAY,) * 2)
    manifests = render(
        "values-kind.yaml",
        "--set", "housekeeping.logCleanup.enabled=true",
        "--set", "housekeeping.logCleanup.retentionDays=30",
        "--set", "airflow.logs.remote.enabled=true",
        "--set", f"airflow.logs.remote.bucket={bucket}",
        "--set", "airflow.logs.remote.prefix=tasks",
        "--set", f"airflow.logs.remote.endpointUrl={s3.endpoint_url}",
        "--set", "airflow.logs.remote.addressingStyle=path",
    )  # fmt: skip
    job = find(manifests, "CronJob", f"{RELEASE}-log-cleanup")
    container = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    from tests.chart.rendering import airflow_cfg

    env = {item["name"]: item["value"] for item in container["env"] if "value" in item}
    connection = find(manifests, "Secret", f"{RELEASE}-remote-logs", "airflow")["data"]["connection"]
    env["AIRFLOW_CONN_AIRFLOW_PLATFORM_LOGS"] = base64.b64decode(connection).decode()  # its secretKeyRef
    env |= {f"AIRFLOW__LOGGING__{k.upper()}": v for k, v in airflow_cfg(manifests)["logging"].items()}
    env |= {
        "PATH": os.environ["PATH"],
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(local),
        **s3.credentials_env(),
    }
    command = [sys.executable, str(SCRIPT), *container["command"][2:]]
    assert container["command"][:2] == ["python", "/opt/airflow/ops/clean_logs.py"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert keys(s3, bucket) == {"tasks/new.log"}
    assert sorted(p.name for p in local.rglob("*.log")) == ["new.log"]
    assert "deleted" in result.stdout


@pytest.mark.parametrize("days", ["0", "-3", "x"])
def test_bad_retention_is_refused(days: str) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--retention-days", days], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert "--retention-days" in result.stderr
