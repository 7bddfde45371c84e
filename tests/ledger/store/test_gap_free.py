"""Positions stay gap-free when a writer is killed between its insert and its commit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from ledger.bootstrap import Ledger
from tests.ledger.application.scenario import ALLOCATOR, run

REPO = Path(__file__).resolve().parents[3]


def register(ledger: Ledger, code: str) -> None:
    run(ledger, "practice register", ALLOCATOR, practice=code, name=f"Surgery {code}",
        list_size=100)


def test_a_writer_killed_before_commit_leaves_no_gap(ledger: Ledger, db_url: str) -> None:
    register(ledger, "A81001")
    register(ledger, "A81002")
    assert [p for p, _ in ledger.store.iter_events()] == [1, 2]
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.ledger.store.killed_writer", db_url],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert writer.stdout is not None
        line = writer.stdout.readline()
        problem = writer.stderr.read() if writer.stderr and not line else ""
        assert line.startswith("inserted [3]"), (line, problem)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=60)
    register(ledger, "A81003")
    register(ledger, "A81004")
    events = list(ledger.store.iter_events())
    assert [p for p, _ in events] == [1, 2, 3, 4]
    assert [e.practice for _, e in events] == ["A81001", "A81002", "A81003", "A81004"]  # type: ignore[attr-defined]
