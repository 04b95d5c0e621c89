"""The migration run: preflight (no writes), plan, recreate objects, copy data, verify, summarize."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from clickhouse_driver import Client

from . import ddl, swap
from .catalog import DbObject, ObjectKind, read_catalog
from .connection import Endpoint, Server, first_line, same_server
from .copy import CopyRoute, CopyTask, RouteEnd, copy_in_parallel, partition_tasks, remote_function
from .errors import ExitCode, MigrationError
from .failure import step
from .plan import Plan, Selection, build_plan
from .report import CopyResult, Reporter
from .sql import mask_secret, qualified, quote_identifier
from .verify import UNSTORED_KINDS, Fingerprint, compare, fingerprint

DEFAULT_SPLIT_ROWS = 1_000_000
# A server that runs a query on this many threads or fewer (its cores, unless configured) copies a table
# faster in one INSERT ... SELECT than split into partitions: measured with `make bench` on 2 cores, the
# concurrent inserts and the per-row partition filters of 18.16 cost more than they parallelized.
SPLIT_MIN_THREADS = 2


@dataclass(frozen=True)
class Options:
    source: Endpoint
    destination: Endpoint
    selection: Selection = field(default_factory=Selection)
    execute_on: str = "destination"  # "source" | "destination"
    parallelism: int = 4
    # copy bigger partitioned tables partition by partition; None: automatic (see resolve_split)
    partition_split_min_rows: int | None = None
    verify_checksums: bool = False
    dry_run: bool = False
    strategy: str = "swap"  # "swap" | "recreate"
    schema_only: bool = False
    data_only: bool = False
    settings: dict[str, str] = field(default_factory=dict)  # --setting NAME=VALUE for the copy queries

    @property
    def staging_database(self) -> str:
        return staging_database(self.destination.database)

    @property
    def previous_database(self) -> str:
        return previous_database(self.destination.database)


def staging_database(destination: str) -> str:
    return f"{destination}__migrate_staging"


def previous_database(destination: str) -> str:
    return f"{destination}__migrate_previous"


@dataclass
class Outcome:
    created: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # name -> error
    copies: list[CopyResult] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # equal on both sides: not copied again
    not_copied: dict[str, str] = field(default_factory=dict)  # name -> why its rows were not copied


def run(options: Options, reporter: Reporter) -> ExitCode:
    source, destination = preflight(options, reporter)
    try:
        plan = plan_migration(options, source, destination, reporter)
        options = resolve_split(options, copy_route(options, source, destination), plan, reporter)
        if options.dry_run:
            would_drop = list_drops(options, plan, destination, reporter)
            reporter.event(
                "summary",
                dry_run="yes",
                strategy=options.strategy,
                objects=len(plan.ordered),
                skipped=len(plan.skipped),
                would_drop=would_drop,
            )
            return ExitCode.OK
        if options.strategy == "swap" and not (options.schema_only or options.data_only):
            outcome = swap.execute(options, plan, source, destination, reporter)
        else:
            with step(f"copying ({mode_flag(options)})"):
                outcome = execute(options, plan, source, destination, reporter)
        return summarize(outcome, plan, reporter)
    finally:
        source.close()
        destination.close()


def mode_flag(options: Options) -> str:
    """The flag that chose how the copy is written (named in unexpected errors)."""
    if options.schema_only:
        return "--schema-only"
    if options.data_only:
        return "--data-only"
    return f"--strategy {options.strategy}"


def preflight(options: Options, reporter: Reporter) -> tuple[Server, Server]:
    """Every check that can fail before a write: connectivity, credentials, identity, databases, route."""
    src, dst = options.source, options.destination
    source = Server(src, writable=False)
    destination = Server(dst, writable=True)
    for server in (source, destination):
        with step(f"connecting to the {server.endpoint.role} (preflight)"):
            server.connect()
        reporter.event(
            "connect",
            role=server.endpoint.role,
            address=server.endpoint.address,
            version=server.features.version,
        )
    with step("checking the source database and the servers' identity (preflight)"):
        check_source_and_identity(options, source, destination)
    return source, destination


def check_source_and_identity(options: Options, source: Server, destination: Server) -> None:
    src, dst = options.source, options.destination
    if not source.database_exists(src.database):
        raise MigrationError(
            ExitCode.SOURCE_DATABASE_MISSING,
            f"source database '{src.database}' does not exist on {src.address}",
        )
    written = {dst.database, options.staging_database, options.previous_database}
    if src.database in written and same_server(source, destination):
        raise MigrationError(
            ExitCode.SAME_SOURCE_AND_DESTINATION,
            f"destination {dst.address}/{dst.database} is the source {src.address}/{src.database} itself "
            "(the servers report the same identity): refusing to copy onto it",
        )


@step("choosing --partition-split-min-rows (plan)")
def resolve_split(options: Options, route: CopyRoute, plan: Plan, reporter: Reporter) -> Options:
    """The automatic --partition-split-min-rows: split big tables where the copy can run in parallel."""
    if options.partition_split_min_rows is not None or options.schema_only:
        return options
    threads = query_threads(route.executor)
    if threads > SPLIT_MIN_THREADS:
        return replace(options, partition_split_min_rows=DEFAULT_SPLIT_ROWS)
    if any(obj.mergetree and (obj.estimated_rows or 0) >= DEFAULT_SPLIT_ROWS for obj in plan.ordered):
        reporter.event(
            "notice",
            message=f"{route.executor.endpoint.role} server runs a query on {threads or 'unknown'} threads: "
            "each table is copied in one query (--partition-split-min-rows N splits anyway)",
        )
    return replace(options, partition_split_min_rows=0)


def query_threads(server: Server) -> int:
    """max_threads of the server (its cores unless configured; `auto(16)` on current servers), 0: unknown."""
    rows = server.query("SELECT value FROM system.settings WHERE name = 'max_threads'")
    digits = re.findall(r"\d+", str(rows[0][0])) if rows else []
    return int(digits[-1]) if digits else 0


def check_route_reachable(options: Options, route: CopyRoute) -> None:
    """The executing server reaches the other one with the credentials it was given (exit 3 if not)."""
    other = route.destination if route.push else route.source
    secure = route.push and other.secure
    probe = f"SELECT 1 FROM {remote_function(other, 'system', 'one', secure=secure)}"
    try:
        route.executor.query(probe)
    except MigrationError:
        raise
    except Exception as error:
        reason = mask_secret(
            mask_secret(first_line(error), options.source.password), options.destination.password
        )
        if f"Host not found: [{other.host}]" in reason:
            # Old servers (18.16) take `[` as part of the name: no IPv6 address reaches remote() there.
            raise MigrationError(
                ExitCode.UNSUPPORTED,
                f"{route.executor.endpoint.role} server {route.executor.features.version} cannot address the "
                f"IPv6 address {other.address} in remote(): give the {other.role} a host name",
            ) from error
        raise MigrationError(
            ExitCode.UNREACHABLE,
            f"{route.executor.endpoint.role} {route.executor.endpoint.address} cannot reach {other.role} "
            f"{other.address} through remote(): {reason}",
        ) from error


@step("checking where remote() of --execute-query-on leads (preflight)")
def check_route_target(route: CopyRoute, source: Server, destination: Server) -> None:
    """remote() of the executing server must reach the other server, not lead back to itself.

    A host name can mean another server to the executing server than to this tool: then the source
    pushing to `remote(destination)` would insert into its own tables (the copy doubles the source), and
    the destination pulling from `remote(source)` would copy itself. Refused unless the tool too reaches
    one server under both names (a copy between two databases of one server)."""
    other = RouteEnd(route)
    if not same_server(route.executor, other) or same_server(source, destination):
        return
    executor, address = route.executor.endpoint, other.endpoint.address
    raise MigrationError(
        ExitCode.SAME_SOURCE_AND_DESTINATION,
        f"{executor.role} {executor.address} reaches itself through remote('{address}'), while this tool "
        f"reaches another server at {address}: the address means different servers to the two (DNS, "
        f"/etc/hosts, localhost, a Kubernetes short Service name); refusing to copy {executor.role} onto "
        f"itself. Give the {other.endpoint.role} an address that names the same server everywhere (e.g. a "
        "fully qualified name)",
    )


def check_copy_settings(options: Options, route: CopyRoute) -> None:
    known = route.executor.features.settings
    unknown = sorted(name for name in options.settings if name not in known)
    if unknown:
        raise MigrationError(
            ExitCode.UNSUPPORTED,
            f"{route.executor.endpoint.role} server {route.executor.features.version} does not know the "
            f"setting(s) {', '.join(unknown)} given with --setting",
        )


def check_remote_database_names(options: Options, route: CopyRoute, databases: Sequence[str]) -> None:
    """Old servers split remote()'s database argument at a dot ('a.b' becomes database a, table b)."""
    if route.executor.features.version_tuple >= (21,):
        return
    dotted = [name for name in databases if "." in name]
    if dotted:
        other = "destination" if route.push else "source"
        raise MigrationError(
            ExitCode.UNSUPPORTED,
            f"{route.executor.endpoint.role} server {route.executor.features.version} cannot address a "
            f"database with a dot through remote(): {', '.join(repr(name) for name in dotted)}; "
            f"use --execute-query-on {other}",
        )


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


@step("checking the copy route of --execute-query-on (preflight)")
def check_route(options: Options, source: Server, destination: Server) -> None:
    """The executing server can run the copy query and reaches the other server, not itself."""
    check_copy_route(options, source, destination)
    route = copy_route(options, source, destination)
    check_copy_settings(options, route)
    remote_databases = (
        [options.destination.database, options.staging_database] if route.push else [options.source.database]
    )
    check_remote_database_names(options, route, remote_databases)
    check_route_reachable(options, route)
    check_route_target(route, source, destination)


@step("reading the source's objects (plan)")
def plan_migration(options: Options, source: Server, destination: Server, reporter: Reporter) -> Plan:
    if not options.schema_only:  # no rows go from server to server: no route to check
        check_route(options, source, destination)
    route = copy_route(options, source, destination)
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
    check_materialized_view_targets(options, plan, source, destination)
    plan.columns = copy_columns(source, options.source.database, plan)
    if route.push and not options.schema_only:
        check_push_columns(plan, source, options.source.database)
    estimate_rows(source, options.source.database, plan.ordered)
    for position, obj in enumerate(plan.ordered, start=1):
        action = "create+copy" if obj.has_data and not options.schema_only else "create"
        if options.data_only:
            action = "copy" if obj.has_data else "-"
        reporter.event(
            "plan",
            order=position,
            object=obj.name,
            kind=obj.label,
            action=action,
            depends_on=",".join(sorted(obj.depends_on)) or "-",
            estimated_rows=obj.estimated_rows if obj.has_data else "-",
        )
        if obj.unreadable:
            reporter.event(
                "notice",
                object=obj.name,
                message=f"{obj.engine} tables cannot be read back: created empty, their data is not copied",
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
    if options.strategy == "recreate" or options.data_only:
        warn_about_foreign_views(destination, options.destination.database, plan, reporter)
    return plan


def check_materialized_view_targets(
    options: Options, plan: Plan, source: Server, destination: Server
) -> None:
    """A view `TO other_db.t` needs other_db on the destination: refuse now rather than create it broken."""
    missing: list[str] = []
    for obj in plan.ordered:
        target_db = obj.mv_target_database
        if target_db is None or target_db == options.source.database:
            continue
        if not destination.database_exists(target_db):
            missing.append(f"{obj.name} -> {target_db}.{obj.mv_target}")
    if missing:
        raise MigrationError(
            ExitCode.SELECTION,
            "materialized views write to databases the destination does not have (create them, or skip the "
            f"views): {', '.join(missing)}",
        )


def copy_columns(source: Server, database: str, plan: Plan) -> dict[str, tuple[str, ...]]:
    """Stored columns (MATERIALIZED included, ALIAS/EPHEMERAL not) of every object, in table order."""
    columns: dict[str, list[str]] = {}
    for table, name, kind in source.query(
        "SELECT table, name, default_kind FROM system.columns WHERE database = %(db)s", {"db": database}
    ):
        if kind not in UNSTORED_KINDS:
            columns.setdefault(table, []).append(name)
    return {table: tuple(names) for table, names in columns.items()}


def check_push_columns(plan: Plan, source: Server, database: str) -> None:
    """18.16 takes no column list in INSERT INTO FUNCTION: MATERIALIZED columns would be recomputed."""
    if source.features.version_tuple >= (21,):
        return
    rows = source.query(
        "SELECT DISTINCT table FROM system.columns WHERE database = %(db)s AND default_kind = 'MATERIALIZED'",
        {"db": database},
    )
    with_materialized = sorted({row[0] for row in rows} & {obj.name for obj in plan.ordered if obj.has_data})
    if with_materialized:
        raise MigrationError(
            ExitCode.UNSUPPORTED,
            f"source server {source.features.version} cannot push MATERIALIZED columns as they are "
            f"({', '.join(with_materialized)}): use --execute-query-on destination",
        )


@step("listing the destination objects that would be replaced (--dry-run)")
def list_drops(options: Options, plan: Plan, destination: Server, reporter: Reporter) -> int:
    """Dry run: every destination object the run would drop or replace (nothing is dropped)."""
    if options.data_only:
        return 0
    existing = existing_objects(destination, options.destination.database)
    planned = [obj.name for obj in reversed(plan.ordered) if obj.name in existing]
    if options.schema_only:
        planned = []
    how = "replaced by the verified copy (kept until then)" if options.strategy == "swap" else "dropped"
    for name in planned:
        reporter.event("would_drop", object=name, database=options.destination.database, how=how)
    return len(planned)


def existing_objects(server: Server, database: str) -> set[str]:
    return {
        row[0]
        for row in server.query("SELECT name FROM system.tables WHERE database = %(db)s", {"db": database})
    }


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


@step("estimating the source's rows (plan)")
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
        elif obj.mergetree:
            obj.estimated_rows = 0  # no active parts: empty
        else:
            obj.estimated_rows = int(
                source.query(f"SELECT count() FROM {qualified(database, obj.name)}")[0][0]
            )


def execute(options: Options, plan: Plan, source: Server, destination: Server, reporter: Reporter) -> Outcome:
    """--strategy recreate (drop, then copy), --schema-only and --data-only: straight into the destination."""
    outcome = Outcome()
    dst_db = options.destination.database
    if not options.data_only:
        destination.query(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(dst_db)}")
    ddl_client = destination.new_client(database=dst_db)  # unqualified names in DDL resolve here
    route = copy_route(options, source, destination)
    settings = copy_settings(options, route, source, destination)
    try:
        if options.data_only:
            tables = [obj for obj in plan.ordered if obj.has_data]
        else:
            if not options.schema_only:
                drop_existing(destination, ddl_client, plan, dst_db, reporter)
            existing = existing_objects(destination, dst_db) if options.schema_only else set()
            tables = [
                obj
                for obj in plan.tables
                if obj.name in existing or create(destination, ddl_client, obj, options, outcome, reporter)
            ]
        if not options.schema_only:
            tasks = [
                task
                for obj in tables
                if obj.has_data
                for task in partition_tasks(
                    source,
                    options.source.database,
                    obj,
                    options.partition_split_min_rows or 0,
                    plan.columns.get(obj.name, ()),
                )
            ]
            outcome.copies += copy_in_parallel(route, tasks, settings, reporter, options.parallelism)
        for obj in [] if options.data_only else plan.dependents:
            if options.schema_only and obj.name in existing:
                reporter.event("create", object=obj.name, kind=obj.label, status="exists")
                continue
            created = create(destination, ddl_client, obj, options, outcome, reporter)
            if created and obj.has_data and not options.schema_only:
                # Right after creating it, before any view that reads it exists (no double inserts).
                task = CopyTask(
                    obj, columns=plan.columns.get(obj.name, ()), estimated_rows=obj.estimated_rows or 0
                )
                outcome.copies += copy_in_parallel(route, [task], settings, reporter, 1)
    finally:
        ddl_client.disconnect()
    note_unreadable(plan, outcome)
    outcome.failed.update({result.name: result.error for result in outcome.copies if result.error})
    if options.data_only:
        reporter.event("notice", message="--data-only appends: counts are not compared with the source")
    else:
        verify(options, source, destination, outcome, reporter)
    check_estimates(plan, outcome)
    return outcome


def note_unreadable(plan: Plan, outcome: Outcome) -> None:
    for obj in plan.ordered:
        if obj.unreadable:
            outcome.not_copied[obj.name] = f"{obj.engine} data cannot be read back (created empty)"


def check_estimates(plan: Plan, outcome: Outcome, estimates: dict[str, int] | None = None) -> None:
    """Rows written far below the plan's estimate mean something else was copied than was planned.

    estimates: rows expected per object when only part of it is copied (default: the plan's)."""
    if estimates is None:
        estimates = {obj.name: obj.estimated_rows or 0 for obj in plan.ordered}
    for result in outcome.copies:
        expected = estimates.get(result.name, 0)
        if not result.error and result.rows < expected // 2:
            outcome.mismatches.append(
                f"{result.name}: {result.rows} rows written, far below the plan's estimate of {expected}"
            )


def copy_route(options: Options, source: Server, destination: Server) -> CopyRoute:
    push = options.execute_on == "source"
    return CopyRoute(
        executor=source if push else destination,
        source=options.source,
        destination=options.destination,
        push=push,
        writer=destination,
    )


def copy_settings(
    options: Options, route: CopyRoute, source: Server, destination: Server
) -> dict[str, object]:
    """Settings for the copy query: the tool's own (where both servers know them, as the remote side
    receives them too), max_partitions_per_insert_block off where the writing server has it, then the
    user's --setting values (checked against the executing server in the preflight)."""
    wanted = route.executor.features.insert_settings()
    known_by_both = source.features.settings & destination.features.settings
    settings: dict[str, object] = {name: value for name, value in wanted.items() if name in known_by_both}
    if "insert_allow_materialized_columns" in known_by_both:
        settings["insert_allow_materialized_columns"] = 1
    if "max_partitions_per_insert_block" in destination.features.settings:
        settings["max_partitions_per_insert_block"] = 0  # a modern server refuses more than 100 otherwise
    settings.update(options.settings)
    return settings


@step("dropping the planned destination objects")
def drop_existing(destination: Server, client: Client, plan: Plan, database: str, reporter: Reporter) -> None:
    """Drop the planned objects on the destination, dependents first, so the run is idempotent."""
    existing = existing_objects(destination, database)
    for obj in reversed(plan.ordered):
        if obj.name not in existing:
            continue
        statement = "DROP DICTIONARY" if obj.kind is ObjectKind.DICTIONARY else "DROP TABLE"
        destination.run(client, f"{statement} IF EXISTS {qualified(database, obj.name)}")
        reporter.event("drop", object=obj.name, reason="recreated from source")


def create(
    destination: Server,
    client: Client,
    obj: DbObject,
    options: Options,
    outcome: Outcome,
    reporter: Reporter,
    *,
    attach: bool = False,
) -> bool:
    """Create one object on the destination; a failure is recorded and its dependents are not created.

    attach: ATTACH instead of CREATE (a materialized view over an inner table that is already there).
    """
    statement = ddl.rewrite_database(obj.create_query, options.source.database, options.destination.database)
    if obj.replicated:
        statement = ddl.unreplicate(statement)
    if attach:
        statement = ddl.as_attach(statement)
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


@step("verifying the copy against the source (row counts, checksums with --verify)")
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
        report_verification(result.name, before, after, outcome, reporter)


def report_verification(
    name: str, before: Fingerprint, after: Fingerprint, outcome: Outcome, reporter: Reporter
) -> None:
    mismatch = compare(name, before, after)
    if mismatch:
        outcome.mismatches.append(mismatch)
    reporter.event(
        "verify",
        object=name,
        status="mismatch" if mismatch else "ok",
        rows=after.rows,
        checksum=after.checksum if after.checksum is not None else "-",
        **({"detail": mismatch} if mismatch else {}),
    )


def summarize(outcome: Outcome, plan: Plan, reporter: Reporter) -> ExitCode:
    rows = sum(result.rows for result in outcome.copies)
    copy_bytes = sum(result.bytes for result in outcome.copies)
    seconds = reporter.elapsed()
    for result in sorted(outcome.copies, key=lambda copied: copied.name):
        reporter.event("table", **result.event_fields(rows_written=result.rows, rows_read=result.read_rows))
    for name in outcome.unchanged:
        reporter.event("table", object=name, status="unchanged", rows_written=0)
    for name, reason in outcome.not_copied.items():
        reporter.event("table", object=name, status="not_copied", reason=reason)
    reporter.event(
        "summary",
        created=len(outcome.created),
        copied=sum(1 for result in outcome.copies if not result.error),
        unchanged=len(outcome.unchanged),
        not_copied=len(outcome.not_copied),
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
