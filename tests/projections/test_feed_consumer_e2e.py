"""The documented feed consumer (examples/feed_consumer.py) killed with SIGKILL between
handling an event and saving its checkpoint, and at random instants, while the ledger
keeps being written: every event is handled exactly once, in order, on both stores."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ledger.bootstrap import Ledger
from tests.commands.conftest import clean_env
from tests.ledger.application.scenario import A2, bearer, commit, grant_token
from tests.projections.live_server import ledger_serve
from tests.projections.test_api import write_ledger

REPO = Path(__file__).resolve().parents[2]
CONSUMER = REPO / "examples" / "feed_consumer.py"


@pytest.fixture
def served(ledger: Ledger, db_url: str, tmp_path: Path) -> Iterator[str]:
    write_ledger(ledger)
    with ledger_serve(db_url, tmp_path) as base:
        yield base


def consumer(base: str, token: str, store: Path, *, until: int | None = None,
             die_after: int | None = None) -> subprocess.Popen[str]:
    env = clean_env()
    if die_after is not None:
        env["FEED_CONSUMER_DIE_AFTER_HANDLING"] = str(die_after)
    args = [sys.executable, str(CONSUMER), "--server", base, "--token", token,
            "--store", str(store)] + (["--until", str(until)] if until else [])
    return subprocess.Popen(args, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


@pytest.mark.e2e
def test_a_consumer_killed_anywhere_resumes_exactly_once(
        served: str, ledger: Ledger, tmp_path: Path) -> None:
    token = grant_token(ledger, "service:consumer")
    store = tmp_path / "consumer.db"
    writing = threading.Thread(target=lambda: [
        commit(ledger, f"R-K{i}", "1", practice=A2) for i in range(30)])
    writing.start()
    try:
        # Killed right after handling an event, before its checkpoint is saved.
        for die_after in (1, 2, 5, 1, 9):
            run = consumer(served, token, store, die_after=die_after)
            assert run.wait(timeout=60) == -signal.SIGKILL, run.stderr.read() if run.stderr else ""
        # Killed from outside at random instants.
        rng = random.Random(11)
        for _ in range(3):
            run = consumer(served, token, store)
            time.sleep(rng.uniform(0.3, 1.2))
            run.send_signal(signal.SIGKILL)
            run.wait(timeout=30)
    finally:
        writing.join(timeout=120)
    head = ledger.store.head()
    final = consumer(served, token, store, until=head)
    _, errors = final.communicate(timeout=120)
    assert final.returncode == 0, errors
    with sqlite3.connect(store) as db:
        handled = db.execute("SELECT position, body FROM handled ORDER BY position").fetchall()
        (checkpoint,) = db.execute("SELECT position FROM checkpoint").fetchone()
    assert checkpoint == head
    assert [p for p, _ in handled] == list(range(1, head + 1))
    feed = httpx.get(f"{served}/events", params={"limit": 1000}, timeout=10,
                     headers=bearer(token)).json()["events"]
    assert [json.loads(body) for _, body in handled] == feed
