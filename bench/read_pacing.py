"""`holders --practice P --as-of D` on an existing national ledger: back to back and paced.

    python bench/read_pacing.py --db /tmp/ledger-national-bench.db [--queries 1000]
    python bench/read_pacing.py --db 'postgresql://postgres@127.0.0.1:5432/test?schema=bench_national'

Reads the ledger bench/national.py built (6,500 practices `A80000`…, the year
2024-25). Runs the same random reads three ways, each with the load average:

  back to back   one read after another (what bench/national.py reports)
  paced          the same reads with a pause between them (`--pause` ms): a reader
                 that sleeps gives the processor back, so on a busy machine its
                 reads are less often cut by other processes' time slices
  CPU            this process's CPU time a read (the work the read does, whatever
                 the machine's load; a PostgreSQL server's CPU is not counted)

beside the baseline of a bare SELECT of one event by position, back to back.
Not a test: run it by hand; nothing here is timed in CI.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from datetime import date, timedelta

from ledger.auditlog.tables import transaction
from ledger.bootstrap import bootstrap
from projections.queries import Reads

FIRST = date(2024, 4, 1)


def load_average() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(int(len(ordered) * share) - 1, 0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--pause", type=float, default=2.0, help="ms between paced reads")
    parser.add_argument("--practices", type=int, default=6_500)
    args = parser.parse_args()
    ledger = bootstrap(args.db, create=False)
    store = ledger.store
    reads = Reads(store, today=date(2024, 12, 1))
    reads.holders(practice="A80000", as_of=FIRST)  # catch up once, outside the clock
    rng = random.Random(1)
    asked = [(f"A{80000 + rng.randrange(args.practices):05d}",
              FIRST + timedelta(days=rng.randrange(365))) for _ in range(args.queries)]

    def run(pause: float) -> tuple[list[float], float]:
        timings = []
        cpu = 0.0
        for practice, day in asked:
            if pause:
                time.sleep(pause / 1000)
            started, cpu_started = time.perf_counter(), time.process_time()
            reads.holders(practice=practice, as_of=day)
            timings.append((time.perf_counter() - started) * 1000)
            cpu += time.process_time() - cpu_started
        return timings, cpu * 1000 / len(asked)

    dialect = store.recorder.dialect
    mark = "%s" if dialect.kind == "postgres" else "?"
    head = store.head()
    bare = []
    with transaction(store, commit=False) as curs:
        for _ in range(args.queries):
            position = rng.randrange(1, head + 1)
            started = time.perf_counter()
            curs.execute(f"SELECT state FROM {dialect.events} WHERE {dialect.position} = {mark}",
                         (position,))
            curs.fetchall()
            bare.append((time.perf_counter() - started) * 1000)
    bare_p99 = percentile(bare, 0.99)
    print(f"bare SELECT of one event   p50/p99 {percentile(bare, 0.5):7.3f} / {bare_p99:7.3f} ms"
          f"   [{load_average()}]", flush=True)
    for label, pause in (("back to back", 0.0), (f"paced {args.pause:g} ms", args.pause),
                         ("back to back", 0.0)):
        timings, cpu = run(pause)
        p99 = percentile(timings, 0.99)
        print(f"holders {label:<18} p50/p99 {percentile(timings, 0.5):7.2f} / {p99:7.2f} ms "
              f"({p99 / bare_p99:.1f}x the bare p99); CPU {cpu:.3f} ms a read   "
              f"[{load_average()}]", flush=True)
    ledger.close()


if __name__ == "__main__":
    main()
