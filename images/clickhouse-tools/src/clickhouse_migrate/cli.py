"""Command line: flags (kept exactly as existing DAGs pass them), env passwords, exit codes."""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import sys
from collections.abc import Sequence

from . import cancellation
from .connection import Endpoint
from .errors import EXIT_CODE_HELP, ExitCode, MigrationError
from .failure import unexpected_error_lines
from .migrate import DEFAULT_SPLIT_ROWS, SPLIT_MIN_THREADS, Options, previous_database, run, staging_database
from .plan import Selection
from .report import Reporter, escape
from .state import state_database

PASSWORD_ENV = {"source": "CLICKHOUSE_SOURCE_PASSWORD", "destination": "CLICKHOUSE_DESTINATION_PASSWORD"}
DEFAULT_PARALLELISM = 4
DEFAULT_PROGRESS_INTERVAL = 10.0
DEFAULT_STRATEGY = "swap"
DEFAULT_EXECUTE_ON = "destination"
MAX_PARALLELISM = 64
# The server's own databases (compared case-insensitively; INFORMATION_SCHEMA exists in both cases): never
# copied from (system tables, not data) and never written to.
SERVER_DATABASES = frozenset({"system", "information_schema"})
# Databases the tool must never drop objects in: also `default`, where other users' tables live. It is an
# ordinary database to read from.
RESERVED_DATABASES = SERVER_DATABASES | {"default"}
# Flags that a mode makes meaningless: refused together (exit 2) rather than silently ignored. --verify
# stays allowed with --strategy swap, which compares checksums anyway (documented; the DAG passes both).
IGNORED_WITH = {
    "--schema-only": (
        "--strategy",
        "--verify",
        "--execute-query-on",
        "--parallelism",
        "--partition-split-min-rows",
        "--setting",
        "--progress-interval",
    ),
    "--data-only": ("--strategy", "--verify", "--migrate-dicts"),
}
# A server keeps each database as a file named after it, created as `<name>.sql.tmp` (255 bytes at most).
MAX_DATABASE_FILE_NAME = 255 - len(".sql.tmp")
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SETTING_VALUE = re.compile(r"^[A-Za-z0-9_.:+-]+$")
# A label of a host name; `_` too, as container runtimes' DNS names (Docker Compose services) have it.
_HOST_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


def yes_no(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("y", "yes", "true", "1"):
        return True
    if lowered in ("n", "no", "false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected y or n, got {value!r}")


def host(value: str) -> str:
    """A host name or an IP address (IPv6 bare or in brackets), nothing else.

    The value goes to the driver and, with the port, into remote('host:port', ...) on the other server,
    which also reads `a,b` as two shards, `{a,b}` and `a|b` as patterns: a port, a user, a path, spaces
    or such characters would fail later as "cannot reach" (retried) or address other servers."""
    bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        address = None
    if address is not None and (bare == value or address.version == 6):
        return bare
    name = value.removesuffix(".")
    labels = name.split(".")
    if 0 < len(name) <= 253 and all(map(_HOST_LABEL.match, labels)):
        return value
    if value.count(":") == 1 and value.rsplit(":", 1)[1].isdigit():
        raise argparse.ArgumentTypeError(f"{value!r}: give the port with its own --*-port flag")
    raise argparse.ArgumentTypeError(
        f"{value!r} is not a host name or IP address (letters, digits, - and _ in dot-separated labels; "
        "an IPv6 address bare or in [brackets]; no user@, :port, /path, spaces or commas)"
    )


def port(value: str) -> int:
    number = int(value) if value.isdigit() else -1
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {value!r}")
    return number


def parallelism(value: str) -> int:
    number = int(value) if value.isdigit() else 0
    if not 1 <= number <= MAX_PARALLELISM:
        raise argparse.ArgumentTypeError(f"expected 1..{MAX_PARALLELISM}, got {value!r}")
    return number


def non_negative(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value!r}")
    return int(value)


def non_empty(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value


def file_name_length(database: str) -> int:
    """Bytes of the file the server names after a database (bytes other than ASCII letters, digits and _
    escaped as %XX)."""
    return sum(
        1 if char.isascii() and (char.isalnum() or char == "_") else 3 * len(char.encode())
        for char in database
    )


def file_name_problem(destination: str, database: str) -> str | None:
    """Why the server cannot create `database` (the destination or one the tool makes next to it)."""
    length = file_name_length(database)
    if length <= MAX_DATABASE_FILE_NAME:
        return None
    created = "it" if database == destination else f"<name>{database.removeprefix(destination)}"
    return (
        f"a name of {len(destination)} characters is too long: the server keeps {created} as a file name of "
        f"{length} bytes, at most {MAX_DATABASE_FILE_NAME} (255 with .sql.tmp; characters other than ASCII "
        "letters, digits and _ take 3 bytes per UTF-8 byte)"
    )


def check_side_databases(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--strategy swap also creates <destination>__migrate_staging, _previous and _state: each must fit."""
    if args.strategy != "swap" or args.schema_only or args.data_only:
        return
    destination = args.destination_db
    for database in (
        staging_database(destination),
        previous_database(destination),
        state_database(destination),
    ):
        problem = file_name_problem(destination, database)
        if problem:
            parser.error(f"argument --destination-db: {problem}; use a shorter name or --strategy recreate")


def refuse_reserved(value: str, reserved: frozenset[str], why: str) -> None:
    if value.lower() in reserved:
        raise argparse.ArgumentTypeError(
            f"{value!r} is a server database ({', '.join(sorted(reserved))}, any case): {why}"
        )


def source_database(value: str) -> str:
    non_empty(value)
    refuse_reserved(value, SERVER_DATABASES, "its tables are the server's own state, not data to copy")
    return value


def destination_database(value: str) -> str:
    non_empty(value)
    refuse_reserved(
        value, RESERVED_DATABASES, "the tool drops and replaces objects in the destination database"
    )
    problem = file_name_problem(value, value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def positive_seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not 0.1 <= number <= 3600:
        raise argparse.ArgumentTypeError(f"expected 0.1..3600 seconds, got {value!r}")
    return number


def setting(value: str) -> tuple[str, str]:
    """NAME=VALUE for the copy queries: a plain setting name and a plain value (no quotes, no spaces)."""
    name, equals, text = value.partition("=")
    if not equals or not _SETTING_NAME.match(name) or not _SETTING_VALUE.match(text):
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUE (letters, digits, _ in the name; letters, digits, _ . : + - in the value), "
            f"got {value!r}"
        )
    return name, text


def _yes_no_flag(parser: argparse.ArgumentParser, flag: str, help: str) -> None:
    """A y|n flag that is off unless given (existing DAGs pass these as `--flag y`, not bare)."""
    parser.add_argument(flag, type=yes_no, default=False, metavar="y|n", help=help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clickhouse-migrate",
        description="Copy a ClickHouse database to another server, server to server (remote()), "
        "and verify it. "
        "Never writes to the source. By default (--strategy swap) the copy is built and verified in a "
        "staging database and swapped in table by table, so the previous destination copy is never lost.",
        epilog=f"passwords: --source-password / --destination-password, or the environment variables "
        f"{PASSWORD_ENV['source']} / {PASSWORD_ENV['destination']} (flags win).\n\n{EXIT_CODE_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_endpoint_flags(parser)
    _add_selection_flags(parser)
    _add_copy_flags(parser)
    _add_output_flags(parser)
    return parser


def _add_endpoint_flags(parser: argparse.ArgumentParser) -> None:
    for role in ("source", "destination"):
        group = parser.add_argument_group(role)
        group.add_argument(
            f"--{role}-host",
            required=True,
            type=host,
            help="host name or IP address (IPv6 bare or [in brackets])",
        )
        group.add_argument(
            f"--{role}-port", type=port, default=9000, help="native protocol port (default 9000)"
        )
        group.add_argument(f"--{role}-user", default="default", type=non_empty)
        group.add_argument(
            f"--{role}-password", default=None, help=f"default: ${PASSWORD_ENV[role]} or empty"
        )
        group.add_argument(
            f"--{role}-db",
            required=True,
            type=destination_database if role == "destination" else source_database,
        )
    _yes_no_flag(
        parser,
        "--destination-secure-flag",
        "TLS to the destination (client and remoteSecure() when the source pushes)",
    )
    _yes_no_flag(
        parser, "--destination-verify-flag", "verify the destination's TLS certificate (tool connection)"
    )


def _add_selection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--skip-patterns",
        nargs="*",  # an empty list (a DAG expanding no patterns) means: skip nothing
        default=[],
        metavar="P",
        help="skip objects whose name contains any of these substrings",
    )
    parser.add_argument(
        "--tables",
        nargs="+",
        default=None,
        metavar="NAME",
        help="only these objects (exact names); views need their tables listed too",
    )


def _add_copy_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--execute-query-on",
        choices=("source", "destination"),
        default=None,  # DEFAULT_EXECUTE_ON, set after the flags' combinations are checked
        help="server that runs INSERT ... SELECT (default destination; source: pushes via INSERT INTO "
        "FUNCTION remote)",
    )
    _yes_no_flag(parser, "--migrate-dicts", "also recreate DDL dictionaries (ClickHouse >= 19.17)")
    parser.add_argument(
        "--parallelism",
        type=parallelism,
        default=None,  # DEFAULT_PARALLELISM, set after the flags' combinations are checked
        metavar="N",
        help=f"copy queries run at once: tables, or partitions of big tables (default {DEFAULT_PARALLELISM})",
    )
    parser.add_argument(
        "--partition-split-min-rows",
        type=non_negative,
        default=None,
        metavar="N",
        help="copy partitioned MergeTree tables with at least N rows one partition per query, in parallel "
        f"(default {DEFAULT_SPLIT_ROWS} where the executing server runs a query on more than "
        f"{SPLIT_MIN_THREADS} threads, else 0; 0 disables)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="compare an order-independent checksum too (row counts are always compared)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="read-only preflight: connect, check identity, credentials, the server-to-server route; "
        "print the plan and everything that would be dropped; write nothing",
    )
    parser.add_argument(
        "--strategy",
        choices=("swap", "recreate"),
        default=None,  # DEFAULT_STRATEGY, set after the flags' combinations are checked
        help="swap (default): copy into a staging database, verify, then swap table by table (the previous "
        "copy stays readable until the new one is verified); recreate: drop, then copy (downtime)",
    )
    content = parser.add_mutually_exclusive_group()
    content.add_argument(
        "--schema-only",
        action="store_true",
        help="create the objects, copy no rows (refused with "
        f"{', '.join(IGNORED_WITH['--schema-only'])}: they concern the copy)",
    )
    content.add_argument(
        "--data-only",
        action="store_true",
        help="append rows into the existing destination tables (no DDL, nothing dropped; refused with "
        f"{', '.join(IGNORED_WITH['--data-only'])})",
    )
    parser.add_argument(
        "--setting",
        type=setting,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the copy queries, e.g. max_network_bandwidth=10000000 (repeatable); "
        "max_threads or max_insert_threads replaces the one-stream read of MergeTree tables",
    )


def _add_output_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress-interval",
        type=positive_seconds,
        default=None,  # DEFAULT_PROGRESS_INTERVAL, set after the flags' combinations are checked
        metavar="SECONDS",
        help="seconds between [progress] lines of a long copy query (default 10)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text: [event] key=value lines (values escaped); json: one JSON object per line",
    )


def endpoint(args: argparse.Namespace, role: str) -> Endpoint:
    flag_password = getattr(args, f"{role}_password")
    password = flag_password if flag_password is not None else os.environ.get(PASSWORD_ENV[role], "")
    return Endpoint(
        role=role,
        host=getattr(args, f"{role}_host"),
        port=getattr(args, f"{role}_port"),
        user=getattr(args, f"{role}_user"),
        password=password,
        database=getattr(args, f"{role}_db"),
        secure=args.destination_secure_flag if role == "destination" else False,
        verify=args.destination_verify_flag if role == "destination" else False,
    )


def options_from(args: argparse.Namespace) -> Options:
    return Options(
        source=endpoint(args, "source"),
        destination=endpoint(args, "destination"),
        selection=Selection(
            skip_patterns=tuple(args.skip_patterns), tables=args.tables, migrate_dicts=args.migrate_dicts
        ),
        execute_on=args.execute_query_on,
        parallelism=args.parallelism,
        partition_split_min_rows=args.partition_split_min_rows,
        verify_checksums=args.verify,
        dry_run=args.dry_run,
        strategy=args.strategy,
        schema_only=args.schema_only,
        data_only=args.data_only,
        settings=dict(args.setting),
    )


def given(args: argparse.Namespace, flag: str) -> bool:
    """Whether `flag` was on the command line (the flags IGNORED_WITH names default to None, False or [])."""
    value = getattr(args, flag.removeprefix("--").replace("-", "_"))
    return value is not None and value is not False and value != []


def check_combinations(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse a flag that another one makes meaningless, naming both (exit 2)."""
    for mode, ignored in IGNORED_WITH.items():
        if given(args, mode):
            for flag in ignored:
                if given(args, flag):
                    parser.error(f"argument {flag}: not allowed with argument {mode}, which ignores it")
    if args.destination_verify_flag and not args.destination_secure_flag:
        parser.error(
            "argument --destination-verify-flag: y needs --destination-secure-flag y (without TLS there is "
            "no certificate to verify)"
        )


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The checked flags, defaults filled in; exits 2 on bad flags, before any connection."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_combinations(parser, args)
    for name, default in (
        ("strategy", DEFAULT_STRATEGY),
        ("execute_query_on", DEFAULT_EXECUTE_ON),
        ("parallelism", DEFAULT_PARALLELISM),
        ("progress_interval", DEFAULT_PROGRESS_INTERVAL),
    ):
        if getattr(args, name) is None:
            setattr(args, name, default)
    check_side_databases(parser, args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    reporter = Reporter(json_lines=args.log_format == "json", progress_interval=args.progress_interval)
    for role in ("source", "destination"):
        if getattr(args, f"{role}_password") is not None:
            reporter.event(
                "warning",
                reason=f"--{role}-password is visible to every user of this machine (ps, /proc): "
                f"set {PASSWORD_ENV[role]} instead",
            )
    options = options_from(args)
    try:
        with cancellation.on_signals(reporter):
            return int(run(options, reporter))
    except MigrationError as error:
        print(f"clickhouse-migrate: error: {escape(error.message)}", file=sys.stderr, flush=True)
        return int(error.exit_code)
    except (KeyboardInterrupt, cancellation.Cancelled) as interrupt:
        print(f"clickhouse-migrate: interrupted ({interrupt or 'SIGINT'})", file=sys.stderr, flush=True)
        return int(ExitCode.INTERRUPTED)
    except Exception as error:  # last resort: the cause on one line, then the whole detail
        passwords = (options.source.password, options.destination.password)
        print("\n".join(unexpected_error_lines(error, passwords)), file=sys.stderr, flush=True)
        return int(ExitCode.UNEXPECTED)


if __name__ == "__main__":
    sys.exit(main())
