"""The migration run: preflight (no writes), plan, recreate objects, copy data, verify, summarize."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from clickhouse_driver import Client

from . import ddl
from .catalog import DbObject, ObjectKind, read_catalog
from .connection import Endpoint, Server, first_line, same_server
from .copy import CopyRoute, CopyTask, copy_in_parallel, partition_tasks
from .errors import ExitCode, MigrationError
from .plan import Plan, Selection, build_plan
from .report import CopyResult, Reporter
from .sql import qualified, quote_identifier
from .verify import compare, fingerprint


@dataclass(frozen=True)
class Options:
    source: Endpoint
    destination: Endpoint
    selection: Selection = field(default_factory=Selection)
    execute_on: str = "destination"  # "source" | "destination"
    parallelism: int = 4
    partition_split_min_rows: int = 1_000_000  # copy bigger partitioned tables partition by partition
    verify_checksums: bool = False
    dry_run: bool = False


@dataclass
class Outcome:
    created: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # name -> error
    copies: list[CopyResult] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)


def run(options: Options, reporter: Reporter) -> ExitCode:
    source, destination = preflight(options, reporter)
    try:
        plan = plan_migration(options, source, destination, reporter)
        if options.dry_run:
            reporter.event("summary", dry_run="yes", objects=len(plan.ordered), skipped=len(plan.skipped))
            return ExitCode.OK
        outcome = execute(options, plan, source, destination, reporter)
        return summarize(outcome, plan, reporter)
    finally:
        source.close()
        destination.close()


def preflight(options: Options, reporter: Reporter) -> tuple[Server, Server]:
    """Every check that can fail before a write: connectivity, credentials, databases, features."""
    src, dst = options.source, options.destination
    if src.database == dst.database and same_server(src, dst):
        raise MigrationError(
            ExitCode.SAME_SOURCE_AND_DESTINATION,
            f"destination {dst.address}/{dst.database} is the source itself: refusing to copy onto it",
        )
    source = Server(src, writable=False)
    destination = Server(dst, writable=True)
    for server in (source, destination):
        server.connect()
        reporter.event(
            "connect",
            role=server.endpoint.role,
            address=server.endpoint.address,
            version=server.features.version,
        )
    if not source.database_exists(src.database):
        raise MigrationError(
            ExitCode.SOURCE_DATABASE_MISSING,
            f"source database '{src.database}' does not exist on {src.address}",
        )
    return source, destination


def check_copy_route(options: Options, source: Server, destination: Server) -> None:
    """The executing server must have the table function the copy needs (18.16 has no remoteSecure)."""
    push = options.execute_on == "source"
    executor = source if push else destination
    function = "remoteSecure" if push and options.destination.secure else "remote"
    if function not in executor.features.table_functions:
        raise MigrationError(
            ExitCode.UNSUPPORTED,
            f"{executor.endpoint.role} server {executor.features.version} has no {function}() table function"
            + (": use --execute-query-on destination for a TLS destination" if push else ""),
        )


def plan_migration(options: Options, source: Server, destination: Server, reporter: Reporter) -> Plan:
    check_copy_route(options, source, destination)
    selection = options.selection
    if selection.migrate_dicts and not source.features.ddl_dictionaries:
        reporter.event(
            "notice",
            message=f"source server {source.features.version} has no DDL dictionaries "
            "(they exist from ClickHouse 19.17): no dictionaries to migrate",
        )
    catalog = read_catalog(source.query, options.source.database)
    plan = build_plan(catalog, selection)
    wants_dicts = [obj.name for obj in plan.ordered if obj.kind is ObjectKind.DICTIONARY]
    if wants_dicts and not destination.features.ddl_dictionaries:
        raise MigrationError(
            ExitCode.UNSUPPORTED,
            f"destination server {destination.features.version} has no DDL dictionaries (ClickHouse >= 19.17 "
            f"needed) but --migrate-dicts y selected {', '.join(wants_dicts)}",
        )
    estimate_rows(source, options.source.database, plan.ordered)
    for position, obj in enumerate(plan.ordered, start=1):
        action = "create+copy" if obj.has_data else "create"
        reporter.event(
            "plan",
            order=position,
            object=obj.name,
            kind=obj.label,
            action=action,
            depends_on=",".join(sorted(obj.depends_on)) or "-",
            estimated_rows=obj.estimated_rows if obj.has_data else "-",
        )
    for name, reason in plan.skipped.items():
        reporter.event("skip", object=name, reason=reason)
    for obj in plan.ordered:
        if obj.replicated:
            reporter.event(
                "notice",
                object=obj.name,
                message=f"{obj.engine} is recreated as {obj.engine.removeprefix('Replicated')}: with the "
                "source's ZooKeeper path it would join (and write to) the source's replication",
            )
    warn_about_foreign_views(destination, options.destination.database, plan, reporter)
    return plan


def warn_about_foreign_views(destination: Server, database: str, plan: Plan, reporter: Reporter) -> None:
    """Materialized views that exist only on the destination fire when the copy inserts into their source
    tables (and would change tables of the plan): say so up front; verification will name the effect."""
    planned = {obj.name for obj in plan.ordered}
    for obj in read_catalog(destination.query, database):
        if obj.kind is not ObjectKind.MATERIALIZED_VIEW or obj.name in planned:
            continue
        fed_by = sorted((obj.depends_on - {obj.mv_target}) & planned)
        if fed_by:
            reporter.event(
                "warning",
                object=obj.name,
                reason=f"destination-only materialized view reads {', '.join(fed_by)}: the copy will fire it",
            )


def estimate_rows(source: Server, database: str, objects: Sequence[DbObject]) -> None:
    """Row estimates for the plan: part metadata for MergeTree tables, count() for the others."""
    parts = dict(
        source.query(
            "SELECT table, sum(rows) FROM system.parts WHERE database = %(db)s AND active GROUP BY table",
            {"db": database},
        )
    )
    for obj in objects:
        if not obj.has_data:
            continue
        if obj.name in parts and obj.kind is ObjectKind.TABLE:
            obj.estimated_rows = int(parts[obj.name])
        else:
            obj.estimated_rows = int(
                source.query(f"SELECT count() FROM {qualified(database, obj.name)}")[0][0]
            )


def execute(options: Options, plan: Plan, source: Server, destination: Server, reporter: Reporter) -> Outcome:
    outcome = Outcome()
    dst_db = options.destination.database
    destination.query(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(dst_db)}")
    ddl_client = destination.new_client(database=dst_db)  # unqualified names in DDL resolve here
    try:
        drop_existing(destination, ddl_client, plan, dst_db, reporter)
        route = copy_route(options, source, destination)
        settings = insert_settings(route, source, destination)
        tables = [
            obj for obj in plan.tables if create(destination, ddl_client, obj, options, outcome, reporter)
        ]
        tasks = [
            task
            for obj in tables
            if obj.has_data
            for task in partition_tasks(
                source, options.source.database, obj, options.partition_split_min_rows
            )
        ]
        outcome.copies += copy_in_parallel(route, tasks, settings, reporter, options.parallelism)
        for obj in plan.dependents:
            if create(destination, ddl_client, obj, options, outcome, reporter) and obj.has_data:
                # Right after creating it, before any view that reads it exists (no double inserts).
                task = CopyTask(obj, estimated_rows=obj.estimated_rows or 0)
                outcome.copies += copy_in_parallel(route, [task], settings, reporter, 1)
    finally:
        ddl_client.disconnect()
    outcome.failed.update({result.name: result.error for result in outcome.copies if result.error})
    verify(options, source, destination, outcome, reporter)
    return outcome


def copy_route(options: Options, source: Server, destination: Server) -> CopyRoute:
    push = options.execute_on == "source"
    return CopyRoute(
        executor=source if push else destination,
        source=options.source,
        destination=options.destination,
        push=push,
    )


def insert_settings(route: CopyRoute, source: Server, destination: Server) -> dict[str, int]:
    """Settings for the copy query that both servers know (the remote side receives them too)."""
    wanted = route.executor.features.insert_settings()
    known_by_both = source.features.settings & destination.features.settings
    return {name: value for name, value in wanted.items() if name in known_by_both}


def drop_existing(destination: Server, client: Client, plan: Plan, database: str, reporter: Reporter) -> None:
    """Drop the planned objects on the destination, dependents first, so the run is idempotent."""
    existing = {
        row[0]
        for row in destination.query(
            "SELECT name FROM system.tables WHERE database = %(db)s", {"db": database}
        )
    }
    for obj in reversed(plan.ordered):
        if obj.name not in existing:
            continue
        statement = "DROP DICTIONARY" if obj.kind is ObjectKind.DICTIONARY else "DROP TABLE"
        destination.run(client, f"{statement} IF EXISTS {qualified(database, obj.name)}")
        reporter.event("drop", object=obj.name, reason="recreated from source")


def create(
    destination: Server, client: Client, obj: DbObject, options: Options, outcome: Outcome, reporter: Reporter
) -> bool:
    """Create one object on the destination; a failure is recorded and its dependents are not created."""
    statement = ddl.rewrite_database(obj.create_query, options.source.database, options.destination.database)
    if obj.replicated:
        statement = ddl.unreplicate(statement)
    error = creation_blocker(obj, outcome)
    if error is None:
        try:
            destination.run(client, statement, settings=destination.features.ddl_settings())
        except MigrationError:
            raise
        except Exception as failure:  # reported per object; the run goes on with what does not depend on it
            error = first_line(failure)
    if error is not None:
        outcome.failed[obj.name] = error
        reporter.event("create", object=obj.name, kind=obj.label, status="failed", error=error)
        return False
    outcome.created.append(obj.name)
    reporter.event("create", object=obj.name, kind=obj.label, status="ok")
    return True


def creation_blocker(obj: DbObject, outcome: Outcome) -> str | None:
    failed_dependencies = sorted(dep for dep in obj.depends_on if dep in outcome.failed)
    if failed_dependencies:
        return f"not created: dependency {', '.join(failed_dependencies)} failed"
    if ddl.HIDDEN_SECRET in obj.create_query:
        # Current servers mask credentials in system.tables: the DDL would recreate a broken object.
        return f"not created: the source masks secrets in its DDL ({ddl.HIDDEN_SECRET}); recreate it by hand"
    return None


def verify(
    options: Options, source: Server, destination: Server, outcome: Outcome, reporter: Reporter
) -> None:
    for result in sorted(outcome.copies, key=lambda copied: copied.name):
        if result.error:
            continue
        before = fingerprint(
            source, options.source.database, result.name, with_checksum=options.verify_checksums
        )
        after = fingerprint(
            destination, options.destination.database, result.name, with_checksum=options.verify_checksums
        )
        mismatch = compare(result.name, before, after)
        if mismatch:
            outcome.mismatches.append(mismatch)
        reporter.event(
            "verify",
            object=result.name,
            status="mismatch" if mismatch else "ok",
            rows=after.rows,
            checksum=after.checksum if after.checksum is not None else "-",
            **({"detail": mismatch} if mismatch else {}),
        )


def summarize(outcome: Outcome, plan: Plan, reporter: Reporter) -> ExitCode:
    rows = sum(result.rows for result in outcome.copies)
    copy_bytes = sum(result.bytes for result in outcome.copies)
    seconds = reporter.elapsed()
    reporter.event(
        "summary",
        created=len(outcome.created),
        copied=sum(1 for result in outcome.copies if not result.error),
        skipped=len(plan.skipped),
        failed=len(outcome.failed),
        mismatches=len(outcome.mismatches),
        rows=rows,
        bytes=copy_bytes,
        seconds=seconds,
        rows_per_s=round(rows / seconds) if seconds > 0 else 0,
    )
    for name, error in outcome.failed.items():
        reporter.event("failed", object=name, error=error)
    for mismatch in outcome.mismatches:
        reporter.event("mismatch", detail=mismatch)
    if outcome.failed:
        return ExitCode.COPY_FAILED
    if outcome.mismatches:
        return ExitCode.VERIFY_MISMATCH
    return ExitCode.OK
