"""One rebuild of every projection of an existing ledger: wall seconds and CPU seconds.

    python bench/rebuild.py --db COPY [--workers N] [--projections positions,trail]

Rebuilds the projections of a ledger bench/national.py built (run it on a copy:
the rebuild writes the projections' tables). Prints the events read, the wall time
and events/s, the CPU time of this process and of the rebuild's worker processes
together (user + system), the workers' largest resident memory, and the load average
(`uptime`) at the start and the end.

On a machine other work shares, wall times vary with that work; the CPU time varies
less. Two versions of the code compare best run at the same time, each on its own
copy of the ledger (`PYTHONPATH=OLD python OLD/bench/rebuild.py --db COPY_A &
python bench/rebuild.py --db COPY_B`): both then meet the same load.
Not a test: run it by hand; nothing here is timed in CI.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from ledger.bootstrap import bootstrap
from projections.materialise import Materialiser


def load_average() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its children that have ended."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="the ledger (a copy: it is rebuilt)")
    parser.add_argument("--workers", type=int,
                        help="processes (default: one per CPU from 200,000 events)")
    parser.add_argument("--projections", help="comma-separated names (default: all)")
    args = parser.parse_args()
    names = args.projections.split(",") if args.projections else None
    ledger = bootstrap(args.db)
    views = Materialiser(ledger.store)
    views.setup()
    before = load_average()
    cpu = cpu_seconds()
    started = time.perf_counter()
    read = views.rebuild(names, workers=args.workers)
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds() - cpu
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
    print(f"rebuild {read:,} events in {elapsed:.1f} s = {read / elapsed:,.0f} events/s; "
          f"CPU {cpu:.1f} s; workers' largest resident memory {rss:,} MB; "
          f"[{before}] -> [{load_average()}]", flush=True)
    ledger.close()


if __name__ == "__main__":  # the rebuild's worker processes import this file again
    main()
