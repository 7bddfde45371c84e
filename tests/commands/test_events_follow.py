"""`ledger events --follow` prints each event committed by another process, on both
stores: woken by the commit's NOTIFY on PostgreSQL, by polling on SQLite."""

from __future__ import annotations

import json
import signal
import subprocess

from ledger.bootstrap import Ledger
from tests.commands.conftest import clean_env, ledger_executable
from tests.ledger.store.test_commits import register, register_elsewhere


def test_events_follow_prints_commits_made_by_another_process(
        ledger: Ledger, db_url: str) -> None:
    register(ledger, "A81001")
    # On PostgreSQL it never looks again on its own: only a commit's NOTIFY wakes it.
    poll = "3600" if db_url.startswith("postgresql") else "0.05"
    follower = subprocess.Popen(
        [*ledger_executable(), "--db", db_url, "events", "--follow", "--poll", poll],
        env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert follower.stdout is not None
        first = json.loads(follower.stdout.readline())
        assert (first["position"], first["practice"]) == (1, "A81001")
        for position, code in ((2, "A81002"), (3, "A81003")):
            register_elsewhere(db_url, code)
            row = json.loads(follower.stdout.readline())
            assert (row["position"], row["event"], row["practice"]) == (
                position, "PracticeRegistered", code)
    finally:
        follower.send_signal(signal.SIGINT)
        follower.communicate(timeout=60)
    assert follower.returncode == 0
