"""The Postgres image: initialises itself from the environment and accepts password connections."""

from __future__ import annotations

from collections.abc import Callable

import psycopg2
import pytest

from tests.images.conftest import container_ip, docker, run_in, wait_until

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
