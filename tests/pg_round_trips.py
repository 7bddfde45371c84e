"""Counting the round trips a piece of work makes on a PostgreSQL store (libpq's trace)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from psycopg import pq

from ledger.store.eventstore import EventStore


@contextmanager
def round_trips(store: EventStore) -> Iterator[list[int]]:
    """Yields a list that holds, once the block ends, how many times the block sent
    the server something and then waited for its answer, over the store's pooled
    connections. Fails if the block used a connection the pool did not hold
    when it started (one the trace would not have seen)."""
    with traced(store) as counted:
        yield counted
    del counted[1:]


@contextmanager
def traced(store: EventStore) -> Iterator[list[int]]:
    """As `round_trips`, the list holding [round trips, statements executed] once the
    block ends."""
    pool: Any = store.recorder.datastore.pool  # type: ignore[attr-defined]
    connections = list(pool._pool)
    traces: list[IO[str]] = []
    counted: list[int] = []
    for conn in connections:
        trace = tempfile.TemporaryFile("w+")  # noqa: SIM115 - read back below
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        traces.append(trace)
    try:
        yield counted
    finally:
        for conn in connections:
            conn.pgconn.untrace()
        counts = [_counts(trace) for trace in traces]
        counted.extend((sum(waits for waits, _ in counts), sum(sent for _, sent in counts)))
    assert {id(c) for c in pool._pool} <= {id(c) for c in connections}, "a new connection"


def _counts(trace: IO[str]) -> tuple[int, int]:
    """(messages from the client (F) followed by one from the server (B), statements
    the client asked to execute (Execute messages, and simple Query messages))."""
    trace.seek(0)
    waits, sent, previous = 0, 0, ""
    for line in trace:
        direction, *fields = line.split("\t")
        if direction == "B" and previous == "F":
            waits += 1
        if direction == "F" and len(fields) > 1 and fields[1] in {"Execute", "Query"}:
            sent += 1
        previous = direction
    trace.close()
    return waits, sent
