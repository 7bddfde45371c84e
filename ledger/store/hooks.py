"""What the store lets others add to its write transaction, without knowing them.

The composition root (ledger/bootstrap.py) hands the store its write hooks; the
store creates their tables with its own and calls each, with the transaction's
cursor, after every insert of events, so whatever a hook writes commits or rolls
back with the events. The Merkle log's sealing is one (ledger/auditlog/seal.py).
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

    def inserted(self, cursor: Cursor, dialect: Dialect, rows: Sequence[StoredRow]) -> None:
        """Called in the write transaction just after `rows` were inserted (position order)."""
        ...
