"""Audit benchmark: `verify` rate on a large SQLite ledger, and sealing's cost on writes.

    python bench/audit.py                      # 1,000,000 events, 20,000 applied commands
    python bench/audit.py --events 200000 --apply 10000 --commands 500

Prints:
  build       rows written to make the large ledger (raw inserts of real event states)
  seal        follower sealing of the whole ledger (events/s)
  verify/1    `ledger verify` on one process (its worker processes off), for the ratio
  verify      `ledger verify` of the whole ledger (events/s; issue target >= 200,000),
              with the machine's load average (the figure depends on 2 free cores)
  proof       one inclusion proof on the large ledger (ms; O(log n) reads)
  apply       `ledger apply` per command with the write path's sealing hook, and without it
  command     one command per transaction, with the hook and without it
Sealing's share is (with / without - 1), measured in the same run (target <= 20%).
Not a test: compare ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from write_path import sealing_off  # bench/ is on the path when run as a script

from ledger.application.batch import apply_lines
from ledger.application.commands import build_command
from ledger.audit.merkle import verify_inclusion
from ledger.auditlog import verify
from ledger.auditlog.reader import StoreNodes, snapshot
from ledger.auditlog.seal import seal
from ledger.auditlog.verify import verify_store
from ledger.bootstrap import bootstrap

ALLOCATOR = "allocator:Q71"


def setup_lines(practice: str) -> list[str]:
    return [
        orjson.dumps(line).decode()
        for line in [
            {"command": "practice register", "command_id": f"reg-{practice}", "actor": ALLOCATOR,
             "args": {"practice": practice, "name": "Bench", "list_size": 4000,
                      "on": "2024-04-01"}},
            {"command": "budget allocate", "command_id": f"alloc-{practice}", "actor": ALLOCATOR,
             "args": {"practice": practice, "year": "2024-25",
                      "element": {"acute": "1000000000"}}},
        ]
    ]


def commit_lines(practice: str, n: int, prefix: str) -> list[str]:
    return [
        orjson.dumps({
            "command": "spend commit", "command_id": f"{prefix}-{i}",
            "actor": f"practice:{practice}",
            "args": {"practice": practice, "year": "2024-25", "element": "acute",
                     "ref": f"{prefix}-{i:07d}", "amount": "125.00", "provider": "RTR",
                     "service": "Hip replacement", "qs": ["QS3"], "on": "2024-06-01"},
        }).decode()
        for i in range(n)
    ]


def build_large(path: str, events: int) -> float:
    """A ledger of `events` real-sized events: a few written by the service, the rest copies
    of a real SpendCommitted state under fresh streams (the verifier cannot tell)."""
    ledger = bootstrap(path)
    apply_lines(ledger.service, setup_lines("A81001") + commit_lines("A81001", 10, "seed"))
    template = ledger.store.notifications(0, 20)[-1]
    ledger.close()
    state = bytes(template.state)
    start = time.perf_counter()
    conn = sqlite3.connect(path)
    rows = (
        (uuid.uuid4().hex, 1, template.topic, state.replace(b"seed-0000009", b"%012d" % i))
        for i in range(events - 12)
    )
    conn.executemany("INSERT INTO stored_events VALUES (?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    return time.perf_counter() - start


def large_ledger(events: int, workdir: Path) -> None:
    path = str(workdir / "large.db")
    built = build_large(path, events)
    print(f"build     {events:>10,} events in {built:6.2f} s")
    ledger = bootstrap(path)
    start = time.perf_counter()
    sealed = seal(ledger.store, chunk=50_000).sealed
    elapsed = time.perf_counter() - start
    rate = sealed / elapsed
    print(f"seal      {sealed:>10,} events in {elapsed:6.2f} s  {rate:>10,.0f} events/s")
    single = verify_one_process(ledger)
    report = verify_store(ledger.store)
    assert report.ok, report.damage
    assert (report.root, report.sealed) == (single.root, single.sealed)
    rate = report.events_checked / report.seconds
    print(f"verify    {report.events_checked:>10,} events in {report.seconds:6.2f} s  "
          f"{rate:>10,.0f} events/s   "
          f"(target >= 200,000: {'met' if rate >= 200_000 else 'MISSED'}; "
          f"{single.seconds / report.seconds:.2f}x one process; load {load()})")
    with snapshot(ledger.store) as reader:
        nodes = StoreNodes(reader)
        from ledger.audit.merkle import inclusion_proof, tree_root  # noqa: PLC0415

        size = report.sealed
        start = time.perf_counter()
        proof = inclusion_proof(nodes, size // 3, size)
        root = tree_root(nodes, size)
        proof_ms = (time.perf_counter() - start) * 1000
        leaf = reader.leaf_at(size // 3)
        assert leaf is not None
        verify_inclusion(size // 3, size, bytes(leaf[4]), proof, root)
    assert root == report.root
    print(f"proof     leaf {size // 3:,} of {size:,}: {len(proof)} hashes in {proof_ms:.1f} ms")
    ledger.close()


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def verify_one_process(ledger: Any) -> Any:
    """`verify` with its worker processes off: the baseline for the verify line."""
    saved = verify.PARALLEL_MIN_LEAVES
    verify.PARALLEL_MIN_LEAVES = 1 << 62
    try:
        report = verify_store(ledger.store)
    finally:
        verify.PARALLEL_MIN_LEAVES = saved
    assert report.ok, report.damage
    rate = report.events_checked / report.seconds
    print(f"verify/1  {report.events_checked:>10,} events in {report.seconds:6.2f} s  "
          f"{rate:>10,.0f} events/s   (one process; load {load()})")
    return report


def apply_seconds(path: Path, lines: list[str], practice: str) -> float:
    ledger = bootstrap(str(path))
    apply_lines(ledger.service, setup_lines(practice))
    start = time.perf_counter()
    report = apply_lines(ledger.service, lines)
    elapsed = time.perf_counter() - start
    assert report.applied == len(lines), report.refused[:1]
    ledger.close()
    return elapsed


def command_seconds(path: Path, practice: str, commands: int) -> float:
    ledger = bootstrap(str(path))
    apply_lines(ledger.service, setup_lines(practice))
    timings: list[float] = []
    for i in range(commands):
        command = build_command("spend commit", {
            "practice": practice, "year": "2024-25", "element": "acute", "ref": f"c-{i:06d}",
            "amount": "1.00", "provider": "RTR", "service": "Hip"})
        start = time.perf_counter()
        ledger.service.execute(command, f"practice:{practice}")
        timings.append(time.perf_counter() - start)
    ledger.close()
    return sum(timings) / commands


def write_overheads(workdir: Path, applied: int, commands: int) -> None:
    """What the write path's sealing hook costs: the same writes with and without it."""
    lines = commit_lines("A81002", applied, "w")
    sealed = apply_seconds(workdir / "sealed.db", lines, "A81002")
    with sealing_off():
        bare = apply_seconds(workdir / "unsealed.db", lines, "A81002")
    print(f"apply     {applied:>10,} commands: {sealed / applied * 1e6:7.1f} us/command sealed, "
          f"{bare / applied * 1e6:7.1f} without sealing: sealing adds {sealed / bare - 1:.1%} "
          "(target <= 20%)")
    one = command_seconds(workdir / "one-sealed.db", "A81003", commands)
    with sealing_off():
        one_bare = command_seconds(workdir / "one-unsealed.db", "A81003", commands)
    print(f"command   {commands:>10,} commands, one per transaction: {one * 1e6:7.1f} us sealed, "
          f"{one_bare * 1e6:7.1f} without: sealing adds {one / one_bare - 1:.1%} (target <= 20%)")
    ledger = bootstrap(str(workdir / "sealed.db"))
    final = verify_store(ledger.store)
    assert final.ok, final.damage
    assert final.unsealed == 0
    ledger.close()


def main(argv: Any = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--apply", type=int, default=20_000)
    parser.add_argument("--commands", type=int, default=500)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        write_overheads(workdir, args.apply, args.commands)
        large_ledger(args.events, workdir)


if __name__ == "__main__":
    main()
