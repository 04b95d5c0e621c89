"""The live stacks' migrated database (tests/dags/live_airflow.py): a copy of a template migrated once per
machine must be what `airflow db migrate` makes of an empty database, and a stack whose settings change
what the migration writes must not get one."""

from __future__ import annotations

import importlib.util
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest
from airflow.configuration import conf
from alembic.config import Config
from alembic.script import ScriptDirectory

from .conftest import DAGS
from .live_airflow import airflow_processes, postgres_server


def airflow_migrations_head() -> str:
    """The newest revision of Airflow's own migrations, read from its migration scripts."""
    spec = importlib.util.find_spec("airflow")
    assert spec and spec.origin
    config = Config()
    config.set_main_option("script_location", str(Path(spec.origin).parent / "migrations"))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head
    return head


def query(sql_alchemy_conn: str, sql: str) -> list[tuple]:
    url = sql_alchemy_conn.replace("postgresql+psycopg2://", "postgresql://")
    with closing(psycopg2.connect(url)) as connection, connection, connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall() if cursor.description else []


def test_a_migrated_copy_is_at_the_head_with_the_migrations_rows() -> None:
    with postgres_server(migrated=True) as sql_alchemy_conn:
        assert query(sql_alchemy_conn, "SELECT version_num FROM alembic_version") == [
            (airflow_migrations_head(),)
        ]
        # rows `airflow db migrate` adds after the schema, with Airflow's defaults
        assert query(sql_alchemy_conn, "SELECT slots FROM slot_pool WHERE pool = 'default_pool'") == [(128,)]
        newest_log_template = "SELECT filename FROM log_template ORDER BY id DESC LIMIT 1"
        default = conf.get_default_value("logging", "log_filename_template")
        assert query(sql_alchemy_conn, newest_log_template) == [(default,)]
        # the FAB provider's DB manager ran too (its tables, empty)
        assert query(sql_alchemy_conn, "SELECT count(*) FROM ab_user") == [(0,)]


def test_copies_are_independent() -> None:
    with postgres_server(migrated=True) as first, postgres_server(migrated=True) as second:
        assert first != second
        query(first, "INSERT INTO slot_pool (pool, slots, include_deferred) VALUES ('only-first', 1, false)")
        assert query(second, "SELECT count(*) FROM slot_pool WHERE pool = 'only-first'") == [(0,)]


@pytest.mark.parametrize(
    "option",
    [
        "AIRFLOW__CORE__DEFAULT_POOL_TASK_SLOT_COUNT",
        "AIRFLOW__LOGGING__LOG_FILENAME_TEMPLATE",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_SCHEMA",
    ],
)
def test_settings_that_change_the_migration_refuse_a_migrated_database(option: str, tmp_path: Path) -> None:
    """Refused before anything starts: the template was migrated with Airflow's defaults for them."""
    stack = airflow_processes(
        "postgresql+psycopg2://unused@127.0.0.1:1/airflow", DAGS, tmp_path / "presets.json", tmp_path,
        extra_env={option: "7"}, migrated=True,
    )  # fmt: skip
    with pytest.raises(ValueError, match=option), stack:
        pass
