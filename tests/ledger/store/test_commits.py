"""Waiting for commits: on PostgreSQL a commit by any process wakes a listener
(LISTEN/NOTIFY); on SQLite there is no signal and a reader polls."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import psycopg
import pytest

from ledger.bootstrap import Ledger, bootstrap
from ledger.store import commits
from ledger.store.commits import commit_signal
from tests.commands.conftest import clean_env, ledger_executable
from tests.conftest import PG_BASE_URL
from tests.ledger.application.scenario import ALLOCATOR, run

# Long enough never to elapse on a loaded machine: a wait that returns True was
# woken by a commit, not by its timeout.
NEVER = 600.0


def register_elsewhere(db: str, code: str) -> None:
    """A write by another process: the real `ledger` command."""
    done = subprocess.run(
        [*ledger_executable(), "--db", db, "--actor", ALLOCATOR, "practice", "register",
         code, "--name", f"Surgery {code}", "--list-size", "100", "--on", "2024-04-01"],
        env=clean_env(), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr


def register(ledger: Ledger, code: str) -> None:
    run(ledger, "practice register", ALLOCATOR, practice=code, name=f"Surgery {code}",
        list_size=100, on="2024-04-01")


def test_a_commit_by_another_process_wakes_a_listener_and_sqlite_has_no_signal(
        ledger: Ledger, db_url: str) -> None:
    register(ledger, "A81001")
    signal = commit_signal(ledger.store)
    try:
        if db_url.startswith("postgresql"):
            assert signal.listening
            register_elsewhere(db_url, "A81002")
            assert signal.wait(NEVER) is True
            # A commit made before the wait, here or elsewhere, is not missed either.
            register(ledger, "A81003")
            assert signal.wait(NEVER) is True
        else:
            assert not signal.listening
            register_elsewhere(db_url, "A81002")
            assert signal.wait(0.01) is False
    finally:
        signal.close()


@pytest.fixture
def pg_ledger(pg_url: str) -> Iterator[Ledger]:
    ledger = bootstrap(pg_url)
    yield ledger
    ledger.close()


@pytest.mark.postgres
def test_a_listener_whose_connection_is_lost_listens_again(
        pg_ledger: Ledger, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commits, "RECONNECT_SECONDS", 0.0)
    ledger = pg_ledger
    register(ledger, "A81001")
    signal = commit_signal(ledger.store)
    schema = pg_url.split("schema=")[1]
    try:
        with psycopg.connect(PG_BASE_URL, autocommit=True) as admin:
            ended = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = %s",
                (f'LISTEN "{schema}.ledger_events"',)).fetchall()
        assert ended == [(True,)]
        assert signal.wait(NEVER) is False  # the lost connection ends the wait
        assert not signal.listening
        signal.wait(0.01)  # listens again
        assert signal.listening
        register_elsewhere(pg_url, "A81002")
        assert signal.wait(NEVER) is True
    finally:
        signal.close()
