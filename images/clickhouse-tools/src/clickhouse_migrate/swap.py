"""--strategy swap (the default): the previous destination copy is never lost.

1. Stage: every table with rows (and the inner table of each materialized view on an Ordinary database)
   is built in `<destination>__migrate_staging` on the destination. What is already equal is not copied
   again: a destination table equal to the source (same DDL, same per-partition counts and checksums) is
   left as it is; in a table that differs, partitions already equal in the staging table (a killed run)
   are kept, partitions equal in the destination table are taken from it locally (REPLACE PARTITION),
   only the others are copied from the source.
2. Verify the staging tables against the source: per-partition counts and checksums, always (read
   while the copy runs, see Verifier; only what changed since is read again before the swap).
3. Swap (signals deferred until done, metadata only): drop the planned views of the destination (moving
   inner tables aside first), move each staged table in with RENAME TABLE (EXCHANGE TABLES on Atomic
   databases), the previous table going to `<destination>__migrate_previous`; recreate views, dictionaries
   and materialized views against the final names (a view with an inner table is ATTACHed to its new
   inner table).
4. Drop the previous copies and the staging database last.
A failure or a kill before step 3 leaves the destination untouched (a re-run resumes from the staging
database); a failure during step 3 keeps the previous copies in `<destination>__migrate_previous`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from clickhouse_driver import Client

from . import ddl, state
from . import migrate as m
from .cancellation import TRACKER
from .catalog import INNER_TABLE_PREFIXES, DbObject, ObjectKind, inner_table_object
from .connection import Server, first_line
from .copy import CopyTask, copy_in_parallel, partition_tasks, supports_partition_id
from .errors import MigrationError
from .failure import step
from .plan import Plan
from .report import CopyResult, Reporter
from .sql import partition_filter, qualified, quote_identifier, quote_string
from .verify import (
    Fingerprint,
    Part,
    active_parts,
    only_merged,
    partition_fingerprints,
    stored_columns,
    total,
)

T = TypeVar("T")


@dataclass
class Staged:
    """One table built in the staging database."""

    obj: DbObject
    columns: list[tuple[str, str]]  # (name, type) of stored columns, from the source
    by_partition: bool
    source_fingerprints: dict[str, Fingerprint] | None = None
    source_parts: dict[str, str] | None = None  # the source's part names just before its fingerprints
    tasks: list[CopyTask] = field(default_factory=list)
    remembered: dict[str, state.PartitionState] | None = None  # verified state to save after the swap


@step("copying (--strategy swap)")
def execute(
    options: m.Options, plan: Plan, source: Server, destination: Server, reporter: Reporter
) -> m.Outcome:
    outcome = m.Outcome()
    dst, stage = options.destination.database, options.staging_database
    with step("creating the destination and staging databases (--strategy swap)"):
        for database in (dst, stage):
            destination.query(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)}")
    stage_client = destination.new_client(database=stage)
    dst_client = destination.new_client(database=dst)
    remembered = load_state(destination, dst, reporter)
    try:
        stages = stage_tables(options, plan, source, destination, stage_client, outcome, reporter, remembered)
        if stages is None:
            return outcome
        staged, unchanged = stages
        route = m.copy_route(options, source, destination)
        settings = m.copy_settings(options, route, source, destination)
        tasks = [task for table in staged for task in table.tasks]
        copying = step("copying into the staging database (--strategy swap)")
        with copying, Verifier(options, staged, source, destination) as verifier:
            outcome.copies += copy_in_parallel(
                route, tasks, settings, reporter, options.parallelism, on_done=verifier.copied
            )
            outcome.failed.update({result.name: result.error for result in outcome.copies if result.error})
            m.note_unreadable(plan, outcome)
            if not outcome.failed:
                verify_staging(options, staged, source, destination, outcome, reporter, verifier)
                expected: dict[str, int] = {}
                for task in tasks:
                    expected[task.obj.name] = expected.get(task.obj.name, 0) + task.estimated_rows
                m.check_estimates(plan, outcome, expected)
        if outcome.failed or outcome.mismatches:
            reporter.event(
                "swap",
                status="not_started",
                reason="the staged copy failed or did not verify: the destination is untouched",
                staging=stage,
            )
            return outcome
        swap_in(options, plan, staged, destination, dst_client, outcome, reporter)
        if not outcome.failed:
            drop_leftovers(options, destination, reporter)
            save_state(destination, dst, [*staged, *unchanged], reporter)
    finally:
        stage_client.disconnect()
        dst_client.disconnect()
    return outcome


@step("creating the staging tables and comparing with the destination (--strategy swap)")
def stage_tables(
    options: m.Options,
    plan: Plan,
    source: Server,
    destination: Server,
    stage_client: Client,
    outcome: m.Outcome,
    reporter: Reporter,
    remembered: state.Remembered,
) -> tuple[list[Staged], list[Staged]] | None:
    """Create the staging tables and decide what to copy: (tables to stage, tables left unchanged);
    None when a table could not be created."""
    src, dst, stage = options.source.database, options.destination.database, options.staging_database
    dst_ddl = table_ddls(destination, dst)
    stage_ddl = table_ddls(destination, stage)
    staged: list[Staged] = []
    staged_unchanged: list[Staged] = []
    for obj in data_tables(plan, source, src):
        wanted = comparable(obj.create_query, src)
        columns = stored_columns(source, src, obj.name)
        by_partition = (
            obj.mergetree
            and supports_partition_id(source, src, obj.name)
            and (obj.name not in dst_ddl or supports_partition_id(destination, dst, obj.name))
        )
        table = Staged(obj, columns, by_partition)
        in_destination = dst_ddl.get(obj.name) is not None and comparable(dst_ddl[obj.name], dst) == wanted
        in_stage = stage_ddl.get(obj.name) is not None and comparable(stage_ddl[obj.name], stage) == wanted
        dst_fps: dict[str, Fingerprint] = {}
        if in_destination:
            table.source_fingerprints, dst_fps = compare_with_destination(
                options, table, source, destination, remembered.get(obj.name, {})
            )
            if dst_fps == table.source_fingerprints:
                outcome.unchanged.append(obj.name)
                reporter.event("unchanged", object=obj.name, rows=total(dst_fps).rows, action="not copied")
                staged_unchanged.append(table)
                continue
        if obj.name in stage_ddl and not in_stage:
            destination.run(stage_client, f"DROP TABLE IF EXISTS {qualified(stage, obj.name)}")
        if not in_stage:
            statement = create_statement(obj, src, stage)
            try:
                destination.run(stage_client, statement, settings=destination.features.ddl_settings())
            except MigrationError:
                raise
            except Exception as failure:
                outcome.failed[obj.name] = first_line(failure)
                reporter.event(
                    "create",
                    object=obj.name,
                    kind=obj.label,
                    database=stage,
                    status="failed",
                    error=first_line(failure),
                )
                continue
            reporter.event("create", object=obj.name, kind=obj.label, database=stage, status="ok")
        plan_copies(options, plan, table, source, destination, in_destination, in_stage, dst_fps, reporter)
        staged.append(table)
    if outcome.failed:
        reporter.event("swap", status="not_started", reason="staging tables could not be created")
        return None
    return staged, staged_unchanged


def data_tables(plan: Plan, source: Server, database: str) -> list[DbObject]:
    """Phase-1 tables with rows, then the inner tables of materialized views (Ordinary databases)."""
    tables = [obj for obj in plan.tables if obj.has_data]
    for view in plan.dependents:
        inner = inner_table_object(source.query, database, view)
        if inner is not None:
            tables.append(inner)
            plan.columns.setdefault(
                inner.name, tuple(name for name, _ in stored_columns(source, database, inner.name))
            )
            inner.estimated_rows = view.estimated_rows
    return tables


def plan_copies(
    options: m.Options,
    plan: Plan,
    table: Staged,
    source: Server,
    destination: Server,
    in_destination: bool,
    in_stage: bool,
    dst_fps: dict[str, Fingerprint],
    reporter: Reporter,
) -> None:
    """Fill table.tasks with only what the staging table still lacks."""
    obj = table.obj
    src, dst, stage = options.source.database, options.destination.database, options.staging_database
    min_rows = options.partition_split_min_rows or 0
    columns = plan.columns.get(obj.name, tuple(name for name, _ in table.columns))
    stage_fps = (
        partition_fingerprints(destination, stage, obj.name, table.columns, by_partition=table.by_partition)
        if in_stage
        else {}
    )
    if not in_destination and not stage_fps:
        for task in partition_tasks(source, src, obj, min_rows, columns):
            table.tasks.append(retarget(task, stage))
        return
    if table.source_fingerprints is None:
        table.source_parts = state.part_names(source, src, obj.name) if table.by_partition else None
        table.source_fingerprints = partition_fingerprints(
            source, src, obj.name, table.columns, by_partition=table.by_partition
        )
    wanted = table.source_fingerprints
    if not table.by_partition:
        if stage_fps == wanted:
            reporter.event("resume", object=obj.name, kept="whole table", copy="-")
            return
        destination.query(f"DROP TABLE IF EXISTS {qualified(stage, obj.name)}")
        destination.run(
            destination.new_client(database=stage),
            create_statement(obj, src, stage),
            settings=destination.features.ddl_settings(),
        )
        for task in partition_tasks(source, src, obj, min_rows, columns):
            table.tasks.append(retarget(task, stage))
        return
    kept, reused, copied = [], [], []
    target = qualified(stage, obj.name)
    for partition_id in sorted(set(stage_fps) - set(wanted)):
        destination.query(f"ALTER TABLE {target} DROP PARTITION ID {quote_string(partition_id)}")
    for partition_id, expected in sorted(wanted.items()):
        if stage_fps.get(partition_id) == expected:
            kept.append(partition_id)
            continue
        if partition_id in stage_fps:
            destination.query(f"ALTER TABLE {target} DROP PARTITION ID {quote_string(partition_id)}")
        if dst_fps.get(partition_id) == expected:
            destination.query(
                f"ALTER TABLE {target} REPLACE PARTITION ID {quote_string(partition_id)} "
                f"FROM {qualified(dst, obj.name)}"
            )
            reused.append(partition_id)
            continue
        copied.append(partition_id)
        table.tasks.append(
            CopyTask(
                obj,
                columns=columns,
                where=partition_filter([partition_id]),
                partition=partition_id,
                estimated_rows=expected.rows,
                target_database=stage,
            )
        )
    if copied and not kept and not reused:
        # Everything differs and the staging table is empty now: copied as a fresh table would be (in one
        # query unless big enough to split), without a per-row partition filter per partition.
        table.tasks = [retarget(task, stage) for task in partition_tasks(source, src, obj, min_rows, columns)]
    reporter.event(
        "resume",
        object=obj.name,
        partitions=len(wanted),
        kept_from_staging=len(kept),
        reused_from_destination=len(reused),
        to_copy=len(copied),
        skipped=",".join(kept + reused) or "-",
    )


def retarget(task: CopyTask, database: str) -> CopyTask:
    return CopyTask(
        task.obj,
        columns=task.columns,
        where=task.where,
        partition=task.partition,
        estimated_rows=task.estimated_rows,
        target_database=database,
    )


@dataclass(frozen=True)
class StagedCheck:
    """Fingerprints of staged partitions read while the rest was still copying, with the staging parts
    they were read from (listed before the read)."""

    parts: dict[str, list[Part]]
    fingerprints: dict[str, Fingerprint]


class Verifier:
    """Verification that runs during the copy, so that little of it is left once the copy is done.

    - The source's fingerprints of every staged table are read from the start of the copy (one table at
      a time, its own connection): the copy keeps the destination busy, the source mostly waits (in
      real deployments it is another machine). A source changing during the copy is a mismatch.
    - Each MergeTree partition (or whole MergeTree table) is checksummed in the staging table as soon
      as its copy query finished, while the others copy. Before the swap, verify_staging checks from
      part metadata that the staging parts changed by merges only since (see `only_merged`), and
      checksums again whatever else changed, or was never checked here (Log, Memory... tables).
    """

    def __init__(self, options: m.Options, staged: list[Staged], source: Server, destination: Server) -> None:
        self.options = options
        self.source = source
        self.destination = destination
        self.tables = {table.obj.name: table for table in staged}
        self.source_jobs: dict[str, Future[dict[str, Fingerprint]]] = {}
        self.staged_jobs: dict[str, list[Future[StagedCheck]]] = {}
        self._source_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify-source")
        # Two at a time: the last copies tend to finish together, and their checks are what is left
        # to wait for after the copy.
        self._staged_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify-staged")

    def __enter__(self) -> Verifier:
        biggest_first = sorted(self.tables.values(), key=lambda table: -(table.obj.estimated_rows or 0))
        for table in biggest_first:
            if table.source_fingerprints is None and table.tasks:
                self.source_jobs[table.obj.name] = self._source_pool.submit(self._source_side, table)
        return self

    def __exit__(self, *_exc: object) -> None:
        for pool in (self._source_pool, self._staged_pool):
            pool.shutdown(wait=True, cancel_futures=True)

    def copied(self, task: CopyTask, result: CopyResult) -> None:
        """A copy query finished: checksum what it wrote (MergeTree: part metadata says what was read)."""
        table = self.tables.get(task.obj.name)
        if result.error or table is None or not table.by_partition:
            return
        only = None if task.partition is None else [task.partition]
        job = self._staged_pool.submit(self._staged_side, table, only)
        self.staged_jobs.setdefault(table.obj.name, []).append(job)

    def source_fingerprints(self, table: Staged) -> dict[str, Fingerprint]:
        if table.source_fingerprints is None:
            job = self.source_jobs.get(table.obj.name)
            table.source_fingerprints = job.result() if job else self._source_side(table)
        return table.source_fingerprints

    def staged_checks(self, table: Staged) -> list[StagedCheck]:
        return [job.result() for job in self.staged_jobs.get(table.obj.name, [])]

    def _source_side(self, table: Staged) -> dict[str, Fingerprint]:
        src, name = self.options.source.database, table.obj.name
        client = self.source.new_client()
        try:
            if table.by_partition:
                table.source_parts = dict(state.part_names(self.source, src, name, client=client))
            return partition_fingerprints(
                self.source, src, name, table.columns, by_partition=table.by_partition, client=client
            )
        finally:
            client.disconnect()

    def _staged_side(self, table: Staged, only: list[str] | None) -> StagedCheck:
        stage, name = self.options.staging_database, table.obj.name
        client = self.destination.new_client()
        try:
            parts = active_parts(self.destination, client, stage, name, only)
            fingerprints = partition_fingerprints(
                self.destination, stage, name, table.columns, by_partition=True, only=only, client=client
            )
            return StagedCheck(parts, fingerprints)
        finally:
            client.disconnect()


@step("verifying the staged copy against the source (--strategy swap)")
def verify_staging(
    options: m.Options,
    staged: list[Staged],
    source: Server,
    destination: Server,
    outcome: m.Outcome,
    reporter: Reporter,
    verifier: Verifier,
) -> None:
    """Counts and checksums of every staging table against the source, per partition where possible.

    A partition checksummed during the copy counts only if its staging parts changed by merges alone
    since; every other partition (and every table without partitions) is read here."""
    src, stage = options.source.database, options.staging_database
    for table in staged:
        name = table.obj.name

        def stage_side(table: Staged = table) -> dict[str, Fingerprint]:
            if not table.by_partition:
                return partition_fingerprints(
                    destination, stage, table.obj.name, table.columns, by_partition=False
                )
            checks = verifier.staged_checks(table)  # all finished before the parts are listed
            client = destination.new_client()
            try:
                current = active_parts(destination, client, stage, table.obj.name)
            finally:
                client.disconnect()
            checked: dict[str, Fingerprint] = {}
            for check in checks:
                for pid, fingerprint in check.fingerprints.items():
                    if pid in check.parts and only_merged(check.parts[pid], current.get(pid, [])):
                        checked[pid] = fingerprint
            rest = set(current) - set(checked)
            if rest:
                checked.update(
                    partition_fingerprints(
                        destination,
                        stage,
                        table.obj.name,
                        table.columns,
                        by_partition=True,
                        only=None if rest == set(current) else rest,
                    )
                )
            return checked

        expected, actual = both(partial(verifier.source_fingerprints, table), stage_side)
        # The source's parts still those its fingerprints were read from: they hold for those parts.
        source_parts = table.source_parts if table.by_partition else None
        if source_parts is not None and state.part_names(source, src, name) == source_parts:
            staged_parts = state.part_names(destination, stage, name)  # RENAME keeps part names
            table.remembered = {
                pid: state.PartitionState(source_parts[pid], staged_parts.get(pid, ""), fingerprint)
                for pid, fingerprint in expected.items()
                if pid in source_parts and actual.get(pid) == fingerprint
            }
        differing = sorted(pid for pid in set(expected) | set(actual) if expected.get(pid) != actual.get(pid))
        m.report_verification(name, total(expected), total(actual), outcome, reporter)
        if differing and not any(name in mismatch for mismatch in outcome.mismatches):
            outcome.mismatches.append(f"{name}: partitions differ: {','.join(differing)}")


@step("moving the staged tables in (--strategy swap)")
def swap_in(
    options: m.Options,
    plan: Plan,
    staged: list[Staged],
    destination: Server,
    dst_client: Client,
    outcome: m.Outcome,
    reporter: Reporter,
) -> None:
    """Move the verified staging tables in and recreate the dependents against the final names.

    A failing statement is recorded (exit 9) and the swap goes on with the other objects; the previous
    copies stay in the previous-copy database (it is only dropped after a clean run)."""
    dst, stage, old = options.destination.database, options.staging_database, options.previous_database
    atomic = database_engine(destination, dst) == "Atomic"
    staged_names = {table.obj.name for table in staged}
    with TRACKER.critical():
        destination.query(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(old)}")
        present = m.existing_objects(destination, dst)
        previous = m.existing_objects(destination, old)
        set_aside_names: set[str] = set()

        def attempt(name: str, *statements: str) -> bool:
            for statement in statements:
                try:
                    destination.query(statement)
                except MigrationError:
                    raise
                except Exception as error:
                    outcome.failed[name] = f"swap: {first_line(error)}"
                    reporter.event("swap", object=name, status="failed", error=first_line(error))
                    return False
            return True

        def set_aside(name: str) -> bool:
            """Move the destination's table into the previous-copy database."""
            drop = [f"DROP TABLE IF EXISTS {qualified(old, name)}"] if name in previous else []
            if attempt(name, *drop, f"RENAME TABLE {qualified(dst, name)} TO {qualified(old, name)}"):
                present.discard(name)
                set_aside_names.add(name)
                return True
            return False

        # a) dependents of the plan go first (an inner table is moved aside: dropping a view drops it)
        for obj in reversed(plan.ordered):
            if obj.name in staged_names or (obj.has_data and obj.kind is ObjectKind.TABLE):
                continue
            if obj.name not in present:
                continue
            if obj.inner_table and obj.inner_table in present and not set_aside(obj.inner_table):
                continue
            statement = "DROP DICTIONARY" if obj.kind is ObjectKind.DICTIONARY else "DROP TABLE"
            if attempt(obj.name, f"{statement} IF EXISTS {qualified(dst, obj.name)}"):
                present.discard(obj.name)
                reporter.event("drop", object=obj.name, reason="recreated against the swapped tables")
        # b) the staged tables, one by one
        for table in staged:
            name = table.obj.name
            if name in present and atomic and not name.startswith(INNER_TABLE_PREFIXES):
                swapped = attempt(
                    name, f"EXCHANGE TABLES {qualified(stage, name)} AND {qualified(dst, name)}"
                )
            elif name in present and not set_aside(name):
                continue
            else:
                swapped = attempt(name, f"RENAME TABLE {qualified(stage, name)} TO {qualified(dst, name)}")
            if swapped:
                present.add(name)
                reporter.event("swap", object=name, status="ok")
        unchanged_inner = {
            obj.inner_table
            for obj in plan.dependents
            if obj.inner_table and obj.inner_table in outcome.unchanged
        }
        for name in unchanged_inner & set_aside_names:
            if attempt(name, f"RENAME TABLE {qualified(old, name)} TO {qualified(dst, name)}"):
                present.add(name)
        # c) dependents against the final names
        for obj in plan.ordered:
            if obj.name in staged_names or (obj.has_data and obj.kind is ObjectKind.TABLE):
                continue
            attach = obj.inner_table is not None and obj.inner_table in present
            created = m.create(destination, dst_client, obj, options, outcome, reporter, attach=attach)
            if created and obj.has_data and not attach:
                # an inner table swap cannot reach (Atomic `.inner_id.<uuid>`): created empty
                outcome.not_copied[obj.name] = "inner table not stageable (Atomic database): recreated empty"
    tables = {name for name in staged_names if not name.startswith(INNER_TABLE_PREFIXES)}
    outcome.created.extend(sorted(tables - set(outcome.unchanged)))


def compare_with_destination(
    options: m.Options,
    table: Staged,
    source: Server,
    destination: Server,
    remembered: dict[str, state.PartitionState],
) -> tuple[dict[str, Fingerprint], dict[str, Fingerprint]]:
    """Per-partition fingerprints of the source and the destination table, both read at once.

    Partitions whose parts are exactly the ones a verified run remembered on both sides reuse the
    remembered fingerprint (no scan); the others are checksummed. When nothing differs, the source's
    parts are remembered again for the next run.
    """
    src, dst, name = options.source.database, options.destination.database, table.obj.name

    def fingerprints(
        server: Server, database: str, *, only: Collection[str] | None = None
    ) -> Callable[[], dict[str, Fingerprint]]:
        return partial(
            partition_fingerprints,
            server,
            database,
            name,
            table.columns,
            by_partition=table.by_partition,
            only=only,
        )

    if not table.by_partition:
        return both(fingerprints(source, src), fingerprints(destination, dst))
    source_parts, destination_parts = both(
        partial(state.part_names, source, src, name), partial(state.part_names, destination, dst, name)
    )
    known = unchanged_since_remembered(remembered, source_parts, destination_parts)
    source_fps, destination_fps = both(
        fingerprints(source, src, only=set(source_parts) - set(known)),
        fingerprints(destination, dst, only=set(destination_parts) - set(known)),
    )
    source_fps.update(known)
    destination_fps.update(known)
    table.source_parts = source_parts
    if source_fps == destination_fps and state.part_names(source, src, name) == source_parts:
        table.remembered = {
            pid: state.PartitionState(source_parts[pid], destination_parts.get(pid, ""), fingerprint)
            for pid, fingerprint in source_fps.items()
            if pid in source_parts
        }
    return source_fps, destination_fps


def unchanged_since_remembered(
    remembered: dict[str, state.PartitionState],
    source_parts: dict[str, str],
    destination_parts: dict[str, str],
) -> dict[str, Fingerprint]:
    """The remembered fingerprints of partitions whose parts on both sides are still the remembered ones."""
    return {
        pid: entry.fingerprint
        for pid, entry in remembered.items()
        if source_parts.get(pid) == entry.source_parts
        and destination_parts.get(pid) == entry.destination_parts
    }


def load_state(destination: Server, database: str, reporter: Reporter) -> state.Remembered:
    try:
        return state.load(destination, database)
    except MigrationError:
        raise
    except Exception as error:  # a shortcut only: without it every partition is checksummed
        reporter.event("notice", message=f"previous run's state not readable: {first_line(error)}")
        return {}


def save_state(destination: Server, database: str, tables: list[Staged], reporter: Reporter) -> None:
    remembered = {table.obj.name: table.remembered for table in tables if table.remembered}
    try:
        state.save(destination, database, remembered, replaced=[table.obj.name for table in tables])
    except MigrationError:
        raise
    except Exception as error:
        reporter.event("notice", message=f"state for the next run not saved: {first_line(error)}")


@step("dropping the previous copies and the staging database (--strategy swap)")
def drop_leftovers(options: m.Options, destination: Server, reporter: Reporter) -> None:
    """The previous copies and the staging database, once everything is in place."""
    for database in (options.previous_database, options.staging_database):
        destination.query(f"DROP DATABASE IF EXISTS {quote_identifier(database)}")
    reporter.event("cleanup", dropped=f"{options.previous_database},{options.staging_database}")


def create_statement(obj: DbObject, source_db: str, database: str) -> str:
    statement = ddl.rewrite_database(obj.create_query, source_db, database)
    return ddl.unreplicate(statement) if obj.replicated else statement


def comparable(create_query: str, database: str) -> str:
    """A DDL with its own database name neutralized, to compare tables across databases."""
    return ddl.rewrite_database(create_query, database, "\0db")


def table_ddls(server: Server, database: str) -> dict[str, str]:
    return {
        name: query
        for name, query in server.query(
            "SELECT name, create_table_query FROM system.tables WHERE database = %(db)s", {"db": database}
        )
    }


def database_engine(server: Server, database: str) -> str:
    rows = server.query("SELECT engine FROM system.databases WHERE name = %(db)s", {"db": database})
    return rows[0][0] if rows else ""


def both(first: Callable[[], T], second: Callable[[], T]) -> tuple[T, T]:
    """Run two reads at once (one per server: the checksums of a big table take as long as a scan)."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="fingerprint") as pool:
        one, two = pool.submit(first), pool.submit(second)
        return one.result(), two.result()
