"""SQL that reads the same on both stores: table names, positions, placeholders.

Queries are written with `?` placeholders and `{events}`-style names; `Dialect.sql`
adapts them to SQLite or PostgreSQL (schema-qualified names, `%s`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class Cursor(Protocol):
    def execute(self, query: Any, params: Any = ...) -> Any: ...

    def executemany(self, query: Any, params_seq: Any) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> Any: ...


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

    def table(self, name: str) -> str:
        return f'"{self.schema}"."{name}"' if self.kind == "postgres" else name

    @property
    def events(self) -> str:
        return self.table(self.events_table)

    @property
    def position(self) -> str:
        return "notification_id" if self.kind == "postgres" else "rowid"

    def sql(self, text: str) -> str:
        """Write queries with `?` and `{leaves}`-style names; adapted to the store here.

        `{events}` and `{position}` are the events table and its position column;
        any other `{name}` is the side table `ledger_<name>`.
        """
        names = _Names(self)
        text = text.format_map(names)
        return text.replace("?", "%s") if self.kind == "postgres" else text


class _Names(dict[str, str]):
    def __init__(self, dialect: Dialect) -> None:
        super().__init__(events=dialect.events, position=dialect.position)
        self.dialect = dialect

    def __missing__(self, key: str) -> str:
        return self.dialect.table(f"ledger_{key}")
