"""Start-up benchmark: `ledger --help` and `ledger holders` against a bare `import typer`.

    python bench/startup.py [--runs 15] [--db /tmp/ledger-startup-bench.db]

Runs each command N times, alternating them so that a busy machine slows all of
them alike, and prints each median wall time and its ratio to the baseline
(`python -c "import typer"`, measured in the same run). The holders read goes
to a small demo ledger, built once with `ledger demo` and reused.

Not a test: figures depend on the machine; compare the ratios.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

PYTHON = sys.executable


def ledger(*args: str) -> list[str]:
    """The real entry point, as the `ledger` console script runs it."""
    return [PYTHON, "-c", "from commands.app import main; main()", *args]


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one run of `argv`."""
    cpu = cpu_of_children()
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()[-500:]}")
    return elapsed, cpu_of_children() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--db", default="/tmp/ledger-startup-bench.db")
    args = parser.parse_args()
    db = Path(args.db)
    if not db.exists():
        subprocess.run(ledger("--db", str(db), "demo"), stdout=subprocess.DEVNULL, check=True)
    env_db = ("--db", str(db))
    cases = {
        "baseline: python -c 'import typer'": [PYTHON, "-c", "import typer"],
        "ledger --help": ledger("--help"),
        "ledger holders --help": ledger("holders", "--help"),
        "ledger holders --practice P --as-of D": ledger(
            *env_db, "holders", "--practice", "A81224", "--as-of", "2024-09-01"),
        "ledger position --by consortium": ledger(*env_db, "position", "--by", "consortium"),
    }
    os.environ.setdefault("COLUMNS", "100")
    walls: dict[str, list[float]] = {name: [] for name in cases}
    cpus: dict[str, list[float]] = {name: [] for name in cases}
    for argv in cases.values():  # warm the file cache and .pyc files once
        run(argv)
    for _ in range(args.runs):
        for name, argv in cases.items():
            elapsed, cpu = run(argv)
            walls[name].append(elapsed)
            cpus[name].append(cpu)
    base_wall = statistics.median(next(iter(walls.values())))
    base_cpu = statistics.median(next(iter(cpus.values())))
    print(f"{args.runs} runs each, alternating; medians and their ratio to the baseline")
    print(f"  {'':<42} {'wall':>9} {'ratio':>6}  {'cpu':>9} {'ratio':>6}")
    for name in cases:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        print(f"  {name:<42} {wall * 1000:6.0f} ms {wall / base_wall:5.2f}x  "
              f"{cpu * 1000:6.0f} ms {cpu / base_cpu:5.2f}x")
    print("target: ledger --help <= 2x the baseline (CPU time is the steadier figure "
          "on a busy machine)")


if __name__ == "__main__":
    main()
