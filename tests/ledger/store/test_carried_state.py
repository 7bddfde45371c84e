"""What a write transaction carries to the next: only while nothing else was written.

A command does not read the catalogue, the Merkle tree head or a stream it already
knows again when this store's previous write is still the last one (recorders.py
`carried`; on PostgreSQL, the log's last event and the tree head still the ones
that write left). These tests write in between (another process, another
connection, the same connection another way, a rolled-back write) and check that
the next command sees it: the budget rules, the catalogue, and a Merkle log that
still verifies with one leaf per event.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from ledger.auditlog.seal import current_head
from ledger.auditlog.tables import transaction
from ledger.auditlog.verify import verify_store
from ledger.bootstrap import Ledger, bootstrap
from ledger.domain.errors import LedgerError, LogDamaged, UnreadableEvent
from ledger.domain.events import budget_stream
from ledger.store import catalogue
from ledger.store.eventstore import _CATALOGUED
from ledger.store.recorders import Reads, RefEntry
from tests.conftest import FakeClock
from tests.ledger.application.scenario import A1, A2, ALLOCATOR, YEAR, commit, run, seed
from tests.pg_round_trips import round_trips

ROOT = Path(__file__).resolve().parents[3]


def sealed_every_event(ledger: Ledger) -> None:
    """Positions run 1..n, the budget's versions 1..m, and the log verifies with n leaves."""
    positions = [p for p, _ in ledger.store.iter_events()]
    assert positions == list(range(1, len(positions) + 1))
    versions = [e.originator_version for e in ledger.store.stream(budget_stream(A1, YEAR))]
    assert versions == list(range(1, len(versions) + 1))
    head = current_head(ledger.store)
    assert head is not None
    assert (head.size, head.last_position) == (len(positions), positions[-1])
    assert verify_store(ledger.store).ok


def count_attempts(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts write transactions: a command run on stale state conflicts and runs again."""
    attempts: list[int] = []
    write = ledger.store.write

    def counted(*args: Any, **kwargs: Any) -> Any:
        attempts.append(1)
        return write(*args, **kwargs)

    monkeypatch.setattr(ledger.store, "write", counted)
    return attempts


def hard_budget(ledger: Ledger, amount: str) -> None:
    seed(ledger, practices=(A1,), consortium=None, amount=amount)
    run(ledger, "budget harden", ALLOCATOR, practice=A1, year=YEAR, on="2024-04-01")


def unknown_event(ledger: Ledger) -> tuple[str, tuple[Any, ...]]:
    """An INSERT of an event of a kind this code does not know, in the store's dialect."""
    stream: Any = uuid.uuid4()
    if ledger.store.target.kind == "sqlite":
        stream = stream.hex
    state = orjson.dumps({"schema_version": 1, "practice": A1, "frozen": True})
    return (ledger.store.recorder.dialect.sql(
        "INSERT INTO {events} (originator_id, originator_version, topic, state) "
        "VALUES (?, ?, ?, ?)"), (stream, 1, "BudgetFrozen", state))


def test_a_command_after_another_process_wrote_sees_its_events_and_seals_after_them(
    open_ledger: Callable[[], Ledger], db_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ledger = open_ledger()
    hard_budget(ledger, "1000")
    commit(ledger, "R-0001", "100.00")
    go = tmp_path / "go"
    go.touch()
    other = subprocess.run(  # two £1 commitments to the same budget, from another process
        [sys.executable, "-m", "tests.ledger.application.concurrent_writer", db_url, "x",
         "2", str(go)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert other.returncode == 0, other.stderr
    assert '"applied": 2' in other.stdout
    attempts = count_attempts(ledger, monkeypatch)
    with pytest.raises(LedgerError) as refused:  # 1000 - 100 - 2 leaves 898, not 899
        commit(ledger, "R-0002", "899.00")
    assert refused.value.rule == "hard-budget"
    answer = commit(ledger, "R-0003", "898.00")
    assert answer.events[-1]["version"] == 6  # allocated, hardened, 100, 1, 1, 898
    assert len(attempts) == 2  # neither ran on stale state and conflicted
    sealed_every_event(ledger)


def test_a_command_after_another_connection_wrote_seals_after_its_events(
    open_ledger: Callable[[], Ledger], monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = open_ledger(), open_ledger()
    hard_budget(first, "1000")
    attempts = count_attempts(first, monkeypatch), count_attempts(second, monkeypatch)
    for n in range(3):  # each write follows the other's: nothing may be carried over
        commit(first, f"R-a{n}", "10.00")
        commit(second, f"R-b{n}", "10.00")
    commit(first, "R-a3", "10.00")
    commit(first, "R-a4", "10.00")  # follows its own write: carried over
    with pytest.raises(LedgerError) as refused:
        commit(second, "R-b3", "920.01")  # 1000 - 8 x 10 leaves 920
    assert refused.value.rule == "hard-budget"
    assert [len(a) for a in attempts] == [5, 4]  # none ran on stale state and conflicted
    sealed_every_event(first)


@pytest.fixture
def fail_after_sealing(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Arms a fault: the next write seals its events, then fails and rolls back."""
    original = catalogue.record  # called after the insert and its sealing
    armed: list[bool] = []

    def record_or_fail(*args: Any, **kwargs: Any) -> Any:
        if armed:
            armed.clear()
            raise RuntimeError("failed after sealing")
        return original(*args, **kwargs)

    monkeypatch.setattr(catalogue, "record", record_or_fail)
    return lambda: armed.append(True)


def test_a_write_rolled_back_after_sealing_leaves_no_tree_head_for_the_next(
    ledger: Ledger, fail_after_sealing: Callable[[], None], monkeypatch: pytest.MonkeyPatch,
) -> None:
    hard_budget(ledger, "1000")
    commit(ledger, "R-0001", "10.00")
    fail_after_sealing()
    with pytest.raises(RuntimeError, match="failed after sealing"):
        commit(ledger, "R-0002", "10.00", command_id="c-rolled-back")
    assert ledger.store.receipts(["c-rolled-back"]) == {}
    attempts = count_attempts(ledger, monkeypatch)
    commit(ledger, "R-0002", "10.00", command_id="c-rolled-back")
    commit(ledger, "R-0003", "10.00")
    assert len(attempts) == 2  # neither ran on the rolled-back head and conflicted
    sealed_every_event(ledger)


def test_an_unknown_event_written_on_the_stores_own_connection_stops_the_next_command(
    ledger: Ledger,
) -> None:
    hard_budget(ledger, "1000")
    commit(ledger, "R-0001", "10.00")
    statement, params = unknown_event(ledger)
    with transaction(ledger.store, commit=True) as curs:  # around the write path
        curs.execute(statement, params)
    with pytest.raises(UnreadableEvent):
        commit(ledger, "R-0002", "10.00")


@pytest.mark.parametrize("edit", [
    "INSERT INTO {event_kinds} (topic, version, first_position) "
    "VALUES ('ledger.domain.events:Unheard', 1, 1)",
    "UPDATE {event_kinds} SET version = version + 100 WHERE topic LIKE '%SpendCommitted'",
    "UPDATE {kinds_checked} SET position = 1 WHERE id = 1",
], ids=["kind added", "kind made newer", "checked position moved back"])
def test_a_catalogue_edited_around_the_ledger_after_its_write_is_read_again_by_the_next(
    ledger: Ledger, edit: str,
) -> None:
    hard_budget(ledger, "1000")
    commit(ledger, "R-0001", "10.00")
    commit(ledger, "R-0002", "10.00")  # follows its own write: carried over
    head = ledger.store.head()
    with transaction(ledger.store, commit=True) as curs:
        curs.execute(ledger.store.recorder.dialect.sql(edit))
    if "checked" in edit:  # every event after it is read and checked again: all readable
        commit(ledger, "R-0003", "10.00")
        assert set(ledger.store.refs(["R-0003"])) == {"R-0003"}
        return
    with pytest.raises(UnreadableEvent):  # read again, not carried over
        commit(ledger, "R-0003", "10.00")
    assert ledger.store.refs(["R-0003"]) == {}
    assert ledger.store.head() == head


def test_an_unknown_event_another_sqlite_connection_wrote_stops_the_next_command(
    sqlite_path: str,
) -> None:
    with bootstrap(sqlite_path) as ledger:
        hard_budget(ledger, "1000")
        commit(ledger, "R-0001", "10.00")
        statement, params = unknown_event(ledger)
        with sqlite3.connect(sqlite_path) as other:
            other.execute(statement, params)
        with pytest.raises(UnreadableEvent):
            commit(ledger, "R-0002", "10.00")


def traced(ledger: Ledger) -> list[str]:
    """Every statement the SQLite store's pooled connections run from now on."""
    log: list[str] = []
    pool: Any = ledger.store.app.recorder.datastore.pool  # type: ignore[attr-defined]
    for conn in [c for c in [*pool._pool, getattr(pool, "_writer", None)] if c is not None]:
        conn._sqlite_conn.set_trace_callback(log.append)
    return log


def test_a_sqlite_command_after_its_own_write_reads_its_side_tables_in_one_statement_only(
    sqlite_path: str,
) -> None:
    with bootstrap(sqlite_path) as ledger:
        hard_budget(ledger, "1000")
        commit(ledger, "R-0001", "10.00")
        log = traced(ledger)
        commit(ledger, "R-0002", "10.00")
        carried = list(log)
        with sqlite3.connect(sqlite_path) as other:  # any write from elsewhere
            other.execute("INSERT INTO ledger_budget_years VALUES ('X', 'Y')")
        log.clear()
        commit(ledger, "R-0003", "10.00")
        fresh = list(log)
    reads = ("FROM ledger_event_kinds", "FROM ledger_tree", "FROM stored_events")
    assert [s for s in carried if any(r in s for r in reads)] == []
    for read in reads:
        assert any(read in s for s in fresh), (read, fresh)
    assert carried[0] == "BEGIN IMMEDIATE"
    assert carried[-1] == "COMMIT"
    selects = [s for s in carried if s.startswith("SELECT")]  # receipt, ref, affiliations
    assert len(selects) == 1, selects
    assert all(f"FROM {t}" in selects[0]
               for t in ("ledger_commands", "ledger_refs", "ledger_affiliations"))


def test_sqlite_writes_from_many_threads_and_beside_a_read_carry_state(
    sqlite_path: str,
) -> None:
    with bootstrap(sqlite_path) as ledger:
        hard_budget(ledger, "1000")
        threads = [threading.Thread(target=lambda t=t: [
            commit(ledger, f"R-{t}-{n}", "1.00") for n in range(5)]) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        commit(ledger, "R-0001", "1.00")
        pool: Any = ledger.store.app.recorder.datastore.pool  # type: ignore[attr-defined]
        reading = pool.get_connection(is_writer=False)  # a read in progress meanwhile
        try:
            log = traced(ledger)
            commit(ledger, "R-0002", "1.00")  # follows this store's own write
        finally:
            pool.put_connection(reading)
        carried = list(log)
        sealed_every_event(ledger)
    assert carried[0] == "BEGIN IMMEDIATE"
    assert [s for s in carried if "FROM ledger_tree" in s or "FROM ledger_event_kinds" in s] == []
    with bootstrap(sqlite_path) as ledger, pytest.raises(LedgerError):  # 1000 - 22: 978
        commit(ledger, "R-0003", "978.01")


def test_the_catalogues_checked_position_is_the_logs_head_after_every_write(
    ledger: Ledger,
) -> None:
    # A refused command first: a write transaction that writes nothing, on a new ledger.
    with pytest.raises(LedgerError):
        commit(ledger, "R-0001", "10.00")
    hard_budget(ledger, "1000")
    for ref in ("R-0001", "R-0002", "R-0001", "R-0003"):  # the second R-0001 is refused
        with contextlib.suppress(LedgerError):
            commit(ledger, ref, "10.00")
        head, checked, _ = ledger.store.probe()
        assert checked == head == ledger.store.head()
    assert len(ledger.store.refs(["R-0001", "R-0002", "R-0003"])) == 3


@pytest.mark.postgres
def test_a_tree_head_edited_around_the_ledger_after_its_write_stops_the_next_command(
    pg_url: str, clock: FakeClock,
) -> None:
    with bootstrap(pg_url, clock=clock) as ledger:
        hard_budget(ledger, "1000")
        commit(ledger, "R-0001", "10.00")
        with round_trips(ledger.store) as carried:
            commit(ledger, "R-0002", "10.00")  # follows its own write: carried over
        assert carried == [2]
        head = current_head(ledger.store)
        assert head is not None
        with transaction(ledger.store, commit=True) as curs:  # one leaf fewer in the head
            curs.execute(ledger.store.recorder.dialect.sql(
                "UPDATE {tree} SET size = size - 1 WHERE id = 1"))
        with pytest.raises(LogDamaged):  # read again, not carried over
            commit(ledger, "R-0003", "10.00")
        assert ledger.store.refs(["R-0003"]) == {}
        assert ledger.store.head() == head.last_position


def test_a_last_leaf_deleted_around_the_ledger_after_its_write_stops_the_next_command(
    ledger: Ledger,
) -> None:
    hard_budget(ledger, "1000")
    commit(ledger, "R-0001", "10.00")
    commit(ledger, "R-0002", "10.00")  # follows its own write: carried over
    head = current_head(ledger.store)
    assert head is not None
    with transaction(ledger.store, commit=True) as curs:  # the tree head now ends at no leaf
        curs.execute(ledger.store.recorder.dialect.sql(
            "DELETE FROM {leaves} WHERE leaf_index = ?"), (head.size - 1,))
    with pytest.raises(LogDamaged):  # read again, not carried over
        commit(ledger, "R-0003", "10.00")
    assert ledger.store.refs(["R-0003"]) == {}
    assert ledger.store.head() == head.last_position


@pytest.mark.postgres
def test_a_write_carried_over_on_postgresql_reads_the_receipts_refs_and_affiliations_asked(
    pg_url: str, clock: FakeClock,
) -> None:
    # The carried first statement reads them as arrays of text arrays: an answer (JSON:
    # quotes, commas, braces, a pound sign) comes back as stored, and a key not stored
    # is not there.
    with bootstrap(pg_url, clock=clock) as ledger:
        seed(ledger)  # A1 in consortium 16C, A2 in none
        commit(ledger, "R-0001", "10.00", command_id="c-1")
        commit(ledger, "R-0002", "10.00", command_id="c-2")
        stored = ledger.store.receipts(["c-1", "c-2"])
        recorder: Any = ledger.store.recorder
        reads = Reads(["c-2", "c-1", "c-none"], ["R-0002", "R-none"], [A1, A2])
        with round_trips(ledger.store) as counted, recorder.write_transaction(reads):
            carried = recorder.carried(_CATALOGUED)
            receipts = recorder.select_receipts(["c-1", "c-2", "c-none"])
            refs = recorder.select_refs(["R-0002", "R-none"])
            affiliations = recorder.select_affiliations([A1, A2])
        assert carried  # what the last write left still held
        assert counted == [2]  # all of it read with the lock, none asked again
    assert receipts == stored
    assert set(receipts) == {"c-1", "c-2"}
    assert "£10.00" in receipts["c-2"].answer
    assert refs == {"R-0002": RefEntry("R-0002", A1, YEAR)}
    assert affiliations == {A1: ["16C"]}
