"""The ledger's PostgreSQL recorder: eventsourcing's, plus the side tables.

Imported only when a postgresql:// store is opened, so SQLite users never load psycopg.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import (
    PostgresApplicationRecorder,
    PostgresFactory,
)
from psycopg import Cursor, sql
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from ledger.domain.errors import StoreUnavailable
from ledger.store import catalogue
from ledger.store.dialect import Dialect
from ledger.store.hooks import WriteHook
from ledger.store.pgread import BinaryNotifications
from ledger.store.recorders import (
    Indexes,
    Receipt,
    RefEntry,
    hook_statements,
    indexes_of,
    run_hooks,
)

# The cursor of the write transaction this thread is in, if any: reads made while
# deciding a command go through it, inside the table lock.
_WRITE_CURSOR: ContextVar[Cursor[DictRow] | None] = ContextVar("ledger_pg_cursor", default=None)


class LedgerPostgresRecorder(BinaryNotifications, PostgresApplicationRecorder):
    # Set by the store before it creates the tables (ledger/store/hooks.py).
    hooks: Sequence[WriteHook] = ()

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
                    "CREATE TABLE IF NOT EXISTS {0}.ledger_budget_years (practice TEXT NOT NULL, "
                    "year TEXT NOT NULL, PRIMARY KEY (practice, year))"
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
        self._insert_budget_year = SQL(
            "INSERT INTO {0}.ledger_budget_years VALUES (%s, %s) ON CONFLICT DO NOTHING"
        ).format(schema)
        self._select_budget_years = SQL(
            "SELECT year FROM {0}.ledger_budget_years WHERE practice = %s ORDER BY year"
        ).format(schema)
        self._select_affiliations = SQL(
            "SELECT practice, consortium FROM {0}.ledger_affiliations WHERE practice = ANY(%s)"
        ).format(schema)
        self.dialect = Dialect("postgres", self.datastore.schema, self.events_table_name)
        # Every write NOTIFYs this channel in its transaction (delivered on commit only);
        # channels are per database, so the schema names the ledger (ledger/store/commits.py).
        self.channel_name = f"{self.datastore.schema}.{self.events_table_name}"
        self.sql_create_statements.extend(
            Composed([SQL(statement)])  # psycopg types SQL(str) as a literal string
            for statement in catalogue.create_statements(self.dialect)
        )
        self._insert_numbered_statement = SQL(
            "INSERT INTO {0}.{1} (originator_id, originator_version, topic, state, "
            "notification_id) SELECT e.originator_id, e.originator_version, e.topic, e.state, "
            "(SELECT COALESCE(MAX(notification_id), 0) FROM {0}.{1}) + e.n "
            "FROM unnest(%s::{0}.{2}[]) WITH ORDINALITY "
            "AS e(originator_id, originator_version, topic, state, n) "
            "ORDER BY e.n RETURNING notification_id"
        ).format(schema, Identifier(self.events_table_name),
                 Identifier(self.stored_event_type_name))
        self._sync_sequence = SQL(
            "SELECT setval(pg_get_serial_sequence(%s, 'notification_id'), %s)")
        self._select_stream = SQL(
            "SELECT originator_version, topic, state FROM {0}.{1} "
            "WHERE originator_id = %s AND originator_version > %s ORDER BY originator_version"
        ).format(schema, Identifier(self.events_table_name))
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

    def ledger_exists(self) -> bool:
        with self._reading() as curs:
            curs.execute("SELECT to_regclass(%s) AS found",
                         (f'"{self.datastore.schema}"."{self.events_table_name}"',))
            row = curs.fetchone()
        return row is not None and row["found"] is not None

    def create_table(self) -> None:
        self.sql_create_statements.extend(
            Composed([SQL(statement)])  # psycopg types SQL(str) as a literal string
            for statement in hook_statements(self.hooks, self.dialect)
        )
        super().create_table()

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
        if indexes.budget_years:
            curs.executemany(self._insert_budget_year, list(indexes.budget_years))
        super()._insert_events(curs, stored_events, **kwargs)

    @contextmanager
    def write_transaction(self) -> Iterator[Cursor[DictRow]]:
        """A transaction that takes the events table's write lock before it reads.

        eventsourcing takes the same EXCLUSIVE lock for every insert; taking it
        first makes a command's reads and its append one serialised unit, like
        SQLite's single writer: no version conflicts, so no retries, and no
        rolled-back inserts burning sequence numbers (positions stay gap-free).
        Readers (SELECT) are not blocked.
        """
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._lock_table(curs)
            token = _WRITE_CURSOR.set(curs)
            try:
                yield curs
            finally:
                _WRITE_CURSOR.reset(token)

    def insert_in_transaction(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], indexes: Indexes
    ) -> Sequence[int]:
        """Append events and their indexes inside `write_transaction` (the lock is held)."""
        self._insert_events(curs, stored_events, indexes=indexes)
        if not stored_events:
            return []
        self._notify_channel(curs)
        self._insert_numbered(curs, stored_events)
        return list(self._fetch_ids_after_insert_events(curs, stored_events) or [])

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **_: Any
    ) -> None:
        # eventsourcing's own insert path (Application.save): the same lock and numbering.
        self._lock_table(curs)
        self._notify_channel(curs)
        self._insert_numbered(curs, stored_events)

    def _insert_numbered(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent]
                         ) -> None:
        """Insert events at the next positions after the highest stored, in their order.

        The caller holds the EXCLUSIVE lock on the events table, so no other
        transaction can insert between reading the maximum and committing: positions
        are gap-free even when a writer dies between its insert and its commit (a
        sequence would have spent the numbers it handed out).
        """
        rows = [
            self.construct_pg_stored_event(
                e.originator_id, e.originator_version, e.topic, e.state
            )
            for e in stored_events
        ]
        curs.execute(self._insert_numbered_statement, (rows,))

    def _fetch_ids_after_insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        # Here, not in _insert_events: on PostgreSQL that runs before the insert. The
        # events table is still locked, and a hook's error rolls the write back.
        # Numbered max+1, max+2, ... in the order given (_insert_numbered).
        ids = sorted(super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs) or [])
        if ids:
            # Keep the column's sequence in step, for writers that still draw from it.
            curs.execute(self._sync_sequence, (self.dialect.events, ids[-1]))
        run_hooks(self.hooks, curs, self.dialect, ids, stored_events)
        return ids

    @contextmanager
    def _reading(self) -> Iterator[Cursor[DictRow]]:
        current = _WRITE_CURSOR.get()
        if current is not None:
            yield current
            return
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            yield curs

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        if _WRITE_CURSOR.get() is None or lte is not None or desc or limit is not None:
            stored: Sequence[StoredEvent] = super().select_events(
                originator_id, gt=gt, lte=lte, desc=desc, limit=limit
            )
            return stored
        with self._reading() as curs:
            curs.execute(self._select_stream, (originator_id, gt or 0))
            return [
                StoredEvent(originator_id, row["originator_version"], row["topic"],
                            bytes(row["state"]))
                for row in curs.fetchall()
            ]

    def select_rows(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._reading() as curs:
            curs.execute(statement, tuple(params))
            return [tuple(row.values()) for row in curs.fetchall()]

    def position_of(self, stream_id: UUID, version: int) -> int | None:
        rows = self.select_rows(
            self.dialect.sql("SELECT {position} FROM {events} "
                             "WHERE originator_id = ? AND originator_version = ?"),
            (stream_id, version))
        return int(rows[0][0]) if rows else None

    def select_receipts(self, command_ids: Iterable[str]) -> dict[str, Receipt]:
        with self._reading() as curs:
            curs.execute(self._select_receipts, (list(command_ids),))
            return {
                row["command_id"]: Receipt(row["command_id"], row["fingerprint"], row["answer"])
                for row in curs.fetchall()
            }

    def select_refs(self, refs: Iterable[str]) -> dict[str, RefEntry]:
        with self._reading() as curs:
            curs.execute(self._select_refs, (list(refs),))
            return {
                row["ref"]: RefEntry(row["ref"], row["practice"], row["year"])
                for row in curs.fetchall()
            }

    def select_budget_years(self, practice: str) -> list[str]:
        with self._reading() as curs:
            curs.execute(self._select_budget_years, (practice,))
            return [row["year"] for row in curs.fetchall()]

    def select_affiliations(self, practices: Iterable[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        with self._reading() as curs:
            curs.execute(self._select_affiliations, (list(practices),))
            for row in curs.fetchall():
                found.setdefault(row["practice"], []).append(row["consortium"])
        return found

    def select_ref(self, ref: str) -> RefEntry | None:
        with self._reading() as curs:
            curs.execute(self._select_ref, (ref,))
            row = curs.fetchone()
        return RefEntry(row["ref"], row["practice"], row["year"]) if row else None


class LedgerPostgresFactory(PostgresFactory):
    application_recorder_class = LedgerPostgresRecorder


# Any fixed number: the advisory lock that serialises opening (and so creating) a ledger.
_OPENING_LOCK = 0x1ED6E4


def _connect(env: dict[str, str], display: str) -> psycopg.Connection[Any]:
    """An autocommit connection to the ledger's database; StoreUnavailable if unreachable."""
    try:
        return psycopg.connect(
            dbname=env["POSTGRES_DBNAME"],
            host=env["POSTGRES_HOST"],
            port=int(env["POSTGRES_PORT"]),
            user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"] or None,
            connect_timeout=int(env["POSTGRES_CONNECT_TIMEOUT"]),
            autocommit=True,
        )
    except psycopg.Error as error:
        first = (str(error).strip() or type(error).__name__).splitlines()[0]
        raise StoreUnavailable(
            "store", f"cannot reach PostgreSQL at {display}: {first}"
        ) from error


@contextmanager
def prepared(env: dict[str, str], display: str, *, create: bool = True) -> Iterator[bool]:
    """Create the schema (if named, and `create`), and hold a lock while the caller
    creates the tables. Yields whether this call created the schema.

    Two processes opening a fresh ledger at once would otherwise race on
    eventsourcing's CREATE TABLE / TYPE / FUNCTION ("tuple concurrently updated").
    """
    schema = env.get("POSTGRES_SCHEMA")
    with _connect(env, display) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_OPENING_LOCK,))
        created = False
        if schema and create:
            created = _schema_missing(conn, schema)
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {0}").format(sql.Identifier(schema)))
        try:
            yield created
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_OPENING_LOCK,))


def _schema_missing(conn: psycopg.Connection[Any], schema: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return row is None


def discard_if_empty(env: dict[str, str], display: str, events_table: str) -> None:
    """Drop the ledger's schema if it still holds no events (a refused first write).

    Runs under the opening lock, with the events table locked against writers while
    it counts, so a schema another writer has just written to is never dropped.
    """
    schema = env["POSTGRES_SCHEMA"]
    with _connect(env, display) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_OPENING_LOCK,))
        try:
            with conn.transaction():
                events = sql.SQL("{0}.{1}").format(sql.Identifier(schema),
                                                   sql.Identifier(events_table))
                conn.execute(sql.SQL("LOCK TABLE {0} IN ACCESS EXCLUSIVE MODE").format(events))
                if conn.execute(sql.SQL("SELECT 1 FROM {0} LIMIT 1").format(events)).fetchone():
                    return
                conn.execute(sql.SQL("DROP SCHEMA {0} CASCADE").format(sql.Identifier(schema)))
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_OPENING_LOCK,))
