"""PostgreSQL pages of the log, fetched in binary, are the notifications eventsourcing reads."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest
from eventsourcing.postgres import PostgresApplicationRecorder

from ledger.application.commands import build_command
from ledger.bootstrap import Ledger, bootstrap
from ledger.domain.events import BudgetAllocated
from ledger.store.pgread import gc_paused


@pytest.fixture
def pg_ledger(pg_url: str) -> Iterator[Ledger]:
    ledger = bootstrap(pg_url)
    run = ledger.service.execute
    for i in range(6):
        practice = f"A8100{i}"
        run(build_command("practice register", {"practice": practice, "name": f"Surgery {i}",
                                                "list_size": 4069, "on": "2024-04-01"}),
            "allocator:Q71")
        run(build_command("budget allocate", {"practice": practice, "year": "2024-25",
                                              "element": {"acute": "1200000"}}),
            "allocator:Q71")
    yield ledger
    ledger.close()


@pytest.mark.postgres
@pytest.mark.parametrize(("start", "limit", "stop", "topics", "inclusive"), [
    (0, 100, None, (), False),
    (3, 4, None, (), False),
    (3, 4, None, (), True),
    (2, 100, 9, (), True),
    (None, 5, None, (), True),
    (0, 100, None, (BudgetAllocated.topic,), False),
    (5, 2, 11, (BudgetAllocated.topic,), True),
])
def test_a_binary_page_of_the_log_is_the_page_eventsourcing_reads(
    pg_ledger: Ledger, start: int | None, limit: int, stop: int | None,
    topics: tuple[str, ...], inclusive: bool,
) -> None:
    recorder = pg_ledger.store.app.recorder
    ours = recorder.select_notifications(
        start, limit, stop, topics, inclusive_of_start=inclusive)
    theirs = PostgresApplicationRecorder.select_notifications(
        recorder, start, limit, stop, topics, inclusive_of_start=inclusive)
    assert ours == theirs
    assert ours
    assert all(type(n.state) is bytes for n in ours)


def test_the_collector_resumes_when_the_last_thread_leaves_a_pause() -> None:
    assert gc.isenabled()
    inside = threading.Barrier(2)
    leave = threading.Event()

    def page() -> None:
        with gc_paused():
            inside.wait()
            leave.wait()

    other = threading.Thread(target=page)
    other.start()
    with gc_paused():
        inside.wait()
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other thread is still building its page
    leave.set()
    other.join()
    assert gc.isenabled()


def test_a_pause_leaves_a_collector_that_was_off_off() -> None:
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.postgres
def test_the_ledger_sessions_never_jit_compile_a_query(pg_ledger: Ledger) -> None:
    datastore = pg_ledger.store.app.recorder.datastore  # type: ignore[attr-defined]
    held = [datastore.get_connection() for _ in range(3)]  # the pool's and new ones
    try:
        for connection in held:
            assert connection.__enter__().execute("SHOW jit").fetchone() == {"jit": "off"}
    finally:
        for connection in held:
            connection.__exit__(None, None, None)
