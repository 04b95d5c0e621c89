"""Quoting helpers and a small ClickHouse tokenizer (enough to rewrite names in DDL safely)."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum

_PLAIN_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_STRING_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\0": "\\0"}


def quote_identifier(name: str) -> str:
    """`name` in backquotes (always: names like `.inner.x` or `my-table` need them)."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_string(value: str) -> str:
    return "'" + "".join(_STRING_ESCAPES.get(char, char) for char in value) + "'"


def qualified(database: str, name: str) -> str:
    return f"{quote_identifier(database)}.{quote_identifier(name)}"


def partition_filter(partition_ids: Collection[str]) -> str:
    """WHERE condition for the rows of these partitions of a MergeTree table (ids as system.parts has them).

    `_partition_id` selects the rows. The `_part` test is only there so that the server skips the other
    partitions' parts unread: 18.16 prunes parts by `_part` but not by `_partition_id` (alone, it reads
    the whole table, so copying a table of N partitions one partition per query read it N times). A part
    name starts with `<partition id>_` (an id has no `_`), or, in the legacy `MergeTree(date, ...)`
    format, with `<YYYYMMDD>_` of its first date, whose partition id is YYYYMM: every part of the
    partitions matches (and at most a few others, whose rows `_partition_id` leaves out).
    18.16 also evaluates the whole condition on every row read (`_part` is a full column there), so it
    uses prefix `substring()`s: `splitByChar()` built an array per row and cost as much as a count().
    """
    ordered = sorted(partition_ids)
    ids = ", ".join(quote_string(partition_id) for partition_id in ordered)
    by_length: dict[int, list[str]] = {}
    for partition_id in ordered:
        by_length.setdefault(len(partition_id) + 1, []).append(quote_string(f"{partition_id}_"))
    prefixes = [
        f"substring(_part, 1, {length}) IN ({', '.join(names)})"
        for length, names in sorted(by_length.items())
    ]
    legacy = f"substring(_part, 1, 6) IN ({ids})"
    return f"_partition_id IN ({ids}) AND ({' OR '.join([*prefixes, legacy])})"


class Kind(Enum):
    WORD = "word"  # plain identifier or keyword
    QUOTED = "quoted"  # `identifier` or "identifier"
    STRING = "string"  # 'literal'
    SPACE = "space"  # whitespace and comments
    OTHER = "other"  # punctuation, numbers, operators


@dataclass(frozen=True)
class Token:
    kind: Kind
    text: str

    @property
    def value(self) -> str:
        """The identifier or string value with quotes and escapes removed."""
        if self.kind in (Kind.QUOTED, Kind.STRING):
            return _unescape(self.text[1:-1])
        return self.text

    def is_name(self, name: str) -> bool:
        return self.kind in (Kind.WORD, Kind.QUOTED) and self.value == name

    def is_keyword(self, *keywords: str) -> bool:
        return self.kind is Kind.WORD and self.text.upper() in keywords


def _unescape(body: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            nxt = body[index + 1]
            out.append({"n": "\n", "t": "\t", "0": "\0"}.get(nxt, nxt))
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


_TOKEN_PATTERN = re.compile(
    r"""
    (?P<space>\s+|--[^\n]*|/\*.*?\*/)
  | (?P<string>'(?:[^'\\]|\\.|'')*')
  | (?P<quoted>`(?:[^`\\]|\\.|``)*`|"(?:[^"\\]|\\.|"")*")
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    for match in _TOKEN_PATTERN.finditer(text):
        group = match.lastgroup or "other"
        tokens.append(Token(Kind(group), match.group()))
    return tokens


def significant(tokens: list[Token]) -> list[Token]:
    return [token for token in tokens if token.kind is not Kind.SPACE]


def render(tokens: list[Token]) -> str:
    return "".join(token.text for token in tokens)


def mask_secret(text: str, secret: str) -> str:
    """Hide a password in SQL we print (it appears as a quoted literal in remote())."""
    if not secret:
        return text
    return text.replace(quote_string(secret), "'******'")


def is_plain_identifier(name: str) -> bool:
    return bool(_PLAIN_IDENTIFIER.match(name))
