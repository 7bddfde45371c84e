"""The audit tables beside the events, and the SQL to reach them on each store.

    ledger_leaves       leaf_index (PK), position (an index of positions on PostgreSQL and
                        older SQLite ledgers), stream_id, version, leaf_hash
    ledger_nodes        level, node_index, hash: every perfect subtree at levels 4, 8, 12, ...
                        (so any subtree hash costs at most 8 reads: O(log n) proofs)
    ledger_tree         one row: origin, size, last sealed position, compact range, root
    ledger_checkpoints  checkpoint_id, size, root, signed note text, created_at
    ledger_witnesses    name, url, verifier key, the size it last cosigned for this log
    ledger_cosigned     checkpoint_id, size, the checkpoint note with every cosignature got
    ledger_keys         key_id, the log's verifier key, valid from, rotated out at, retired at

They live in the same database (and PostgreSQL schema) as the events.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.store.dialect import Cursor, Dialect, as_tuple

if TYPE_CHECKING:
    from ledger.store.eventstore import EventStore

NODE_LEVEL_STEP = 4  # nodes are stored at levels 4, 8, 12, ...


def create_statements(dialect: Dialect) -> list[str]:
    """The audit tables, created with the store's own (see `MerkleSealing`)."""
    blob = "bytea" if dialect.kind == "postgres" else "BLOB"
    big = "bigint" if dialect.kind == "postgres" else "INTEGER"
    serial = "bigserial" if dialect.kind == "postgres" else "INTEGER"
    # A SQLite ledger keeps its leaves in one b-tree, by leaf index (the rowid): a seal
    # then writes one page, not also an index page for the position. A position's leaf
    # is found from the index its position bounds (`LogReader.leaf_for_position`), and
    # no position is sealed twice: sealing holds SQLite's write lock and refuses any
    # position at or below the last sealed one. A ledger made before keeps its index.
    unique = " UNIQUE" if dialect.kind == "postgres" else ""
    return [
        dialect.sql(
            f"CREATE TABLE IF NOT EXISTS {{leaves}} (leaf_index {big} PRIMARY KEY, "
            f"position {big} NOT NULL{unique}, stream_id {blob} NOT NULL, "
            f"version {big} NOT NULL, leaf_hash {blob} NOT NULL)"
        ),
        dialect.sql(
            f"CREATE TABLE IF NOT EXISTS {{nodes}} (level integer NOT NULL, "
            f"node_index {big} NOT NULL, hash {blob} NOT NULL, "
            f"PRIMARY KEY (level, node_index)){dialect.keyed}"
        ),
        dialect.sql(
            "CREATE TABLE IF NOT EXISTS {tree} (id integer PRIMARY KEY CHECK (id = 1), "
            f"origin text NOT NULL, size {big} NOT NULL, last_position {big} NOT NULL, "
            f"frontier {blob} NOT NULL, root {blob} NOT NULL){dialect.rewritten}"
        ),
        dialect.sql(
            f"CREATE TABLE IF NOT EXISTS {{checkpoints}} (checkpoint_id {serial} PRIMARY KEY, "
            f"size {big} NOT NULL, root {blob} NOT NULL, note text NOT NULL, "
            "created_at text NOT NULL)"
        ),
        dialect.sql(
            "CREATE TABLE IF NOT EXISTS {witnesses} (name text PRIMARY KEY, url text NOT NULL, "
            f"vkey text NOT NULL, size {big} NOT NULL){dialect.keyed}"
        ),
        dialect.sql(
            f"CREATE TABLE IF NOT EXISTS {{cosigned}} (checkpoint_id {big} PRIMARY KEY, "
            f"size {big} NOT NULL, note text NOT NULL)"
        ),
        dialect.sql(
            "CREATE TABLE IF NOT EXISTS {keys} (key_id text PRIMARY KEY, vkey text NOT NULL, "
            f"valid_from text, valid_until text, retired_at text){dialect.keyed}"
        ),
    ]


def dialect_of(store: EventStore) -> Dialect:
    return store.recorder.dialect


@contextmanager
def transaction(store: EventStore, *, commit: bool) -> Iterator[Cursor]:
    """A cursor in one transaction on the store's own connections; rows as tuples."""
    datastore: Any = store.app.recorder.datastore  # type: ignore[attr-defined]
    if store.target.kind == "postgres":
        from psycopg.rows import tuple_row  # noqa: PLC0415

        with (
            datastore.get_connection() as conn,
            conn.transaction(force_rollback=not commit),
            conn.cursor(row_factory=tuple_row) as curs,
        ):
            yield curs
    else:
        with datastore.transaction(commit=commit) as curs:
            yield curs


def ensure_tables(store: EventStore) -> Dialect:
    """The audit tables, created if missing (a ledger written before them).

    When they exist, nothing is written: a read-only session can verify.
    """
    dialect = dialect_of(store)
    found = store.recorder.select_rows(
        dialect.sql("SELECT to_regclass(?)") if dialect.kind == "postgres"
        else "SELECT count(*) FROM sqlite_master WHERE name = ?",
        (dialect.table("ledger_checkpoints"),),
    )
    if found and found[0][0]:
        return dialect
    with transaction(store, commit=True) as curs:
        for statement in create_statements(dialect):
            curs.execute(statement)
    return dialect


def open_read_only(path: str) -> sqlite3.Connection:
    """A plain read-only connection (tuples, no wrappers) to a SQLite ledger file.

    In a directory nobody may write, SQLite cannot make the WAL index it needs to
    read: the file is then read as immutable (nothing can be writing it there).
    """
    uri = Path(path).absolute().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:
        conn.close()
        conn = sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False)
    return conn


@contextmanager
def sqlite_reader(path: str) -> Iterator[sqlite3.Connection]:
    """`open_read_only`, closed afterwards: the fast path of `verify`."""
    conn = open_read_only(path)
    try:
        yield conn
    finally:
        conn.close()


def fetch(curs: Cursor, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    curs.execute(query, params)
    return [as_tuple(r) for r in curs.fetchall()]
