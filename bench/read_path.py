"""Read-path benchmark: a 1,000,000-event ledger, then the read side's numbers.

    python bench/read_path.py [--store sqlite|postgres] [--db PATH_OR_URL]
                              [--events 1000000] [--fresh] [--rebuild-only]

Generates the ledger once by appending events straight to the store in bulk
(bench/national.py's writer: real events, with the catalogue of kinds; the
write path has its own benchmark) and reuses it on later runs. Then measures,
against a baseline taken in the same run (reading every notification of the
same store, decoding nothing), each with the load average:

- rebuild of every projection, events/s and events per CPU second (this
  process and its worker processes; a PostgreSQL server's own CPU is not
  counted), in one process and in parallel processes (target >= 50,000/s,
  100,000/s the aim)
- `holders --practice P --as-of D`, p50/p99 ms    (target p99 < 5 ms)
- `position --by consortium`, ms                 (target < 200 ms)

Not a timed test: run it by hand (`make bench` runs the write path's).
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from national import drop, load_average  # bench/ is on the path when run as a script
from national import write as bulk_write

from ledger.domain import events as ev
from ledger.domain.events import LedgerEvent, budget_stream, consortium_stream, practice_stream
from ledger.domain.values import ELEMENTS, Element
from ledger.store.eventstore import EventStore, open_store
from projections.materialise import Materialiser
from projections.queries import Reads

YEAR = "2024-25"
FIRST = date(2024, 4, 1)
PRACTICES = 3_000
CONSORTIA = 100


class Writer:
    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.pending: list[LedgerEvent] = []
        self.versions: dict[uuid.UUID, int] = {}
        self.now = datetime(2024, 4, 1, 8, 0, tzinfo=UTC)
        self.count = 0

    def add(self, cls: type[LedgerEvent], stream: uuid.UUID, on: date, actor: str,
            **fields: Any) -> None:
        version = self.versions.get(stream, 0) + 1
        self.versions[stream] = version
        self.now += timedelta(milliseconds=20)
        self.count += 1
        self.pending.append(cls(originator_id=stream, originator_version=version,
                                recorded_at=self.now, effective_on=on, actor=actor,
                                command_id=f"b-{self.count}", **fields))
        if len(self.pending) >= 5_000:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            bulk_write(self.store, [self.store.mapper.to_stored_event(e) for e in self.pending],
                       self.store.head() + 1)
            self.pending = []


def generate(store: EventStore, total: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    w = Writer(store)
    practices = [f"A{80000 + i:05d}" for i in range(PRACTICES)]
    consortia = [f"{i:02d}C" if i < 100 else f"X{i:04d}" for i in range(CONSORTIA)]
    for code in consortia:
        w.add(ev.ConsortiumFormed, consortium_stream(code), FIRST, "allocator:Q71",
              consortium=code, name=f"Consortium {code}", accountable_officer="Dr A")
        w.add(ev.RiskPoolAgreed, consortium_stream(code), FIRST, f"consortium:{code}",
              consortium=code, year=YEAR, top_slice_basis_points=100)
    member = {}
    for i, p in enumerate(practices):
        allocator = ("Q71", "Q72", "Q73")[i % 3]
        w.add(ev.PracticeRegistered, practice_stream(p), FIRST, f"allocator:{allocator}",
              practice=p, name=f"Surgery {p}", list_size=rng.randrange(2000, 12000),
              allocator=allocator)
        member[p] = consortia[i % CONSORTIA]
        w.add(ev.PracticeJoined, consortium_stream(member[p]), FIRST,
              f"consortium:{member[p]}", consortium=member[p], practice=p)
        w.add(ev.BudgetAllocated, budget_stream(p, YEAR), FIRST, f"allocator:{allocator}",
              practice=p, year=YEAR, allocator=allocator,
              amounts_pence={e: rng.randrange(10**8, 10**9) for e in ELEMENTS})
    refs: list[tuple[str, str, int]] = []
    n = 0
    while w.count < total:
        p = rng.choice(practices)
        on = FIRST + timedelta(days=rng.randrange(365))
        b = {"practice": p, "year": YEAR}
        roll = rng.random()
        actor = f"practice:{p}"
        if roll < 0.02:
            w.add(ev.HoldingDelegated, budget_stream(p, YEAR), on, actor,
                  elements=(rng.choice(ELEMENTS),), holder=f"consortium:{member[p]}", **b)
        elif roll < 0.03:
            w.add(ev.DelegationRevoked, budget_stream(p, YEAR), on, actor,
                  elements=(rng.choice(ELEMENTS),), **b)
        elif roll < 0.035:
            w.add(ev.OptedOut, budget_stream(p, YEAR), on, actor, reason="merger",
                  holder=f"practice:{rng.choice(practices)}", **b)
        elif roll < 0.04:
            w.add(ev.OptedIn, budget_stream(p, YEAR), on, actor, **b)
        elif roll < 0.045:
            w.add(ev.MadeHard, budget_stream(p, YEAR), on, "allocator:Q71", **b)
        elif roll < 0.5 or not refs:
            n += 1
            ref = f"R-{n:07d}"
            element = rng.choice(ELEMENTS)
            amount = rng.randrange(10_000, 10_000_000)
            w.add(ev.SpendCommitted, budget_stream(p, YEAR), on, actor, ref=ref,
                  element=Element(element), amount_pence=amount, provider="RTR",
                  service="Hip replacement", qs_codes=("QS3",), **b)
            refs.append((ref, p, amount))
        else:
            i = rng.randrange(len(refs))
            ref, owner, amount = refs[i]
            b = {"practice": owner, "year": YEAR}
            stream = budget_stream(owner, YEAR)
            if roll < 0.65:
                w.add(ev.CommitmentVaried, stream, on, actor, ref=ref,
                      amount_pence=amount + 1000, **b)
                refs[i] = (ref, owner, amount + 1000)
            elif roll < 0.9:
                w.add(ev.CommitmentSettled, stream, on, actor, ref=ref, amount_pence=amount,
                      final=True, **b)
                refs[i] = refs[-1]
                refs.pop()
            else:
                w.add(ev.CommitmentCancelled, stream, on, actor, ref=ref, **b)
                refs[i] = refs[-1]
                refs.pop()
    w.flush()


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (a parallel rebuild's)."""
    mine = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


def baseline_read(store: EventStore) -> tuple[float, float]:
    """Events per second and per CPU second reading every notification, decoding nothing."""
    started, cpu = time.perf_counter(), cpu_seconds()
    after, read = 0, 0
    while True:
        batch = store.notifications(after, 10_000)
        if not batch:
            break
        read += len(batch)
        after = batch[-1].id
    return (read / (time.perf_counter() - started),
            read / max(cpu_seconds() - cpu, 1e-9))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--db", help="default /tmp/ledger-read-bench.db, or a schema "
                        "read_bench in the local PostgreSQL database test")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--rebuild-only", action="store_true",
                        help="measure the rebuilds and stop")
    args = parser.parse_args()
    db = args.db or ("/tmp/ledger-read-bench.db" if args.store == "sqlite" else
                     "postgresql://postgres@127.0.0.1:5432/test?schema=read_bench")
    if args.fresh:
        drop(db)
    store = open_store(db)
    if store.head() < args.events:
        started = time.perf_counter()
        generate(store, args.events - store.head())
        print(f"generated {store.head():,} events in {time.perf_counter() - started:.1f} s")
    head = store.head()
    print(f"ledger: {head:,} events at {db}")

    base, base_cpu = baseline_read(store)
    print(f"baseline: raw notification read        {base:>12,.0f} events/s, "
          f"{base_cpu:,.0f} per CPU second   [{load_average()}]")

    views = Materialiser(store)
    for workers, label in ((1, "one process"), (None, "parallel")):
        started, cpu = time.perf_counter(), cpu_seconds()
        views.rebuild(workers=workers)
        rebuild_rate = head / (time.perf_counter() - started)
        per_cpu = head / max(cpu_seconds() - cpu, 1e-9)
        print(f"rebuild, all projections, {label:<12} {rebuild_rate:>10,.0f} events/s "
              f"({rebuild_rate / base:.2f}x baseline; target >= 50,000/s), "
              f"{per_cpu:,.0f} per CPU second ({per_cpu / base_cpu:.2f}x baseline)   "
              f"[{load_average()}]")

    if args.rebuild_only:
        store.close()
        return
    reads = Reads(store, today=date(2024, 12, 1))
    rng = random.Random(1)
    practices = [f"A{80000 + i:05d}" for i in range(PRACTICES)]
    timings = []
    for _ in range(args.queries):
        p = rng.choice(practices)
        day = FIRST + timedelta(days=rng.randrange(365))
        t = time.perf_counter()
        found = reads.holders(practice=p, as_of=day)
        timings.append((time.perf_counter() - t) * 1000)
        assert len(found) == 7
    timings.sort()
    p50 = statistics.median(timings)
    p99 = timings[int(len(timings) * 0.99) - 1]
    per_event_ms = 1000 / base
    print(f"holders --practice --as-of, p50/p99     {p50:8.2f} / {p99:.2f} ms "
          f"(target p99 < 5 ms; p99 = reading {p99 / per_event_ms:,.0f} raw events)")

    runs = []
    for _ in range(5):
        t = time.perf_counter()
        groups = reads.position(by="consortium")
        runs.append((time.perf_counter() - t) * 1000)
    median = statistics.median(runs)
    print(f"position --by consortium ({len(groups):,} rows), median  {median:8.1f} ms "
          f"(target < 200 ms; = reading {median / per_event_ms:,.0f} raw events)")
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        reads.position(by="consortium", as_of=date(2024, 10, 1))
        runs.append((time.perf_counter() - t) * 1000)
    print(f"position --by consortium --as-of, median {statistics.median(runs):8.1f} ms")
    store.close()


if __name__ == "__main__":
    main()
