"""Pages a single-command write transaction writes to SQLite's WAL, by table, and its CPU.

    python bench/wal_pages.py                    # 400 spend commits after 2,000 warm-up
    python bench/wal_pages.py --commands 1000 --warm 20000

Runs `spend commit`s one a transaction on a new SQLite ledger (the write_path bench's
single-command case) and reads the WAL after each chunk of them: every frame is one
page written, and the frames up to a commit frame are one transaction. Each page is
named by the table or index whose b-tree holds it (SQLite's dbstat). Prints the pages
per commit, by b-tree, and the CPU time (user + system) per command. Beside it, bare
eventsourcing's one event a save on its own file. Pages per commit do not depend on
the machine's load: they are what each commit waits to fsync.
"""

from __future__ import annotations

import argparse
import collections
import resource
import sqlite3
import struct
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eventsourcing.application import Application

sys.path.insert(0, str(Path(__file__).resolve().parent))

from write_path import Counter, commit_line, setup_practice

from ledger.application.commands import build_command
from ledger.bootstrap import bootstrap

CHUNK = 50  # commits between WAL reads: well under the 1,000-page autocheckpoint


def wal_transactions(db: str) -> list[list[int]]:
    """The page numbers of each committed transaction in `db`'s WAL, oldest first."""
    data = Path(db + "-wal").read_bytes()
    if len(data) < 32:
        return []
    page_size = struct.unpack(">I", data[8:12])[0]
    salts = data[16:24]
    done: list[list[int]] = []
    pages: list[int] = []
    at = 32
    while at + 24 + page_size <= len(data):
        page, commit = struct.unpack(">II", data[at:at + 8])
        if data[at + 8:at + 16] != salts:  # left over from before the last restart
            break
        pages.append(page)
        if commit:
            done.append(pages)
            pages = []
        at += 24 + page_size
    return done


def with_page_size(db: str, page_size: int | None) -> None:
    """Make `db` empty with pages of `page_size` bytes (None: SQLite's default, 4,096)."""
    if page_size is None:
        return
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA page_size = {int(page_size)}")
        conn.execute("CREATE TABLE sized (x)")
        conn.execute("DROP TABLE sized")


def page_size_of(db: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("PRAGMA page_size").fetchone()[0])


def owners(db: str) -> dict[int, str]:
    with sqlite3.connect(db) as conn:
        return {int(page): str(name) for name, page in
                conn.execute("SELECT name, pageno FROM dbstat")}


def checkpoint(db: str) -> None:
    with sqlite3.connect(db) as conn:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0, "the WAL could not be checkpointed (a reader held it)"


def measure(db: str, n: int, run: Callable[[int], None]) -> tuple[collections.Counter[str],
                                                                   int, float]:
    """(pages written by b-tree, transactions, CPU seconds) over `n` calls of `run`."""
    by_tree: collections.Counter[str] = collections.Counter()
    transactions = 0
    cpu = 0.0
    i = 0
    while i < n:
        checkpoint(db)
        before = resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(min(CHUNK, n - i)):
            run(i)
            i += 1
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu += (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        names = owners(db)
        for pages in wal_transactions(db):
            transactions += 1
            by_tree.update(names.get(page, f"page {page}") for page in pages)
    return by_tree, transactions, cpu


def report(title: str, db: str, by_tree: collections.Counter[str], transactions: int,
           cpu: float, n: int) -> None:
    total = sum(by_tree.values())
    frame = page_size_of(db) + 24
    print(f"{title}: {total / transactions:.2f} pages a commit "
          f"({total * frame / transactions / 1024:.1f} KiB of WAL) over {transactions} commits, "
          f"CPU {cpu / n * 1e6:.0f} us a command")
    for name, count in by_tree.most_common():
        print(f"    {count / transactions:6.2f}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=400)
    parser.add_argument("--warm", type=int, default=2000, help="commits before measuring")
    parser.add_argument("--ids", choices=["bench", "random"], default="bench",
                        help="command ids as write_path gives them, or random (the default "
                             "of `execute` and most clients' idempotency keys)")
    parser.add_argument("--page-size", type=int, default=None,
                        help="make both databases with pages of this many bytes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bare_db = str(Path(tmp) / "bare.db")
        with_page_size(bare_db, args.page_size)
        app: Application[Any] = Application(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                                                 "SQLITE_DBNAME": bare_db})
        counter = Counter()
        app.save(counter)
        for _ in range(args.warm):
            counter.increment()
            app.save(counter)

        def bare(_: int) -> None:
            counter.increment()
            app.save(counter)

        report("bare eventsourcing, 1 event a save", bare_db,
               *measure(bare_db, args.commands, bare), args.commands)
        app.close()

        db = str(Path(tmp) / "ledger.db")
        with_page_size(db, args.page_size)
        practice = "B10000"
        setup_practice(db, practice)
        with bootstrap(db) as ledger:
            service = ledger.service

            def command(i: int) -> None:
                line = commit_line(i, practice, "2024-06-01")
                command_id = line["command_id"] if args.ids == "bench" else None
                service.execute(build_command(line["command"], line["args"]), line["actor"],
                                command_id)

            for i in range(args.warm):
                command(i)
            report("ledger spend commit, 1 a transaction", db,
                   *measure(db, args.commands, lambda i: command(args.warm + i)), args.commands)


if __name__ == "__main__":
    main()
