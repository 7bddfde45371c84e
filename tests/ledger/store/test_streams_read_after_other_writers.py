"""A command sees what any other writer did to a stream it reads but does not write.

A stream a command only reads (the practice, when a commitment is made against its
budget) gets no version conflict to catch a stale read: the rule is silently broken
if the read misses another writer's event. On SQLite a write transaction carries
the streams' versions to the next while nothing else was written
(ledger/store/recorders.py `carried`); these tests close the practice between two
of a ledger's own commitments from another process, another ledger in this
process, another thread of the same store (another pooled connection), and
eventsourcing's own insert on the same store, and check the next commitment is refused.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest

from ledger.application.commands import build_command
from ledger.application.service import LedgerService
from ledger.bootstrap import Ledger
from ledger.domain.errors import LedgerError
from ledger.domain.events import PracticeClosed, practice_stream
from tests.commands.conftest import clean_env, ledger_executable
from tests.ledger.application.scenario import A1, ALLOCATOR, commit, run, seed
from tests.ledger.store.test_carried_state import count_attempts, sealed_every_event

CLOSED_ON = "2024-08-01"


def close_in_another_process(_ledger: Ledger, db_url: str, _open: Callable[[], Ledger]) -> None:
    done = subprocess.run(
        [*ledger_executable(), "--db", db_url, "--actor", ALLOCATOR, "practice", "close", A1,
         "--on", CLOSED_ON], env=clean_env(), capture_output=True, text=True, timeout=120,
        check=False)
    assert done.returncode == 0, done.stderr


def close_in_another_ledger(_ledger: Ledger, _db_url: str, open_ledger: Callable[[], Ledger]
                            ) -> None:
    run(open_ledger(), "practice close", ALLOCATOR, practice=A1, on=CLOSED_ON)


def close_in_another_thread(ledger: Ledger, _db_url: str, _open: Callable[[], Ledger]) -> None:
    """Another service on the same store, in a thread, while this thread holds one of the
    SQLite store's pooled connections: the close is written through another of them."""
    failed: list[BaseException] = []

    def close() -> None:
        try:
            service = LedgerService(store=ledger.store, clock=ledger.service.clock)
            service.execute(build_command("practice close", {"practice": A1, "on": CLOSED_ON}),
                            ALLOCATOR)
        except BaseException as error:  # noqa: BLE001 - the test's thread fails on it
            failed.append(error)

    datastore: Any = ledger.store.app.recorder.datastore  # type: ignore[attr-defined]
    sqlite = ledger.store.target.kind == "sqlite"
    with datastore.get_connection(commit=False) if sqlite else contextlib.nullcontext():
        thread = threading.Thread(target=close)
        thread.start()
        thread.join(timeout=120)
    assert not thread.is_alive()
    assert not failed, failed


CLOSERS = {
    "another process": close_in_another_process,
    "another ledger": close_in_another_ledger,
    "another thread": close_in_another_thread,
}


@pytest.mark.parametrize("closer", list(CLOSERS))
def test_a_commitment_after_the_practice_was_closed_elsewhere_is_refused(
    open_ledger: Callable[[], Ledger], db_url: str, closer: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ledger = open_ledger()
    seed(ledger, practices=(A1,), consortium=None)
    for n in range(3):  # one write after another of its own: carried over on SQLite
        commit(ledger, f"R-000{n}", "10.00")
    CLOSERS[closer](ledger, db_url, open_ledger)
    attempts = count_attempts(ledger, monkeypatch)
    with pytest.raises(LedgerError) as refused:
        commit(ledger, "R-0010", "10.00", on="2024-09-01")
    assert refused.value.rule == "practice-open"
    commit(ledger, "R-0011", "10.00", on="2024-07-31")  # the day before: still open
    assert len(attempts) == 2  # neither ran on a stale stream and conflicted
    sealed_every_event(ledger)


def test_a_commitment_after_the_practice_was_closed_through_another_write_path_is_refused(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The close goes in through eventsourcing's own insert (the same store and pool,
    not the write path: no catalogue row, sealed by the hook outside its transaction)."""
    seed(ledger, practices=(A1,), consortium=None)
    commit(ledger, "R-0001", "10.00")
    commit(ledger, "R-0002", "10.00")
    stream = practice_stream(A1)
    closed = PracticeClosed(
        originator_id=stream, originator_version=len(ledger.store.stream(stream)) + 1,
        recorded_at=datetime(2024, 7, 15, 9, 30, tzinfo=UTC), effective_on=date(2024, 8, 1),
        actor=ALLOCATOR, command_id="closed-around-the-write-path", practice=A1)
    ledger.store.app.recorder.insert_events([ledger.store.mapper.to_stored_event(closed)])
    attempts = count_attempts(ledger, monkeypatch)
    with pytest.raises(LedgerError) as refused:
        commit(ledger, "R-0010", "10.00", on="2024-09-01")
    assert refused.value.rule == "practice-open"
    commit(ledger, "R-0011", "10.00", on="2024-07-31")
    assert len(attempts) == 2
    sealed_every_event(ledger)
