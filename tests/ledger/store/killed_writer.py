"""A writer that dies between its insert and its commit, for the gap-free tests.

    python -m tests.ledger.store.killed_writer DB

Registers practice Z99999 through the real write path, but stops inside the write
transaction just after the insert (the events table locked, positions taken) and
prints "inserted": the test then kills it with SIGKILL.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

from ledger.application.commands import build_command
from ledger.bootstrap import bootstrap


def main(argv: list[str]) -> int:
    with bootstrap(argv[0]) as ledger:
        recorder: Any = ledger.store.recorder
        insert = recorder.insert_in_transaction

        def insert_then_hang(cursor: Any, stored: Sequence[Any], indexes: Any) -> Any:
            ids = insert(cursor, stored, indexes)
            print("inserted", list(ids), flush=True)
            while True:  # until killed: never commits
                time.sleep(1)

        recorder.insert_in_transaction = insert_then_hang
        command = build_command("practice register",
                                {"practice": "Z99999", "name": "Killed", "list_size": 1})
        ledger.service.execute(command, "allocator:Q71", "c-killed")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
