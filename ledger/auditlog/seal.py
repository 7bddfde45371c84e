"""Sealing: every stored event becomes the next leaf of the Merkle log, in position order.

Two ways in, one function doing the work (`seal_rows`):

- in the write transaction (the hook): the recorder passes its cursor and the rows it
  has just inserted with their positions, so events and leaves commit together;
- as a follower (`seal`): whatever is stored but not yet sealed (an existing ledger on
  first run, or events written before the hook), one transaction per chunk.

Both take the tree-head row under a write lock and refuse a position at or below the
last sealed one, and `ledger_leaves` has the leaf index as primary key (and, on
PostgreSQL and older SQLite ledgers, a unique position), so two sealers (two processes,
or the hook and a follower) can never give one position two leaves, nor one leaf index
two events: a sealer working from a stale head would reuse its leaf indexes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from ledger.audit.leaf import event_leaf_hash, state_bytes, stream_bytes
from ledger.audit.merkle import EMPTY_ROOT, CompactRange
from ledger.auditlog.tables import NODE_LEVEL_STEP, create_statements, ensure_tables
from ledger.auditlog.tables import transaction as store_transaction
from ledger.domain.errors import LogDamaged
from ledger.store.dialect import Cursor, Dialect, as_tuple, insert_values, pg_rows
from ledger.store.hooks import StoredRow

if TYPE_CHECKING:
    from ledger.store.eventstore import EventStore

ORIGIN_PREFIX = "commissioning-ledger/"
# Events sealed per follower transaction. The transaction holds the tree head's lock
# while it hashes in Python, and PostgreSQL ends a session idle in a transaction for
# 5 s (eventsourcing's default guard); small chunks keep each pause far below that
# on a busy machine and let writers waiting on the head in between.
SEAL_CHUNK = 1_000


class SealError(LogDamaged):
    """The log cannot be extended as asked (a position already sealed, out of order).

    The stored events no longer match their Merkle log (rows removed after they
    were sealed, or written around the ledger): nothing is recorded.
    """

    def __init__(self, message: str) -> None:
        super().__init__("merkle-log", message)


# Built once a sealed write and only read after: a slotted dataclass that is not
# frozen, which sets each field as an attribute (a frozen one calls object.__setattr__).
@dataclass(slots=True)
class TreeHead:
    origin: str
    size: int
    last_position: int
    compact: CompactRange
    root: bytes


def read_head(curs: Cursor, dialect: Dialect, *, for_update: bool = False) -> TreeHead | None:
    _select_head(curs, dialect, for_update=for_update)
    return _head_of(curs)


_LAST_LEAF = ("(SELECT position FROM {leaves} "
              "WHERE leaf_index = CASE WHEN {tree}.size = 0 THEN 0 ELSE {tree}.size - 1 END)")
"""The position the head's last leaf seals, read beside the head to seal after it
(`_select_head`); for an empty head, leaf 0's, which must not exist."""


def _select_head(curs: Cursor, dialect: Dialect, *, for_update: bool) -> None:
    """The tree head; read to seal (`for_update`), with the position of its last leaf.

    A sealer extends the log from the head, and refuses positions at or below its last
    sealed one; a head that does not match its leaves (an edited row) would let it seal
    a position twice where no index of positions forbids it (new SQLite ledgers, tables.py),
    so `_head_of` refuses it: one more lookup by primary key in the same statement. An
    empty head looks up leaf 0, which must not exist: a head deleted (and made again,
    empty) or cut to size 0 would seal leaf 0 a second time.
    """
    if not for_update:
        curs.execute(dialect.sql(
            "SELECT origin, size, last_position, frontier, root FROM {tree} WHERE id = 1"))
        return
    lock = " FOR UPDATE" if dialect.kind == "postgres" else ""
    curs.execute(dialect.sql(
        f"SELECT origin, size, last_position, frontier, root, {_LAST_LEAF} "  # noqa: S608
        "FROM {tree} WHERE id = 1") + lock)


def _head_of(curs: Cursor) -> TreeHead | None:
    """The head `_select_head` read; SealError if read to seal and it does not end at its
    last leaf."""
    row = curs.fetchone()
    return None if row is None else _head_from(as_tuple(row))


def _head_from(row: Sequence[Any]) -> TreeHead:
    """The head in `row` as `_select_head` reads it; SealError if read to seal (with the
    position of its last leaf) and it does not end at its last leaf."""
    origin, size, last, frontier, root, *tail = row
    if tail and not int(size) and tail[0] is not None:
        raise SealError("the log no longer matches its Merkle log: its tree head holds no "
                        "leaves, but leaf 0 is stored; nothing recorded, run `ledger verify`")
    if tail and int(size) and tail[0] != last:
        raise SealError(
            f"the log no longer matches its Merkle log: its head says leaf {int(size) - 1} "
            f"seals position {int(last)}, but that leaf "
            + ("is missing" if tail[0] is None else f"seals position {int(tail[0])}")
            + "; nothing recorded, run `ledger verify`")
    try:
        compact = CompactRange.decode(int(size), bytes(frontier))
    except ValueError as misfit:
        raise SealError(f"the log no longer matches its Merkle log: its head's {misfit}; "
                        "nothing recorded, run `ledger verify`") from None
    return TreeHead(str(origin), int(size), int(last), compact, bytes(root))


def _create_head(curs: Cursor, dialect: Dialect) -> None:
    origin = ORIGIN_PREFIX + str(uuid.uuid4())
    insert = "INSERT OR IGNORE INTO" if dialect.kind == "sqlite" else "INSERT INTO"
    conflict = " ON CONFLICT (id) DO NOTHING" if dialect.kind == "postgres" else ""
    curs.execute(
        dialect.sql(
            insert + " {tree} (id, origin, size, last_position, frontier, root) "
            "VALUES (1, ?, 0, 0, ?, ?)" + conflict
        ),
        (origin, b"", EMPTY_ROOT),
    )


def lock_head(curs: Cursor, dialect: Dialect) -> TreeHead:
    """The tree head, created if need be, locked for writing until the transaction ends."""
    _create_head(curs, dialect)  # a write first: SQLite takes its write lock here
    if dialect.kind == "sqlite":
        curs.execute(dialect.sql("UPDATE {tree} SET size = size WHERE id = 1"))
    head = read_head(curs, dialect, for_update=True)
    assert head is not None
    return head


def seal_rows(
    curs: Cursor, dialect: Dialect, rows: Sequence[StoredRow], head: TreeHead | None = None
) -> TreeHead:
    """Append one leaf per row, in the caller's transaction; rows in position order.

    This is the write-path hook: call it with the recorder's cursor after inserting
    the events, with (position, originator_id, originator_version, topic, state).
    `head` is the tree head the caller has already locked in this transaction.
    """
    head = head or lock_head(curs, dialect)
    if not rows:
        return head
    compact = head.compact.copy()
    last = head.last_position
    # On SQLite the hashes are bound as bytearrays: the same BLOBs, bound with less work
    # (ledger.store.recorders.sqlite_blob). A stream's id is worked out once a batch.
    blob: Callable[[bytes], Any] = bytes if dialect.kind == "postgres" else bytearray
    streams: dict[str, tuple[bytes, Any]] = {}
    positions: list[int] = []
    stream_ids: list[Any] = []
    versions: list[int] = []
    hashes: list[bytes] = []
    for position, stream, version, topic, state in rows:
        if position <= last:
            raise SealError(
                f"the log no longer matches its Merkle log: position {position} "
                f"cannot be sealed after position {last} (already sealed or out of "
                "order); nothing recorded, run `ledger verify`"
            )
        known = streams.get(stream) if type(stream) is str else None
        if known is None:
            stream_id = stream_bytes(stream)
            known = (stream_id, blob(stream_id))
            if type(stream) is str:
                streams[stream] = known
        hashes.append(event_leaf_hash(position, known[0], version, topic,
                                      state if type(state) is bytes else state_bytes(state)))
        positions.append(position)
        stream_ids.append(known[1])
        versions.append(version)
        last = position
    indexes = range(head.size, head.size + len(hashes))
    size = indexes.stop
    nodes = compact.extend(hashes, every=NODE_LEVEL_STEP)
    root = compact.root()
    if dialect.kind == "postgres":
        _write_pg(curs, dialect,
                  list(zip(indexes, positions, stream_ids, versions, hashes, strict=True)),
                  nodes, (size, last, compact.encode(), root))
        return TreeHead(head.origin, size, last, compact, root)
    raw = getattr(curs, "sqlite_cursor", curs)  # eventsourcing's wraps sqlite3's
    insert_values(raw, "ledger_leaves (leaf_index, position, stream_id, version, leaf_hash)",
                  (indexes, positions, stream_ids, versions, map(bytearray, hashes)))
    if nodes:
        insert_values(raw, "ledger_nodes (level, node_index, hash)", (
            [node[0] for node in nodes], [node[1] for node in nodes],
            [bytearray(node[2]) for node in nodes]))
    curs.execute(
        dialect.sql(
            "UPDATE {tree} SET size = ?, last_position = ?, frontier = ?, root = ? WHERE id = 1"
        ),
        (size, last, compact.encode(), root),
    )
    return TreeHead(head.origin, size, last, compact, root)


def _seal_next(curs: Cursor, dialect: Dialect, row: StoredRow, head: TreeHead) -> TreeHead:
    """`seal_rows` of the one row at the position after `head`'s last: the same leaf,
    nodes and head (the leaf appended to a copy of the compact range, RFC 6962 §2.1),
    without the checks of an order `head` already proves, and on SQLite written
    straight to the recorder's own cursor."""
    position, stream, version, topic, state = row
    stream_id = stream.bytes if type(stream) is uuid.UUID else stream_bytes(stream)
    if type(state) is not bytes:
        state = state_bytes(state)
    leaf_hash = event_leaf_hash(position, stream_id, version, topic, state)
    leaf = (head.size, position, stream_id, version, leaf_hash)
    compact = head.compact.copy()
    nodes = [n for n in compact.append(leaf_hash) if n[0] % NODE_LEVEL_STEP == 0]
    size, root, encoded = compact.size, compact.root(), compact.encode()
    if dialect.kind == "postgres":
        _write_pg(curs, dialect, [leaf], nodes, (size, position, encoded, root))
    else:
        # Hashes bound as bytearrays: the same BLOBs, bound with less work (sqlite_blob).
        raw = getattr(curs, "sqlite_cursor", curs)  # eventsourcing's wraps sqlite3's
        raw.execute(_SQLITE_LEAF, (leaf[0], position, bytearray(stream_id), version,
                                   bytearray(leaf[4])))
        for level, node_index, node in nodes:
            raw.execute(_SQLITE_NODE, (level, node_index, bytearray(node)))
        raw.execute(_SQLITE_HEAD, (size, position, bytearray(encoded), bytearray(root)))
    return TreeHead(head.origin, size, position, compact, root)


_SQLITE_LEAF = ("INSERT INTO ledger_leaves (leaf_index, position, stream_id, version, "
                "leaf_hash) VALUES (?, ?, ?, ?, ?)")
_SQLITE_NODE = "INSERT INTO ledger_nodes (level, node_index, hash) VALUES (?, ?, ?)"
_SQLITE_HEAD = ("UPDATE ledger_tree SET size = ?, last_position = ?, frontier = ?, root = ? "
                "WHERE id = 1")


def _write_pg(curs: Cursor, dialect: Dialect, leaves: Sequence[tuple[Any, ...]],
              nodes: Sequence[tuple[Any, ...]], head: tuple[int, int, bytes, bytes]) -> None:
    """The leaves, the nodes and the new head (size, last position, frontier, root) in
    one statement; queued to go with the write's COMMIT when the cursor queues writes
    (ledger.store.postgres.WriteCursor), with the write's own."""
    source, params = pg_rows(leaves, ("bigint", "bigint", "bytea", "bigint", "bytea"))
    writes = [(dialect.sql("INSERT INTO {leaves} (leaf_index, position, stream_id, version, "
                           "leaf_hash) ") + source, params)]
    if nodes:
        source, more = pg_rows(nodes, ("integer", "bigint", "bytea"))
        writes.append((dialect.sql("INSERT INTO {nodes} (level, node_index, hash) ") + source,
                       more))
    writes.append((dialect.sql("UPDATE {tree} SET size = %b, last_position = %b, "
                               "frontier = %b, root = %b WHERE id = 1"), list(head)))
    queue = getattr(curs, "write", None)
    if queue is not None:
        for statement, values in writes:
            queue(statement, values)
        return
    *inserts, (update, values) = writes
    curs.execute(
        "WITH " + ", ".join(f"w{i} AS ({statement})" for i, (statement, _) in enumerate(inserts))
        + " " + update,
        [value for _, more in inserts for value in more] + values,
    )


def unsealed_rows(curs: Cursor, dialect: Dialect, after: int, limit: int) -> list[StoredRow]:
    curs.execute(
        dialect.sql(
            "SELECT {position}, originator_id, originator_version, topic, state FROM {events} "
            "WHERE {position} > ? ORDER BY {position} LIMIT ?"
        ),
        (after, limit),
    )
    return [as_tuple(r) for r in curs.fetchall()]


def seal_inserted(curs: Cursor, dialect: Dialect, rows: Sequence[StoredRow],
                  head: TreeHead | None = None) -> TreeHead:
    """The write-path hook: seal the rows just inserted, in the inserting transaction.

    Any older events still unsealed (a ledger written before the hook) are sealed
    first, so the log never skips a position. `head` is the tree head as read
    (FOR UPDATE) earlier in this transaction, if it was (`MerkleSealing.prepare`).
    """
    # The caller has just inserted events, so it already holds the store's write
    # lock (SQLite's, or PostgreSQL's on the events table; FOR UPDATE adds the row's):
    # reading the head is enough, and it is created only on a ledger's first write.
    if head is not None and len(rows) == 1 and rows[0][0] == head.last_position + 1:
        return _seal_next(curs, dialect, rows[0], head)
    head = head or read_head(curs, dialect, for_update=True) or lock_head(curs, dialect)
    if not rows:
        return head
    backlog: list[StoredRow] = []
    if rows[0][0] > head.last_position + 1:  # positions between them went unsealed
        curs.execute(
            dialect.sql(
                "SELECT {position}, originator_id, originator_version, topic, state "
                "FROM {events} WHERE {position} > ? AND {position} < ? ORDER BY {position}"
            ),
            (head.last_position, rows[0][0]),
        )
        backlog = [as_tuple(r) for r in curs.fetchall()]
    return seal_rows(curs, dialect, [*backlog, *rows], head)


class MerkleSealing:
    """The store's write hook that makes every inserted event the next leaf of the log.

    Given to the store by the composition root (ledger/bootstrap.py); the store
    creates these tables with its own and calls `inserted` in each write transaction.
    """

    def create_statements(self, dialect: Dialect) -> list[str]:
        return create_statements(dialect)

    def prepare(self, dialect: Dialect) -> tuple[str, Callable[[Any], TreeHead | None]]:
        """The read of the tree head (FOR UPDATE) as one column of the write transaction's
        first statement (PostgreSQL: JSON text, the hashes in hex), and the function
        that gives the head from its value (None: no head yet). SealError from it if
        the head does not end at its last leaf."""
        return dialect.sql(
            "(SELECT json_build_array(origin, size, last_position, encode(frontier, 'hex'), "  # noqa: S608
            f"encode(root, 'hex'), {_LAST_LEAF})::text "
            "FROM {tree} WHERE id = 1 FOR UPDATE)"
        ), _head_read

    def stamp(self, dialect: Dialect) -> str:
        """The transaction that last wrote the tree head (its xmin, PostgreSQL), while the
        head ends at its last leaf and that transaction inserted the leaf (else NULL):
        every seal rewrites the head and inserts its leaves, so one the transaction that
        inserted the log's last event wrote is still the head that transaction left, and
        a leaf deleted or rewritten since is not taken for it (`prepare` reads the leaf)."""
        return dialect.sql(
            "(SELECT t.xmin::text FROM {tree} t JOIN {leaves} l "
            "ON l.leaf_index = t.size - 1 AND l.position = t.last_position "
            "AND l.xmin = t.xmin WHERE t.id = 1)")

    def inserted(self, cursor: Cursor, dialect: Dialect, rows: Sequence[StoredRow],
                 prepared: TreeHead | None = None) -> TreeHead:
        """Seal `rows`; `prepared` is the tree head as this transaction found it, if
        known (read with its lock, or left by the previous write with nothing since)."""
        return seal_inserted(cursor, dialect, rows, prepared)


def _head_read(value: str | None) -> TreeHead | None:
    """The head as `MerkleSealing.prepare`'s column reads it."""
    if value is None:
        return None
    origin, size, last, frontier, root, position = orjson.loads(value)
    return _head_from((origin, size, last, bytes.fromhex(frontier), bytes.fromhex(root),
                       position))


@dataclass(frozen=True, slots=True)
class SealResult:
    sealed: int
    head: TreeHead


def seal(
    store: EventStore,
    chunk: int = SEAL_CHUNK,
    progress: Callable[[int], None] | None = None,
) -> SealResult:
    """Seal every stored event not yet in the log; safe to run from several processes."""
    dialect = ensure_tables(store)
    sealed = 0
    while True:
        with store_transaction(store, commit=True) as curs:
            head = lock_head(curs, dialect)
            rows = unsealed_rows(curs, dialect, head.last_position, chunk)
            head = seal_rows(curs, dialect, rows)
        sealed += len(rows)
        if progress is not None and rows:
            progress(len(rows))
        if len(rows) < chunk:
            return SealResult(sealed, head)


def current_origin(store: EventStore) -> str | None:
    """The log's origin, read alone: it names the log even when its head is damaged."""
    dialect = ensure_tables(store)
    with store_transaction(store, commit=False) as curs:
        curs.execute(dialect.sql("SELECT origin FROM {tree} WHERE id = 1"))
        row = curs.fetchone()
        return None if row is None else str(as_tuple(row)[0])


def current_head(store: EventStore) -> TreeHead | None:
    dialect = ensure_tables(store)
    with store_transaction(store, commit=False) as curs:
        return read_head(curs, dialect)
