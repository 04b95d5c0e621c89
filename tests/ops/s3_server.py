"""A real S3-compatible server for tests: versitygw (Apache-2.0, built from the Go module proxy by
`make tools`) serving a temporary directory (posix backend) on a loopback port."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.clickhouse.servers import free_port
from tests.dags.live_airflow import wait_until

ROOT = Path(__file__).resolve().parents[2]
VERSITYGW = ROOT / ".tools" / "bin" / "versitygw"
REGION = "us-east-1"


@dataclass
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str
    data: Path  # the posix backend: one directory per bucket, one file per object

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}),
        )

    def credentials_env(self) -> dict[str, str]:
        """What the chart's credentials Secret puts into the Airflow containers."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}


@contextmanager
def s3_server() -> Iterator[S3Server]:
    if not VERSITYGW.exists():
        pytest.fail(f"{VERSITYGW} is missing: run `make tools`")
    data = Path(tempfile.mkdtemp(prefix="airflow-platform-s3-"))
    port = free_port()
    server = S3Server(
        f"http://127.0.0.1:{port}", "test-" + secrets.token_hex(6), secrets.token_urlsafe(24), data
    )
    log = data.parent / f"{data.name}.log"
    env = {**os.environ, "ROOT_ACCESS_KEY": server.access_key, "ROOT_SECRET_KEY": server.secret_key}
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(VERSITYGW), "--port", f"127.0.0.1:{port}", "posix", str(data)],
            env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_until(lambda: server.client().list_buckets() is not None, "versitygw", 30, [log])
        yield server
    finally:
        process.terminate()
        process.wait(timeout=15)
        shutil.rmtree(data, ignore_errors=True)
        log.unlink(missing_ok=True)
