"""Waiting for the next commit: LISTEN/NOTIFY on PostgreSQL, polling on SQLite.

On PostgreSQL every write transaction sends `NOTIFY` on the ledger's channel
(ledger/store/postgres.py: the schema and events table, since channels are
per database), and PostgreSQL delivers it only when the transaction commits. A
reader at the head (the live feed, `ledger project --follow`, `ledger events
--follow`) `wait`s on a `CommitSignal` instead of polling: on PostgreSQL it holds
a connection of its own that LISTENs, so a commit by any process wakes it at
once; on SQLite, which has no such signal, `wait` just sleeps.

The signal only says "look again": a reader still reads from its own position,
so a notification lost (a dropped connection) costs at most one `timeout`, never
an event. LISTEN is issued when the signal is made, so a commit after that and
before the first `wait` is not missed either.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger.store.eventstore import EventStore

RECONNECT_SECONDS = 1.0  # at most one attempt to LISTEN again per this many seconds


class CommitSignal:
    """No signal to wait on (SQLite): `wait` sleeps for its timeout."""

    @property
    def listening(self) -> bool:
        """Whether a commit wakes `wait` (False: the reader must poll)."""
        return False

    def wait(self, timeout: float) -> bool:
        """Block until the next commit or `timeout` seconds; True when a commit woke it."""
        time.sleep(timeout)
        return False

    def close(self) -> None:
        """Release what the signal holds (a connection); idempotent."""


class ListeningSignal(CommitSignal):
    """LISTEN on the ledger's channel over a psycopg connection of its own.

    Thread-safe (one waiter at a time). A broken connection is dropped and LISTENed
    again on a later `wait`; until then `listening` is False and `wait` sleeps.
    """

    def __init__(self, connect: dict[str, Any], channel: str) -> None:
        self._connect = connect
        self._channel = channel
        self._conn: Any = None
        self._tried = 0.0
        self._lock = threading.Lock()
        self._closed = False
        self._listen()

    @property
    def listening(self) -> bool:
        return self._conn is not None

    def _listen(self) -> None:
        import psycopg  # noqa: PLC0415 - only PostgreSQL users load psycopg
        from psycopg import sql  # noqa: PLC0415

        self._tried = time.monotonic()
        try:
            conn = psycopg.connect(**self._connect, autocommit=True)
        except psycopg.Error:
            return
        try:
            conn.execute(sql.SQL("LISTEN {0}").format(sql.Identifier(self._channel)))
        except psycopg.Error:
            conn.close()
            return
        self._conn = conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def wait(self, timeout: float) -> bool:
        import psycopg  # noqa: PLC0415

        with self._lock:
            if self._closed:
                return super().wait(timeout)
            if self._conn is None and time.monotonic() - self._tried >= RECONNECT_SECONDS:
                self._listen()
            if self._conn is None:
                time.sleep(timeout)
                return False
            try:
                woken = any(True for _ in self._conn.notifies(timeout=timeout, stop_after=1))
                if woken:  # one look serves every commit made so far
                    for _ in self._conn.notifies(timeout=0):
                        pass
            except psycopg.Error:
                self._drop()
                return False
            return woken

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop()


def commit_signal(store: EventStore) -> CommitSignal:
    """What a reader at the head of `store` waits on: a LISTENing connection on
    PostgreSQL (made now; its LISTEN is in place when this returns), else polling."""
    recorder = store.recorder
    channel = getattr(recorder, "channel_name", None)
    if recorder.dialect.kind != "postgres" or not isinstance(channel, str):
        return CommitSignal()
    pool: Any = recorder.datastore.pool  # type: ignore[attr-defined]
    connect = {k: v for k, v in pool.kwargs.items() if k != "row_factory"}
    return ListeningSignal(connect, channel)
