"""SQL that reads the same on both stores: table names, positions, placeholders.

Queries are written with `?` placeholders and `{events}`-style names; `Dialect.sql`
adapts them to SQLite or PostgreSQL (schema-qualified names, `%s`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class Cursor(Protocol):
    def execute(self, query: Any, params: Any = ...) -> Any: ...

    def executemany(self, query: Any, params_seq: Any) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> Any: ...


def execute_rows(cursor: Cursor, statement: str, rows: Sequence[Sequence[Any]]) -> None:
    """`statement` run once for each of `rows`: one `execute` for one row (less work
    than `executemany`'s), else one `executemany`."""
    if len(rows) == 1:
        cursor.execute(statement, rows[0])
    else:
        cursor.executemany(statement, rows)


VALUES_ROWS = 128
"""The most rows one multi-row INSERT takes (`insert_values`): 128 of 5 columns bind 640
variables, under the 999 SQLite allowed before 3.32."""


@functools.lru_cache(maxsize=64)
def _values_statement(into: str, row: str, count: int) -> str:
    return f"INSERT OR ROLLBACK INTO {into} VALUES " + ", ".join([row] * count)  # noqa: S608


def insert_values(cursor: Cursor, into: str, columns: Sequence[Iterable[Any]],
                  row: str | None = None) -> int:
    """On SQLite: insert rows given as `columns` (each as long as the first, else
    ValueError with nothing inserted) into `into` (a table, with its columns named in
    parentheses if need be), `row` the VALUES of one (one `?` a column, by default),
    in order, in multi-row statements: one each whole
    VALUES_ROWS, then one each power of two left (a few statements, each prepared
    once); how many rows.

    One statement a row (`executemany`) costs sqlite3 a step, a reset, and the GIL given
    back and taken again, each; one statement of many rows costs them once. Each is
    `INSERT OR ROLLBACK`: a row that breaks a constraint rolls the whole transaction
    back (and raises sqlite3.IntegrityError), as the callers would, so that SQLite
    keeps no statement journal (copies of the pages a statement of many rows changes,
    to undo it alone: https://sqlite.org/tempfiles.html, section 2.5)."""
    width = len(columns)
    row = row or "(" + ", ".join("?" * width) + ")"
    first = list(columns[0])
    n = len(first)
    flat: list[Any] = [None] * (n * width)
    flat[0::width] = first
    for i in range(1, width):
        flat[i::width] = columns[i]  # ValueError for a column of another length
    start = 0
    while start < n:
        left = n - start
        count = VALUES_ROWS if left >= VALUES_ROWS else 1 << (left.bit_length() - 1)
        cursor.execute(_values_statement(into, row, count),
                       flat[start * width:(start + count) * width])
        start += count
    return n


def as_tuple(row: Any) -> tuple[Any, ...]:
    """Rows come as tuples, sqlite3.Row or (psycopg DictRow) dicts: always a tuple."""
    if isinstance(row, dict):
        return tuple(row.values())
    return tuple(row)


@dataclass(frozen=True, slots=True)
class Dialect:
    kind: str  # "sqlite" | "postgres"
    schema: str
    events_table: str
    _adapted: dict[str, str] = field(default_factory=dict, compare=False, hash=False,
                                     repr=False)

    def table(self, name: str) -> str:
        return f'"{self.schema}"."{name}"' if self.kind == "postgres" else name

    @property
    def events(self) -> str:
        return self.table(self.events_table)

    @property
    def position(self) -> str:
        return "notification_id" if self.kind == "postgres" else "rowid"

    @property
    def keyed(self) -> str:
        """What ends a CREATE TABLE whose rows are found by their primary key alone.

        On SQLite a table keyed by text or by several columns is otherwise a rowid
        table plus an index on the key: every insert writes two b-tree pages, where a
        WITHOUT ROWID table (https://sqlite.org/withoutrowid.html) writes one. For
        tables of small rows (well under a twentieth of a page, as that page advises).
        PostgreSQL tables are heaps with an index whatever the key: nothing.
        """
        return " WITHOUT ROWID" if self.kind == "sqlite" else ""

    @property
    def rewritten(self) -> str:
        """What ends a CREATE TABLE of one row that every write rewrites (the tree head,
        the catalogue's checked position).

        PostgreSQL updates such a row as a new version in the same page, and every
        lookup of the row walks the versions left there until the page is pruned, which
        happens once the page's free space falls below its fill factor's reserve (a
        tenth at least): at the default, a page holds up to nine tenths of dead
        versions first (a walk of over a hundred for the checked position). A fill
        factor of 10 has the page pruned before a tenth of it is used. The rows are
        the same. SQLite rewrites the row in place: nothing.
        """
        return " WITH (fillfactor = 10)" if self.kind == "postgres" else ""

    def sql(self, text: str) -> str:
        """Write queries with `?` and `{leaves}`-style names; adapted to the store here.

        `{events}` and `{position}` are the events table and its position column;
        any other `{name}` is the side table `ledger_<name>`.
        """
        adapted = self._adapted.get(text)
        if adapted is None:  # each statement is adapted once: a command runs the same dozen
            adapted = text.format_map(_Names(self))
            if self.kind == "postgres":
                adapted = adapted.replace("?", "%s")
            self._adapted[text] = adapted
        return adapted


class _Names(dict[str, str]):
    def __init__(self, dialect: Dialect) -> None:
        super().__init__(events=dialect.events, position=dialect.position)
        self.dialect = dialect

    def __missing__(self, key: str) -> str:
        return self.dialect.table(f"ledger_{key}")


def pg_rows(rows: Sequence[Sequence[Any]], types: Sequence[str], *, few: int = 16
            ) -> tuple[str, list[Any]]:
    """A PostgreSQL row source for `INSERT INTO t (...) <source>`, and its parameters.

    Up to `few` rows: VALUES with one binary parameter a value (each dumped in C);
    more: unnest of one binary array a column (a fixed number of parameters
    whatever the count). `types` are the columns' SQL types; `rows` is not empty.
    """
    if len(rows) <= few:
        row = "(" + ", ".join(f"%b::{t}" for t in types) + ")"
        return "VALUES " + ", ".join([row] * len(rows)), [v for r in rows for v in r]
    arrays = ", ".join(f"%b::{t}[]" for t in types)
    return (f"SELECT * FROM unnest({arrays})",  # noqa: S608 - types and placeholders only
            [list(column) for column in zip(*rows, strict=True)])
