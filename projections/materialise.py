"""Projections materialised in the event store's own database, with their positions.

Each projection's tables live beside the events (SQLite or PostgreSQL), and its
position is a row in eventsourcing's tracking table (`SQLiteTrackingRecorder` /
`PostgresTrackingRecorder`, application name `projection:<name>`). A batch of
events is applied in one transaction that also moves the tracking row, after
checking under a write lock that the row still holds the position the batch
started from: a crash never applies an event twice or skips one, and two
processes catching up at once cannot both apply the same batch (the loser
rolls back and starts again from the new position).

Catch-up pulls notifications from the tracked position (SQLite has no
subscription; PostgreSQL is read the same way). A rebuild empties the
projection's tables and sets its position to zero in one transaction, then
catches up; since catch-up is what a rebuild runs, the two agree by
construction, and the tests check it on random histories anyway.

A parallel rebuild of a SQLite ledger builds each process's projections in a
scratch file of its own (`Materialiser.build_apart`) and copies them in at the
end, so the processes never wait for each other's writes. A scratch file is locked
(flock) by the process building in it for as long as it is in use; one that nobody
holds (its process killed outright, or the machine lost power) is removed by the
ledger's next rebuild.
"""

from __future__ import annotations

import fcntl
import gc
import multiprocessing
import os
import re
import signal
import sqlite3
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, datetime
from operator import add, itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from eventsourcing.persistence import Tracking
from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder

from ledger.domain.errors import InvalidInput, StoreUnavailable, UnreadableEvent
from ledger.domain.events import EVENTS_BY_TOPIC
from ledger.store.eventstore import MAX_POSITION, EventStore, StoreTarget, open_store
from ledger.store.mapper import decode_event, encode_event
from projections.core import (
    Add,
    Apply,
    BulkApply,
    Change,
    Column,
    Key,
    Positioned,
    Projection,
    Put,
    Table,
    Values,
    trusted_event,
)
from projections.registry import PROJECTIONS, READ_TABLES

if TYPE_CHECKING:  # PostgreSQL's driver loads only for a PostgreSQL store
    from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder

BATCH = 10_000
REBUILD_BATCH = 250_000
REBUILD_CACHE_KIB = 256 * 1024
SCRATCH_PAGE_SIZE = 16 * 1024
# A build in a scratch file writes its rows out once this many are held (and at its end):
# written at once, in key order, the rows of a table are appended to its B-tree instead of
# spliced among the rows of earlier batches (a quarter less CPU for trail's). Some hundreds
# of bytes of memory a row.
SCRATCH_HELD_ROWS = 2_500_000
# From this many rows of one table, PostgreSQL is written through COPY.
PG_COPY_MIN_ROWS = 1_000
MAX_CONFLICTS = 10
# A parallel rebuild starts processes that each import the ledger and read the whole
# log: below this many events one process finishes sooner.
PARALLEL_MIN_EVENTS = 200_000
# Relative cost of rebuilding each projection (its bulk fold and its writes, in CPU time
# on bench/national.py's ledger of 1,000,000 events, less the reading of the log every
# process does; 20 to a second of CPU), to give each process of a parallel rebuild an even
# share: two processes get positions, portfolio and holders (17.5 s of CPU measured, the
# log's reading included) and trail, variation, quality, organisations and pool_draws
# (17.6 s).
REBUILD_COST = {"positions": 254, "trail": 131, "variation": 104, "quality": 70,
                "portfolio": 44, "holders": 22, "organisations": 3, "pool_draws": 3}
TRACKING_PREFIX = "projection:"
# The scratch files this process is building projections in (`Materialiser.build_apart`).
_SCRATCH_FILES: set[Path] = set()
PG_TRACKING_TABLE = "projection_tracking"
# How long a projection batch's transaction may sit idle between its statements on
# PostgreSQL: far beyond a starved process's pauses, short enough that a hung process
# cannot keep the tracking rows (which every catch-up locks) from other readers for long.
PROJECTION_IDLE_LIMIT = "60s"

Progress = Callable[[int], None]


class TrackingConflictError(Exception):
    """Another process moved a projection while this one was applying a batch."""


@dataclass(frozen=True, slots=True)
class Status:
    name: str
    description: str
    position: int
    head: int

    @property
    def lag(self) -> int:
        return max(self.head - self.position, 0)


# --- values to and from SQL ----------------------------------------------------------


def to_sql(column: Column, value: Any) -> Any:
    if value is None:
        return None
    if column.type == "date":
        return value.isoformat() if isinstance(value, date) else value
    if column.type == "instant":
        return value.isoformat(timespec="microseconds") if isinstance(value, datetime) else value
    if column.type == "bool":
        return int(bool(value))
    return value


def from_sql(column: Column, value: Any) -> Any:
    if value is None:
        return None
    if column.type == "date":
        return date.fromisoformat(value)
    if column.type == "instant":
        return datetime.fromisoformat(value)
    if column.type == "bool":
        return bool(value)
    return value


_PLAIN = frozenset({"text", "int"})  # stored as they are


_ISO_DAYS: dict[date, str] = {}  # a ledger has a few thousand business dates at most


def _date_to_sql(value: Any) -> Any:
    found = _ISO_DAYS.get(value)
    if found is not None:
        return found
    if not isinstance(value, date):
        return value
    if len(_ISO_DAYS) > 100_000:
        _ISO_DAYS.clear()
    found = _ISO_DAYS[value] = value.isoformat()
    return found


def _instant_to_sql(value: Any) -> Any:
    return value.isoformat(timespec="microseconds") if isinstance(value, datetime) else value


def _bool_to_sql(value: Any) -> Any:
    return int(bool(value))


_TO_SQL: dict[str, Callable[[Any], Any]] = {
    "date": _date_to_sql, "instant": _instant_to_sql, "bool": _bool_to_sql}


def _rows_to_sql(columns: tuple[Column, ...], rows: list[tuple[Any, ...]]
                 ) -> list[tuple[Any, ...]]:
    """Rows as SQL parameters: the same values `to_sql` gives, converted column-wise.

    Only the columns that need converting are touched, in one pass per column,
    so a bulk write costs little more than the rows themselves.
    """
    converted = [(i, _TO_SQL[c.type]) for i, c in enumerate(columns) if c.type not in _PLAIN]
    if not converted or not rows:
        return rows
    out = [list(row) for row in rows]
    for i, convert in converted:
        for row in out:
            value = row[i]
            if value is not None:
                row[i] = convert(value)
    return [tuple(row) for row in out]

def _in_key_order(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows sorted by their first key column, otherwise in the order they came.

    Written in key order, rows land next to each other in the primary key's B-tree
    instead of all over it: several times fewer pages touched on a large table. The
    first column alone is compared (one string compare, not a tuple's), and the rows
    of one value of it are few and come mostly in order already (a fold writes them
    as the log goes); any order writes the same rows.
    """
    with suppress(TypeError):  # a key column holding NULL beside values: any order is right
        rows.sort(key=_first)
    return rows


def _holds_nul(values: list[Any]) -> bool:
    try:  # one search in C over the column, the common case: text and None only
        return "\x00" in "".join(filter(None, values))
    except TypeError:
        return any(isinstance(v, str) and "\x00" in v for v in values)


def _without_nul(columns: tuple[Column, ...], skip: int, rows: list[tuple[Any, ...]]
                 ) -> list[tuple[Any, ...]]:
    """Rows whose text values (after the first `skip` columns, the key) show a NUL as the
    four characters `\\x00`, as the tables print it: PostgreSQL text cannot hold NUL,
    which events recorded before text was checked may carry (the events keep it). A NUL
    in a key is left for PostgreSQL to refuse, as a key that changed would be another.
    Rows without one, nearly always all of them, are returned as they are, found by one
    search per text column."""
    text = [i for i, c in enumerate(columns) if i >= skip and c.type == "text"]
    if not any(_holds_nul([row[i] for row in rows]) for i in text):
        return rows

    def clean(value: Any) -> Any:
        return value.replace("\x00", "\\x00") if isinstance(value, str) else value

    return [row[:skip] + tuple(clean(v) for v in row[skip:]) for row in rows]


_first = itemgetter(0)

_SQL_TYPES = {"text": "TEXT", "int": "BIGINT", "date": "TEXT", "instant": "TEXT",
              "bool": "INTEGER"}


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a fold allocates millions of rows.

    The rows are tuples and dictionaries with no cycles; without the pause the
    collector re-walks every one of them again and again as the cache grows.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --- the database the events live in -------------------------------------------------


class Database:
    """The store's own database, seen through plain SQL with tuple rows."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        datastore = store.app.recorder.datastore  # type: ignore[attr-defined]
        self.kind = store.target.kind
        self.p = "?" if self.kind == "sqlite" else "%s"
        if self.kind == "sqlite":
            assert isinstance(datastore, SQLiteDatastore)
            self.sqlite: SQLiteDatastore = datastore
            self.tracker: SQLiteTrackingRecorder | PostgresTrackingRecorder = (
                SQLiteTrackingRecorder(datastore))
            self.schema = ""
            self.tracking_table = "tracking"
        else:
            from eventsourcing.postgres import (  # noqa: PLC0415 - see the imports
                PostgresDatastore,
                PostgresTrackingRecorder,
            )

            assert isinstance(datastore, PostgresDatastore)
            self.postgres: PostgresDatastore = datastore
            self.tracker = PostgresTrackingRecorder(datastore,
                                                    tracking_table_name=PG_TRACKING_TABLE)
            self.schema = datastore.schema
            self.tracking_table = self.name(PG_TRACKING_TABLE)

    def name(self, table: str) -> str:
        if self.kind == "sqlite":
            return table
        from psycopg.sql import SQL, Identifier  # noqa: PLC0415 - see the imports

        return SQL("{0}.{1}").format(Identifier(self.schema), Identifier(table)).as_string()

    @contextmanager
    def cursor(self, *, write: bool) -> Iterator[Any]:
        if self.kind == "sqlite":
            with self.sqlite.transaction(commit=write) as c:
                yield c
            return
        from psycopg.rows import tuple_row  # noqa: PLC0415 - see the imports

        with (
            self.postgres.get_connection() as conn,
            conn.transaction(force_rollback=not write),
            conn.cursor(row_factory=tuple_row) as cur,
        ):
            yield cur

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read; `?` marks parameters on both stores.

        On PostgreSQL the statement runs on its own (autocommit), as the store's reads
        do: one statement sees one snapshot either way, and a transaction around it
        would cost a BEGIN and a ROLLBACK round trip.
        """
        if self.kind == "sqlite":
            with self.cursor(write=False) as c:
                c.execute(sql, tuple(params))
                return [tuple(row) for row in c.fetchall()]
        from psycopg.rows import tuple_row  # noqa: PLC0415 - see the imports

        with (
            self.postgres.get_connection() as conn,
            conn.cursor(row_factory=tuple_row) as cur,
        ):
            cur.execute(sql.replace("?", "%s"), tuple(params))
            return [tuple(row) for row in cur.fetchall()]

    _staging: bool | None = None

    def may_stage(self, cursor: Any) -> bool:
        """Whether rows may be staged in a temporary table: PostgreSQL, and this role
        may create temporary tables (granted to everyone unless revoked)."""
        if self.kind != "postgres":
            return False
        if self._staging is None:
            cursor.execute("SELECT has_database_privilege(current_database(), 'TEMPORARY')")
            self._staging = bool(cursor.fetchone()[0])
        return self._staging

    def log_after(self, after: int, limit: int) -> list[tuple[int, int, str, bytes]]:
        """(position, stream version, topic, stored state) of up to `limit` events after
        `after`, in position order: what a bulk fold reads of each event (its stream is
        looked up by `stream_at` for the few stored in an older schema version)."""
        dialect = self.store.recorder.dialect
        sql = (f"SELECT {dialect.position}, originator_version, topic, state "  # noqa: S608
               f"FROM {dialect.events} WHERE {dialect.position} > ? "
               f"ORDER BY {dialect.position} LIMIT ?")
        if self.kind != "sqlite":
            return self.query(sql, (after, limit))
        with self.cursor(write=False) as c:
            raw = c.sqlite_cursor
            raw.row_factory = None
            raw.execute(sql, (after, limit))
            rows: list[tuple[int, int, str, bytes]] = raw.fetchall()
            return rows

    def stream_at(self, position: int) -> Any:
        """The stream id of the event at `position`, as the log stores it."""
        dialect = self.store.recorder.dialect
        found = self.query(f"SELECT originator_id FROM {dialect.events} "  # noqa: S608
                           f"WHERE {dialect.position} = ?", (position,))
        return found[0][0]

    def track(self, cursor: Any, name: str, position: int) -> None:
        self.tracker._insert_tracking(cursor, Tracking(TRACKING_PREFIX + name, position))


def _current_form(topic: str, stream: Any, version: int, state: bytes, position: int
                  ) -> dict[str, Any]:
    """The stored fields of an event stored in an older schema version, as this
    version of the event would store them (upcast and validated on the way)."""
    event = decode_event(topic, stream, version, state, position)
    fields: dict[str, Any] = orjson.loads(encode_event(event))
    return fields


# --- the write-back cache folds read through -----------------------------------------


class Written(NamedTuple):
    """Rows of one table to write: `put` (upsert), `add` (totals added) or `delete` (keys)."""

    table: Table
    kind: str
    rows: list[tuple[Any, ...]]


@dataclass
class Cache:
    """Rows the folds read, rows they changed, and totals they added, for one run.

    `complete` means the tables are known to hold nothing that is not cached
    (right after a rebuild emptied them), so a miss needs no query.
    """

    db: Database
    complete: bool = False
    rows: dict[str, dict[Key, Values | None]] = field(default_factory=dict)
    dirty: dict[str, dict[Key, Values | None]] = field(default_factory=dict)
    totals: dict[str, dict[Key, list[int]]] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)
    # Tables whose rows bulk folds write in their SQL form already (`puts`, `adds`).
    ready: set[str] = field(default_factory=set)
    # Tables derived after the fold (projections.core.Rows.derives), by name.
    derived: frozenset[str] = frozenset()

    def derives(self, table: Table) -> bool:
        return table.name in self.derived

    def puts(self, table: Table) -> dict[Key, Values | None]:
        """A bulk fold's rows of `table`, in their SQL form (projections.core.Rows)."""
        self.tables[table.name] = table
        self.ready.add(table.name)
        return self.dirty.setdefault(table.name, {})

    def adds(self, table: Table) -> dict[Key, list[int]]:
        """A bulk fold's totals added to `table`'s (projections.core.Rows)."""
        self.tables[table.name] = table
        self.ready.add(table.name)
        return self.totals.setdefault(table.name, {})

    def get(self, table: Table, key: Key) -> Values | None:
        rows = self.rows.setdefault(table.name, {})
        if key in rows:
            return rows[key]
        if self.complete:
            return None
        found = self._load(table, key)
        rows[key] = found
        return found

    def _load(self, table: Table, key: Key) -> Values | None:
        where = " AND ".join(f"{c.name} = ?" for c in table.key)
        names = ", ".join(c.name for c in table.values)
        params = [to_sql(c, v) for c, v in zip(table.key, key, strict=True)]
        found = self.db.query(
            f"SELECT {names} FROM {self.db.name(table.name)} WHERE {where}",  # noqa: S608
            params,
        )
        if not found:
            return None
        return tuple(from_sql(c, v) for c, v in zip(table.values, found[0], strict=True))

    def apply(self, changes: list[Change]) -> None:
        # The hot loop of every catch-up and rebuild: one pass, local names only, and
        # the change's kind told by its exact type (Put, Add, Delete are final).
        tables, adds, dirty, rows = self.tables, self.totals, self.dirty, self.rows
        for change in changes:
            table = change.table
            name = table.name
            if type(change) is Add:
                totals = adds.get(name)
                if totals is None:
                    totals = adds[name] = {}
                    tables[name] = table
                key = change.key
                old = totals.get(key)
                if old is None:
                    totals[key] = list(change.deltas)
                else:
                    for i, delta in enumerate(change.deltas):
                        old[i] += delta
                continue
            values = change.values if type(change) is Put else None
            written = dirty.get(name)
            if written is None:
                written = dirty[name] = {}
                tables[name] = table
            written[change.key] = values
            if name in READ_TABLES:
                cached = rows.get(name)
                if cached is None:
                    cached = rows[name] = {}
                cached[change.key] = values

    def held(self) -> int:
        """How many rows are waiting to be written."""
        return (sum(len(rows) for rows in self.dirty.values())
                + sum(len(totals) for totals in self.totals.values()))

    def prepare(self) -> list[Written]:
        """What changed, table by table, with its rows as SQL parameters in key order.

        Made before the write transaction opens: converting and sorting a large batch
        takes long enough that PostgreSQL would end a transaction left idle meanwhile.
        """
        out: list[Written] = []
        for name, rows in self.dirty.items():
            if not rows:
                continue
            table = self.tables[name]
            ready = name in self.ready
            values_of = list(rows.values())
            if None in values_of:
                gone = [key for key, values in rows.items() if values is None]
                kept = [key + values for key, values in rows.items() if values is not None]
            else:  # nearly always: rows put, none deleted; joined in one pass in C
                gone, kept = [], list(map(add, rows.keys(), values_of))
            if gone:
                out.append(Written(table, "delete", _in_key_order(
                    gone if ready else _rows_to_sql(table.key, gone))))
            if kept:
                converted = kept if ready else _rows_to_sql(table.columns, kept)
                if self.db.kind == "postgres":
                    converted = _without_nul(table.columns, len(table.key), converted)
                out.append(Written(table, "put", _in_key_order(converted)))
        for name, totals in self.totals.items():
            if not totals:
                continue
            table = self.tables[name]
            summed = [key + tuple(deltas) for key, deltas in totals.items()]
            out.append(Written(table, "add", _in_key_order(
                summed if name in self.ready else _rows_to_sql(table.columns, summed))))
        return out

    def flush(self, cursor: Any, prepared: list[Written] | None = None) -> None:
        """Write what changed (`prepared` by `prepare`, or prepared here).

        On PostgreSQL a large set of rows is copied into a temporary table and merged
        from there in one statement (COPY instead of a statement a row)."""
        if prepared is None:
            prepared = self.prepare()
        if self.complete and self.db.kind == "sqlite":
            # A rebuild writes tables far larger than SQLite's default 2 MB page cache.
            cursor.execute(f"PRAGMA cache_size = -{REBUILD_CACHE_KIB}")
        for written in prepared:
            table, rows = written.table, written.rows
            if written.kind == "delete":
                cursor.executemany(self._delete_sql(table), rows)
            elif len(rows) >= PG_COPY_MIN_ROWS and self.db.may_stage(cursor):
                self._copy_merge(cursor, table, rows, add=written.kind == "add")
            else:
                cursor.executemany(self._upsert_sql(table, add=written.kind == "add"), rows)
        # Emptied in place: bulk folds hold on to their tables' dictionaries.
        for rows_of in self.dirty.values():
            rows_of.clear()
        for totals in self.totals.values():
            totals.clear()

    def _copy_merge(self, cursor: Any, table: Table, rows: list[tuple[Any, ...]], *,
                    add: bool) -> None:
        """Rows upserted on PostgreSQL through COPY into a temporary table."""
        names = ", ".join(c.name for c in table.columns)
        staged = f"staged_{table.name}"
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {staged} "
                       f"(LIKE {self.db.name(table.name)}) ON COMMIT DELETE ROWS")
        with cursor.copy(f"COPY {staged} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(self._upsert_sql(table, add=add, source=staged))
        cursor.execute(f"TRUNCATE {staged}")

    def forget(self) -> None:
        """After a failed transaction: nothing cached can be trusted."""
        self.rows = {}
        self.dirty = {}
        self.totals = {}
        self.complete = False

    @staticmethod
    def _params(columns: tuple[Column, ...], values: tuple[Any, ...]) -> tuple[Any, ...]:
        return _rows_to_sql(columns, [values])[0]

    def _delete_sql(self, table: Table) -> str:
        where = " AND ".join(f"{c.name} = {self.db.p}" for c in table.key)
        return f"DELETE FROM {self.db.name(table.name)} WHERE {where}"  # noqa: S608

    def _upsert_sql(self, table: Table, *, add: bool, source: str | None = None) -> str:
        """One row's upsert, or with `source` every row of that table's."""
        p = self.db.p
        names = ", ".join(c.name for c in table.columns)
        marks = ", ".join(p for _ in table.columns)
        keys = ", ".join(c.name for c in table.key)
        rows = f"SELECT {names} FROM {source}" if source else f"VALUES ({marks})"  # noqa: S608
        if add:
            sets = ", ".join(f"{c.name} = {table.name}.{c.name} + excluded.{c.name}"
                             for c in table.values)
        else:
            sets = ", ".join(f"{c.name} = excluded.{c.name}" for c in table.values)
        return (f"INSERT INTO {self.db.name(table.name)} ({names}) {rows} "
                f"ON CONFLICT ({keys}) DO UPDATE SET {sets}")


def _index_name(table: Table, index: tuple[str, ...]) -> str:
    return f"{table.name}_by_{'_'.join(index)}"


# --- the materialiser ----------------------------------------------------------------


class Materialiser:
    """Creates, catches up, rebuilds and reports the projections of one store."""

    def __init__(self, store: EventStore, projections: Sequence[Projection] = PROJECTIONS
                 ) -> None:
        self.store = store
        self.db = Database(store)
        self.projections = {p.name: p for p in projections}
        self._ready = False

    def select(self, names: Sequence[str] | None) -> list[Projection]:
        if not names:
            return list(self.projections.values())
        unknown = [n for n in names if n not in self.projections]
        if unknown:
            raise InvalidInput(
                "projection",
                f"unknown projection {unknown[0]!r} (one of: {', '.join(self.projections)})",
            )
        return [self.projections[n] for n in names]

    # --- tables ------------------------------------------------------------------------

    def setup(self) -> None:
        """Create the tables and tracking rows that do not exist yet (idempotent).

        A projection one of whose tables does not exist (a table a newer version of
        the projection keeps) is folded again from zero: its other tables are emptied
        and its position set to 0 in the same transaction, so no read answers from a
        table that missed the events before it was made."""
        if self._ready:
            return
        if self._in_place():  # nothing to write: a read-only session can read
            self._ready = True
            return
        self.db.tracker.create_table()
        have = self._tables()
        with self.db.cursor(write=True) as c:
            for projection in self.projections.values():
                incomplete = any(t.name not in have for t in projection.tables)
                for table in projection.tables:
                    for statement in self._create_sql(table):
                        c.execute(statement)
                    if incomplete and table.name in have:
                        c.execute(f"DELETE FROM {self.db.name(table.name)}")  # noqa: S608
                c.execute(
                    f"INSERT INTO {self.db.tracking_table} VALUES ({self.db.p}, 0) "  # noqa: S608
                    "ON CONFLICT (application_name) DO NOTHING",
                    (TRACKING_PREFIX + projection.name,),
                )
                if incomplete:
                    c.execute(
                        f"UPDATE {self.db.tracking_table} SET notification_id = 0 "  # noqa: S608
                        f"WHERE application_name = {self.db.p}",
                        (TRACKING_PREFIX + projection.name,),
                    )
        self._ready = True

    def _tables(self) -> set[str]:
        """The names of the tables in the store's database (its schema on PostgreSQL)."""
        if self.db.kind == "sqlite":
            rows = self.db.query("SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            rows = self.db.query("SELECT table_name FROM information_schema.tables "
                                 "WHERE table_schema = ?", (self.db.schema,))
        return {str(r[0]) for r in rows}

    def _in_place(self) -> bool:
        """Whether every projection table and tracking row exists already."""
        tracking = "tracking" if self.db.kind == "sqlite" else PG_TRACKING_TABLE
        have = self._tables()
        tables = {t.name for p in self.projections.values() for t in p.tables}
        if tracking not in have or not tables <= have:
            return False
        tracked = self.db.query(
            f"SELECT count(*) FROM {self.db.tracking_table} "  # noqa: S608
            "WHERE application_name LIKE ?", (TRACKING_PREFIX + "%",))
        return int(tracked[0][0]) >= len(self.projections)

    def _create_sql(self, table: Table, schema: str = "") -> list[str]:
        """The table, then its secondary indexes; on SQLite `schema` ("main.", "ledger.")
        names the attached database they are made in."""
        columns = ", ".join(f"{c.name} {_SQL_TYPES[c.type]}" for c in table.columns)
        keys = ", ".join(c.name for c in table.key)
        # On SQLite the rows live in their primary key's B-tree (no separate rowid
        # table to keep in step): half the writes per row, and key lookups read one tree.
        clustered = " WITHOUT ROWID" if self.db.kind == "sqlite" else ""
        statements = [f"CREATE TABLE IF NOT EXISTS {schema}{self.db.name(table.name)} "
                      f"({columns}, PRIMARY KEY ({keys})){clustered}"]
        for index in table.indexes:
            index_name = _index_name(table, index)
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {schema}{index_name} ON {self.db.name(table.name)} "
                f"({', '.join(index)})"
            )
        return statements

    # --- positions ---------------------------------------------------------------------

    def positions(self, *, create: bool = True) -> dict[str, int]:
        """Each projection's position; with `create=False` nothing is written (a
        projection never built is at 0, and a store never projected raises)."""
        if create:
            self.setup()
        rows = self.db.query(
            f"SELECT application_name, notification_id FROM {self.db.tracking_table} "  # noqa: S608
            "WHERE application_name LIKE ?",
            (TRACKING_PREFIX + "%",),
        )
        found = {name.removeprefix(TRACKING_PREFIX): position for name, position in rows}
        return {name: int(found.get(name, 0)) for name in self.projections}

    def status(self, *, create: bool = True) -> list[Status]:
        self.store.ensure_readable()
        positions = self.positions(create=create)
        head = self.store.head()
        return [Status(p.name, p.description, positions[p.name], head)
                for p in self.projections.values()]

    # --- catching up -------------------------------------------------------------------

    def catch_up(self, names: Sequence[str] | None = None, progress: Progress | None = None,
                 *, complete: bool = False) -> int:
        """Apply every event after each projection's position; returns events read.

        Projections already at the head cost one statement (`_current`); only one
        behind is caught up, as before.
        """
        chosen = self.select(names)
        if not complete and self._ready and self._current(chosen):
            return 0
        self.store.ensure_readable()
        self.setup()
        with _no_gc():
            for _ in range(MAX_CONFLICTS):
                try:
                    return self._catch_up(chosen, progress, complete=complete)
                except TrackingConflictError:
                    complete = False
                except Exception as error:
                    named = self._cannot_write(error, chosen)
                    if named is error:
                        raise
                    raise named from error
        raise TrackingConflictError("projections kept moving under this catch-up; try again")

    def _current(self, chosen: list[Projection]) -> bool:
        """Whether every chosen projection is at the log's head, found in one statement
        with the log's readability (`EventStore.readable_head`: UnreadableEvent
        whatever the answer)."""
        column, tracked = self._lowest(chosen)
        head, (lowest,) = self.store.readable_head(column, tracked)
        return lowest is not None and int(lowest) >= head

    def current_with(self, names: Sequence[str], columns: str, params: Sequence[Any],
                     select: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]],
                     check: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
                     ) -> tuple[Any, ...] | None:
        """The values of `columns` (more of the SELECT list, as `EventStore.readable_head`
        takes it), read by `select` in the one statement that checks the catalogue and
        finds the named projections at the log's head, with the events past the
        checked position (written some other way) read by `check` and checked; None
        when any projection is behind (or this materialiser has not set its tables up
        yet): `catch_up`, then read again.

        Raises UnreadableEvent for an event or kind this code cannot read.
        """
        if not self._ready:
            return None
        column, tracked = self._lowest(self.select(names))
        head, (lowest, *values) = self.store.readable_head(
            f"{column}, {columns}", [*tracked, *params], select=select, check=check)
        return tuple(values) if lowest is not None and int(lowest) >= head else None

    def _lowest(self, chosen: list[Projection]) -> tuple[str, list[str]]:
        """A column `projections_lowest`: the lowest position of the chosen projections,
        NULL when any of them has no tracking row (it is behind); and its parameters."""
        names = list(dict.fromkeys(TRACKING_PREFIX + p.name for p in chosen))
        if not names:  # nothing that could be behind
            return f"{MAX_POSITION} AS projections_lowest", []
        return (f"(SELECT MIN(notification_id) FROM {self.db.tracking_table} "  # noqa: S608
                f"WHERE application_name IN ({', '.join('?' for _ in names)}) "
                f"HAVING COUNT(*) = {len(names)}) AS projections_lowest", names)

    def _catch_up(self, chosen: list[Projection], progress: Progress | None, *,
                  complete: bool) -> int:
        positions = self.positions()
        at = {p.name: positions[p.name] for p in chosen}
        if complete and all(p.bulk is not None for p in chosen) and set(at.values()) == {0}:
            return self._rebuild_bulk(chosen, progress, at)
        cache = Cache(self.db, complete=complete)
        start = min(at.values(), default=0)
        # From an emptied table, batches as large as memory comfortably allows: fewer
        # transactions, and totals added up in memory across more events.
        size = REBUILD_BATCH if complete else BATCH
        read = 0
        while True:
            batch = self.store.notifications(start, size)
            if not batch:
                return read
            last = batch[-1].id
            # Per topic, the handlers of the chosen projections with the position each
            # starts after (they differ only until every projection has caught up).
            handlers: dict[str, list[tuple[int, Apply]]] = {}
            for projection in chosen:
                for topic, handler in projection.applies.items():
                    handlers.setdefault(topic, []).append((at[projection.name], handler))
            if len({at[p.name] for p in chosen}) == 1:
                self._fold_level(batch, handlers, cache)
            else:
                self._fold_staggered(batch, handlers, cache)
            self._commit(cache, chosen, at, last)
            read += len(batch)
            if progress:
                progress(len(batch))
            start = last
            if len(batch) < size:
                return read

    def _rebuild_bulk(self, chosen: list[Projection], progress: Progress | None,
                      at: dict[str, int]) -> int:
        """Projections emptied and at position 0, folded by their bulk folds (`_fold_bulk`),
        each batch written with the projections' positions moved in one transaction."""
        return self._fold_bulk(
            chosen, progress, lambda cache, last: self._commit(cache, chosen, at, last))[0]

    def _fold_bulk(self, chosen: list[Projection], progress: Progress | None,
                   write: Callable[[Cache, int], None], derived: frozenset[str] = frozenset()
                   ) -> tuple[int, int]:
        """Emptied projections folded from position 0 by their bulk folds: each event's
        stored JSON decoded once and handed to every fold of its topic; an event stored
        in an older schema version is upcast and validated first, as any read does.

        `write(cache, last)` writes each batch's rows (the batch ends at position
        `last`); the folds leave the `derived` tables alone. Returns (events read, the
        last position read; 0 for an empty log).
        """
        cache = Cache(self.db, complete=True, derived=derived)
        folds = [p.bulk(cache) for p in chosen if p.bulk is not None]
        by_topic: dict[str, list[BulkApply]] = {}
        for bulk in folds:
            for topic, handler in bulk.handlers.items():
                by_topic.setdefault(topic, []).append(handler)
        # Per topic: the schema version events are stored in now, and the handlers.
        dispatch = {topic: (EVENTS_BY_TOPIC[topic].schema_version, tuple(found))
                    for topic, found in by_topic.items()}
        loads = orjson.loads
        start, read = 0, 0
        while True:
            batch = self.db.log_after(start, REBUILD_BATCH)
            if not batch:
                return read, start
            for position, version, topic, state in batch:
                found = dispatch.get(topic)
                if found is None:
                    if topic not in EVENTS_BY_TOPIC:  # written since ensure_readable
                        raise UnreadableEvent(topic, "?", None, position)
                    continue
                current, applies = found
                fields = loads(state)
                if fields.get("schema_version", 1) != current:
                    fields = _current_form(topic, self.db.stream_at(position), version,
                                           state, position)
                for handler in applies:
                    handler(position, version, fields)
            for bulk in folds:
                bulk.end_batch()
            last = batch[-1][0]
            write(cache, last)
            read += len(batch)
            if progress:
                progress(len(batch))
            start = last
            if len(batch) < REBUILD_BATCH:
                return read, last

    @staticmethod
    def _fold_level(batch: Sequence[Any], handlers: dict[str, list[tuple[int, Apply]]],
                    cache: Cache) -> None:
        """Every chosen projection starts after the same position: each event goes to
        every handler of its topic (a rebuild, or projections caught up together)."""
        by_topic = {topic: tuple(h for _, h in found) for topic, found in handlers.items()}
        apply = cache.apply
        for n in batch:
            topic = n.topic
            found = by_topic.get(topic)
            if found is None:
                if topic not in EVENTS_BY_TOPIC:  # written since ensure_readable
                    raise UnreadableEvent(topic, "?", None, n.id)
                continue
            position = n.id
            item = Positioned(position, trusted_event(
                topic, n.originator_id, n.originator_version, n.state, position))
            for handler in found:
                apply(handler(cache, item))

    @staticmethod
    def _fold_staggered(batch: Sequence[Any], handlers: dict[str, list[tuple[int, Apply]]],
                        cache: Cache) -> None:
        """Projections at different positions: each handler sees only events after its own."""
        apply = cache.apply
        for n in batch:
            found = handlers.get(n.topic)
            if found is None:
                if n.topic not in EVENTS_BY_TOPIC:  # written since ensure_readable
                    raise UnreadableEvent(n.topic, "?", None, n.id)
                continue
            position = n.id
            item: Positioned | None = None
            for after, handler in found:
                if after < position:
                    if item is None:
                        item = Positioned(position, trusted_event(
                            n.topic, n.originator_id, n.originator_version, n.state,
                            position))
                    apply(handler(cache, item))

    def _cannot_write(self, error: Exception, chosen: list[Projection]) -> Exception:
        """A read-only session cannot bring the projections up to date: say so, with the lag."""
        fault = self.store.fault(error)
        if fault is None or fault.rule != "store-read-only":
            return error
        positions = self.positions()
        behind = max(self.store.head() - min((positions[p.name] for p in chosen), default=0), 0)
        return StoreUnavailable(
            "store-read-only",
            f"the projections are {behind:,} event(s) behind the log and this session "
            f"cannot bring them up to date: {fault.message}")

    def _commit(self, cache: Cache, chosen: list[Projection], at: dict[str, int],
                last: int) -> None:
        moving = [p for p in chosen if at[p.name] < last]
        try:
            prepared = cache.prepare()
            with self.db.cursor(write=True) as c:
                for projection in moving:
                    self._check_position(c, projection.name, at[projection.name])
                cache.flush(c, prepared)
                for projection in moving:
                    self.db.track(c, projection.name, last)
        except BaseException:
            cache.forget()
            raise
        for projection in moving:
            at[projection.name] = last

    def _check_position(self, cursor: Any, name: str, expected: int) -> None:
        p = self.db.p
        table = self.db.tracking_table
        if self.db.kind == "sqlite":
            # A write first, so this transaction holds the write lock before it reads.
            cursor.execute(f"UPDATE {table} SET notification_id = notification_id "  # noqa: S608
                           f"WHERE application_name = {p}", (TRACKING_PREFIX + name,))
            cursor.execute(f"SELECT notification_id FROM {table} "  # noqa: S608
                           f"WHERE application_name = {p}", (TRACKING_PREFIX + name,))
        else:
            # The store's idle-in-transaction limit guards the write path's transactions,
            # which hold the log's lock. A batch holds only these tracking rows and its
            # projections' rows, so a process starved between its statements is given
            # PROJECTION_IDLE_LIMIT instead; set with the first read, no round trip more.
            cursor.execute(f"SELECT notification_id, set_config("  # noqa: S608
                           f"'idle_in_transaction_session_timeout', {p}, true) FROM {table} "
                           f"WHERE application_name = {p} FOR UPDATE",
                           (PROJECTION_IDLE_LIMIT, TRACKING_PREFIX + name))
        row = cursor.fetchone()
        if row is None or int(row[0]) != expected:
            raise TrackingConflictError(name)

    # --- rebuilding --------------------------------------------------------------------

    def rebuild(self, names: Sequence[str] | None = None, progress: Progress | None = None,
                *, workers: int | None = None) -> int:
        """Empty the projections and their positions, then catch up from zero.

        The tables are dropped and created again in the transaction that sets the
        positions to zero (emptying is then instant, and a table made by an older
        version takes the current layout); their secondary indexes are built once,
        after the last batch, rather than row by row, and on PostgreSQL the tables
        are analysed then, so reads are planned from their statistics at once.

        `workers` processes rebuild disjoint groups of the projections side by side
        (each folds from its own tracked position, as catch-up does); None chooses
        one per CPU on a log of PARALLEL_MIN_EVENTS or more, one process otherwise.
        Returns the events read (each process reads the whole log; counted once).
        """
        chosen = self.select(names)
        self.setup()
        if self.db.kind == "sqlite":
            remove_stale_scratch(Path(self.store.target.location))
        tables = [table for projection in chosen for table in projection.tables]
        with self.db.cursor(write=True) as c:
            for projection in chosen:
                c.execute(
                    f"UPDATE {self.db.tracking_table} SET notification_id = 0 "  # noqa: S608
                    f"WHERE application_name = {self.db.p}",
                    (TRACKING_PREFIX + projection.name,),
                )
            with self._pages_freed_as_they_are(c):
                for table in tables:
                    c.execute(f"DROP TABLE IF EXISTS {self.db.name(table.name)}")
                    c.execute(self._create_sql(table)[0])
        try:
            groups = self._groups(chosen, workers)
            if len(groups) > 1:
                return _parallel_catch_up(self.store.target, groups, progress)
            return self.catch_up([p.name for p in chosen], progress, complete=True)
        finally:
            with self.db.cursor(write=True) as c:
                for table in tables:
                    for statement in self._create_sql(table)[1:]:
                        c.execute(statement)
                    if self.db.kind == "postgres":  # its planner needs the new tables' statistics
                        c.execute(f"ANALYZE {self.db.name(table.name)}")

    @contextmanager
    def _pages_freed_as_they_are(self, cursor: Any) -> Iterator[None]:
        """SQLite: tables dropped meanwhile free their pages without zeroing them first.

        A SQLite built with SECURE_DELETE on (Debian's is) zeroes every page a dropped
        table frees, which writes each of them to the write-ahead log and then the file
        again: for the projections of 1,000,000 events, about 300,000 pages and seconds
        before a rebuild's processes can start. Projection rows hold nothing that the log
        in the same file does not, so `FAST` (deleted content overwritten only on pages
        written anyway) is enough; the connection's setting is restored after."""
        if self.db.kind != "sqlite":
            yield
            return
        cursor.execute("PRAGMA secure_delete")
        before = ("OFF", "ON", "FAST")[int(cursor.fetchone()[0])]  # as the pragma reads it
        cursor.execute("PRAGMA secure_delete = FAST")
        try:
            yield
        finally:
            cursor.execute(f"PRAGMA secure_delete = {before}")

    def build_apart(self, names: Sequence[str], progress: Progress | None = None) -> int:
        """SQLite: rebuild the emptied projections `names` (at position 0) in a scratch
        file beside the ledger, then copy their tables in, build their indexes and move
        their positions in one transaction; returns the events read.

        The scratch file has no journal and is never synced (it is thrown away if
        anything fails), and it has one writer: processes building disjoint projections
        side by side take the ledger's write lock only for the copy, which SQLite does
        page by page without decoding a row. Until that transaction commits, the
        projections stay empty at position 0, so a crash leaves them to be caught up
        from zero. Projections that another process moved meanwhile are caught up
        from where they are instead.
        """
        chosen = self.select(names)
        self.store.ensure_readable()
        self.setup()
        if self.db.kind != "sqlite" or any(p.bulk is None for p in chosen):
            return self.catch_up(names, progress, complete=True)
        handle, scratch = _new_scratch(Path(self.store.target.location))
        _SCRATCH_FILES.add(scratch)
        try:
            connection = self._scratch_connection(scratch)
            try:
                read, last = self._build_in(connection, chosen, progress)
                if not self._copy_in(connection, chosen, last):
                    return self.catch_up(names, progress)
                return read
            finally:
                connection.close()
        finally:
            _SCRATCH_FILES.discard(scratch)
            scratch.unlink(missing_ok=True)
            os.close(handle)  # the lock goes with it, after the file

    def _scratch_connection(self, scratch: Path) -> sqlite3.Connection:
        """A connection to `scratch` (no journal, never synced, held alone) with the
        ledger attached as `ledger`, so the rows folded into the scratch are copied in
        from this connection's own cache.

        Every pragma names the scratch (`main`): unqualified, journal and locking modes
        would apply to the ledger too."""
        timeout = float(self.store.target.env.get("SQLITE_LOCK_TIMEOUT") or 5)
        connection = sqlite3.connect(scratch, isolation_level=None, timeout=timeout)
        try:
            # Pages of 16 KiB: a quarter of the pages to split and balance as the rows
            # go in (trail's rows go in 15% faster); the copy-in writes the ledger's
            # own pages whatever the scratch's size.
            for pragma in (f"page_size = {SCRATCH_PAGE_SIZE}", "journal_mode = OFF",
                           "synchronous = OFF", "locking_mode = EXCLUSIVE",
                           f"cache_size = -{REBUILD_CACHE_KIB}"):
                connection.execute(f"PRAGMA main.{pragma}")
            connection.execute("ATTACH DATABASE ? AS ledger", (self.store.target.location,))
            # Index builds on the ledger read back the rows just copied: from this cache,
            # not the write-ahead log.
            connection.execute(f"PRAGMA ledger.cache_size = -{REBUILD_CACHE_KIB}")
        except BaseException:
            connection.close()
            raise
        return connection

    def _build_in(self, connection: sqlite3.Connection, chosen: list[Projection],
                  progress: Progress | None) -> tuple[int, int]:
        """Fold `chosen` from zero into tables of their own in the scratch database of
        `connection`; the projections' derived tables are computed from the others' rows,
        and the secondary indexes built, at the end.

        The whole fold is one transaction: the scratch's pages stay in the cache between
        batches (written only when the cache fills, or at its commit here) instead of
        being written out at every batch, and the copy-in reads them from that cache. It
        commits before the copy-in asks for the ledger's write lock, so writing them out
        never holds that lock."""
        derived = [(table, select) for p in chosen for table, select in p.derived]
        names = {table.name: f"main.{table.name}" for p in chosen for table in p.tables}
        for projection in chosen:
            for table in projection.tables:
                connection.execute(self._create_sql(table, "main.")[0])
        connection.execute("BEGIN")
        cursor = connection.cursor()
        held: list[Cache] = []

        def write(cache: Cache, _last: int) -> None:
            if not held:
                held.append(cache)
            if cache.held() >= SCRATCH_HELD_ROWS:
                cache.flush(cursor, cache.prepare())

        with _no_gc():
            done = self._fold_bulk(chosen, progress, write,
                                   frozenset(table.name for table, _ in derived))
            for cache in held:  # what the last batches left
                if cache.held():
                    cache.flush(cursor, cache.prepare())
        for table, select in derived:
            connection.execute(f"INSERT INTO main.{table.name} {select.format_map(names)}")
        # The secondary indexes too, here, beside the other processes' folds: the copy-in
        # then copies their entries as they are, in order, while it holds the write lock.
        for projection in chosen:
            for table in projection.tables:
                for statement in self._create_sql(table, "main.")[1:]:
                    connection.execute(statement)
        connection.execute("COMMIT")
        return done

    def _copy_in(self, connection: sqlite3.Connection, chosen: list[Projection], last: int
                 ) -> bool:
        """Copy `chosen`'s tables and their indexes from the scratch into the ledger's
        emptied ones and set their positions to `last`, in one transaction; False
        (nothing written) when another process has moved one of them from 0 meanwhile."""
        tracking = f"ledger.{self.db.tracking_table}"
        tracked = [TRACKING_PREFIX + p.name for p in chosen]
        marks = ", ".join("?" for _ in chosen)
        connection.execute("BEGIN IMMEDIATE")  # the ledger's write lock, before it is read
        try:
            moved = connection.execute(
                f"SELECT count(*) FROM {tracking} "  # noqa: S608
                f"WHERE application_name IN ({marks}) AND notification_id != 0",
                tracked).fetchone()[0]
            if moved:
                connection.execute("ROLLBACK")
                return False
            for projection in chosen:
                for table in projection.tables:
                    # Indexes first, on the empty table: SQLite then copies each index's
                    # entries from the scratch's same index (its transfer of a table into
                    # an empty one of the same shape) instead of sorting them again.
                    for statement in self._create_sql(table, "ledger.")[1:]:
                        connection.execute(statement)
                    connection.execute(f"INSERT INTO ledger.{table.name} "  # noqa: S608
                                       f"SELECT * FROM main.{table.name}")
                connection.execute(
                    f"UPDATE {tracking} SET notification_id = ? "  # noqa: S608
                    "WHERE application_name = ?", (last, TRACKING_PREFIX + projection.name))
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return True

    def _groups(self, chosen: list[Projection], workers: int | None) -> list[list[str]]:
        """The projections each process rebuilds (one group: rebuild here, in this one)."""
        if workers is None:
            workers = os.cpu_count() or 1
            if self.store.read_only_copy or self.store.head() < PARALLEL_MIN_EVENTS:
                workers = 1
        registered = {p.name: p for p in PROJECTIONS}
        if any(registered.get(p.name) is not p for p in chosen):
            workers = 1  # another process knows only the registry's projections
        workers = max(1, min(workers, len(chosen)))
        groups: list[list[str]] = [[] for _ in range(workers)]
        loads = [0] * workers
        for projection in sorted(chosen, key=lambda p: -REBUILD_COST.get(p.name, 1)):
            lightest = loads.index(min(loads))
            groups[lightest].append(projection.name)
            loads[lightest] += REBUILD_COST.get(projection.name, 1)
        return [g for g in groups if g]


# --- scratch files ------------------------------------------------------------------


# What tempfile.mkstemp puts after the prefix: letters, digits and `_`.
_MKSTEMP_NAME = re.compile(r"[A-Za-z0-9_]+")


def _scratch_prefix(ledger: Path) -> str:
    return f".{ledger.name}.rebuild-"


def _new_scratch(ledger: Path) -> tuple[int, Path]:
    """A new empty scratch file beside `ledger`, and its descriptor, which holds an
    exclusive flock on it until closed: the lock tells `remove_stale_scratch` the file
    is in use, however its owner later ends (the kernel drops the lock with the
    process). SQLite's own locks are POSIX record locks, which flock does not touch."""
    while True:
        handle, name = tempfile.mkstemp(prefix=_scratch_prefix(ledger), dir=ledger.parent)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            if _still_named(handle, Path(name)):
                return handle, Path(name)
        except BaseException:
            os.close(handle)
            raise
        # Removed as stale between its making and its locking: make another.
        os.close(handle)


def _still_named(handle: int, path: Path) -> bool:
    """Whether `path` still names the file open as `handle`."""
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(handle)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def remove_stale_scratch(ledger: Path) -> list[Path]:
    """Remove the scratch files of `ledger`'s rebuilds that no process holds (their
    builder was killed outright: SIGKILL, a power cut); returns those removed.

    A file is removed only while this process holds its lock, and only if its name
    still names the file locked: a live builder's file is locked, and one made but
    not yet locked is made again by its builder (`_new_scratch`). Only names that
    mkstemp makes are looked at (the prefix, then letters, digits and `_`): a file
    SQLite would keep beside a scratch file (`-journal`, `-wal`) is not locked by its
    builder, so it is never taken for one; nor is anything but a regular file (a pipe
    of that name is not waited on: anyone who may write the folder may make one)."""
    prefix = _scratch_prefix(ledger)
    try:
        found = [p for p in ledger.parent.iterdir() if p.name.startswith(prefix)
                 and _MKSTEMP_NAME.fullmatch(p.name[len(prefix):])]
    except OSError:
        return []
    removed = []
    for path in found:
        try:
            handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue  # gone already, or not this user's to remove
        try:
            if not stat.S_ISREG(os.fstat(handle).st_mode):
                continue
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _still_named(handle, path):
                path.unlink()
                removed.append(path)
        except OSError:
            continue  # in use (BlockingIOError), or gone meanwhile
        finally:
            os.close(handle)
    return removed


# --- parallel rebuilds ---------------------------------------------------------------

_progress_counter: Any = None


def _worker_start(counter: Any) -> None:
    global _progress_counter  # noqa: PLW0603 - one per worker process
    _progress_counter = counter
    signal.signal(signal.SIGTERM, _end_without_scratch)


def _end_without_scratch(signum: int, _frame: Any) -> None:
    """A worker ended from outside (SIGTERM: a deadline passed, or the rebuild failed
    elsewhere): its scratch files removed, then ended as the signal ends it."""
    for path in list(_SCRATCH_FILES):
        path.unlink(missing_ok=True)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _worker_count(n: int) -> None:
    with _progress_counter.get_lock():
        _progress_counter.value += n


def _worker_rebuild(target: StoreTarget, names: list[str]) -> int:
    """In a worker process: catch the named (emptied) projections up from zero."""
    if target.kind == "sqlite":
        # The processes take turns at SQLite's one write lock, a batch at a time.
        target = StoreTarget(target.kind, target.location,
                             {**target.env, "SQLITE_LOCK_TIMEOUT": "600"})
    store = open_store(target, create=False)
    try:
        views = Materialiser(store)
        if target.kind == "sqlite":
            return views.build_apart(names, _worker_count)
        return views.catch_up(names, _worker_count, complete=True)
    finally:
        store.close()


def _parallel_catch_up(target: StoreTarget, groups: list[list[str]],
                       progress: Progress | None) -> int:
    """Each group caught up from zero in its own process; returns the events read.

    Processes are spawned, not forked: a forked child would share the parent's
    database connections.
    """
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait  # noqa: PLC0415

    context = multiprocessing.get_context("spawn")
    counter = context.Value("q", 0)
    reported = 0
    with ProcessPoolExecutor(len(groups), context, _worker_start, (counter,)) as pool:
        futures = [pool.submit(_worker_rebuild, target, names) for names in groups]
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
            if progress is not None:
                done = counter.value // len(groups)
                if done > reported:
                    progress(done - reported)
                    reported = done
            if any(f.done() and f.exception() is not None for f in futures):
                break
        reads = [f.result() for f in futures]  # re-raises a worker's error here
    return max(reads)
