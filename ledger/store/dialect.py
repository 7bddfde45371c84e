"""SQL that reads the same on both stores: table names, positions, placeholders.

Queries are written with `?` placeholders and `{events}`-style names; `Dialect.sql`
adapts them to SQLite or PostgreSQL (schema-qualified names, `%s`).
"""

from __future__ import annotations

from collections.abc import Sequence
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
