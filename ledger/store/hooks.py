"""What the store lets others add to its write transaction, without knowing them.

The composition root (ledger/bootstrap.py) hands the store its write hooks; the
store creates their tables with its own and calls each, with the transaction's
cursor, after every insert of events, so whatever a hook writes commits or rolls
back with the events. The Merkle log's sealing is one (ledger/auditlog/seal.py).

A hook may also have `prepare(dialect) -> (column, finish)`: a store that reads a
write transaction's first reads in one statement with its lock (PostgreSQL) reads
`column` there, a scalar SQL expression without parameters, then passes its value
to `finish` and what that gives to `inserted` as `prepared`. Without `prepared`,
`inserted` reads what it needs itself.

`inserted` returns what it knows once the rows are in (the Merkle log's new tree
head). A store that can tell nothing was written since (SQLite, recorders.py)
passes that back as `prepared` to the next transaction's `inserted`.

PostgreSQL tells so from the log's last event and, for a hook with `stamp(dialect)
-> column`, a scalar SQL expression without parameters giving the transaction id
(xmin, as text) of the row that hook rewrites on every `inserted`: the return is
passed back only while that is the transaction that inserted the log's last event,
the one that returned it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ledger.store.dialect import Cursor, Dialect

# (position, stream id, stream version, topic, stored state) of one inserted event.
StoredRow = tuple[int, Any, int, str, Any]


class WriteHook(Protocol):
    def create_statements(self, dialect: Dialect) -> list[str]:
        """CREATE ... IF NOT EXISTS statements for the hook's own tables."""
        ...

    def inserted(self, cursor: Cursor, dialect: Dialect, rows: Sequence[StoredRow],
                 prepared: Any = None) -> Any:
        """Called in the write transaction just after `rows` were inserted (position order).

        Returns what the next transaction may be `prepared` with (see above), or None.

        On PostgreSQL the cursor may be in pipeline mode, its statements sent with COMMIT;
        one with a `write` method (ledger/store/postgres.py WriteCursor) takes an INSERT,
        UPDATE or DELETE to run in one statement with the transaction's other writes.
        """
        ...
