"""Destination database names at the server's limit: the server keeps each database as a file
`<escaped name>.sql.tmp` of at most 255 bytes, and --strategy swap also creates `<name>__migrate_staging`,
`__migrate_previous` and `__migrate_state`."""

from __future__ import annotations

import pytest

from .conftest import Servers, base_args, databases, run_tool

LONGEST_FOR_SWAP = "L" * 229  # + "__migrate_previous" + ".sql.tmp" = 255 bytes
LONGEST = "M" * 247  # + ".sql.tmp"


@pytest.mark.parametrize(
    ("name", "strategy", "message"),
    [
        ("L" * 230, "swap", "the server keeps <name>__migrate_previous as a file name of 248 bytes"),
        ("M" * 248, "recreate", "the server keeps it as a file name of 248 bytes"),
        # each of the 2 UTF-8 bytes of an accented letter is 3 in the file name (%C3%A9)
        ("\u00e9" * 42, "recreate", "the server keeps it as a file name of 252 bytes"),
    ],
    ids=["swap-230", "recreate-248", "recreate-42-accented"],
)
def test_a_destination_name_too_long_for_the_server_fails_before_connecting(
    servers: Servers, destination_snapshot: None, name: str, strategy: str, message: str
) -> None:
    """It used to fail half-way (exit 1, a server stack trace), swap after creating the destination."""
    run = run_tool([*base_args(servers, name), "--tables", "tiny", "--strategy", strategy])
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"argument --destination-db: a name of {len(name)} characters is too long" in run.stderr
    assert message in run.stderr and run.stdout == ""


@pytest.mark.parametrize(("name", "strategy"), [(LONGEST_FOR_SWAP, "swap"), (LONGEST, "recreate")])
def test_the_longest_destination_name_the_server_holds_is_copied(
    servers: Servers, name: str, strategy: str
) -> None:
    run = run_tool([*base_args(servers, name), "--tables", "tiny", "--strategy", strategy])
    assert run.returncode == 0, run.stdout + run.stderr
    destination = servers.destination.client()
    assert name in databases(destination)
    assert destination.execute(f"SELECT count() FROM `{name}`.tiny") == [(64,)]
    for database in (name, f"{name}__migrate_state"):
        destination.execute(f"DROP DATABASE IF EXISTS `{database}`")
