"""The Postgres image: initialises itself from the environment and accepts password connections."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg2
import pytest

from tests.images.conftest import container_ip, docker, run_in, wait_until, writable_mounts

pytestmark = pytest.mark.docker

ENVIRONMENT = (
    "-e",
    "POSTGRES_USER=airflow",
    "-e",
    "POSTGRES_PASSWORD=images-test",
    "-e",
    "POSTGRES_DB=airflow",
)


def accepts_connections(container: str) -> bool:
    return docker("exec", container, "pg_isready", "-h", "127.0.0.1", "-q", check=False).returncode == 0


def connect(host: str, password: str) -> psycopg2.extensions.connection:
    return psycopg2.connect(host=host, port=5432, user="airflow", password=password, dbname="airflow")


def test_default_user_is_not_root(image_refs: dict[str, str]) -> None:
    assert run_in(image_refs["postgres"], "id", "-u").stdout.strip() not in {"", "0"}


def test_postgres_starts_and_accepts_a_password_connection(
    image_refs: dict[str, str], start_container: Callable[..., str]
) -> None:
    container = start_container(image_refs["postgres"], *ENVIRONMENT)
    wait_until(lambda: accepts_connections(container), "Postgres accepting connections", container)
    with connect(container_ip(container), "images-test") as connection, connection.cursor() as cursor:
        cursor.execute("SELECT current_user, current_database(), version()")
        user, database, version = cursor.fetchone()
    assert (user, database) == ("airflow", "airflow")
    assert version.startswith("PostgreSQL 15")


def test_wrong_password_is_rejected(image_refs: dict[str, str], start_container: Callable[..., str]) -> None:
    container = start_container(image_refs["postgres"], *ENVIRONMENT)
    wait_until(lambda: accepts_connections(container), "Postgres accepting connections", container)
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        connect(container_ip(container), "wrong")


def test_refuses_to_start_without_a_password(
    image_refs: dict[str, str], start_container: Callable[..., str]
) -> None:
    result = run_in(image_refs["postgres"], options=("-e", "POSTGRES_USER=airflow"))
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


def test_runs_read_only_with_a_password_file_and_a_data_subfolder(
    image_refs: dict[str, str], start_container: Callable[..., str], tmp_path: Path
) -> None:
    """As the chart runs it: read-only image, PGDATA below the volume, password from a Secret file."""
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "password").write_text("from-a-file")
    (secret / "password").chmod(0o644)
    mounts = writable_mounts(tmp_path, "/var/lib/postgresql/data", "/var/run/postgresql", "/tmp")
    container = start_container(
        image_refs["postgres"],
        "--read-only",
        *mounts,
        "-v",
        f"{secret}:/etc/postgres-secret:ro",
        "-e",
        "POSTGRES_USER=airflow",
        "-e",
        "POSTGRES_DB=airflow",
        "-e",
        "POSTGRES_PASSWORD_FILE=/etc/postgres-secret/password",
        "-e",
        "PGDATA=/var/lib/postgresql/data/pgdata",
    )
    wait_until(lambda: accepts_connections(container), "Postgres accepting connections", container)
    with connect(container_ip(container), "from-a-file") as connection, connection.cursor() as cursor:
        cursor.execute("SHOW data_directory")
        assert cursor.fetchone() == ("/var/lib/postgresql/data/pgdata",)
