"""Reading the events and the audit tables in one consistent snapshot, on either store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ledger.audit.merkle import perfect_levels
from ledger.auditlog.seal import TreeHead, read_head
from ledger.auditlog.tables import NODE_LEVEL_STEP, ensure_tables, sqlite_reader
from ledger.store.dialect import Cursor, Dialect, as_tuple

if TYPE_CHECKING:
    from ledger.store.eventstore import EventStore

EventRow = tuple[int, Any, int, str, Any]
LeafRow = tuple[int, int, bytes, int, bytes]
LeafHashRow = tuple[int, int, bytes]
CheckpointRow = tuple[int, int, bytes, str, str]


@dataclass(frozen=True, slots=True)
class StoredHead:
    origin: str
    size: int
    last_position: int
    frontier: bytes
    root: bytes


@dataclass(frozen=True, slots=True)
class SharedSnapshot:
    """A PostgreSQL snapshot other sessions can read in: where, and its exported id.

    Valid while the exporting transaction (`snapshot`) is open; `open_shared`
    starts a read-only transaction in it on a new connection.
    """

    conninfo: str
    snapshot_id: str


class LogReader:
    """Queries over the events and the audit tables (rows as tuples).

    `bulk`, when given, is a second cursor in the same transaction for the reads
    that move the whole log (events and leaf hashes, chunk by chunk): on
    PostgreSQL it fetches in binary, stream ids as their 16 bytes. `shared` lets
    other processes read in the same snapshot (PostgreSQL).
    """

    def __init__(self, curs: Cursor, dialect: Dialect, path: str | None = None,
                 bulk: Cursor | None = None, shared: SharedSnapshot | None = None) -> None:
        self.curs = curs
        self.dialect = dialect
        self.path = path  # the SQLite file, which other processes may open read-only too
        self.bulk = bulk
        self.shared = shared

    def _all(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        self.curs.execute(self.dialect.sql(query), params)
        rows = self.curs.fetchall()
        return rows if self.dialect.kind == "sqlite" else [as_tuple(r) for r in rows]

    def _bulk(self, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Rows as tuples through the bulk cursor (tuple rows already), if there is one."""
        if self.bulk is None:
            return self._all(query, params)
        self.bulk.execute(self.dialect.sql(query), params)
        rows: list[tuple[Any, ...]] = self.bulk.fetchall()
        return rows

    def _one(self, query: str, params: tuple[Any, ...] = ()) -> Any:
        self.curs.execute(self.dialect.sql(query), params)
        row = self.curs.fetchone()
        return None if row is None else as_tuple(row)[0]

    def head(self) -> TreeHead | None:
        return read_head(self.curs, self.dialect)

    def stored_head(self) -> StoredHead | None:
        """The tree head row as it is, its compact range not decoded: verify reports a
        head that does not fit its leaves rather than failing to read it."""
        self.curs.execute(self.dialect.sql(
            "SELECT origin, size, last_position, frontier, root FROM {tree} WHERE id = 1"))
        row = self.curs.fetchone()
        if row is None:
            return None
        origin, size, last, frontier, root = as_tuple(row)
        return StoredHead(str(origin), int(size), int(last), bytes(frontier), bytes(root))

    def max_event_position(self) -> int:
        return int(self._one("SELECT MAX({position}) FROM {events}") or 0)

    def count_events_after(self, position: int) -> int:
        return int(self._one("SELECT COUNT(*) FROM {events} WHERE {position} > ?", (position,)))

    def leaf_count(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM {leaves}"))

    def leaves(self, start: int, limit: int) -> list[LeafRow]:
        return self._all(
            "SELECT leaf_index, position, stream_id, version, leaf_hash FROM {leaves} "
            "WHERE leaf_index >= ? ORDER BY leaf_index LIMIT ?",
            (start, limit),
        )

    def leaf_hash_rows(self, start: int, limit: int) -> list[LeafHashRow]:
        """(leaf index, position, leaf hash): what the fast path of `verify` needs."""
        return self._bulk(
            "SELECT leaf_index, position, leaf_hash FROM {leaves} "
            "WHERE leaf_index >= ? ORDER BY leaf_index LIMIT ?",
            (start, limit),
        )

    def leaf_at(self, index: int) -> LeafRow | None:
        rows = self.leaves(index, 1)
        return rows[0] if rows and rows[0][0] == index else None

    def leaf_for_position(self, position: int) -> LeafRow | None:
        """The leaf sealing the event at `position`, if any.

        Leaves are sealed in position order at consecutive indexes, and positions are
        distinct integers from 1, so the leaf of position p has an index i with
        p - 1 - (last sealed position - size) <= i <= p - 1: the rows read are one more
        than the positions up to the last sealed one that hold no leaf (none on SQLite,
        whose positions have no gaps). That range of the primary key is all a SQLite
        ledger's leaves table is searched by (it keeps no index of positions); on
        PostgreSQL, and on older SQLite ledgers, the unique index of positions is used.
        """
        rows = self._all(
            "SELECT leaf_index, position, stream_id, version, leaf_hash FROM {leaves} "
            "WHERE position = ? AND leaf_index <= ? AND leaf_index >= "
            "(SELECT ? - last_position + size - 1 FROM {tree} WHERE id = 1)",
            (position, position - 1, position),
        )
        return rows[0] if rows else None

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        rows = self._bulk(
            "SELECT leaf_hash FROM {leaves} WHERE leaf_index >= ? AND leaf_index < ? "
            "ORDER BY leaf_index",
            (start, end),
        )
        return [bytes(r[0]) for r in rows]

    def events_between(self, after: int, upto: int) -> list[EventRow]:
        """Events with after < position <= upto, in position order.

        The stream id comes as the store keeps it: 32 hex digits on SQLite, a UUID
        (its 16 bytes through the bulk cursor) on PostgreSQL.

        Asked for as the first `upto - after` events after `after` (positions are
        distinct integers, so no more lie in the range), then cut at `upto`: an
        ordered walk of the position index. PostgreSQL plans the two-sided range,
        on a table it holds no statistics for (a bulk load, autovacuum off), as a
        bitmap scan and a sort spilled to disk: three times the work per chunk.
        """
        if upto <= after:
            return []
        rows = self._bulk(
            "SELECT {position}, originator_id, originator_version, topic, state FROM {events} "
            "WHERE {position} > ? ORDER BY {position} LIMIT ?",
            (after, upto - after),
        )
        end = len(rows)
        while end and rows[end - 1][0] > upto:
            end -= 1
        return rows if end == len(rows) else rows[:end]

    def events_after(self, after: int, limit: int) -> list[EventRow]:
        return self._all(
            "SELECT {position}, originator_id, originator_version, topic, state FROM {events} "
            "WHERE {position} > ? ORDER BY {position} LIMIT ?",
            (after, limit),
        )

    def event_at(self, position: int) -> EventRow | None:
        rows = self.events_between(position - 1, position)
        return rows[0] if rows else None

    def nodes(self, level: int, start: int, end: int) -> dict[int, bytes]:
        rows = self._all(
            "SELECT node_index, hash FROM {nodes} WHERE level = ? AND node_index >= ? "
            "AND node_index < ?",
            (level, start, end),
        )
        return {int(r[0]): bytes(r[1]) for r in rows}

    def node_count(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM {nodes}"))

    def checkpoints(self) -> list[CheckpointRow]:
        return self._all(
            "SELECT checkpoint_id, size, root, note, created_at FROM {checkpoints} "
            "ORDER BY checkpoint_id"
        )

    def latest_cosigned(self) -> tuple[int, int, str] | None:
        """(checkpoint id, size, note) of the largest checkpoint a witness cosigned."""
        rows = self._all(
            "SELECT checkpoint_id, size, note FROM {cosigned} "
            "ORDER BY size DESC, checkpoint_id DESC LIMIT 1"
        )
        return (int(rows[0][0]), int(rows[0][1]), str(rows[0][2])) if rows else None

    def witness_sizes(self) -> list[tuple[str, int]]:
        """(name, size) of each configured witness: the size it last cosigned (0: none)."""
        rows = self._all("SELECT name, size FROM {witnesses} ORDER BY name")
        return [(str(r[0]), int(r[1])) for r in rows]

    def leaf_identities(self) -> dict[tuple[bytes, int], int]:
        """(stream id, version) -> leaf index, for telling moved events from new ones."""
        rows = self._all("SELECT stream_id, version, leaf_index FROM {leaves}")
        return {(bytes(r[0]), int(r[1])): int(r[2]) for r in rows}

    def stored_state(self, position: int) -> bytes | None:
        row = self.event_at(position)
        return None if row is None else bytes(row[4])


class StoreNodes:
    """A merkle.NodeReader over the leaf and node tables: at most 8 reads per subtree."""

    def __init__(self, reader: LogReader) -> None:
        self.reader = reader
        self.cache: dict[tuple[int, int], bytes] = {}

    def perfect(self, level: int, index: int) -> bytes:
        key = (level, index)
        if key in self.cache:
            return self.cache[key]
        base = level - level % NODE_LEVEL_STEP
        span = 1 << (level - base)
        first = index * span
        if base == 0:
            hashes = self.reader.leaf_hashes(first, first + span)
        else:
            found = self.reader.nodes(base, first, first + span)
            hashes = [found[i] for i in range(first, first + span) if i in found]
        if len(hashes) != span:
            raise LookupError(f"the audit tables lack the subtree ({level}, {index})")
        result = perfect_levels(hashes)[level - base][0]
        self.cache[key] = result
        return result


@contextmanager
def snapshot(store: EventStore) -> Iterator[LogReader]:
    """A read-only, consistent view of the events and the audit tables."""
    dialect = ensure_tables(store)
    if store.target.kind == "sqlite":
        with sqlite_reader(store.target.location) as conn:
            conn.isolation_level = None
            curs = conn.cursor()
            curs.execute("BEGIN")
            try:
                yield LogReader(curs, dialect, store.target.location)
            finally:
                conn.rollback()
        return
    from psycopg.rows import tuple_row  # noqa: PLC0415

    datastore: Any = store.app.recorder.datastore  # type: ignore[attr-defined]
    with (
        datastore.get_connection() as conn,
        conn.transaction(force_rollback=True),
        conn.cursor(row_factory=tuple_row) as curs,
        conn.cursor(row_factory=tuple_row, binary=True) as bulk,
    ):
        curs.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        # Hashing a large log holds this one snapshot open between reads for longer than
        # the store's idle-in-transaction limit (which guards write transactions).
        curs.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
        curs.execute("SELECT pg_export_snapshot()")
        row = curs.fetchone()
        shared = SharedSnapshot(_conninfo(store.target.env), str(row[0])) if row else None
        stream_ids_as_bytes(bulk)
        yield LogReader(curs, dialect, bulk=bulk, shared=shared)


def stream_ids_as_bytes(curs: Any) -> None:
    """Make a binary PostgreSQL cursor load uuid columns as their 16 bytes."""
    from psycopg.types.string import ByteaBinaryLoader  # noqa: PLC0415

    curs.adapters.register_loader("uuid", ByteaBinaryLoader)


def _conninfo(env: dict[str, str]) -> str:
    from psycopg.conninfo import make_conninfo  # noqa: PLC0415

    return make_conninfo(
        dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
        user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"] or None,
        connect_timeout=env.get("POSTGRES_CONNECT_TIMEOUT", "5"),
    )


def open_shared(shared: SharedSnapshot, dialect: Dialect) -> LogReader:
    """A LogReader on a new connection, in a read-only transaction in `shared`'s snapshot.

    The transaction stays open until the connection closes (the process ends);
    the reader's bulk cursor is binary, as `snapshot`'s.
    """
    import psycopg  # noqa: PLC0415
    from psycopg import sql  # noqa: PLC0415
    from psycopg.rows import tuple_row  # noqa: PLC0415

    conn = psycopg.connect(shared.conninfo, autocommit=True)
    curs = conn.cursor(row_factory=tuple_row)
    curs.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    curs.execute(sql.SQL("SET TRANSACTION SNAPSHOT {0}").format(sql.Literal(shared.snapshot_id)))
    curs.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
    bulk = conn.cursor(row_factory=tuple_row, binary=True)
    stream_ids_as_bytes(bulk)
    return LogReader(curs, dialect, bulk=bulk)
