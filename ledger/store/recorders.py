"""eventsourcing recorders extended with the write side's own indexes.

Two small tables live beside the events and are written in the same transaction:

- `ledger_commands`: one row per applied command id, with a fingerprint of the
  command and the answer it gave (idempotency, invariant 10). Its primary key
  makes two writers racing on one command id collide, so one of them retries and
  finds the other's answer.
- `ledger_refs`: commitment reference -> budget, so `spend vary R-0001` finds its
  budget, and a reference can never be used twice.

Both are derived from the events (each event carries its command id and refs)
and could be rebuilt from them; they exist so the write path never scans.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier


@dataclass(frozen=True, slots=True)
class Receipt:
    command_id: str
    fingerprint: str
    answer: str


@dataclass(frozen=True, slots=True)
class RefEntry:
    ref: str
    practice: str
    year: str


@dataclass(frozen=True, slots=True)
class Indexes:
    """What a save adds to the side tables, passed through `Application.save(**kwargs)`."""

    receipts: Sequence[Receipt] = ()
    refs: Sequence[RefEntry] = ()


def _indexes(kwargs: dict[str, Any]) -> Indexes:
    indexes = kwargs.get("indexes")
    return indexes if isinstance(indexes, Indexes) else Indexes()


class LedgerSQLiteRecorder(SQLiteApplicationRecorder):
    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS ledger_commands ("
            "command_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, answer TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS ledger_refs ("
            "ref TEXT PRIMARY KEY, practice TEXT NOT NULL, year TEXT NOT NULL)",
        ]

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        indexes = _indexes(kwargs)
        if indexes.receipts:
            c.executemany(
                "INSERT INTO ledger_commands VALUES (?, ?, ?)",
                [(r.command_id, r.fingerprint, r.answer) for r in indexes.receipts],
            )
        if indexes.refs:
            c.executemany(
                "INSERT INTO ledger_refs VALUES (?, ?, ?)",
                [(r.ref, r.practice, r.year) for r in indexes.refs],
            )
        return super()._insert_events(c, stored_events, **kwargs)

    def select_receipts(self, command_ids: Iterable[str]) -> dict[str, Receipt]:
        found: dict[str, Receipt] = {}
        ids = list(command_ids)
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                c.execute(
                    "SELECT command_id, fingerprint, answer FROM ledger_commands "
                    f"WHERE command_id IN ({','.join('?' * len(chunk))})",  # noqa: S608
                    chunk,
                )
                for row in c.fetchall():
                    found[row[0]] = Receipt(row[0], row[1], row[2])
        return found

    def select_refs(self, refs: Iterable[str]) -> dict[str, RefEntry]:
        found: dict[str, RefEntry] = {}
        wanted = list(refs)
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                c.execute(
                    "SELECT ref, practice, year FROM ledger_refs "
                    f"WHERE ref IN ({','.join('?' * len(chunk))})",  # noqa: S608
                    chunk,
                )
                for row in c.fetchall():
                    found[row[0]] = RefEntry(row[0], row[1], row[2])
        return found

    def select_ref(self, ref: str) -> RefEntry | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT ref, practice, year FROM ledger_refs WHERE ref = ?", (ref,))
            row = c.fetchone()
        return RefEntry(row[0], row[1], row[2]) if row else None


class LedgerPostgresRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schema = Identifier(self.datastore.schema)
        self.sql_create_statements.extend(
            [
                SQL(
                    "CREATE TABLE IF NOT EXISTS {0}.ledger_commands (command_id TEXT PRIMARY KEY, "
                    "fingerprint TEXT NOT NULL, answer TEXT NOT NULL)"
                ).format(schema),
                SQL(
                    "CREATE TABLE IF NOT EXISTS {0}.ledger_refs (ref TEXT PRIMARY KEY, "
                    "practice TEXT NOT NULL, year TEXT NOT NULL)"
                ).format(schema),
            ]
        )
        self._insert_receipt = SQL("INSERT INTO {0}.ledger_commands VALUES (%s, %s, %s)").format(
            schema
        )
        self._insert_ref = SQL("INSERT INTO {0}.ledger_refs VALUES (%s, %s, %s)").format(schema)
        self._select_receipts = SQL(
            "SELECT command_id, fingerprint, answer FROM {0}.ledger_commands "
            "WHERE command_id = ANY(%s)"
        ).format(schema)
        self._select_ref = SQL(
            "SELECT ref, practice, year FROM {0}.ledger_refs WHERE ref = %s"
        ).format(schema)
        self._select_refs = SQL(
            "SELECT ref, practice, year FROM {0}.ledger_refs WHERE ref = ANY(%s)"
        ).format(schema)

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        indexes = _indexes(kwargs)
        if indexes.receipts:
            curs.executemany(
                self._insert_receipt,
                [(r.command_id, r.fingerprint, r.answer) for r in indexes.receipts],
            )
        if indexes.refs:
            curs.executemany(self._insert_ref, [(r.ref, r.practice, r.year) for r in indexes.refs])
        super()._insert_events(curs, stored_events, **kwargs)

    def select_receipts(self, command_ids: Iterable[str]) -> dict[str, Receipt]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_receipts, (list(command_ids),))
            return {
                row["command_id"]: Receipt(row["command_id"], row["fingerprint"], row["answer"])
                for row in curs.fetchall()
            }

    def select_refs(self, refs: Iterable[str]) -> dict[str, RefEntry]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_refs, (list(refs),))
            return {
                row["ref"]: RefEntry(row["ref"], row["practice"], row["year"])
                for row in curs.fetchall()
            }

    def select_ref(self, ref: str) -> RefEntry | None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_ref, (ref,))
            row = curs.fetchone()
        return RefEntry(row["ref"], row["practice"], row["year"]) if row else None


LedgerRecorder = LedgerSQLiteRecorder | LedgerPostgresRecorder
