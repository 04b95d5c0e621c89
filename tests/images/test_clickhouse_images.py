"""The ClickHouse images: the migration tool with its client, and the demo/e2e server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from clickhouse_driver import Client
from clickhouse_driver.errors import ServerException

from tests.images.conftest import container_ip, docker, run_in, wait_until, writable_mounts

pytestmark = pytest.mark.docker

PASSWORD = "images-test-password"


def test_migration_tool_prints_its_help(image_refs: dict[str, str]) -> None:
    result = run_in(image_refs["clickhouse-tools"], "clickhouse-migrate", "--help")
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()


def test_tools_image_has_the_clickhouse_client(image_refs: dict[str, str]) -> None:
    result = run_in(image_refs["clickhouse-tools"], "clickhouse-client", "--version")
    assert result.returncode == 0, result.stderr
    assert "ClickHouse client version" in result.stdout


@pytest.mark.parametrize("image", ["clickhouse-tools", "clickhouse-server"])
def test_default_user_is_not_root(image_refs: dict[str, str], image: str) -> None:
    result = run_in(image_refs[image], "id", "-u")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() not in {"", "0"}


def server_answers(container: str) -> bool:
    query = ("clickhouse-client", "--password", PASSWORD, "--query", "SELECT 1")
    return docker("exec", container, *query, check=False).stdout.strip() == "1"


def test_server_starts_and_answers_select_1(
    image_refs: dict[str, str], start_container: Callable[..., str]
) -> None:
    container = start_container(image_refs["clickhouse-server"], "-e", f"CLICKHOUSE_PASSWORD={PASSWORD}")
    wait_until(lambda: server_answers(container), "ClickHouse answering SELECT 1", container)
    logs = docker("logs", container)
    assert "Ready for connections" in logs.stdout + logs.stderr, "the server logs to the console"


def test_server_listens_on_the_network_and_requires_the_password(
    image_refs: dict[str, str], start_container: Callable[..., str]
) -> None:
    container = start_container(image_refs["clickhouse-server"], "-e", f"CLICKHOUSE_PASSWORD={PASSWORD}")
    wait_until(lambda: server_answers(container), "ClickHouse answering SELECT 1", container)
    host = container_ip(container)
    assert Client(host, password=PASSWORD).execute("SELECT version()")[0][0].startswith("18.16")
    with pytest.raises(ServerException):
        Client(host, password="wrong").execute("SELECT 1")
    data_dir = docker("exec", container, "stat", "-c", "%U", "/var/lib/clickhouse/data").stdout.strip()
    assert data_dir == "clickhouse"


def test_server_runs_with_a_read_only_root_filesystem(
    image_refs: dict[str, str], start_container: Callable[..., str], tmp_path: Path
) -> None:
    """As the chart runs it: read-only image, data/logs/run/tmp/users.d on volumes."""
    mounts = writable_mounts(
        tmp_path,
        "/var/lib/clickhouse",
        "/var/log/clickhouse-server",
        "/var/run/clickhouse-server",
        "/tmp",
        "/etc/clickhouse-server/users.d",
    )
    container = start_container(
        image_refs["clickhouse-server"], "--read-only", *mounts, "-e", f"CLICKHOUSE_PASSWORD={PASSWORD}"
    )
    wait_until(lambda: server_answers(container), "ClickHouse answering SELECT 1", container)
    client = Client(container_ip(container), password=PASSWORD)
    client.execute("CREATE TABLE numbers_copy (n UInt64) ENGINE = MergeTree ORDER BY n")
    client.execute("INSERT INTO numbers_copy SELECT number FROM system.numbers LIMIT 1000")
    assert client.execute("SELECT sum(n) FROM numbers_copy") == [(499500,)]


def test_tools_client_reaches_the_server_image(
    image_refs: dict[str, str], start_container: Callable[..., str]
) -> None:
    """What the sync DAG's drop/create tasks do: the tools image's client against a server."""
    container = start_container(image_refs["clickhouse-server"], "-e", f"CLICKHOUSE_PASSWORD={PASSWORD}")
    wait_until(lambda: server_answers(container), "ClickHouse answering SELECT 1", container)
    client = f'clickhouse-client --host {container_ip(container)} --password "$CLICKHOUSE_PASSWORD"'
    count = "SELECT count() FROM system.databases WHERE name = 'demo_copy'"
    script = f'{client} -q "CREATE DATABASE demo_copy" && {client} -q "{count}"'
    result = run_in(
        image_refs["clickhouse-tools"], "sh", "-c", script, options=("-e", f"CLICKHOUSE_PASSWORD={PASSWORD}")
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
