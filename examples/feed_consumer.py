"""A consumer of the ledger's live feed that handles every event exactly once.

    python examples/feed_consumer.py --server http://127.0.0.1:8000 --token="$TOKEN" \
        --store consumer.db

It follows `GET /events/live` (server-sent events) and "handles" each event by
recording it in its own SQLite file. The rule that makes it exactly once, even
after `kill -9` at any instant: the effect of an event and the checkpoint are
written in ONE transaction. If the process dies after handling an event but
before the checkpoint is saved, the transaction never commits, so on restart
neither is there; it resumes from the checkpoint (sent as `Last-Event-ID`) and
handles that event again, for the first time as far as anyone can see.

It also keeps the ledger's id from the first message, and stops rather than
mix two ledgers if the server later reports another (a different or rebuilt
ledger: the checkpoint means nothing there).

Exit codes: 0 stopped (--until reached), 1 wrong ledger, 2 the server refused
(bad token, forbidden), 3 the server could not be reached 20 times running.

Only httpx is needed (pip install httpx). Environment for tests:
FEED_CONSUMER_DIE_AFTER_HANDLING=N kills the process with SIGKILL right after
handling its N-th event of this run, before the checkpoint is saved.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Iterator

import httpx

SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoint (
    one INTEGER PRIMARY KEY CHECK (one = 1), position INTEGER NOT NULL, ledger_id TEXT);
CREATE TABLE IF NOT EXISTS handled (
    position INTEGER PRIMARY KEY, event TEXT NOT NULL, body TEXT NOT NULL);
"""


def open_store(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)  # explicit BEGIN/COMMIT below
    db.executescript(SCHEMA)
    db.execute("INSERT OR IGNORE INTO checkpoint VALUES (1, 0, NULL)")
    return db


def checkpoint(db: sqlite3.Connection) -> tuple[int, str | None]:
    position, ledger_id = db.execute("SELECT position, ledger_id FROM checkpoint").fetchone()
    return position, ledger_id


def messages(response: httpx.Response) -> Iterator[tuple[str, str]]:
    """(id, data) of each server-sent event; comments (pings) skipped."""
    ident, data = "", list[str]()
    for line in response.iter_lines():
        if not line:
            if data:
                yield ident, "\n".join(data)
            ident, data = "", []
        elif line.startswith("id:"):
            ident = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def handle(db: sqlite3.Connection, row: dict[str, object]) -> None:
    """The consumer's own work; here: keep the event. Runs inside the open transaction."""
    db.execute("INSERT INTO handled VALUES (?, ?, ?)",
               (row["position"], row["event"], json.dumps(row, sort_keys=True)))


def follow(server: str, token: str, db: sqlite3.Connection, until: int | None,
           die_after: int | None) -> int:
    handled_now = failures = 0
    while failures < 20:
        position, known_ledger = checkpoint(db)
        if until is not None and position >= until:
            return 0
        headers = {"Authorization": f"Bearer {token}", "Last-Event-ID": str(position),
                   "Accept": "text/event-stream"}
        try:
            with httpx.stream("GET", f"{server}/events/live", headers=headers,
                              timeout=httpx.Timeout(10, read=60)) as response:
                failures = 0
                if response.status_code != 200:
                    response.read()
                    print(f"refused: {response.status_code} {response.text}", file=sys.stderr)
                    return 2
                for ident, data in messages(response):
                    message = json.loads(data)
                    row = message["event"]
                    if known_ledger is None:
                        known_ledger = message["ledger_id"]
                    elif message["ledger_id"] != known_ledger:
                        print(f"another ledger: {message['ledger_id']}, not {known_ledger}",
                              file=sys.stderr)
                        return 1
                    if int(ident) <= position:
                        continue  # never expected: the server resumes after Last-Event-ID
                    db.execute("BEGIN IMMEDIATE")
                    handle(db, row)
                    handled_now += 1
                    if die_after is not None and handled_now >= die_after:
                        os.kill(os.getpid(), signal.SIGKILL)  # handled, checkpoint not saved
                    db.execute("UPDATE checkpoint SET position = ?, ledger_id = ?",
                               (int(ident), known_ledger))
                    db.execute("COMMIT")
                    position = int(ident)
                    if until is not None and position >= until:
                        return 0
        except httpx.TransportError as error:
            failures += 1
            print(f"cannot reach {server}: {error}; retrying", file=sys.stderr)
            time.sleep(0.5)
    return 3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default=os.environ.get("LEDGER_SERVER",
                                                           "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("LEDGER_TOKEN"))
    parser.add_argument("--store", default="consumer.db", help="the consumer's SQLite file")
    parser.add_argument("--until", type=int, help="stop once this position is handled")
    args = parser.parse_args()
    if not args.token:
        parser.error("--token (or LEDGER_TOKEN) is required")
    die = os.environ.get("FEED_CONSUMER_DIE_AFTER_HANDLING")
    db = open_store(args.store)
    try:
        return follow(args.server.rstrip("/"), args.token, db, args.until,
                      int(die) if die else None)
    finally:
        db.close()


if __name__ == "__main__":
    sys.exit(main())
