"""A writer process for the concurrency tests: commits spends against one budget.

    python -m tests.ledger.application.concurrent_writer DB WORKER COUNT GO_FILE [--shared-ids]

Waits until GO_FILE exists (so both processes start together), then commits
COUNT spends of £1 against A81001's acute element, one command each, and prints
a JSON summary: applied, already applied, refused (by rule) and errors.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

from ledger.application.commands import build_command
from ledger.bootstrap import bootstrap
from ledger.domain.errors import LedgerError


def main(argv: list[str]) -> int:
    db, worker, count, go = argv[0], argv[1], int(argv[2]), Path(argv[3])
    shared_ids = "--shared-ids" in argv
    outcome: Counter[str] = Counter()
    with bootstrap(db) as ledger:
        deadline = time.monotonic() + 60
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        for n in range(count):
            key = f"{n}" if shared_ids else f"{worker}-{n}"
            command = build_command("spend commit", {
                "practice": "A81001", "year": "2024-25", "element": "acute",
                "ref": f"R-{key}", "amount": "1", "provider": "RTR", "service": "Hip",
                "on": "2024-07-01",
            })
            try:
                answer = ledger.service.execute(command, "practice:A81001", f"c-{key}")
            except LedgerError as error:
                outcome[f"refused:{error.rule}"] += 1
            except Exception as error:  # noqa: BLE001 - reported to the test, which fails
                outcome[f"error:{type(error).__name__}:{error}"] += 1
            else:
                outcome["already applied" if answer.already_applied else "applied"] += 1
    print(json.dumps(dict(outcome)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
