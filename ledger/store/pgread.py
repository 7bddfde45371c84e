"""Reading the log in bulk from PostgreSQL: pages of notifications fetched in binary.

eventsourcing's `select_notifications` reads `SELECT *` as text into dict rows, so
every state is sent as hex and decoded twice; here the same query names its columns
and fetches them in binary as tuples (bytea as its bytes, uuid as a UUID, bigint as
an int): the same Notifications, in the same order, for a fraction of the cost.

A page is fetched and built with the cyclic garbage collector paused: a page is
bounded (`limit` rows) and holds no cycles, and otherwise every few hundred new
rows trigger a collection that walks the rows already built (half the cost of a
page of 10,000).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import Notification
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composed, Identifier


class BinaryNotifications:
    """Mixed into the PostgreSQL recorder ahead of eventsourcing's own."""

    datastore: Any
    events_table_name: str

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        """Up to `limit` notifications from `start` (after it, unless inclusive), up to
        `stop` when given, of `topics` when given, in position order."""
        clauses: list[Composed | SQL] = []
        params: list[Any] = []
        if start is not None:
            clauses.append(SQL("notification_id >= %s" if inclusive_of_start
                               else "notification_id > %s"))
            params.append(start)
        if stop is not None:
            clauses.append(SQL("notification_id <= %s"))
            params.append(stop)
        if topics:
            clauses.append(SQL("topic = ANY(%s)"))
            params.append(list(topics))
        statement = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {0}.{1}"
        ).format(Identifier(self.datastore.schema), Identifier(self.events_table_name))
        if clauses:
            statement += SQL(" WHERE ") + SQL(" AND ").join(clauses)
        statement += SQL(" ORDER BY notification_id LIMIT %s")
        params.append(limit)
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(binary=True, row_factory=tuple_row) as curs,
            gc_paused(),
        ):
            curs.execute(statement, params, prepare=True)
            return [
                Notification(id=position, originator_id=stream, originator_version=version,
                             topic=topic, state=state)
                for position, stream, version, topic, state in curs.fetchall()
            ]


class _Pause:
    """How many threads are inside `gc_paused`, and whether to resume when none is."""

    lock = threading.Lock()
    inside = 0
    resume = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside (it resumes when the last thread inside
    leaves, if it was on when the first came in).

    For building a bounded batch of many small acyclic objects; reference
    counting still frees everything as usual.
    """
    with _Pause.lock:
        if _Pause.inside == 0:
            _Pause.resume = gc.isenabled()
            gc.disable()
        _Pause.inside += 1
    try:
        yield
    finally:
        with _Pause.lock:
            _Pause.inside -= 1
            if _Pause.inside == 0 and _Pause.resume:
                gc.enable()
