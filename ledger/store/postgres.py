"""The ledger's PostgreSQL recorder: eventsourcing's, plus the side tables.

Imported only when a postgresql:// store is opened, so SQLite users never load psycopg.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson
import psycopg
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import (
    PostgresApplicationRecorder,
    PostgresFactory,
)
from psycopg import Cursor, generators, sql
from psycopg.abc import PQGen
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from ledger.domain.errors import StoreUnavailable
from ledger.store import catalogue
from ledger.store.dialect import Dialect, pg_rows
from ledger.store.hooks import WriteHook
from ledger.store.pgread import BinaryNotifications
from ledger.store.recorders import (
    Columns,
    Indexes,
    Reads,
    Receipt,
    RefEntry,
    check_held,
    hook_keys,
    hook_statements,
    indexes_of,
    run_hooks,
)

# Each write transaction looks up the streams changed since the position its known
# versions are as of: if other writers appended more than _CHANGED_LIMIT events since
# (or the log is now shorter), every known version is forgotten instead (each stream
# is then read when loaded). At most _VERSIONS_LIMIT are kept.
_CHANGED_LIMIT = 5_000
# A write transaction that found its recorder's memo stale makes the next up to
# 2**_MAX_MISSES - 1 read in full without trying theirs (`_take_memo`).
_MAX_MISSES = 6
_VERSIONS_LIMIT = 200_000


@dataclass(eq=False)
class _Transaction:
    """The write transaction this thread is in: its cursor and what it fetched ahead.

    `head` is the highest position (read under the lock, then moved by each insert);
    `receipts`, `refs` and `affiliations` answer reads for the keys fetched ahead;
    `rows` answers `select_rows` for the statements fetched ahead (each once);
    `prepared` is what each write hook's `prepare` gave; `written` the last
    version of each stream this transaction appended to; `known_tail` the digest of
    the event now at the head position the recorder knew versions as of.
    """

    curs: Any = None
    head: int = 0
    generation: int = 0
    receipt_keys: frozenset[str] = frozenset()
    receipts: dict[str, Receipt] = field(default_factory=dict)
    ref_keys: frozenset[str] = frozenset()
    refs: dict[str, RefEntry] = field(default_factory=dict)
    practice_keys: frozenset[str] = frozenset()
    affiliations: dict[str, list[str]] = field(default_factory=dict)
    rows: dict[tuple[str, tuple[Any, ...]], list[tuple[Any, ...]]] = field(default_factory=dict)
    prepared: list[Any] = field(default_factory=list)
    written: dict[UUID, int] = field(default_factory=dict)
    # The md5 digest of the state of the event at `head` (as read, or as inserted last).
    tail: str | None = None
    known_tail: str | None = None
    last_state: bytes = b""
    # What the previous write transaction remembered, when its state is still the
    # store's (`_Memo`), else None; what this one remembers for the next.
    carried: dict[str, Any] | None = None
    remembered: dict[str, Any] = field(default_factory=dict)
    taken: _Memo | None = None


@dataclass(eq=False, slots=True)
class _Memo:
    """What this recorder's last committed write transaction remembered, and the state
    it left: the log's head, the md5 digest of the event there. It is carried to the
    next write transaction only if, read under that one's lock, the head is still
    there with the same event and every hook's state row was last written by the
    transaction that inserted that event (`WriteHook.stamp`)."""

    head: int
    tail: str
    remembered: dict[str, Any]


_BEGIN = b"BEGIN"
_COMMIT = b"COMMIT"
_ROLLBACK = b"ROLLBACK"

# The write transaction this thread is in, if any: reads made while deciding a
# command go through its cursor, inside the table lock.
_WRITE: ContextVar[_Transaction | None] = ContextVar("ledger_pg_write", default=None)


def _columns(rows: Iterable[Sequence[Any]], width: int) -> tuple[list[Any], ...]:
    """Rows as one list per column, for INSERT ... SELECT FROM unnest(...)."""
    columns: tuple[list[Any], ...] = tuple([] for _ in range(width))
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


class WriteCursor(psycopg.Cursor[DictRow]):
    """The cursor of a write transaction (`write_transaction`): a psycopg cursor that
    also queues writes, to send in one statement with the COMMIT (`write`)."""

    def __init__(self, connection: psycopg.Connection[DictRow]) -> None:
        super().__init__(connection)
        self.writes: list[tuple[str, Sequence[Any]]] = []

    def write(self, statement: str, params: Sequence[Any] = ()) -> None:
        """Queue `statement`, an INSERT, UPDATE or DELETE without WITH or RETURNING
        (placeholders %s or %b), to run with the COMMIT.

        Every write queued in a transaction runs in one statement, each a WITH query
        of it (https://www.postgresql.org/docs/current/queries-with.html#QUERIES-WITH-MODIFYING):
        together, on the snapshot the transaction's reads saw, so none sees the
        rows another one changes (each changes rows no other one does). The
        statements executed meanwhile run before them. A write that fails fails
        the COMMIT, and the transaction records nothing.
        """
        self.writes.append((statement, params))


class _Batched(psycopg.Pipeline):
    """A pipeline that hands what is queued to libpq as it is queued, and writes it to the
    socket only when synced (or a result is fetched).

    psycopg's own pipeline writes each statement to the socket as it is executed, and
    waits for the socket to be writable first: two system calls a statement, and the
    server woken for each. libpq keeps what it is handed in pipeline mode until its
    buffer passes 64 kB, so a sync writes the statements queued since the last one in
    one go, and the server reads them together.
    """

    def _hand_over(self) -> None:
        queue = self.command_queue
        while queue:
            queue.popleft()()

    def _communicate_gen(self) -> PQGen[None]:
        self._hand_over()
        yield from ()

    def _sync_gen(self) -> PQGen[None]:
        self._enqueue_sync()
        self._hand_over()
        yield from generators.send(self.pgconn)
        yield from self._fetch_gen(flush=False)

    def _exit_gen(self) -> PQGen[None]:
        try:
            self._enqueue_sync()
            self._hand_over()
            yield from generators.send(self.pgconn)
        except BaseException:
            yield from self._fetch_gen(flush=True)
            raise
        # The sync just sent has the server send every result: no flush request.
        yield from self._fetch_gen(flush=False)


@contextmanager
def _batched(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Pipeline]:
    """`conn.pipeline()`, with the pipeline `_Batched`."""
    with conn.lock:
        assert conn._pipeline is None, "a pipeline already open"
        pipeline = conn._pipeline = _Batched(conn)
    try:
        with pipeline:
            yield pipeline
    finally:
        with conn.lock:
            conn._pipeline = None


def _uuid(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def _receipts(curs: Cursor[DictRow]) -> dict[str, Receipt]:
    return {row["command_id"]: Receipt(row["command_id"], row["fingerprint"], row["answer"])
            for row in curs.fetchall()}


def _refs(curs: Cursor[DictRow]) -> dict[str, RefEntry]:
    return {row["ref"]: RefEntry(row["ref"], row["practice"], row["year"])
            for row in curs.fetchall()}


def _affiliations(curs: Cursor[DictRow]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for row in curs.fetchall():
        found.setdefault(row["practice"], []).append(row["consortium"])
    return found


def _take_keys(txn: _Transaction, receipts: Iterable[Sequence[str]],
               refs: Iterable[Sequence[str]], affiliations: Iterable[Sequence[str]]) -> None:
    """Keep in `txn` the receipts, refs and affiliations a first statement read, as rows
    of text: (command id, fingerprint, answer), (ref, practice, year), (practice,
    consortium)."""
    txn.receipts = {r[0]: Receipt(r[0], r[1], r[2]) for r in receipts}
    txn.refs = {r[0]: RefEntry(r[0], r[1], r[2]) for r in refs}
    joined: dict[str, list[str]] = {}
    for practice, consortium in affiliations:
        joined.setdefault(practice, []).append(consortium)
    txn.affiliations = joined


def _take_json_keys(txn: _Transaction, row: DictRow) -> None:
    """`_take_keys` of the full first statement's row, whose rows are JSON arrays."""
    _take_keys(txn, *(orjson.loads(row[key] or "[]")
                      for key in ("receipts", "refs", "affiliations")))


def _one_statement(writes: Sequence[tuple[str, Sequence[Any]]], last: str = "SELECT 1",
                   tail: Sequence[Any] = ()) -> tuple[str, list[Any]]:
    """`writes` (INSERT, UPDATE or DELETE statements with their parameters) as the WITH
    queries of one statement ending in `last` (with parameters `tail`); "" for none."""
    if not writes:
        return "", []
    params: list[Any] = []
    for _, values in writes:
        params.extend(values)
    params.extend(tail)
    queries = ", ".join(f"w{i} AS ({statement})" for i, (statement, _) in enumerate(writes))
    return f"WITH {queries} {last}", params


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
        self._id_type = self.datastore.originator_id_type
        events = Identifier(self.events_table_name)
        # A write transaction's first reads in one statement: the highest position and
        # its event's digest, the digest of the event at a position (the head known
        # before), the streams changed after that position, receipts, refs and
        # affiliations asked.
        self._select_first = SQL(
            "SELECT (SELECT COALESCE(MAX(notification_id), 0) FROM {0}.{1}) AS head, "
            "(SELECT md5(state) FROM {0}.{1} ORDER BY notification_id DESC LIMIT 1) AS tail, "
            "(SELECT md5(state) FROM {0}.{1} WHERE notification_id = %b) AS known_tail, "
            "(SELECT json_agg(json_build_array(c.originator_id, c.version))::text FROM "
            "(SELECT originator_id, MAX(originator_version) AS version FROM {0}.{1} "
            "WHERE notification_id > %b AND notification_id <= %b GROUP BY originator_id) c) "
            "AS changed, "
            "(SELECT json_agg(json_build_array(command_id, fingerprint, answer))::text "
            "FROM {0}.ledger_commands WHERE command_id = ANY(%b)) AS receipts, "
            "(SELECT json_agg(json_build_array(ref, practice, year))::text "
            "FROM {0}.ledger_refs WHERE ref = ANY(%b)) AS refs, "
            "(SELECT json_agg(json_build_array(practice, consortium))::text "
            "FROM {0}.ledger_affiliations WHERE practice = ANY(%b)) AS affiliations"
        ).format(schema, events).as_bytes(None)
        # The first statement when what the last write transaction remembered may still
        # hold (`_Memo`): the head with its event's digest and inserting transaction,
        # then the receipts, refs and affiliations asked, each an array of text arrays
        # (an ARRAY subquery, where json_agg would build an aggregate for each: an
        # eighth of the server's work on a command), and the catalogue (each hook's
        # stamp is added).
        self._select_carried = SQL(
            "SELECT (SELECT ARRAY[notification_id::text, md5(state), xmin::text] "
            "FROM {0}.{1} ORDER BY notification_id DESC LIMIT 1) AS last, "
            "ARRAY(SELECT ARRAY[command_id, fingerprint, answer] "
            "FROM {0}.ledger_commands WHERE command_id = ANY(%b)) AS receipts, "
            "ARRAY(SELECT ARRAY[ref, practice, year] "
            "FROM {0}.ledger_refs WHERE ref = ANY(%b)) AS refs, "
            "ARRAY(SELECT ARRAY[practice, consortium] "
            "FROM {0}.ledger_affiliations WHERE practice = ANY(%b)) AS affiliations"
        ).format(schema, events).as_bytes(None)
        self._carried_statement: bytes | None = None
        # The events' position sequence, by name ("" for none), looked up by this
        # recorder's first write transaction (`_sequence_of`).
        self._sequence: str | None = None
        self._memo: _Memo | None = None
        # After a memo found stale (another writer wrote since), the next 2**misses - 1
        # write transactions read in full without trying one: writers taking turns
        # would otherwise pay a third round trip on every write.
        self._misses = 0
        self._skips = 0
        self.dialect = Dialect("postgres", self.datastore.schema, self.events_table_name)
        # The catalogue's reads (catalogue.check_statements), when a write names them:
        # the kinds as JSON, and the checked position. The events after it are read
        # only when there are any (the head is past it): rows written around the ledger.
        self._catalogue_kinds, self._catalogue_tail = (
            statement for statement, _ in catalogue.check_statements(self.dialect))
        catalogued = self.dialect.sql(
            ", COALESCE((SELECT position FROM {kinds_checked} WHERE id = 1), 0) AS checked, "
            "(SELECT json_agg(json_build_array(topic, version, first_position) "
            "ORDER BY first_position)::text FROM {event_kinds}) AS kinds").encode()
        self._select_first_catalogued = self._select_first + catalogued
        # The carried statement reads the catalogue too, its kinds in no order: it only
        # asks whether each is readable (`_catalogue_holds`).
        self._select_carried += self.dialect.sql(
            ", COALESCE((SELECT position FROM {kinds_checked} WHERE id = 1), 0) AS checked, "
            "ARRAY(SELECT ARRAY[topic, version::text] FROM {event_kinds}) AS kinds").encode()
        self._first_statements: dict[tuple[bool, tuple[tuple[int, str], ...]], bytes] = {}
        # Last known version of streams, as of position _known_head (write path only),
        # whose event's state has the md5 digest _known_tail.
        self._versions: dict[UUID, int] = {}
        self._known_head = 0
        self._known_tail: str | None = None
        self._generation = 0
        self._versions_lock = threading.Lock()
        self._select_budget_years = SQL(
            "SELECT year FROM {0}.ledger_budget_years WHERE practice = %s ORDER BY year"
        ).format(schema).as_bytes(None)
        self._select_affiliations = SQL(
            "SELECT practice, consortium FROM {0}.ledger_affiliations WHERE practice = ANY(%s)"
        ).format(schema).as_bytes(None)
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
                 Identifier(self.stored_event_type_name)).as_bytes(None)
        self._sync_sequence = SQL(
            "SELECT setval(pg_get_serial_sequence(%s, 'notification_id'), %s)").as_bytes(None)
        self._select_stream = SQL(
            "SELECT originator_version, topic, state FROM {0}.{1} "
            "WHERE originator_id = %s AND originator_version > %s ORDER BY originator_version"
        ).format(schema, Identifier(self.events_table_name)).as_bytes(None)
        self._select_receipts = SQL(
            "SELECT command_id, fingerprint, answer FROM {0}.ledger_commands "
            "WHERE command_id = ANY(%s)"
        ).format(schema).as_bytes(None)
        self._select_refs = SQL(
            "SELECT ref, practice, year FROM {0}.ledger_refs WHERE ref = ANY(%s)"
        ).format(schema).as_bytes(None)
        # eventsourcing's lock (SET LOCAL lock_timeout, then LOCK TABLE ... IN EXCLUSIVE
        # MODE), rendered once as bytes (psycopg would render a composed statement again
        # on every execute). The timeout is a set_config that also keeps the transaction
        # on generic plans (plan_cache_mode) made without sequential scans where an
        # index serves (enable_seqscan): the first statement's lookups are index seeks
        # whatever their parameters, and PostgreSQL would otherwise plan it anew on
        # every write, as its custom plans cost less than a generic one by its
        # estimates (a quarter of the server's time per command, measured); a generic
        # plan is kept for the connection's life, and one made while a side table was
        # a page or two would scan it whole however large it grew.
        self.lock_table_statements = [
            SQL("SELECT set_config('lock_timeout', {0}, true), "
                "set_config('plan_cache_mode', 'force_generic_plan', true), "
                "set_config('enable_seqscan', 'off', true)").format(
                f"{self.datastore.lock_timeout}s").as_bytes(None),
            SQL("LOCK TABLE {0}.{1} IN EXCLUSIVE MODE").format(schema, events).as_bytes(None),
        ]

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
        # eventsourcing's insert path (EventStore.append): the side tables first.
        statement, params = _one_statement(self._writes(indexes_of(kwargs), [], []))
        if statement:
            curs.execute(statement, params)
        super()._insert_events(curs, stored_events, **kwargs)

    def _writes(self, indexes: Indexes, ids: Sequence[int],
                stored_events: Sequence[StoredEvent]) -> list[tuple[str, list[Any]]]:
        """The INSERTs of the side tables' rows, then of the events at `ids`."""
        d = self.dialect
        writes: list[tuple[str, list[Any]]] = []

        def add(table: str, rows: Sequence[Sequence[Any]], types: Sequence[str],
                tail: str = "") -> None:
            if rows:
                source, values = pg_rows(rows, types)
                writes.append((f"INSERT INTO {table} {source}{tail}", values))

        text3 = ("text", "text", "text")
        add(d.table("ledger_commands"),
            [(r.command_id, r.fingerprint, r.answer) for r in indexes.receipts], text3)
        add(d.table("ledger_refs"), [(r.ref, r.practice, r.year) for r in indexes.refs], text3)
        add(d.table("ledger_affiliations"), indexes.affiliations, ("text", "text"),
            " ON CONFLICT DO NOTHING")
        add(d.table("ledger_budget_years"), indexes.budget_years, ("text", "text"),
            " ON CONFLICT DO NOTHING")
        if stored_events:
            add(d.events + " (notification_id, originator_id, originator_version, topic, state)",
                [(i, e.originator_id, e.originator_version, e.topic, e.state)
                 for i, e in zip(ids, stored_events, strict=True)],
                ("bigint", self._id_type, "bigint", "text", "bytea"))
        return writes

    @contextmanager
    def write_transaction(self, reads: Reads | None = None) -> Iterator[Cursor[DictRow]]:
        """A transaction that takes the events table's write lock before it reads.

        eventsourcing takes the same EXCLUSIVE lock for every insert; taking it
        first makes a command's reads and its append one serialised unit, like
        SQLite's single writer: no version conflicts, so no retries, and no
        rolled-back inserts burning sequence numbers (positions stay gap-free).
        Readers (SELECT) are not blocked.

        The transaction runs in pipeline mode: BEGIN, the lock, the highest
        position, the hooks' reads and `reads` go in one round trip; the writes
        are queued and sent with COMMIT in one more. Each round trip's statements
        are written to the socket together (`_Batched`). When this recorder's last
        write is still the last one, its catalogue check and hooks' state are
        carried over (`_Memo`) instead of read again. A read made in between costs
        a round trip, unless it was named in `reads` or is a stream this recorder
        already knows to be unchanged (`select_events`). A failed write raises
        from the end of the block (the COMMIT), and nothing is recorded.
        """
        with self.datastore.get_connection() as conn:
            if self._sequence is None:
                self._sequence = self._sequence_of(conn)
            memo = self._take_memo()
            try:
                with _batched(conn) as pipeline:
                    curs = WriteCursor(conn)
                    # BEGIN and COMMIT as statements, queued with the rest: psycopg's
                    # transaction block would sync the pipeline on entry and before COMMIT.
                    curs.execute(_BEGIN)
                    self._lock_table(curs)
                    txn = self._prefetch(conn, pipeline, reads or Reads(), memo)
                    txn.curs = curs
                    token = _WRITE.set(txn)
                    try:
                        yield curs
                    finally:
                        _WRITE.reset(token)
                    self._send_writes(curs, txn)
                    curs.execute(_COMMIT)
            except BaseException:
                if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
                    with suppress(psycopg.Error):
                        conn.execute(_ROLLBACK)
                self._put_back(memo)
                raise
            self._committed(txn)

    def _send_writes(self, curs: WriteCursor, txn: _Transaction) -> None:
        """The writes queued in the transaction, in one statement; with events among
        them, the column's sequence kept in step and the channel told."""
        if txn.written and self._sequence:
            # The sequence by name, looked up once: pg_get_serial_sequence reads the
            # catalogue's dependencies on every call (a tenth of the statement's work).
            last = "SELECT setval(to_regclass(%b), %b), pg_notify(%b, '')"
            tail: list[Any] = [self._sequence, txn.head, self.channel_name]
        elif txn.written:
            last, tail = "SELECT pg_notify(%b, '')", [self.channel_name]
        else:
            last, tail = "SELECT 1", []
        statement, params = _one_statement(curs.writes, last, tail)
        curs.writes = []
        if statement:
            curs.execute(statement, params)

    def _sequence_of(self, conn: psycopg.Connection[DictRow]) -> str:
        """The name of the sequence of the events' positions, kept in step with the
        highest for writers that still draw from it; "" if the column has none."""
        row = conn.execute("SELECT pg_get_serial_sequence(%s, 'notification_id') AS name",
                           (self.dialect.events,)).fetchone()
        return "" if row is None or row["name"] is None else str(row["name"])

    def _prefetch(self, conn: psycopg.Connection[DictRow], pipeline: psycopg.Pipeline,
                  reads: Reads, memo: _Memo | None) -> _Transaction:
        """Send the transaction's first reads in one round trip, under the lock; with
        `memo`, what the last write transaction left, fewer reads, unless it no
        longer holds: then the full first statement in one more round trip."""
        with self._versions_lock:
            known_head, known_tail = self._known_head, self._known_tail
            knows_any = bool(self._versions)
        queued: list[tuple[Cursor[DictRow], Callable[[Cursor[DictRow]], None]]] = []
        txn = _Transaction()
        txn.taken = memo

        def read(statement: Any, params: Any, take: Callable[[Cursor[DictRow]], None]) -> None:
            curs = conn.cursor()
            curs.execute(statement, params)
            queued.append((curs, take))

        changed: list[tuple[UUID, int]] = []
        catalogue_reads = [(self._catalogue_kinds, ()), (self._catalogue_tail, ())]
        catalogued = all(named in reads.rows for named in catalogue_reads)

        prepares = [getattr(hook, "prepare", None) for hook in self.hooks]
        columns = [prepare(self.dialect) if prepare else None for prepare in prepares]

        def first(curs: Cursor[DictRow]) -> None:
            row = curs.fetchone()
            assert row is not None
            changed.extend(self._take_first(txn, row, catalogued=catalogued))
            txn.prepared = [None if column is None else column[1](row[f"hook_{i}"])
                            for i, column in enumerate(columns)]

        txn.receipt_keys = frozenset(reads.command_ids)
        txn.ref_keys = frozenset(reads.refs)
        txn.practice_keys = frozenset(reads.practices)
        keys = (list(txn.receipt_keys), list(txn.ref_keys), list(txn.practice_keys))
        # Nothing known: no need to look for changes (an empty range).
        after, upto = (known_head, known_head + _CHANGED_LIMIT) if knows_any else (0, 0)

        def read_first() -> None:
            read(self._first_statement(catalogued, tuple(
                     (i, column[0]) for i, column in enumerate(columns) if column is not None)),
                 (known_head, after, upto, *keys), first)

        may_carry = memo is not None and (memo.head, memo.tail) == (known_head, known_tail)
        if may_carry:
            read(self._carried_first(), keys, lambda curs: self._take_carried(txn, curs))
        else:
            read_first()
        for statement, params in reads.rows:
            if catalogued and (statement, params) in catalogue_reads:
                continue  # answered by the first statement, or carried
            def rows(curs: Cursor[DictRow], key: tuple[str, tuple[Any, ...]] = (statement, params)
                     ) -> None:
                txn.rows[key] = [tuple(row.values()) for row in curs.fetchall()]
            read(statement, params, rows)
        pipeline.sync()
        for curs, take in queued:
            take(curs)
        if may_carry:
            self._carry_tried(hit=txn.carried is not None)
        if may_carry and txn.carried is None:
            # Written since, some other way: what the full first statement reads, in
            # one more round trip.
            queued.clear()
            read_first()
            pipeline.sync()
            for curs, take in queued:
                take(curs)
        self._learn_versions(txn, changed, (known_head, known_tail, upto) if knows_any else None)
        return txn

    def _learn_versions(self, txn: _Transaction, changed: list[tuple[UUID, int]],
                        known: tuple[int, str | None, int] | None) -> None:
        """Bring the known versions up to the head `txn` read, from the streams `changed`
        since the head they were known as of; `known`: that head, the digest of its
        event then, the last position looked at for changes (None: none were known)."""
        with self._versions_lock:
            # Known versions are as of a head >= known_head (another thread may have
            # moved it on since): what changed after known_head brings every stream
            # up to this head, if the range looked at reached it, and if the event at
            # known_head is still the one known there. Another (a backup restored
            # under the process, then written on) means the log up to it is not the
            # one the versions were learnt from: each stream is then read when
            # loaded, and a cached aggregate checked against it (check_held).
            if known is not None and (not known[0] <= txn.head <= known[2]
                                      or txn.known_tail != known[1]):
                self._versions.clear()
            else:
                self._versions.update(changed)
            if len(self._versions) > _VERSIONS_LIMIT:
                self._versions.clear()
            self._known_head, self._known_tail = txn.head, txn.tail
            self._generation += 1
            txn.generation = self._generation

    def _first_statement(self, catalogued: bool, columns: tuple[tuple[int, str], ...]
                         ) -> bytes:
        """The first statement, reading the catalogue too if `catalogued`, and each
        hook's column (hook index, its `prepare` column) as hook_<index>."""
        key = (catalogued, columns)
        statement = self._first_statements.get(key)
        if statement is None:
            statement = (self._select_first_catalogued if catalogued else self._select_first
                         ) + "".join(f", {column} AS hook_{i}" for i, column in columns).encode()
            self._first_statements[key] = statement
        return statement

    def _take_first(self, txn: _Transaction, row: DictRow, *, catalogued: bool
                    ) -> list[tuple[UUID, int]]:
        """Keep what the first statement read in `txn`; the streams changed since the
        head known before, with their last version. `catalogued`: the statement read
        the catalogue too, and answers its reads (`_select_first_catalogued`)."""
        txn.head = int(row["head"])
        txn.tail, txn.known_tail = row["tail"], row["known_tail"]
        _take_json_keys(txn, row)
        if catalogued:
            txn.rows[(self._catalogue_kinds, ())] = [
                tuple(kind) for kind in orjson.loads(row["kinds"] or "[]")]
            if txn.head <= int(row["checked"]):  # no event past the checked position
                txn.rows[(self._catalogue_tail, ())] = []
        return [(UUID(stream), int(version))
                for stream, version in orjson.loads(row["changed"] or "[]")]

    def _carried_first(self) -> bytes:
        """`_select_carried` with each hook's stamp (`WriteHook.stamp`) as stamp_<index>."""
        if self._carried_statement is None:
            stamps = [getattr(hook, "stamp", None) for hook in self.hooks]
            self._carried_statement = self._select_carried + "".join(
                f", {stamp(self.dialect)} AS stamp_{i}"
                for i, stamp in enumerate(stamps) if stamp is not None).encode()
        return self._carried_statement

    def _take_carried(self, txn: _Transaction, curs: Cursor[DictRow]) -> None:
        """Keep what `_carried_first` read in `txn`; carry what the memo remembered if the
        head, its event and the hooks' state are still those the memo was left with."""
        row = curs.fetchone()
        memo = txn.taken
        assert row is not None
        assert memo is not None
        _take_keys(txn, row["receipts"], row["refs"], row["affiliations"])
        last = row["last"]
        if last is None or (int(last[0]), last[1]) != (memo.head, memo.tail):
            return
        keys = hook_keys(len(self.hooks))
        stamped = [f"stamp_{i}" in row for i in range(len(self.hooks))]
        if any(row[f"stamp_{i}"] != last[2] for i, has in enumerate(stamped) if has):
            return
        if not _catalogue_holds(row, memo.head):
            return
        txn.head, txn.tail, txn.known_tail = memo.head, memo.tail, memo.tail
        txn.carried = memo.remembered
        txn.prepared = [memo.remembered.get(key) if has else None
                        for key, has in zip(keys, stamped, strict=True)]

    def _committed(self, txn: _Transaction) -> None:
        """Remember the streams this transaction wrote, unless another has started since,
        and what it remembered for the next (`_Memo`)."""
        with self._versions_lock:
            if txn.generation == self._generation and txn.written:
                self._versions.update(txn.written)
                self._known_head = txn.head
                self._known_tail = hashlib.md5(txn.last_state, usedforsecurity=False
                                               ).hexdigest()
                self._generation += 1
                self._memo = _Memo(txn.head, self._known_tail, txn.remembered)
            elif not txn.written and txn.carried is not None and txn.taken is not None:
                # Wrote no event: what it carried still holds.
                self._memo = _Memo(txn.taken.head, txn.taken.tail,
                                   {**txn.carried, **txn.remembered})

    def _take_memo(self) -> _Memo | None:
        """The memo, taken (one transaction carries it); None while misses say to skip."""
        with self._versions_lock:
            memo, self._memo = self._memo, None
            if memo is not None and self._skips:
                self._skips -= 1
                return None
            return memo

    def _carry_tried(self, *, hit: bool) -> None:
        with self._versions_lock:
            self._misses = 0 if hit else min(self._misses + 1, _MAX_MISSES)
            self._skips = 2 ** self._misses - 1

    def _put_back(self, memo: _Memo | None) -> None:
        """Put back the memo a failed transaction took: it recorded nothing (and the
        memo is checked against the store before it is carried again)."""
        if memo is not None:
            with self._versions_lock:
                if self._memo is None:
                    self._memo = memo

    def carried(self, key: str) -> Any:
        txn = _WRITE.get()
        return None if txn is None or txn.carried is None else txn.carried.get(key)

    def remember(self, key: str, value: Any) -> None:
        txn = _WRITE.get()
        assert txn is not None, "remember outside write_transaction"
        txn.remembered[key] = value

    def insert_in_transaction(
        self, curs: WriteCursor, stored_events: Sequence[StoredEvent], indexes: Indexes
    ) -> Sequence[int]:
        """Append events and their indexes inside `write_transaction` (the lock is held).

        The writes are queued (`WriteCursor.write`), as the hooks' may be: they go
        with the COMMIT, in one statement. Positions are the next after the highest,
        read under the lock when the transaction began.
        """
        txn = _WRITE.get()
        assert txn is not None, "insert_in_transaction outside write_transaction"
        assert txn.curs is curs, "insert_in_transaction with another transaction's cursor"
        ids = list(range(txn.head + 1, txn.head + 1 + len(stored_events)))
        for statement, params in self._writes(indexes, ids, stored_events):
            curs.write(statement, params)
        if not stored_events:
            return []
        done = run_hooks(self.hooks, curs, self.dialect, ids, stored_events,
                         prepared=txn.prepared)
        txn.remembered.update(zip(hook_keys(len(done)), done, strict=True))
        txn.head = ids[-1]
        txn.last_state = stored_events[-1].state
        for e in stored_events:
            txn.written[_uuid(e.originator_id)] = e.originator_version
        return ids

    def insert_columns(self, curs: WriteCursor, columns: Columns) -> Sequence[int]:
        """`insert_in_transaction` of the events and side-table rows of `columns` (the
        stream ids read as UUIDs); ValueError, nothing inserted, for columns of a group
        that differ in length."""
        columns.check()
        stored = list(map(StoredEvent, map(_uuid, columns.streams), columns.versions,
                          columns.topics, columns.states))
        return self.insert_in_transaction(curs, stored, columns.indexes())

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
        txn = _WRITE.get()
        if txn is not None:
            yield txn.curs
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
        held: bytes | None = None,
    ) -> Sequence[StoredEvent]:
        """A stream's events; in a write transaction, none without a read when the stream
        is known to end at `gt` (its last version as of the transaction's start). With
        `held`, the caller holds the stream up to `gt`, whose event's stored state is
        `held`, and a read of the store raises StreamRewritten unless the stream still
        has that very event at version `gt` (`check_held`)."""
        txn = _WRITE.get()
        check = held is not None and bool(gt) and lte is None and not desc and limit is None
        since = (gt or 0) - 1 if check else gt
        if txn is None or lte is not None or desc or limit is not None:
            stored: Sequence[StoredEvent] = super().select_events(
                originator_id, gt=since or None, lte=lte, desc=desc, limit=limit
            )
            if check:
                check_held((stored[0].originator_version, stored[0].state)
                           if stored else None, gt or 0, held or b"")
                stored = stored[1:]
            return stored
        key = _uuid(originator_id)
        after = gt or 0
        with self._versions_lock:
            if self._versions.get(key) == after:
                return []
        txn.curs.execute(self._select_stream, (originator_id, since or 0))
        found = [
            StoredEvent(originator_id, row["originator_version"], row["topic"],
                        bytes(row["state"]))
            for row in txn.curs.fetchall()
        ]
        if check:
            check_held((found[0].originator_version, found[0].state) if found else None,
                       after, held or b"")
            found = found[1:]
        with self._versions_lock:
            self._versions[key] = found[-1].originator_version if found else after
        return found

    def select_rows(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        txn = _WRITE.get()
        if txn is not None:
            fetched = txn.rows.pop((statement, tuple(params)), None)
            if fetched is not None:
                return fetched
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
        wanted = list(command_ids)
        txn = _WRITE.get()
        if txn is not None and txn.receipt_keys.issuperset(wanted):
            return {key: txn.receipts[key] for key in wanted if key in txn.receipts}
        with self._reading() as curs:
            curs.execute(self._select_receipts, (wanted,))
            return _receipts(curs)

    def select_refs(self, refs: Iterable[str]) -> dict[str, RefEntry]:
        wanted = list(refs)
        txn = _WRITE.get()
        if txn is not None and txn.ref_keys.issuperset(wanted):
            return {key: txn.refs[key] for key in wanted if key in txn.refs}
        with self._reading() as curs:
            curs.execute(self._select_refs, (wanted,))
            return _refs(curs)

    def select_budget_years(self, practice: str) -> list[str]:
        with self._reading() as curs:
            curs.execute(self._select_budget_years, (practice,))
            return [row["year"] for row in curs.fetchall()]

    def select_affiliations(self, practices: Iterable[str]) -> dict[str, list[str]]:
        wanted = list(practices)
        txn = _WRITE.get()
        if txn is not None and txn.practice_keys.issuperset(wanted):
            return {key: txn.affiliations[key] for key in wanted if key in txn.affiliations}
        with self._reading() as curs:
            curs.execute(self._select_affiliations, (wanted,))
            return _affiliations(curs)

    def select_ref(self, ref: str) -> RefEntry | None:
        return self.select_refs([ref]).get(ref)


class LedgerPostgresFactory(PostgresFactory):
    """eventsourcing's factory, with the ledger's recorder and sessions without JIT.

    PostgreSQL compiles a query to machine code (JIT) when its estimated cost is
    high, as for the catalogue's look at the log's unchecked tail, whose start is
    not known when it is planned: about 100-150 ms for a query that returns no row
    on a log of millions of events, on every read and write. The ledger's queries
    are index seeks and bounded pages, which JIT does not speed up.
    """

    application_recorder_class = LedgerPostgresRecorder

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        pool = self.datastore.pool
        if isinstance(pool.kwargs, dict):  # before the pool opens its first connection
            pool.kwargs["options"] = "-c jit=off"


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


def _catalogue_holds(row: DictRow, head: int) -> bool:
    """Whether the catalogue `_select_carried` read still vouches for the log up to `head`:
    every event checked, and every kind one this code reads. The catalogue is edited only
    with an event, by the ledger; an edit around it (a kind added or made newer, the checked
    position moved back) is then read again in full, and refused as the full check does."""
    return int(row["checked"]) == head and catalogue.all_readable(row["kinds"])
