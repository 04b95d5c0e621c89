"""Which objects to migrate, in which order, and why the others are skipped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .catalog import DbObject, ObjectKind, dependency_order
from .errors import ExitCode, MigrationError

# Engines that consume a stream: a second copy on the destination would take messages (or files) away
# from the source's consumers, so they are never recreated.
CONSUMER_ENGINES = frozenset({"Kafka", "RabbitMQ", "NATS", "S3Queue", "AzureQueue", "FileLog"})


@dataclass(frozen=True)
class Selection:
    skip_patterns: Sequence[str] = ()
    tables: Sequence[str] | None = None  # include filter (None: everything)
    migrate_dicts: bool = False


@dataclass
class Plan:
    ordered: list[DbObject] = field(default_factory=list)  # to migrate, dependencies first
    skipped: dict[str, str] = field(default_factory=dict)  # name -> reason
    columns: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> stored columns to copy

    @property
    def tables(self) -> list[DbObject]:
        """Phase 1: tables that only depend on other tables (created and copied before any view)."""
        first = self._first_phase()
        return [obj for obj in self.ordered if obj.name in first]

    @property
    def dependents(self) -> list[DbObject]:
        """Phase 2: views, materialized views, dictionaries and what depends on them, in order."""
        first = self._first_phase()
        return [obj for obj in self.ordered if obj.name not in first]

    def _first_phase(self) -> set[str]:
        kinds = {obj.name: obj.kind for obj in self.ordered}
        return {
            obj.name
            for obj in self.ordered
            if obj.kind is ObjectKind.TABLE
            and all(kinds.get(dep) is ObjectKind.TABLE for dep in obj.depends_on)
        }


def build_plan(catalog: Sequence[DbObject], selection: Selection) -> Plan:
    names = {obj.name for obj in catalog}
    unknown = sorted(set(selection.tables or ()) - names)
    if unknown:
        raise MigrationError(
            ExitCode.SELECTION, f"--tables names objects not in the source: {', '.join(unknown)}"
        )
    try:
        ordered = dependency_order(catalog)
    except ValueError as error:
        raise MigrationError(ExitCode.SELECTION, str(error)) from error
    plan = Plan()
    for obj in ordered:
        reason = skip_reason(obj, selection) or _skipped_dependency(obj, plan.skipped)
        if reason:
            plan.skipped[obj.name] = reason
        else:
            plan.ordered.append(obj)
    return plan


def skip_reason(obj: DbObject, selection: Selection) -> str | None:
    matching = [pattern for pattern in selection.skip_patterns if pattern and pattern in obj.name]
    if matching:
        return f"name matches skip pattern '{matching[0]}'"
    if selection.tables is not None and obj.name not in selection.tables:
        return "not listed in --tables"
    if obj.engine in CONSUMER_ENGINES:
        return f"{obj.engine} engine consumes a stream: a copy would compete with the source's consumers"
    if obj.kind is ObjectKind.DICTIONARY and not selection.migrate_dicts:
        return "dictionary (use --migrate-dicts y)"
    return None


def _skipped_dependency(obj: DbObject, skipped: dict[str, str]) -> str | None:
    missing = sorted(dep for dep in obj.depends_on if dep in skipped)
    return f"depends on skipped {', '.join(missing)}" if missing else None
