"""Write-path benchmark: bare eventsourcing vs the ledger, on the same store, in one run.

    python bench/write_path.py                       # SQLite file in a temp dir
    python bench/write_path.py --store postgres      # PostgreSQL (own schema, dropped after)
    python bench/write_path.py --commands 1000 --apply 50000 --rounds 5
    python bench/write_path.py --served 2000         # also group commit over HTTP

Prints each ledger rate beside its baseline, measured in the same run on the same store:
  bare           eventsourcing Aggregate, one trivial event per save
  bare batched   eventsourcing Aggregate, 100 trivial events per save
  command        the ledger's `spend commit` through LedgerService.execute, one command
                 per transaction             ratio to bare          (target >= 0.7 on SQLite,
                                                                     >= 1 on PostgreSQL)
  apply          `ledger apply` of N commitments (batched, each line idempotent and atomic)
                                             ratio to bare batched  (target >= 0.5, aim 0.7 on
                                                                     SQLite; >= 10,000/s on
                                                                     PostgreSQL)
and, with --served N, N `spend commit`s POSTed by 8 concurrent clients on loopback to
`ledger serve` with group commit (the default) against `ledger serve --no-group-commit`
(one command per transaction) from the same clients: the multiple group commit gives.
Rounds are interleaved (3 by default): each headline rate is the best of its rounds,
and each round's own ratio (the ledger against the baseline just measured) follows,
to show how far a single round strays on the machine. Then the load average.
Not a test: figures depend on the machine (and on what else runs on it); compare the
ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from psycopg import sql

from ledger.application.access import new_token
from ledger.application.batch import apply_lines
from ledger.application.commands import build_command
from ledger.application.service import Request
from ledger.bootstrap import bootstrap

PG_BASE = "postgresql://postgres@127.0.0.1:5432/test"
ALLOCATOR = "allocator:Q71"
CLIENTS = 8
REPO = Path(__file__).resolve().parents[1]


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


def bare_batched_rate(env: dict[str, str], n: int, per_save: int = 100) -> float:
    """Events a second when each save appends `per_save` events (the bulk-load baseline)."""
    app: Application[Any] = Application(env=env)
    counter = Counter()
    app.save(counter)
    start = time.perf_counter()
    done = 0
    while done < n:
        for _ in range(per_save):
            counter.increment()
        app.save(counter)
        done += per_save
    elapsed = time.perf_counter() - start
    app.close()
    return done / elapsed


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


APPLY_PROCESSES: set[int] = set()
"""How many processes ran each `apply` measured (at each batch settled, the most seen):
1 alone, 2 with the parse process, 3 with the appending process too (SQLite)."""


def apply_rate(db: str, n: int, practice: str = "B00002") -> float:
    setup_practice(db, practice)
    lines = [orjson.dumps(commit_line(i, practice, "2024-06-02")).decode() for i in range(n)]
    seen = [0]

    def progress(_settled: int) -> None:
        seen[0] = max(seen[0], 1 + len(multiprocessing.active_children()))

    with bootstrap(db) as ledger:
        start = time.perf_counter()
        report = apply_lines(ledger.service, lines, progress=progress)
        elapsed = time.perf_counter() - start
    assert report.applied == n, (report.applied, report.refused[:3])
    APPLY_PROCESSES.add(seen[0])
    return n / elapsed


def setup_writers(db: str) -> dict[str, str]:
    """One allocated practice per client, each with its own token: {practice: secret}."""
    codes = [f"B9{i:04d}" for i in range(CLIENTS)]
    tokens: dict[str, str] = {}
    for code in codes:
        setup_practice(db, code)
    with bootstrap(db) as ledger:
        service = ledger.service
        boot = new_token()
        service.execute(build_command("token create", {
            "actor": ALLOCATOR, "token_id": boot.token_id, "secret_sha256": boot.digest,
            "bootstrap": True}), ALLOCATOR)
        grants = []
        for code in codes:
            token = new_token()
            grants.append(Request(build_command("token create", {
                "actor": f"practice:{code}", "token_id": token.token_id,
                "secret_sha256": token.digest}), ALLOCATOR, f"grant-{code}"))
            tokens[code] = token.secret
        service.execute_batch(grants)
    return tokens


@contextlib.contextmanager
def serving(db: str, *, group_commit: bool) -> Iterator[str]:
    """`ledger serve` on loopback; yields its base URL."""
    port = 19000 + os.getpid() % 500 + (0 if group_commit else 500)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["PYTHONPATH"] = str(REPO)
    flag = "--group-commit" if group_commit else "--no-group-commit"
    server = subprocess.Popen(
        [sys.executable, "-m", "commands", "--db", db, "serve", "--port", str(port), flag],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def served_rate(db: str, tokens: dict[str, str], n: int, *, group_commit: bool,
                tag: str) -> float:
    """`spend commit`s a second from CLIENTS concurrent HTTP clients, each its own practice."""
    each = n // len(tokens)
    failures: list[str] = []

    def client(code: str, secret: str, base: str) -> None:
        with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {secret}"}) as http:
            for i in range(each):
                line = commit_line(i, code, "2024-06-03")
                args = line["args"] | {"ref": f"R-{tag}-{code}-{i:06d}"}
                answer = http.post(f"{base}/spend/commit", json=args,
                                   headers={"Idempotency-Key": f"{tag}-{code}-{i}"})
                if answer.status_code != 201:
                    failures.append(answer.text)

    with serving(db, group_commit=group_commit) as base:
        threads = [threading.Thread(target=client, args=(code, secret, base))
                   for code, secret in tokens.items()]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
    assert not failures, failures[:3]
    return each * len(tokens) / elapsed


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
    parser.add_argument("--served", type=int, default=0,
                        help="commits over HTTP for the group-commit comparison (0: skip)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds; best of each, and each round's own ratios")
    args = parser.parse_args()
    bare = batched = command = unsealed = applied = grouped = one_by_one = 0.0
    single_ratios: list[float] = []
    apply_ratios: list[float] = []
    with stores(args.store) as (bare_env, db):
        tokens = setup_writers(db) if args.served else {}
        # Interleaved rounds, best of each: the baseline and the ledger see the same
        # neighbours on a shared machine.
        for r in range(args.rounds):
            round_bare = bare_rate(bare_env, args.commands)
            round_batched = bare_batched_rate(bare_env, args.apply) if args.apply else 0.0
            round_command = command_rate(db, args.commands, practice=f"B1{r:04d}")
            single_ratios.append(round_command / round_bare)
            bare, batched = max(bare, round_bare), max(batched, round_batched)
            command = max(command, round_command)
            if args.store == "sqlite":
                with sealing_off():
                    unsealed = max(unsealed,
                                   command_rate(db, args.commands, practice=f"B3{r:04d}"))
            if args.apply:
                round_applied = apply_rate(db, args.apply, practice=f"B2{r:04d}")
                apply_ratios.append(round_applied / round_batched)
                applied = max(applied, round_applied)
            if args.served:
                one_by_one = max(one_by_one, served_rate(
                    db, tokens, args.served, group_commit=False, tag=f"S{r}"))
                grouped = max(grouped, served_rate(
                    db, tokens, args.served, group_commit=True, tag=f"G{r}"))
    single_target = "1.00" if args.store == "postgres" else "0.70"
    print(f"store: {args.store}   load average {load()}")
    print(f"bare eventsourcing, 1 event a save     {bare:10,.0f} events/s")
    if batched:
        print(f"bare eventsourcing, 100 events a save  {batched:10,.0f} events/s")
    print(f"ledger spend commit, 1 a transaction   {command:10,.0f} commands/s   "
          f"ratio {command / bare:.2f}x bare   (target >= {single_target})")
    print(f"  each round's own ratio               {spread(single_ratios)}")
    if unsealed:
        print(f"  without sealing                      {unsealed:10,.0f} commands/s   "
              f"sealing adds {unsealed / command - 1:.0%} per command   (target <= 20%)")
    if applied:
        goal = ("target >= 10,000/s" if args.store == "postgres"
                else "target >= 0.50, aim 0.70")
        print(f"ledger apply ({args.apply:,} lines)   {applied:10,.0f} commands/s   "
              f"ratio {applied / batched:.2f}x bare batched   ({goal})")
        print(f"  each round's own ratio               {spread(apply_ratios)}")
        processes = ", ".join(map(str, sorted(APPLY_PROCESSES)))
        print(f"  processes per apply: {processes} (1: busy cores, everything in one; "
              "2: lines parsed by a second; 3: batches appended by a third, SQLite)")

    if grouped:
        print(f"served, 1 command a transaction     {one_by_one:10,.0f} commands/s   "
              f"({CLIENTS} clients on loopback)")
        print(f"served, group commit                {grouped:10,.0f} commands/s   "
              f"{grouped / one_by_one:.2f}x one a transaction")


def spread(ratios: list[float]) -> str:
    """Each round's ratio of the ledger to the baseline measured just before it, in
    round order: how far one round's figure can stray on this machine."""
    return "  ".join(f"{ratio:.2f}x" for ratio in ratios)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
