"""DDL rewriting (source database name -> destination database name) and DDL inspection.

Works on tokens, so names inside string literals, comments and column names are left alone. What is
rewritten:
- every qualified reference `<source_db>.<name>` (object name, `TO` target, tables in SELECTs),
- the database argument of `Buffer(db, ...)` and `Merge(db, ...)` engines,
- `DB '<source_db>'` in a dictionary's `SOURCE(CLICKHOUSE(...))` when it has no `HOST` (a local source).
Unqualified names are not rewritten: the DDL is executed with the destination database as the session
default, so they resolve there, as they did in the source database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .sql import Kind, Token, quote_identifier, quote_string, render, significant, tokenize

_DATABASE_ARGUMENT_ENGINES = ("BUFFER", "MERGE")
HIDDEN_SECRET = "'[HIDDEN]'"  # how current servers print passwords in system.tables.create_table_query
_REFERENCE_KEYWORDS = ("FROM", "JOIN", "TO")
# Keywords after which `a.b` is a table: the object itself, FROM/JOIN sources, TO, IN, AS <table>.
_TABLE_INTRODUCERS = (
    "FROM",
    "JOIN",
    "TO",
    "IN",
    "INTO",
    "TABLE",
    "VIEW",
    "DICTIONARY",
    "EXISTS",
    "AS",
    "ATTACH",
    "DETACH",
)


def rewrite_database(create_query: str, source_db: str, destination_db: str) -> str:
    tokens = tokenize(create_query)
    positions = [index for index, token in enumerate(tokens) if token.kind is not Kind.SPACE]
    local_dictionary = _is_dictionary(tokens) and not any(tokens[i].is_keyword("HOST") for i in positions)
    for rank, index in enumerate(positions):
        token = tokens[index]
        following = tokens[positions[rank + 1]] if rank + 1 < len(positions) else None
        previous = tokens[positions[rank - 1]] if rank > 0 else None
        before_previous = tokens[positions[rank - 2]] if rank > 1 else None
        if not _names(token, source_db):
            continue
        qualifies_name = (
            token.kind is not Kind.STRING
            and following is not None
            and following.text == "."
            and _is_table_reference(tokens, positions, rank)
        )
        engine_argument = (
            previous is not None
            and previous.text == "("
            and before_previous is not None
            and before_previous.is_keyword(*_DATABASE_ARGUMENT_ENGINES)
        ) or _is_distributed_database_argument(tokens, positions, rank)
        dictionary_db = local_dictionary and previous is not None and previous.is_keyword("DB")
        if qualifies_name or engine_argument or dictionary_db:
            tokens[index] = _renamed(token, destination_db)
    return render(tokens)


def _is_table_reference(tokens: list[Token], positions: list[int], rank: int) -> bool:
    """`<db>.<name>` names a table (rewrite) unless it is `<table>.<column>` in an expression.

    A three-part `db.table.column` always starts with a database. A two-part name is a table reference
    after a keyword that introduces one (FROM, JOIN, TO, IN, ...); elsewhere it is `table.column` of a
    table that happens to share the database's name, and is left alone.
    """

    def text_at(offset: int) -> str | None:
        index = rank + offset
        return tokens[positions[index]].text if 0 <= index < len(positions) else None

    if text_at(3) == "." and text_at(2) not in (None, "(", ","):
        return True
    previous = tokens[positions[rank - 1]] if rank > 0 else None
    return previous is not None and previous.is_keyword(*_TABLE_INTRODUCERS)


def _is_distributed_database_argument(tokens: list[Token], positions: list[int], rank: int) -> bool:
    """`Distributed(cluster, <db>, table, ...)`: the database is the second argument."""
    if rank < 4:
        return False
    engine, opening, _cluster, comma = (tokens[positions[rank - offset]] for offset in (4, 3, 2, 1))
    return engine.is_keyword("DISTRIBUTED") and opening.text == "(" and comma.text == ","


def unreplicate(create_query: str) -> str:
    """`Replicated*MergeTree('zk path', 'replica', args...)` -> `*MergeTree(args...)`.

    A replicated table recreated with the source's ZooKeeper path would join the source's replication
    (and replicate the copy back into the source) when both servers share ZooKeeper: the destination
    gets the plain engine with the same data parameters instead.
    """
    tokens = tokenize(create_query)
    positions = [index for index, token in enumerate(tokens) if token.kind is not Kind.SPACE]
    for rank, index in enumerate(positions):
        token = tokens[index]
        if not (token.kind is Kind.WORD and re.fullmatch(r"Replicated\w*MergeTree", token.text)):
            continue
        tokens[index] = Token(Kind.WORD, token.text.removeprefix("Replicated"))
        if rank + 1 < len(positions) and tokens[positions[rank + 1]].text == "(":
            _drop_replication_arguments(tokens, positions[rank + 1])
        break
    return render(tokens)


def _drop_replication_arguments(tokens: list[Token], open_index: int) -> None:
    """Remove the first two top-level arguments (ZooKeeper path, replica name) after `(`."""
    depth, commas, index = 0, 0, open_index
    while index < len(tokens):
        text = tokens[index].text
        if text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
            if depth == 0:
                break
        elif text == "," and depth == 1:
            commas += 1
            if commas == 2:
                break
        index += 1
    end = index + 1 if commas == 2 else index  # keep the closing parenthesis when no data arguments follow
    while end < len(tokens) and tokens[end].kind is Kind.SPACE:
        end += 1
    del tokens[open_index + 1 : end]


def _names(token: Token, name: str) -> bool:
    return token.kind in (Kind.WORD, Kind.QUOTED, Kind.STRING) and token.value == name


def _renamed(token: Token, name: str) -> Token:
    if token.kind is Kind.STRING:
        return Token(Kind.STRING, quote_string(name))
    return Token(Kind.QUOTED, quote_identifier(name))


def _is_dictionary(tokens: list[Token]) -> bool:
    words = significant(tokens)[:3]
    return len(words) >= 2 and words[0].is_keyword("CREATE", "ATTACH") and words[1].is_keyword("DICTIONARY")


def referenced_names(create_query: str, database: str) -> set[str]:
    """Names the object reads from or writes to in `database` (qualified or unqualified references)."""
    tokens = significant(tokenize(create_query))
    found: set[str] = set()
    for index, token in enumerate(tokens):
        nxt = tokens[index + 1] if index + 1 < len(tokens) else None
        after = tokens[index + 2] if index + 2 < len(tokens) else None
        if token.is_name(database) and nxt is not None and nxt.text == "." and after is not None:
            if after.kind in (Kind.WORD, Kind.QUOTED):
                found.add(after.value)
        elif (
            token.is_keyword(*_REFERENCE_KEYWORDS)
            and nxt is not None
            and nxt.kind in (Kind.WORD, Kind.QUOTED)
        ):
            if after is None or after.text not in (".", "("):
                found.add(nxt.value)
        elif token.is_keyword("TABLE") and nxt is not None and nxt.kind is Kind.STRING:
            found.add(nxt.value)  # dictionary SOURCE(CLICKHOUSE(TABLE 'name' ...))
    return found


def materialized_view_target(create_query: str) -> str | None:
    """The `TO` table of a materialized view (None: the view keeps its data in an inner table)."""
    return materialized_view_target_qualified(create_query)[1]


def materialized_view_target_qualified(create_query: str) -> tuple[str | None, str | None]:
    """(database or None when unqualified, table) of a materialized view's `TO`; (None, None) without."""
    tokens = significant(tokenize(create_query))
    index = _index_after_object_name(tokens)
    if index + 1 < len(tokens) and tokens[index].is_keyword("ON") and tokens[index + 1].is_keyword("CLUSTER"):
        index += 3
    if index < len(tokens) and tokens[index].is_keyword("TO"):
        name_tokens = tokens[index + 1 : index + 4]
        if len(name_tokens) == 3 and name_tokens[1].text == ".":
            return name_tokens[0].value, name_tokens[2].value
        return (None, name_tokens[0].value) if name_tokens else (None, None)
    return None, None


def as_attach(create_query: str) -> str:
    """`CREATE ...` -> `ATTACH ...` (a materialized view re-attached to an inner table that exists)."""
    tokens = tokenize(create_query)
    for index, token in enumerate(tokens):
        if token.kind is Kind.SPACE:
            continue
        if token.is_keyword("CREATE"):
            tokens[index] = Token(Kind.WORD, "ATTACH")
        break
    return render(tokens)


def _index_after_object_name(tokens: list[Token]) -> int:
    index = 0
    while index < len(tokens) and tokens[index].kind is Kind.WORD and not _is_object_name(tokens, index):
        index += 1
    if index + 2 < len(tokens) and tokens[index + 1].text == ".":
        return index + 3
    return index + 1


_CREATE_WORDS = ("CREATE", "ATTACH", "OR", "REPLACE", "MATERIALIZED", "VIEW", "IF", "NOT", "EXISTS")


def _is_object_name(tokens: list[Token], index: int) -> bool:
    return not tokens[index].is_keyword(*_CREATE_WORDS)


@dataclass(frozen=True)
class ServerFeatures:
    """What a server supports, detected from version() and system.settings."""

    version: str
    settings: frozenset[str]
    table_functions: frozenset[str] = frozenset()

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return parse_version(self.version)

    @property
    def ddl_dictionaries(self) -> bool:
        return self.version_tuple >= (19, 17)

    def ddl_settings(self) -> dict[str, int]:
        """Settings that let CREATE accept types that were experimental on older servers."""
        wanted = ("allow_experimental_low_cardinality_type", "allow_suspicious_low_cardinality_types")
        return {name: 1 for name in wanted if name in self.settings}

    def insert_settings(self) -> dict[str, int]:
        """Copy row for row: no insert-time merging (ReplacingMergeTree etc.), synchronous remote inserts."""
        wanted = {"optimize_on_insert": 0, "insert_distributed_sync": 1}
        return {name: value for name, value in wanted.items() if name in self.settings}


def parse_version(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:4])
