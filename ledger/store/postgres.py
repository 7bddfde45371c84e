"""The ledger's PostgreSQL recorder: eventsourcing's, plus the side tables.

Imported only when a postgresql:// store is opened, so SQLite users never load psycopg.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory
from psycopg import Cursor, sql
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from ledger.domain.errors import StoreUnavailable
from ledger.store.recorders import Receipt, RefEntry, indexes_of


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
                SQL(
                    "CREATE TABLE IF NOT EXISTS {0}.ledger_affiliations (practice TEXT NOT NULL, "
                    "consortium TEXT NOT NULL, PRIMARY KEY (practice, consortium))"
                ).format(schema),
            ]
        )
        self._insert_receipt = SQL("INSERT INTO {0}.ledger_commands VALUES (%s, %s, %s)").format(
            schema
        )
        self._insert_ref = SQL("INSERT INTO {0}.ledger_refs VALUES (%s, %s, %s)").format(schema)
        self._insert_affiliation = SQL(
            "INSERT INTO {0}.ledger_affiliations VALUES (%s, %s) ON CONFLICT DO NOTHING"
        ).format(schema)
        self._select_affiliations = SQL(
            "SELECT practice, consortium FROM {0}.ledger_affiliations WHERE practice = ANY(%s)"
        ).format(schema)
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
        indexes = indexes_of(kwargs)
        if indexes.receipts:
            curs.executemany(
                self._insert_receipt,
                [(r.command_id, r.fingerprint, r.answer) for r in indexes.receipts],
            )
        if indexes.refs:
            curs.executemany(self._insert_ref, [(r.ref, r.practice, r.year) for r in indexes.refs])
        if indexes.affiliations:
            curs.executemany(self._insert_affiliation, list(indexes.affiliations))
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

    def select_affiliations(self, practices: Iterable[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_affiliations, (list(practices),))
            for row in curs.fetchall():
                found.setdefault(row["practice"], []).append(row["consortium"])
        return found

    def select_ref(self, ref: str) -> RefEntry | None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_ref, (ref,))
            row = curs.fetchone()
        return RefEntry(row["ref"], row["practice"], row["year"]) if row else None


class LedgerPostgresFactory(PostgresFactory):
    application_recorder_class = LedgerPostgresRecorder


def prepare_postgres(env: dict[str, str], display: str) -> None:
    """Create the schema (if named) before eventsourcing creates its tables there."""
    schema = env.get("POSTGRES_SCHEMA")
    try:
        with psycopg.connect(
            dbname=env["POSTGRES_DBNAME"],
            host=env["POSTGRES_HOST"],
            port=int(env["POSTGRES_PORT"]),
            user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"] or None,
            connect_timeout=int(env["POSTGRES_CONNECT_TIMEOUT"]),
            autocommit=True,
        ) as conn:
            if schema:
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {0}").format(sql.Identifier(schema))
                )
    except psycopg.Error as error:
        first = (str(error).strip() or type(error).__name__).splitlines()[0]
        raise StoreUnavailable(
            "store", f"cannot reach PostgreSQL at {display}: {first}"
        ) from error
