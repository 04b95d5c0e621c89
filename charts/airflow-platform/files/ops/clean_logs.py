"""Task-log retention: deletes task logs older than a number of days.

Run by the log-cleanup CronJob in the Airflow image. What it cleans comes from airflow.cfg (one place):
  - remote logs: objects under [logging] remote_base_log_folder (s3://bucket/prefix) through the
    connection [logging] remote_log_conn_id, when [logging] remote_logging is on;
  - local logs: files under [logging] base_log_folder, when --local is given (hostPath/pvc modes).
Usage: python clean_logs.py --retention-days N [--local]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DELETE_BATCH = 1000  # the most keys one S3 DeleteObjects call accepts


def _progress(what: str, count: int, started: float) -> None:
    print(f"[log-cleanup] {what}: {count} deleted ({time.monotonic() - started:.1f} s)", flush=True)


def clean_local(folder: Path, cutoff: datetime) -> int:
    """Deletes files last modified before cutoff, then the directories this left empty."""
    started, deleted = time.monotonic(), 0
    limit = cutoff.timestamp()
    for directory, _subdirs, files in os.walk(folder, topdown=False):
        for name in files:
            path = Path(directory, name)
            try:
                if path.lstat().st_mtime < limit:
                    path.unlink()
                    deleted += 1
            except FileNotFoundError:  # a concurrent writer rotated it away
                continue
        if Path(directory) != folder and not any(Path(directory).iterdir()):
            Path(directory).rmdir()
    _progress(f"local {folder}", deleted, started)
    return deleted


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def expired_keys(client: Any, bucket: str, prefix: str, cutoff: datetime) -> Iterator[str]:
    """Keys under prefix/ (a folder: `tasks` never matches `tasks-old/`) modified before cutoff."""
    folder = prefix.strip("/") + "/" if prefix.strip("/") else ""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
        for item in page.get("Contents", []):
            if item["LastModified"] < cutoff:
                yield item["Key"]


def clean_remote(client: Any, bucket: str, prefix: str, cutoff: datetime) -> int:
    started, deleted = time.monotonic(), 0
    for batch in _batches(expired_keys(client, bucket, prefix, cutoff), DELETE_BATCH):
        response = client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
        )
        if response.get("Errors"):
            errors = ", ".join(f"{e['Key']}: {e['Code']}" for e in response["Errors"][:5])
            raise RuntimeError(f"s3://{bucket}: {len(response['Errors'])} objects not deleted ({errors})")
        deleted += len(batch)
        _progress(f"s3://{bucket}/{prefix} (running)", deleted, started)
    _progress(f"s3://{bucket}/{prefix}", deleted, started)
    return deleted


def remote_client() -> tuple[Any, str, str] | None:
    """(boto3 S3 client, bucket, prefix) from airflow.cfg, or None when remote logging is off."""
    from airflow.configuration import conf
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    if not conf.getboolean("logging", "remote_logging", fallback=False):
        return None
    folder = conf.get("logging", "remote_base_log_folder")
    if not folder.startswith("s3://"):
        raise SystemExit(f"[logging] remote_base_log_folder {folder!r}: only s3:// folders are cleaned")
    hook = S3Hook(aws_conn_id=conf.get("logging", "remote_log_conn_id"))
    bucket, prefix = hook.parse_s3_url(folder)
    return hook.get_conn(), bucket, prefix


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retention-days", type=int, required=True)
    parser.add_argument("--local", action="store_true", help="also clean [logging] base_log_folder")
    args = parser.parse_args(argv)
    if args.retention_days < 1:
        parser.error(f"--retention-days must be at least 1, got {args.retention_days}")
    cutoff = datetime.now(UTC) - timedelta(days=args.retention_days)
    print(f"[log-cleanup] deleting task logs older than {cutoff:%Y-%m-%d %H:%M} UTC", flush=True)
    remote = remote_client()
    if remote is not None:
        clean_remote(*remote, cutoff)
    if args.local:
        from airflow.configuration import conf

        clean_local(Path(conf.get("logging", "base_log_folder")), cutoff)
    if remote is None and not args.local:
        print("[log-cleanup] nothing to clean: no remote logging and no local log volume", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
