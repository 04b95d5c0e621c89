"""The objects of a database as read from system.tables, and their dependency order."""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from . import ddl

QueryRunner = Callable[[str, dict[str, Any]], Sequence[Sequence[Any]]]

INNER_TABLE_PREFIXES = (".inner.", ".inner_id.", ".inner_target.")
# Engines whose rows live on the server itself (anything else is schema only: views of other
# tables, dictionaries, Distributed/Merge/Buffer over other tables, external integrations).
_DATA_ENGINE_SUFFIXES = ("MergeTree", "Log", "Memory", "Join")
# Engines that hold rows the server cannot read back (SELECT from a Set table is not implemented):
# created empty, and said so in the plan and the summary.
UNREADABLE_ENGINES = frozenset({"Set"})


class ObjectKind(Enum):
    TABLE = "table"
    VIEW = "view"
    MATERIALIZED_VIEW = "materialized_view"
    DICTIONARY = "dictionary"


@dataclass
class DbObject:
    name: str
    engine: str
    create_query: str
    kind: ObjectKind
    depends_on: set[str] = field(default_factory=set)
    mv_target: str | None = None  # TO table of a materialized view
    mv_target_database: str | None = None  # its database when the DDL qualifies it
    estimated_rows: int | None = None
    inner_table: str | None = None  # `.inner.<name>` of a materialized view on an Ordinary database

    @property
    def has_data(self) -> bool:
        """True when the copy must move rows for this object."""
        if self.kind is ObjectKind.MATERIALIZED_VIEW:
            return self.mv_target is None  # inner table: rows are copied through the view itself
        return self.kind is ObjectKind.TABLE and self.engine.endswith(_DATA_ENGINE_SUFFIXES)

    @property
    def unreadable(self) -> bool:
        return self.kind is ObjectKind.TABLE and self.engine in UNREADABLE_ENGINES

    @property
    def mergetree(self) -> bool:
        return self.kind is ObjectKind.TABLE and self.engine.endswith("MergeTree")

    @property
    def replicated(self) -> bool:
        return self.kind is ObjectKind.TABLE and self.engine.startswith("Replicated")

    @property
    def label(self) -> str:
        if self.kind is ObjectKind.MATERIALIZED_VIEW:
            return f"materialized_view(to={self.mv_target})" if self.mv_target else "materialized_view(inner)"
        return self.kind.value if self.kind is not ObjectKind.TABLE else f"table({self.engine})"


def classify(engine: str, create_query: str) -> ObjectKind:
    # 18.16 also has `CREATE TABLE ... ENGINE = Dictionary(name)`: a table, told apart by its DDL.
    if re.match(r"\s*(CREATE|ATTACH)\s+DICTIONARY\b", create_query, re.IGNORECASE):
        return ObjectKind.DICTIONARY
    if engine == "MaterializedView":
        return ObjectKind.MATERIALIZED_VIEW
    if engine == "View":
        return ObjectKind.VIEW
    return ObjectKind.TABLE


def read_catalog(run: QueryRunner, database: str) -> list[DbObject]:
    """Every object of `database` except materialized views' inner tables."""
    rows = run(
        "SELECT name, engine, create_table_query FROM system.tables WHERE database = %(db)s ORDER BY name",
        {"db": database},
    )
    objects = [
        DbObject(name=name, engine=engine, create_query=query, kind=classify(engine, query))
        for name, engine, query in rows
        if not name.startswith(INNER_TABLE_PREFIXES) and query
    ]
    inner_tables = {name for name, _, _ in rows if name.startswith(".inner.")}
    names = {obj.name for obj in objects}
    for obj in objects:
        obj.depends_on = (ddl.referenced_names(obj.create_query, database) & names) - {obj.name}
        if obj.kind is ObjectKind.MATERIALIZED_VIEW:
            obj.mv_target_database, obj.mv_target = ddl.materialized_view_target_qualified(obj.create_query)
            if obj.mv_target is None and f".inner.{obj.name}" in inner_tables:
                obj.inner_table = f".inner.{obj.name}"
    return objects


def inner_table_object(run: QueryRunner, database: str, view: DbObject) -> DbObject | None:
    """The inner table of a materialized view as a table of its own (to stage and swap it)."""
    if view.inner_table is None:
        return None
    rows = run(
        "SELECT engine, create_table_query FROM system.tables WHERE database = %(db)s AND name = %(t)s",
        {"db": database, "t": view.inner_table},
    )
    if not rows:
        return None
    engine, query = rows[0]
    return DbObject(name=view.inner_table, engine=engine, create_query=query, kind=ObjectKind.TABLE)


def dependency_order(objects: Iterable[DbObject]) -> list[DbObject]:
    """Tables first, then views/dictionaries after everything they read (stable by kind and name).

    Raises ValueError naming the objects of a cycle.
    """
    by_name = {obj.name: obj for obj in objects}
    pending = {name: {dep for dep in obj.depends_on if dep in by_name} for name, obj in by_name.items()}
    dependents: dict[str, set[str]] = {name: set() for name in by_name}
    for name, deps in pending.items():
        for dep in deps:
            dependents[dep].add(name)
    ready = [(_rank(by_name[name]), name) for name, deps in pending.items() if not deps]
    heapq.heapify(ready)
    ordered: list[DbObject] = []
    while ready:
        _, name = heapq.heappop(ready)
        ordered.append(by_name[name])
        for dependent in sorted(dependents[name]):
            pending[dependent].discard(name)
            if not pending[dependent]:
                heapq.heappush(ready, (_rank(by_name[dependent]), dependent))
    if len(ordered) != len(by_name):
        cycle = sorted(name for name, deps in pending.items() if deps)
        raise ValueError(f"dependency cycle between {', '.join(cycle)}")
    return ordered


def _rank(obj: DbObject) -> int:
    order = (ObjectKind.TABLE, ObjectKind.DICTIONARY, ObjectKind.VIEW, ObjectKind.MATERIALIZED_VIEW)
    return order.index(obj.kind)
