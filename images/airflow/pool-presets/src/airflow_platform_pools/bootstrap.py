"""Write what the presets declare into Airflow's metadata database (the chart's `airflow-bootstrap` Job).

- one Airflow pool per workload namespace (`airflowPools`), slots mirroring the namespace quota, deferred
  tasks counted (a deferred KubernetesPodOperator task still has its pod running in the namespace);
- the SMTP connection of the notifications (`notifications`), password from $PLATFORM_SMTP_PASSWORD.

Idempotent: creates or updates, never deletes (pools or connections made by hand stay).
Run: `python -m airflow_platform_pools.bootstrap` with the Airflow environment (database connection).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from . import presets

SMTP_PASSWORD_ENV = "PLATFORM_SMTP_PASSWORD"


def smtp_connection_fields(settings: dict[str, Any], password: str | None) -> dict[str, Any]:
    """Connection fields SmtpHook reads (host, port, login, extras), from the chart's notifications."""
    smtp = settings["smtp"]
    return {
        "conn_type": "smtp",
        "host": smtp["host"],
        "port": int(smtp["port"]),
        "login": smtp.get("user") or None,
        "password": password or None,
        "extra": {
            "from_email": settings["from"],
            "disable_ssl": not smtp.get("ssl", False),
            "disable_tls": not smtp.get("starttls", False),
            "timeout": int(smtp.get("timeoutSeconds", 30)),
            "retry_limit": 2,
        },
    }


def _upsert_pools(pools: dict[str, dict[str, Any]]) -> None:
    from airflow.models.pool import Pool

    for name, pool in sorted(pools.items()):
        Pool.create_or_update_pool(
            name, int(pool["slots"]), pool.get("description", ""), include_deferred=True
        )
        print(f"[bootstrap] pool {name}: {pool['slots']} slots", flush=True)


def _upsert_connection(conn_id: str, fields: dict[str, Any]) -> None:
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        connection = session.query(Connection).filter(Connection.conn_id == conn_id).one_or_none()
        if connection is None:
            session.add(Connection(conn_id=conn_id, **fields))
            action = "created"
        else:
            replacement = Connection(conn_id=conn_id, **fields)
            for attribute in ("conn_type", "host", "port", "login", "password", "extra"):
                setattr(connection, attribute, getattr(replacement, attribute))
            action = "updated"
    print(f"[bootstrap] connection {conn_id} ({fields['host']}:{fields['port']}) {action}", flush=True)


def main() -> int:
    started = time.monotonic()
    document = presets()
    _upsert_pools(document.get("airflowPools") or {})
    notifications = document.get("notifications") or {}
    if notifications.get("enabled"):
        password = os.environ.get(SMTP_PASSWORD_ENV)
        _upsert_connection(notifications["connectionId"], smtp_connection_fields(notifications, password))
    print(f"[bootstrap] done in {time.monotonic() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
