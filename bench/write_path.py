"""Write-path benchmark: bare eventsourcing vs the ledger, on the same store, in one run.

    python bench/write_path.py                       # SQLite file in a temp dir
    python bench/write_path.py --store postgres      # PostgreSQL (own schema, dropped after)
    python bench/write_path.py --commands 2000 --apply 100000

Prints three rates and two ratios:
  bare      eventsourcing Aggregate, one trivial event per save
  command   the ledger's `spend commit` through LedgerService.execute (one event per command)
  apply     `ledger apply` of N commitments (batched, each line idempotent)
  ratio command / bare   (issue target >= 0.7)
  apply rate             (issue target >= 20,000 commands/s on a SQLite file)
Not a test: figures depend on the machine; compare ratios, measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from psycopg import sql

from ledger.application.batch import apply_lines
from ledger.application.commands import build_command
from ledger.bootstrap import bootstrap

PG_BASE = "postgresql://postgres@127.0.0.1:5432/test"
ALLOCATOR = "allocator:Q71"


class Counter(Aggregate):
    @event("Incremented")
    def increment(self) -> None:
        pass


def bare_rate(env: dict[str, str], n: int) -> float:
    app: Application[Any] = Application(env=env)
    counter = Counter()
    app.save(counter)
    start = time.perf_counter()
    for _ in range(n):
        counter.increment()
        app.save(counter)
    elapsed = time.perf_counter() - start
    app.close()
    return n / elapsed


def commit_line(i: int, practice: str, day: str) -> dict[str, Any]:
    return {
        "command": "spend commit",
        "command_id": f"bench-{practice}-{i}",
        "actor": f"practice:{practice}",
        "args": {
            "practice": practice,
            "year": "2024-25",
            "element": "acute",
            "ref": f"R-{practice}-{i:07d}",
            "amount": "125.00",
            "provider": "RTR",
            "service": "Hip replacement",
            "qs": ["QS3"],
            "on": day,
        },
    }


def setup_practice(db: str, practice: str) -> None:
    with bootstrap(db) as ledger:
        service = ledger.service
        service.execute(
            build_command(
                "practice register",
                {"practice": practice, "name": "Bench Surgery", "list_size": 9000,
                 "on": "2024-04-01"},
            ),
            ALLOCATOR,
        )
        service.execute(
            build_command(
                "budget allocate",
                {
                    "practice": practice,
                    "year": "2024-25",
                    "element": {"acute": "900000000"},
                    "on": "2024-04-01",
                },
            ),
            ALLOCATOR,
        )


def command_rate(db: str, n: int, practice: str = "B00001") -> float:
    setup_practice(db, practice)
    commands = [commit_line(i, practice, "2024-06-01") for i in range(n)]
    with bootstrap(db) as ledger:
        start = time.perf_counter()
        for line in commands:
            ledger.service.execute(
                build_command(line["command"], line["args"]), line["actor"], line["command_id"]
            )
        elapsed = time.perf_counter() - start
    return n / elapsed


@contextlib.contextmanager
def sealing_off() -> Iterator[None]:
    """The write path without its Merkle sealing hook, to measure what sealing costs."""
    from ledger.auditlog.seal import MerkleSealing  # noqa: PLC0415

    def skip(_self: Any, _curs: Any, _dialect: Any, _rows: Any) -> None:
        return None

    original = MerkleSealing.inserted
    MerkleSealing.inserted = skip  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        MerkleSealing.inserted = original  # type: ignore[method-assign]


def apply_rate(db: str, n: int) -> float:
    practice = "B00002"
    setup_practice(db, practice)
    lines = [orjson.dumps(commit_line(i, practice, "2024-06-02")).decode() for i in range(n)]
    with bootstrap(db) as ledger:
        start = time.perf_counter()
        report = apply_lines(ledger.service, lines)
        elapsed = time.perf_counter() - start
    assert report.applied == n, (report.applied, report.refused[:3])
    return n / elapsed


@contextlib.contextmanager
def stores(kind: str) -> Iterator[tuple[dict[str, str], str]]:
    """(eventsourcing env for the bare app, ledger --db) on the same kind of store."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            bare = {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                    "SQLITE_DBNAME": str(Path(tmp) / "bare.db")}
            yield bare, str(Path(tmp) / "ledger.db")
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {0}").format(sql.Identifier(schema)))
    bare = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": "test", "POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": "5432",
        "POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": "", "POSTGRES_SCHEMA": schema,
    }
    try:
        yield bare, f"{PG_BASE}?schema={schema}"
    finally:
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {0} CASCADE").format(sql.Identifier(schema)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--commands", type=int, default=2000, help="single commands to time")
    parser.add_argument("--apply", type=int, default=100_000, help="lines for ledger apply")
    args = parser.parse_args()
    with stores(args.store) as (bare_env, db):
        bare = bare_rate(bare_env, args.commands)
        command = command_rate(db, args.commands)
        unsealed = 0.0
        if args.store == "sqlite":
            with sealing_off():
                unsealed = command_rate(db, args.commands, practice="B00003")
        applied = apply_rate(db, args.apply) if args.apply else 0.0
    print(f"store: {args.store}")
    print(f"bare eventsourcing      {bare:10,.0f} saves/s")
    print(f"ledger spend commit     {command:10,.0f} commands/s   ratio {command / bare:.2f}x bare"
          "   (target >= 0.70)")
    if unsealed:
        print(f"  without sealing       {unsealed:10,.0f} commands/s   sealing adds "
              f"{unsealed / command - 1:.0%} per command   (target <= 20%)")
    if applied:
        print(f"ledger apply ({args.apply:,})  {applied:10,.0f} commands/s   ratio "
              f"{applied / bare:.2f}x bare   (target >= 20,000/s on SQLite)")


if __name__ == "__main__":
    main()
