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

import functools
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import (
    ConnectionPoolClosedError,
    ConnectionUnavailableError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    StoredEvent,
)
from eventsourcing.sqlite import (
    SQLITE3_DEFAULT_LOCK_TIMEOUT,
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteFactory,
)

from ledger.audit.leaf import state_bytes
from ledger.interrupts import ctrl_c_held
from ledger.store import catalogue
from ledger.store.dialect import Dialect, execute_rows, insert_values
from ledger.store.hooks import StoredRow, WriteHook


class StreamRewritten(Exception):  # noqa: N818 - a condition, as eventsourcing names them
    """A stream no longer holds the event its reader had at a version (a cached aggregate):
    its history was rewritten under the process (a backup restored, rows deleted or
    replaced around the ledger). Raised by `select_events(..., held=STATE)` when it reads
    the store."""


def check_held(first: tuple[int, bytes | str] | None, version: int, state: bytes) -> None:
    """StreamRewritten unless a stream read from `version` on (inclusive) starts with the
    very event the caller holds there, its stored `state` byte for byte (`first`: the
    version and state read first, None when nothing was read); the caller then drops
    that row. A state holds the event's command id and the instant it was recorded, so
    another event at the same version (a backup's history written on after it was
    taken) differs, whatever its position."""
    if first is None or first[0] != version:
        raise StreamRewritten(f"the stream no longer holds version {version}")
    if state_bytes(first[1]) != state:
        raise StreamRewritten(f"the stream holds another event at version {version}")


# Receipt, RefEntry, Indexes and Reads are built for every command and only read
# after: plain slotted dataclasses, which set a field as an attribute where a frozen
# one calls object.__setattr__ for each (about a third of the cost of building one).
@dataclass(slots=True)
class Receipt:
    command_id: str
    fingerprint: str
    answer: str


@dataclass(slots=True)
class RefEntry:
    ref: str
    practice: str
    year: str


@dataclass(slots=True)
class Indexes:
    """What a save adds to the side tables, passed through `Application.save(**kwargs)`."""

    receipts: Sequence[Receipt] = ()
    refs: Sequence[RefEntry] = ()
    affiliations: Sequence[tuple[str, str]] = ()  # (practice, consortium) ever joined
    budget_years: Sequence[tuple[str, str]] = ()  # (practice, year) of each budget opened


@dataclass(frozen=True, slots=True)
class Columns:
    """Events to store and the side-table rows they add, a list a column: the shape a
    batch crosses to `ledger apply`'s appending process in (ledger/store/appender.py),
    and is inserted from, with no object made a row.

    The events' `streams` are their stream ids as the events table keeps them (32 hex
    digits); `schema_versions` each one's schema version (with its topic, its kind, for
    the catalogue). A receipt is a command id, fingerprint and answer at one index of
    theirs (the answer in UTF-8: it crosses a pipe, and goes into SQLite, as bytes,
    with none of the work of converting text), a ref a ref, practice and year. Every
    column of a group is as long as the others (`insert_columns` refuses one that is
    not).
    """

    streams: Sequence[str] = ()
    versions: Sequence[int] = ()
    topics: Sequence[str] = ()
    states: Sequence[bytes] = ()
    schema_versions: Sequence[int] = ()
    command_ids: Sequence[str] = ()
    fingerprints: Sequence[str] = ()
    answers: Sequence[bytes] = ()  # UTF-8
    refs: Sequence[str] = ()
    practices: Sequence[str] = ()
    years: Sequence[str] = ()
    affiliations: Sequence[tuple[str, str]] = ()  # (practice, consortium) ever joined
    budget_years: Sequence[tuple[str, str]] = ()  # (practice, year) of each budget opened

    def stored(self) -> list[StoredEvent]:
        """The events as eventsourcing's StoredEvent, in order."""
        return list(map(StoredEvent, self.streams, self.versions, self.topics, self.states))

    def indexes(self) -> Indexes:
        """The side-table rows as `Indexes`."""
        answers = [answer.decode() for answer in self.answers]
        return Indexes(list(map(Receipt, self.command_ids, self.fingerprints, answers)),
                       list(map(RefEntry, self.refs, self.practices, self.years)),
                       self.affiliations, self.budget_years)

    def check(self) -> None:
        """ValueError unless every column of a group is as long as the others."""
        events = {len(self.streams), len(self.versions), len(self.topics), len(self.states),
                  len(self.schema_versions)}
        receipts = {len(self.command_ids), len(self.fingerprints), len(self.answers)}
        refs = {len(self.refs), len(self.practices), len(self.years)}
        if len(events) != 1 or len(receipts) != 1 or len(refs) != 1:
            raise ValueError("columns of one batch differ in length")


@dataclass(slots=True)
class Reads:
    """What a write transaction will read first, named before it starts.

    A store may fetch these with its write lock, in one round trip (PostgreSQL
    pipelines them); the reads made later in the transaction are then answered
    from what was fetched. `rows` are `select_rows` statements with their
    parameters. Naming a read is only a hint: anything not named is read when asked.
    """

    command_ids: Sequence[str] = ()
    refs: Sequence[str] = ()
    practices: Sequence[str] = ()
    rows: Sequence[tuple[str, tuple[Any, ...]]] = ()


class IndexedRecorder(Protocol):
    """What the write path needs of a recorder, on either store."""

    @property
    def dialect(self) -> Dialect: ...

    def select_rows(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]: ...

    def position_of(self, stream_id: UUID, version: int) -> int | None: ...

    def select_events(
        self, originator_id: UUID | str, *, gt: int | None = None, lte: int | None = None,
        desc: bool = False, limit: int | None = None, held: bytes | None = None,
    ) -> Sequence[StoredEvent]: ...

    def write_transaction(self, reads: Reads | None = None) -> AbstractContextManager[Any]: ...

    def insert_in_transaction(
        self, cursor: Any, stored_events: Sequence[StoredEvent], indexes: Indexes
    ) -> Sequence[int]: ...

    def insert_columns(self, cursor: Any, columns: Columns) -> Sequence[int]:
        """`insert_in_transaction` of the events and side-table rows of `columns`: the
        same rows; the events' positions, in order. ValueError for columns of a group
        that differ in length, with nothing inserted."""
        ...

    def select_receipts(self, command_ids: Iterable[str]) -> dict[str, Receipt]: ...

    def select_refs(self, refs: Iterable[str]) -> dict[str, RefEntry]: ...

    def select_ref(self, ref: str) -> RefEntry | None: ...

    def select_affiliations(self, practices: Iterable[str]) -> dict[str, list[str]]: ...

    def select_budget_years(self, practice: str) -> list[str]: ...

    def carried(self, key: str) -> Any:
        """Inside `write_transaction`: what the previous write transaction of this recorder
        remembered under `key`, when nothing at all has been written to the store since
        (by anyone, any other way); None otherwise."""
        ...

    def remember(self, key: str, value: Any) -> None:
        """Inside `write_transaction`: carry `value` to the next one (`carried`), if this
        one commits and nothing else is written in between."""
        ...


def sealable(ids: Sequence[int], stored: Sequence[StoredEvent]) -> list[StoredRow]:
    """(position, stream, version, topic, state) of just-inserted events, for the sealer."""
    return [
        (i, s.originator_id, s.originator_version, s.topic, s.state)
        for i, s in zip(ids, stored, strict=True)
    ]


def run_hooks(
    hooks: Sequence[WriteHook], cursor: Any, dialect: Dialect,
    ids: Sequence[int], stored: Sequence[StoredEvent], *, prepared: Sequence[Any] = (),
) -> list[Any]:
    """Call each write hook with the rows just inserted, in the inserting transaction.

    `prepared[i]` is what hook i's `prepare` gave in this transaction (if it was
    called), or what it returned in the previous one (hooks.py). Returns what each
    hook returned, in order.
    """
    if not hooks:
        return []
    return run_hook_rows(hooks, cursor, dialect, sealable(ids, stored), prepared=prepared)


def run_hook_rows(hooks: Sequence[WriteHook], cursor: Any, dialect: Dialect,
                  rows: Sequence[StoredRow], *, prepared: Sequence[Any] = ()) -> list[Any]:
    """`run_hooks` with the inserted events as rows, (position, stream, version, topic,
    state) each, in position order."""
    done: list[Any] = []
    for i, hook in enumerate(hooks):
        if i < len(prepared) and prepared[i] is not None:
            done.append(hook.inserted(cursor, dialect, rows, prepared[i]))
        else:
            done.append(hook.inserted(cursor, dialect, rows))
    return done


def hook_statements(hooks: Sequence[WriteHook], dialect: Dialect) -> list[str]:
    return [statement for hook in hooks for statement in hook.create_statements(dialect)]


def indexes_of(kwargs: dict[str, Any]) -> Indexes:
    indexes = kwargs.get("indexes")
    return indexes if isinstance(indexes, Indexes) else Indexes()


# The last version of each stream, as of the end of the previous write transaction
# (`carried`): a stream read or written there is not read again while nothing else
# has been written. At most _VERSIONS_LIMIT are kept.
_VERSIONS = "ledger.store.recorders:versions"
_VERSIONS_LIMIT = 200_000


@dataclass(eq=False, slots=True)
class _SQLiteWrite:
    """The SQLite write transaction this thread is in.

    `carried` is what the previous write transaction remembered, or empty when
    anything has been written since; `remembered` goes to the next one if this one
    commits; `versions` is the last version of each stream known in this one.
    `since` is (connection, its `PRAGMA data_version`, its total changes) when the
    transaction began.
    """

    cursor: SQLiteCursor
    since: tuple[sqlite3.Connection, int, int]
    carried: dict[str, Any]
    remembered: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    # The side-table rows of the keys `Reads` named, fetched in one statement as the
    # transaction began; answered from here until the transaction writes.
    fetched: dict[str, dict[str, Any]] = field(default_factory=dict)

    def answers(self, table: str, keys: Sequence[str]) -> dict[str, Any] | None:
        """{key: what `table` holds for it} for `keys`, if fetched ahead; else None."""
        found = self.fetched.get(table)
        if found is None:
            return None
        if len(keys) == 1:
            key = keys[0]
            if key not in found:
                return None
            value = found[key]
            return {} if value is None else {key: value}
        if not all(key in found for key in keys):
            return None
        return {key: found[key] for key in keys if found[key] is not None}


# The most keys fetched ahead in one statement (each is one SQL variable).
_PREFETCH_LIMIT = 900
_PREFETCH = (
    ("commands", "SELECT 'commands', command_id, fingerprint, answer FROM ledger_commands "
                 "WHERE command_id IN ({})"),
    ("refs", "SELECT 'refs', ref, practice, year FROM ledger_refs WHERE ref IN ({})"),
    ("affiliations", "SELECT 'affiliations', practice, consortium, NULL "
                     "FROM ledger_affiliations WHERE practice IN ({})"),
)


# The connection's data version as the first row of the transaction's first read
# (https://sqlite.org/pragma.html#pragma_data_version, read as its table-valued function).
_DATA_VERSION = "SELECT 'data_version', NULL, data_version, NULL FROM pragma_data_version()"


@functools.lru_cache(maxsize=64)
def _prefetch_statement(*counts: int) -> str:
    """`_DATA_VERSION`, then the UNION ALL of `_PREFETCH`'s SELECTs for that many keys
    each (none: left out)."""
    return " UNION ALL ".join([_DATA_VERSION, *(
        select.format(",".join("?" * count))
        for (_, select), count in zip(_PREFETCH, counts, strict=True) if count)])


_WRITE: ContextVar[_SQLiteWrite | None] = ContextVar("ledger_sqlite_write", default=None)


_STREAM_KEYS: dict[int, str] = {}
_STREAM_KEYS_LIMIT = 65_536


def _stream_key(stream_id: UUID | str) -> str:
    """A stream id as the events table keeps it (32 hex digits), remembered by its
    integer (`UUID.hex` formats it anew each time); at most _STREAM_KEYS_LIMIT kept."""
    if not isinstance(stream_id, UUID):
        return stream_id
    number = stream_id.int
    key = _STREAM_KEYS.get(number)
    if key is None:
        if len(_STREAM_KEYS) >= _STREAM_KEYS_LIMIT:
            _STREAM_KEYS.clear()
        key = _STREAM_KEYS[number] = f"{number:032x}"
    return key


def sqlite_blob(value: Any) -> Any:
    """`value` as sqlite3 binds it with least work: bytes as a bytearray (the same BLOB).

    sqlite3 (CPython 3.11, Modules/_sqlite/cursor.c `need_adapt`) binds an int, float,
    str or bytearray as it is, but looks anything else, bytes included, up among its
    adapters and then asks its protocol class for `__adapt__`, an AttributeError raised
    and formatted each time: some 2,000 instructions a value, copying 32 or 500 bytes
    some 300. Anything not bytes is given back as it is."""
    return bytearray(value) if type(value) is bytes else value


@functools.lru_cache(maxsize=8)
def hook_keys(count: int) -> tuple[str, ...]:
    """The keys a write transaction remembers each of `count` hooks' returns under."""
    return tuple(f"hook:{i}" for i in range(count))


_INSERT_RECEIPT = "INSERT INTO ledger_commands VALUES (?, ?, ?)"
_INSERT_REF = "INSERT INTO ledger_refs VALUES (?, ?, ?)"


def _insert_joined(raw: sqlite3.Cursor, affiliations: Sequence[tuple[str, str]],
                   budget_years: Sequence[tuple[str, str]]) -> None:
    """The affiliations and budget years a write adds (each kept once)."""
    if affiliations:
        execute_rows(raw, "INSERT OR IGNORE INTO ledger_affiliations VALUES (?, ?)",
                     affiliations)
    if budget_years:
        execute_rows(raw, "INSERT OR IGNORE INTO ledger_budget_years VALUES (?, ?)",
                     budget_years)


BULK_ROWS = 8
"""Events from which one write inserts them with multi-row statements (fewer: one by
one, each position read as it is inserted)."""

MAX_ROWID = 2**63 - 1
"""SQLite's largest rowid; past it new rows get random rowids."""


class _SQLiteWriteTransaction:
    """`LedgerSQLiteRecorder.write_transaction`: BEGIN IMMEDIATE on the writer connection
    as it is entered, with the transaction's first read; COMMIT as it is left, or
    ROLLBACK when an exception leaves it (or the COMMIT fails), a SQLite error raised as
    eventsourcing's IntegrityError or OperationalError. The connection is given back
    either way."""

    __slots__ = ("conn", "cursor", "reads", "recorder", "taken", "token", "write")

    def __init__(self, recorder: LedgerSQLiteRecorder, reads: Reads | None) -> None:
        self.recorder = recorder
        self.reads = reads

    def __enter__(self) -> SQLiteCursor:
        recorder = self.recorder
        pool = recorder.datastore.pool
        taken: AbstractContextManager[SQLiteConnection] = (
            pool.writer() if isinstance(pool, LedgerSQLiteConnectionPool)
            else recorder.datastore.get_connection(commit=True))
        self.conn = taken.__enter__()
        self.taken = taken
        try:
            self.cursor = self.conn.cursor()
        except BaseException as error:
            taken.__exit__(type(error), error, error.__traceback__)
            raise
        try:
            self.cursor.sqlite_cursor.execute("BEGIN IMMEDIATE")
            self.write = recorder._begin(self.cursor, self.reads)
        except BaseException as error:
            self._fail(error)
            raise
        self.token = _WRITE.set(self.write)
        return self.cursor

    def __exit__(self, _kind: type[BaseException] | None, error: BaseException | None,
                 _traceback: TracebackType | None) -> None:
        _WRITE.reset(self.token)
        if error is not None:
            self._fail(error)
            return
        try:
            raw = self.cursor.sqlite_cursor
            if raw.connection.in_transaction:  # as `conn.commit()`, from the statement cache
                raw.execute("COMMIT")
            self.recorder._committed(self.write)
        except BaseException as failed:
            self._fail(failed)
            raise
        self._close(None)

    def _fail(self, error: BaseException) -> None:
        """Roll back and give the connection back; raise a SQLite `error` as
        eventsourcing's (anything else is for the caller to raise)."""
        try:
            self.conn.rollback()
        except BaseException as failed:
            self._close(failed)
            raise
        if isinstance(error, sqlite3.IntegrityError):
            translated: BaseException = IntegrityError(error)
        elif isinstance(error, sqlite3.Error):
            translated = OperationalError(error)
        else:
            self._close(error)
            return
        self._close(translated)
        raise translated from error

    def _close(self, error: BaseException | None) -> None:
        try:
            self.cursor.sqlite_cursor.close()
        finally:
            if error is None:
                self.taken.__exit__(None, None, None)
            else:
                self.taken.__exit__(type(error), error, error.__traceback__)


class LedgerSQLiteRecorder(SQLiteApplicationRecorder):
    # Set by the store before it creates the tables (ledger/store/hooks.py).
    hooks: Sequence[WriteHook] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # What the last committed write transaction remembered, and the state of the
        # store it left: (connection, PRAGMA data_version, total changes) after COMMIT.
        self._memo: dict[str, Any] = {}
        self._memo_since: tuple[sqlite3.Connection, int, int] | None = None
        self._memo_lock = threading.Lock()

    def construct_create_table_statements(self) -> list[str]:
        """The events table and the ledger's side tables.

        Side tables of small rows keyed by text or several columns are WITHOUT ROWID
        (one b-tree page written an insert, not a table page and an index page; see
        `Dialect.keyed`). ledger_commands is not: its rows carry the command's answer
        (some 350 bytes, ten a page), and in key order an insert lands mid-table and
        splits pages: measured on `spend commit`s (bench/wal_pages.py), 2.6 WAL pages
        an insert WITHOUT ROWID against 2.4 for the rowid table and its index.
        A ledger made before keeps its tables as they were: they read the same.
        """
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS ledger_commands ("
            "command_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, answer TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS ledger_refs ("
            "ref TEXT PRIMARY KEY, practice TEXT NOT NULL, year TEXT NOT NULL) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS ledger_affiliations (practice TEXT NOT NULL, "
            "consortium TEXT NOT NULL, PRIMARY KEY (practice, consortium)) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS ledger_budget_years (practice TEXT NOT NULL, "
            "year TEXT NOT NULL, PRIMARY KEY (practice, year)) WITHOUT ROWID",
            *catalogue.create_statements(self.dialect),
        ]

    def ledger_exists(self) -> bool:
        found = self._select(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
            (self.events_table_name,),
        )
        return bool(found)

    def create_table(self) -> None:
        self.create_table_statements = [
            *self.construct_create_table_statements(),
            *hook_statements(self.hooks, self.dialect),
        ]
        super().create_table()

    @functools.cached_property
    def dialect(self) -> Dialect:
        return Dialect("sqlite", "", self.events_table_name)

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        indexes = indexes_of(kwargs)
        raw = c.sqlite_cursor
        receipts, refs = indexes.receipts, indexes.refs
        if len(receipts) == 1:  # a single command's: one execute, no list of rows
            (receipt,) = receipts
            raw.execute(_INSERT_RECEIPT,
                        (receipt.command_id, receipt.fingerprint, receipt.answer))
        elif receipts:
            raw.executemany(_INSERT_RECEIPT,
                            [(r.command_id, r.fingerprint, r.answer) for r in receipts])
        if len(refs) == 1:
            (entry,) = refs
            raw.execute(_INSERT_REF, (entry.ref, entry.practice, entry.year))
        elif refs:
            raw.executemany(_INSERT_REF, [(r.ref, r.practice, r.year) for r in refs])
        _insert_joined(raw, indexes.affiliations, indexes.budget_years)
        streams = [_stream_key(s.originator_id) for s in stored_events]
        ids = self._insert_rows(c, stored_events, streams)
        write = _WRITE.get()
        if write is None:
            run_hooks(self.hooks, c, self.dialect, ids, stored_events)
            return ids
        hooks = self.hooks
        if not hooks:
            rows: list[StoredRow] = []
        elif len(ids) == 1 and len(hooks) == 1:  # `sealable`'s one row
            (s,) = stored_events
            rows = [(ids[0], s.originator_id, s.originator_version, s.topic, s.state)]
        else:
            rows = sealable(ids, stored_events)
        versions = write.versions
        for i, s in enumerate(stored_events):  # not zip(strict=True): it parses its keyword
            versions[streams[i]] = s.originator_version
        self._run_hooks(c, write, rows)
        return ids

    def insert_columns(self, cursor: SQLiteCursor, columns: Columns) -> Sequence[int]:
        """Append the events and side-table rows of `columns` inside `write_transaction`,
        as `insert_in_transaction` appends them: the same rows, in the same order, each
        made by sqlite3 from the columns. ValueError (nothing inserted) for columns of a
        group that differ in length."""
        columns.check()
        raw = cursor.sqlite_cursor
        if columns.command_ids:
            # Each answer bound as a BLOB of its UTF-8, read back by CAST as the TEXT it
            # spells (https://sqlite.org/lang_expr.html#castexpr): the same value as the
            # answer bound as text, which sqlite3 would encode to UTF-8 first.
            insert_values(raw, "ledger_commands",
                          (columns.command_ids, columns.fingerprints,
                           map(bytearray, columns.answers)), row="(?, ?, CAST(? AS TEXT))")
        if columns.refs:
            insert_values(raw, "ledger_refs",
                          (columns.refs, columns.practices, columns.years))
        _insert_joined(raw, columns.affiliations, columns.budget_years)
        streams, versions = columns.streams, columns.versions
        n = len(streams)
        ids = self._insert_bulk(cursor, n, (
            streams, versions, columns.topics, map(bytearray, columns.states))
        ) if n >= BULK_ROWS else None
        if ids is None:  # few (or past the largest rowid): one by one, as they are
            ids = self._insert_rows(cursor, columns.stored(), streams)
        rows: list[StoredRow] = list(zip(ids, streams, versions, columns.topics,
                                         columns.states, strict=True)) if self.hooks else []
        write = _WRITE.get()
        if write is None:
            run_hook_rows(self.hooks, cursor, self.dialect, rows)
            return ids
        write.versions.update(zip(streams, versions, strict=True))  # the last of each stream wins
        self._run_hooks(cursor, write, rows)
        return ids

    def _run_hooks(self, c: SQLiteCursor, write: _SQLiteWrite, rows: list[StoredRow]
                   ) -> None:
        """The write hooks, told the `rows` just inserted in `write`, each prepared with
        what it returned in this transaction or left from the one before."""
        write.fetched.clear()  # what was fetched ahead may have changed now
        hooks = self.hooks
        keys = hook_keys(len(hooks))
        if len(hooks) == 1:  # the Merkle log's sealing alone: run_hooks' work, for one
            (key,) = keys
            remembered = write.remembered
            prepared = remembered[key] if key in remembered else write.carried.get(key)
            remembered[key] = (
                hooks[0].inserted(c, self.dialect, rows) if prepared is None
                else hooks[0].inserted(c, self.dialect, rows, prepared))
            return
        done = run_hook_rows(hooks, c, self.dialect, rows, prepared=[
            write.remembered.get(key, write.carried.get(key)) for key in keys])
        write.remembered.update(zip(keys, done, strict=True))

    def _insert_rows(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent],
                     streams: Sequence[str]) -> list[int]:
        """Insert the events, `streams` their stream ids as stored; their positions
        (rowids), in order: one by one, each position read as it is inserted, or many
        at once (`_insert_bulk`)."""
        n = len(stored_events)
        if n >= BULK_ROWS:
            ids = self._insert_bulk(c, n, (
                streams, [s.originator_version for s in stored_events],
                [s.topic for s in stored_events], [sqlite_blob(s.state) for s in stored_events]))
            if ids is not None:
                return ids
            return list(super()._insert_events(c, stored_events) or [])
        raw = c.sqlite_cursor
        positions: list[int] = []
        for i, s in enumerate(stored_events):  # not zip(strict=True): it parses its keyword
            state = s.state
            raw.execute(self.insert_events_statement, (
                streams[i], s.originator_version, s.topic,
                bytearray(state) if type(state) is bytes else state))  # sqlite_blob
            position = raw.lastrowid
            assert position is not None  # an INSERT into a rowid table sets it
            positions.append(position)
        return positions

    def _insert_bulk(self, c: SQLiteCursor, n: int, columns: Sequence[Iterable[Any]]
                     ) -> list[int] | None:
        """Insert `n` events, given as `columns` (stream, version, topic, state), with a
        few multi-row statements (`insert_values`); their positions (rowids), in order.
        None, with nothing inserted, where the positions would pass the largest rowid:
        the caller inserts them one by one.

        Those statements report no rowids: they are read off the table's largest rowid
        before the insert. The write transaction holds SQLite's write lock, and a table
        without AUTOINCREMENT gives each new row the largest rowid plus one
        (https://sqlite.org/autoinc.html) while that stays below the largest integer,
        so the n rows get the next n positions; the largest rowid after the insert is
        checked to be the last of them.
        """
        before = self._largest_rowid(c)
        if before > MAX_ROWID - n:
            return None
        insert_values(c.sqlite_cursor, self.events_table_name, columns)
        after = self._largest_rowid(c)
        if after != before + n:
            raise OperationalError(
                f"{n} events inserted after position {before} ended at {after}, "
                f"not {before + n}")
        return list(range(before + 1, after + 1))

    def _largest_rowid(self, c: SQLiteCursor) -> int:
        c.execute(self.select_max_notification_id_statement)
        row = c.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def write_transaction(self, reads: Reads | None = None
                          ) -> AbstractContextManager[SQLiteCursor]:
        """One write transaction whose reads (through this recorder) see its own state.

        The receipts, refs and affiliations `reads` names are fetched in one statement
        as it begins (`reads.rows` are not: they are read when asked).

        BEGIN IMMEDIATE takes SQLite's single write lock up front, so the reads a
        command makes and the events it appends are one serialisable unit: no other
        writer can slip in between. Reads made meanwhile by this thread go through
        the same connection, whose page cache is warm.

        What a write transaction remembers (`remember`) is `carried` to the next
        only if nothing was written in between: the next one runs on the same
        connection, whose `PRAGMA data_version` (moved by every other connection's
        commit, in this process or another) and total changes (moved by every write
        through it, committed or rolled back) are as this one left them. A rolled
        back transaction leaves nothing to carry.
        """
        return _SQLiteWriteTransaction(self, reads)

    def _begin(self, cursor: SQLiteCursor, reads: Reads | None) -> _SQLiteWrite:
        """The transaction just begun (its write lock held), with what it may carry, and
        the side-table rows of the keys `reads` names: one statement reads them with
        the connection's `PRAGMA data_version`."""
        with self._memo_lock:  # taken: a failed transaction leaves nothing behind
            memo, since = self._memo, self._memo_since
            self._memo, self._memo_since = {}, None
        connection = cursor.sqlite_cursor.connection
        fetched = self._prefetch(cursor, reads) if reads is not None else None
        if fetched is None:
            cursor.execute("PRAGMA data_version")
            version = int(cursor.fetchone()[0])
            fetched = {}
        else:
            version = fetched.pop("data_version")
        now = (connection, version, connection.total_changes)
        if since is None or since[0] is not connection or since[1:] != now[1:]:
            memo = {}
        # Remembered, versions and fetched by position: no dict of keywords.
        write = _SQLiteWrite(cursor, now, memo, {}, memo.get(_VERSIONS, {}), fetched)
        if len(write.versions) > _VERSIONS_LIMIT:
            write.versions = {}
        write.remembered[_VERSIONS] = write.versions
        return write

    @staticmethod
    def _prefetch(cursor: SQLiteCursor, reads: Reads) -> dict[str, Any] | None:
        """The side-table rows of the keys `reads` names, {table: {key: row or None}},
        and the connection's data version under "data_version", read in one statement;
        None when `reads` names no key, or too many for one statement."""
        named = (reads.command_ids, reads.refs, reads.practices)
        counts = (len(reads.command_ids), len(reads.refs), len(reads.practices))
        if not any(counts) or sum(counts) > _PREFETCH_LIMIT:
            return None
        params: list[str] = []
        fetched: dict[str, Any] = {}
        for i, (table, _) in enumerate(_PREFETCH):  # not zip(strict=True): it parses its keyword
            keys = named[i]
            if keys:
                params.extend(keys)
                fetched[table] = dict.fromkeys(keys)
        raw = cursor.sqlite_cursor  # sqlite3's own: eventsourcing's adds a call
        raw.execute(_prefetch_statement(*counts), params)
        for table, key, a, b in raw.fetchall():
            if table == "commands":
                fetched[table][key] = Receipt(key, a, b)
            elif table == "refs":
                fetched[table][key] = RefEntry(key, a, b)
            elif table == "affiliations":
                fetched[table][key] = [*(fetched[table][key] or ()), a]
            else:
                fetched[table] = int(a)
        return fetched

    def _committed(self, write: _SQLiteWrite) -> None:
        connection, version, changes = write.since
        remembered = write.remembered
        if connection.total_changes == changes:  # wrote nothing: what it carried still holds
            remembered = {**write.carried, **remembered}
        with self._memo_lock:
            self._memo = remembered
            self._memo_since = (connection, version, connection.total_changes)

    def carried(self, key: str) -> Any:
        write = _WRITE.get()
        return None if write is None else write.carried.get(key)

    def remember(self, key: str, value: Any) -> None:
        write = _WRITE.get()
        assert write is not None, "remember outside write_transaction"
        write.remembered[key] = value

    def insert_in_transaction(
        self, cursor: SQLiteCursor, stored_events: Sequence[StoredEvent], indexes: Indexes
    ) -> Sequence[int]:
        """Append events and their indexes inside `write_transaction`."""
        return self._insert_events(cursor, stored_events, indexes=indexes) or []

    def _select(self, statement: str, params: Sequence[Any]) -> list[Any]:
        """One SELECT on a pooled connection, without BEGIN/ROLLBACK.

        A single statement is atomic in autocommit mode, and skipping the explicit
        transaction halves the cost of the small reads the write path makes.
        Inside `write_transaction`, reads use its cursor.
        """
        write = _WRITE.get()
        if write is not None:
            write.cursor.execute(statement, params)
            return list(write.cursor.fetchall())
        with self.datastore.get_connection(commit=False) as conn, conn.cursor() as c:
            try:
                c.execute(statement, params)
                return list(c.fetchall())
            except sqlite3.Error as error:
                raise OperationalError(error) from error

    def select_rows(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._select(statement, params)]

    def position_of(self, stream_id: UUID, version: int) -> int | None:
        rows = self._select(
            f"SELECT rowid FROM {self.events_table_name} "  # noqa: S608
            "WHERE originator_id = ? AND originator_version = ?", (stream_id.hex, version))
        return int(rows[0][0]) if rows else None

    def _select_in(self, head: str, keys: list[str]) -> list[Any]:
        rows: list[Any] = []
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows += self._select(f"{head} IN ({','.join('?' * len(chunk))})", chunk)
        return rows

    def select_receipts(self, command_ids: Iterable[str]) -> dict[str, Receipt]:
        wanted = list(command_ids)
        write = _WRITE.get()  # fetched ahead by this thread's write transaction?
        fetched = None if write is None else write.answers("commands", wanted)
        if fetched is not None:
            return fetched
        rows = self._select_in(
            "SELECT command_id, fingerprint, answer FROM ledger_commands WHERE command_id",
            wanted,
        )
        return {row[0]: Receipt(row[0], row[1], row[2]) for row in rows}

    def select_refs(self, refs: Iterable[str]) -> dict[str, RefEntry]:
        wanted = list(refs)
        write = _WRITE.get()  # fetched ahead by this thread's write transaction?
        fetched = None if write is None else write.answers("refs", wanted)
        if fetched is not None:
            return fetched
        rows = self._select_in("SELECT ref, practice, year FROM ledger_refs WHERE ref", wanted)
        return {row[0]: RefEntry(row[0], row[1], row[2]) for row in rows}

    def select_ref(self, ref: str) -> RefEntry | None:
        return self.select_refs([ref]).get(ref)

    def select_budget_years(self, practice: str) -> list[str]:
        rows = self._select(
            "SELECT year FROM ledger_budget_years WHERE practice = ? ORDER BY year", (practice,)
        )
        return [row[0] for row in rows]

    def select_affiliations(self, practices: Iterable[str]) -> dict[str, list[str]]:
        wanted = list(practices)
        write = _WRITE.get()  # fetched ahead by this thread's write transaction?
        fetched = None if write is None else write.answers("affiliations", wanted)
        if fetched is not None:
            return {key: list(value) for key, value in fetched.items()}
        rows = self._select_in(
            "SELECT practice, consortium FROM ledger_affiliations WHERE practice", wanted
        )
        found: dict[str, list[str]] = {}
        for row in rows:
            found.setdefault(row[0], []).append(row[1])
        return found

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
        held: bytes | None = None,
    ) -> Sequence[StoredEvent]:
        """A stream's events; with `held`, the caller holds it up to `gt`, whose event's
        stored state is `held`, and a read of the store raises StreamRewritten unless the
        stream still has that very event at version `gt` (`check_held`)."""
        if lte is not None or desc or limit is not None:
            return super().select_events(originator_id, gt=gt, lte=lte, desc=desc, limit=limit)
        key = _stream_key(originator_id)
        after = gt or 0
        write = _WRITE.get()
        if write is not None and write.versions.get(key) == after:
            return []  # nothing written since this stream was last at that version
        check = held is not None and after > 0
        rows = self._select(
            f"SELECT originator_version, topic, state FROM {self.events_table_name} "  # noqa: S608
            "WHERE originator_id = ? AND originator_version > ? ORDER BY originator_version",
            (key, after - 1 if check else after),
        )
        if check:
            check_held((rows[0][0], rows[0][2]) if rows else None, after, held or b"")
            rows = rows[1:]
        if write is not None:
            write.versions[key] = int(rows[-1][0]) if rows else after
        stream_id = self.convert_originator_id(key)
        return [StoredEvent(stream_id, row[0], row[1], row[2]) for row in rows]


class LedgerSQLiteConnectionPool(SQLiteConnectionPool):
    """eventsourcing's SQLite pool with a real prepared-statement cache, and one
    connection kept for write transactions (`writer`).

    eventsourcing opens connections with `cached_statements=True`, which sqlite3
    reads as a cache of ONE statement: every other query is re-prepared (tens
    of microseconds each, most of a small command's reads).

    Ctrl-C is held while a connection is taken, given back or the pool closed
    (`ctrl_c_held`): a KeyboardInterrupt raised part way through eventsourcing's
    code (between its semaphore's lock taken and given back, or a connection put
    back in the pool and its lock released) would leave a lock taken for good, and
    the next connection asked for (closing the store asks for one) waiting forever.
    """

    _writer: SQLiteConnection | None = None

    def writer(self) -> AbstractContextManager[SQLiteConnection]:
        """The connection write transactions use, to one thread at a time.

        It takes the pool's writer lock, as `get_connection(is_writer=True)` does
        (so writers in this process queue here, not on SQLite's lock), but always
        the same connection: its statements stay prepared, and a write transaction
        can tell from its `PRAGMA data_version` whether anything was written since
        the last one (LedgerSQLiteRecorder.write_transaction). An in-memory
        database, whose readers and writers exclude each other, uses the pool's.
        Raises ConnectionUnavailableError when no writer lock comes in `pool_timeout`.
        """
        return self._memory_writer() if self.is_sqlite_memory_mode else _Writer(self)

    @contextmanager
    def _memory_writer(self) -> Iterator[SQLiteConnection]:
        conn = self.get_connection(is_writer=True)
        try:
            yield conn
        finally:
            self.put_connection(conn)

    def get_connection(self, timeout: float | None = None, *, is_writer: bool | None = None
                       ) -> SQLiteConnection:
        """eventsourcing's, Ctrl-C held; a connection taken when the Ctrl-C held is then
        raised is given back first."""
        taken: list[SQLiteConnection] = []
        try:
            with ctrl_c_held():
                taken.append(super().get_connection(timeout, is_writer=is_writer))
        except KeyboardInterrupt:
            for conn in taken:
                self.put_connection(conn)
            raise
        return taken[0]

    def put_connection(self, conn: SQLiteConnection) -> None:
        """eventsourcing's, Ctrl-C held."""
        with ctrl_c_held():
            super().put_connection(conn)

    def close(self) -> None:
        with ctrl_c_held():
            super().close()
            if self._writer is not None:
                self._writer.close()

    def _create_connection(self) -> SQLiteConnection:
        try:
            connection = sqlite3.connect(
                database=self.db_name,
                uri=True,
                check_same_thread=False,
                isolation_level=None,  # autocommit; transactions are explicit
                cached_statements=256,
                timeout=self.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT,
            )
        except (sqlite3.Error, TypeError) as error:
            raise InterfaceError(error) from error
        if not self.is_sqlite_memory_mode and not self.is_journal_mode_wal:
            mode = connection.execute("PRAGMA journal_mode;").fetchone()[0]
            if mode.lower() != "wal":
                connection.execute("PRAGMA journal_mode=WAL;")
                self.journal_mode_was_changed_to_wal = True
            self.is_journal_mode_wal = True
        connection.row_factory = sqlite3.Row
        return SQLiteConnection(sqlite_conn=connection, max_age=self.max_age)


class _Writer:
    """`LedgerSQLiteConnectionPool.writer` on a database file: its writer lock taken (with
    Ctrl-C held) as it is entered, given back as it is left."""

    __slots__ = ("locked", "pool")

    def __init__(self, pool: LedgerSQLiteConnectionPool) -> None:
        self.pool = pool
        self.locked = False

    def __enter__(self) -> SQLiteConnection:
        pool = self.pool
        try:
            with ctrl_c_held():
                self.locked = pool._writer_lock.acquire(timeout=pool.pool_timeout)
            if not self.locked:
                raise ConnectionUnavailableError("Timed out waiting for return of writer")
            if pool._closed:
                raise ConnectionPoolClosedError
            if pool._writer is None or pool._writer.closed:
                pool._writer = pool._create_connection()
        except BaseException:
            self._release()
            raise
        return pool._writer

    def __exit__(self, _kind: type[BaseException] | None, _error: BaseException | None,
                 _traceback: TracebackType | None) -> None:
        self._release()

    def _release(self) -> None:
        if self.locked:
            self.locked = False
            self.pool._writer_lock.release()


class LedgerSQLiteFactory(SQLiteFactory):
    """The SQLite infrastructure of the ledger: its recorder and connection pool."""

    application_recorder_class = LedgerSQLiteRecorder

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        old = self.datastore.pool
        self.datastore.pool = LedgerSQLiteConnectionPool(
            db_name=old.db_name, lock_timeout=old.lock_timeout
        )
        old.close()
