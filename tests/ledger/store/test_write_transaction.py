"""The write transaction: few round trips on PostgreSQL, and still exact.

A command's first reads go with the lock and its writes with COMMIT, and a stream
this process already knows is not read again: these tests check that other
writers' events are still seen, that a write failing at COMMIT records nothing,
and count the round trips one command makes on PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import DataError, IntegrityError, ProgrammingError

from ledger.auditlog.tables import transaction
from ledger.auditlog.verify import verify_store
from ledger.bootstrap import Ledger, bootstrap
from ledger.domain.errors import LedgerError, StoreUnavailable
from ledger.domain.events import LedgerEvent, budget_stream
from ledger.store.dialect import as_tuple
from ledger.store.postgres import _batched
from ledger.store.recorders import Indexes, Reads, Receipt
from tests.conftest import PG_BASE_URL, FakeClock
from tests.ledger.application.scenario import A1, A2, ALLOCATOR, YEAR, commit, run, seed
from tests.pg_round_trips import round_trips, traced


def positions(ledger: Ledger) -> list[int]:
    return [p for p, _ in ledger.store.iter_events()]


def budget_versions(ledger: Ledger) -> list[int]:
    return [e.originator_version for e in ledger.store.stream(budget_stream(A1, YEAR))]


def test_a_stream_another_writer_extended_is_read_again_before_the_next_command(
    open_ledger: Callable[[], Ledger],
) -> None:
    first, second = open_ledger(), open_ledger()
    seed(first, practices=(A1,), consortium=None, amount="1000")
    run(first, "budget harden", ALLOCATOR, practice=A1, year=YEAR, on="2024-04-01")
    commit(first, "R-0001", "100.00")
    commit(second, "R-0002", "100.00")
    commit(second, "R-0003", "100.00")
    answer = commit(first, "R-0004", "100.00")
    versions = budget_versions(first)
    assert versions == list(range(1, len(versions) + 1))
    assert answer.events[-1]["version"] == versions[-1]
    # The same stream, refused by the rule that needs every earlier commitment in it:
    # 1000 allocated, 400 committed by the two writers, so 700 more is over budget.
    with pytest.raises(LedgerError) as refused:
        commit(first, "R-0005", "700.00")
    assert refused.value.rule == "hard-budget"
    assert positions(first) == list(range(1, len(positions(first)) + 1))


@pytest.mark.postgres
def test_a_writer_that_missed_many_other_writes_reads_its_streams_again(
    pg_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("ledger.store.postgres._CHANGED_LIMIT", 2)
    with bootstrap(pg_url, clock=clock) as first, bootstrap(pg_url, clock=clock) as second:
        seed(first, practices=(A1,), consortium=None, amount="1000")
        commit(first, "R-0001", "100.00")
        for n in range(2, 6):  # more events than the limit looks through
            commit(second, f"R-{n:04d}", "10.00")
        answer = commit(first, "R-0006", "10.00")
        versions = budget_versions(first)
        assert versions == list(range(1, len(versions) + 1))
        assert answer.events[-1]["version"] == versions[-1]


def test_a_write_refused_at_commit_records_nothing_and_leaves_no_gap(
    open_ledger: Callable[[], Ledger],
) -> None:
    ledger = open_ledger()
    seed(ledger)
    commit(ledger, "R-0001", "10.00")
    before = positions(ledger)
    store: Any = ledger.store
    with transaction(store, commit=True) as curs:  # the next leaf index, taken around the ledger
        curs.execute(store.recorder.dialect.sql(
            "INSERT INTO {leaves} (leaf_index, position, stream_id, version, leaf_hash) "
            "VALUES (?, ?, ?, 1, ?)"), (len(before), 10**9, b"x" * 16, b"x" * 32))
    with pytest.raises(StoreUnavailable):
        commit(ledger, "R-0002", "10.00", command_id="c-refused")
    assert positions(ledger) == before
    assert ledger.store.receipts(["c-refused"]) == {}
    assert ledger.store.refs(["R-0002"]) == {}
    with transaction(store, commit=True) as curs:
        curs.execute(store.recorder.dialect.sql("DELETE FROM {leaves} WHERE position = ?"),
                     (10**9,))
    commit(ledger, "R-0002", "10.00", command_id="c-refused")
    assert positions(ledger) == [*before, before[-1] + 1]
    assert verify_store(store).ok


@pytest.mark.postgres
def test_a_command_on_postgresql_takes_two_round_trips(pg_url: str, clock: FakeClock) -> None:
    with bootstrap(pg_url, clock=clock) as ledger:
        seed(ledger)
        commit(ledger, "R-0001", "10.00")  # the aggregates and the tree head now exist
        with round_trips(ledger.store) as counted:
            commit(ledger, "R-0002", "10.00")
        assert counted == [2]


@pytest.mark.postgres
def test_writers_taking_turns_on_postgresql_seldom_take_a_third_round_trip(
    pg_url: str, clock: FakeClock,
) -> None:
    # Each write of one follows one of the other: what it carried from its own last
    # write never holds, and once found stale it is tried less and less often.
    with bootstrap(pg_url, clock=clock) as first, bootstrap(pg_url, clock=clock) as second:
        seed(first)
        commit(first, "R-a00", "10.00")
        turns: list[int] = []
        for n in range(1, 21):
            commit(second, f"R-b{n:02d}", "10.00", practice=A2)  # streams of its own
            with round_trips(first.store) as counted:
                commit(first, f"R-a{n:02d}", "10.00")
            turns.extend(counted)
        assert set(turns) == {2, 3}
        assert turns.count(3) <= 4  # the 1st, 3rd, 7th and 15th
        versions = budget_versions(first)
        assert versions == list(range(1, len(versions) + 1))


@pytest.mark.postgres
def test_a_command_on_postgresql_sends_six_statements(pg_url: str, clock: FakeClock) -> None:
    # BEGIN, the lock's settings, LOCK TABLE, the first reads (receipts, refs, the
    # catalogue, the tree head...), every row written, COMMIT.
    with bootstrap(pg_url, clock=clock) as ledger:
        seed(ledger)
        commit(ledger, "R-0001", "10.00")
        with traced(ledger.store) as counted:
            commit(ledger, "R-0002", "10.00")
        assert counted == [2, 6]


@pytest.mark.postgres
def test_statements_queued_in_a_write_transaction_reach_the_server_together_at_a_sync() -> None:
    # The write transaction's pipeline writes what is queued to the socket only when it
    # is synced (or a result is fetched): the server reads a batch in one go, rather
    # than being sent (and woken for) each statement as it is queued.
    key = 0x5EED
    held = ("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = %s "
            "AND pid = %s")
    with (psycopg.connect(PG_BASE_URL, autocommit=True) as conn,
          psycopg.connect(PG_BASE_URL, autocommit=True) as other):
        pid = conn.info.backend_pid
        with _batched(conn) as pipeline:
            first = conn.execute("SELECT pg_advisory_lock(%s), 41 + 1", (key,))
            waited = time.monotonic() + 0.3
            while time.monotonic() < waited:  # long enough for the server to have run it
                assert other.execute(held, (key, pid)).fetchone() is None
            pipeline.sync()
            assert other.execute(held, (key, pid)).fetchone() is not None
            assert first.fetchone() == ("", 42)
            # A result fetched before any sync is asked for, and comes back.
            second = conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
            assert second.fetchone() == (True,)
        assert other.execute(held, (key, pid)).fetchone() is None
        assert conn.execute("SELECT 7").fetchone() == (7,)  # out of pipeline mode again


@pytest.mark.postgres
def test_writes_sent_with_the_commit_record_nothing_when_one_of_them_fails(
    pg_url: str, clock: FakeClock,
) -> None:
    with bootstrap(pg_url, clock=clock) as ledger:
        seed(ledger)
        before = positions(ledger)
        recorder: Any = ledger.store.recorder
        receipts = recorder.dialect.table("ledger_commands")
        stored = ledger.store.mapper.to_stored_event(budget_event(ledger))

        def write() -> None:
            with recorder.write_transaction() as curs:
                recorder.insert_in_transaction(curs, [stored], Indexes(
                    receipts=[Receipt("c-queued", "fingerprint", "{}")]))
                # The same command id again, in the last of the queued writes.
                curs.write(f"INSERT INTO {receipts} VALUES (%s, 'other', '{{}}')",
                           ("c-queued",))

        with pytest.raises(IntegrityError):
            write()
        assert positions(ledger) == before
        assert ledger.store.receipts(["c-queued"]) == {}
        assert verify_store(ledger.store).ok
        commit(ledger, "R-0001", "10.00")  # the ledger writes on, without a gap
        assert positions(ledger) == list(range(1, len(before) + 2))


def refused_with_the_first_reads(recorder: Any) -> None:
    with recorder.write_transaction(Reads(rows=[("SELECT * FROM no_such_table", ())])):
        pass


def refused_by_a_read_in_between(recorder: Any) -> None:
    with recorder.write_transaction():
        recorder.select_rows("SELECT 1 / 0", ())


def refused_by_a_statement_never_fetched(recorder: Any) -> None:
    with recorder.write_transaction() as curs:
        curs.executemany("INSERT INTO no_such_table VALUES (%s)", [(1,), (2,)])


def refused_after_reads(recorder: Any) -> None:
    with recorder.write_transaction():
        recorder.select_rows("SELECT 1", ())
        raise LookupError("refused by the command")


@pytest.mark.postgres
@pytest.mark.parametrize(("refused", "error"), [
    (refused_with_the_first_reads, ProgrammingError), (refused_by_a_read_in_between, DataError),
    (refused_by_a_statement_never_fetched, ProgrammingError), (refused_after_reads, LookupError),
], ids=["with the first reads", "a read in between", "a statement never fetched",
        "the block raising after reads"])
def test_a_write_transaction_refused_part_way_through_its_pipeline_leaves_its_connection_usable(
    pg_url: str, clock: FakeClock, refused: Callable[[Any], None], error: type[Exception],
) -> None:
    with bootstrap(pg_url, clock=clock) as ledger:
        seed(ledger)
        before = positions(ledger)
        recorder: Any = ledger.store.recorder
        for _ in range(3):  # the pool's connection each time, as the refusal left it
            with pytest.raises(error):
                refused(recorder)
            with recorder.datastore.get_connection() as conn:
                assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                assert conn.execute("SELECT 7 AS seven").fetchone() == {"seven": 7}
        assert positions(ledger) == before
        commit(ledger, "R-0001", "10.00")
        commit(ledger, "R-0002", "10.00")
        assert positions(ledger) == list(range(1, len(before) + 3))
        assert verify_store(ledger.store).ok


def budget_event(ledger: Ledger) -> LedgerEvent:
    """The next event of a budget's stream, as a command would append it."""
    last = ledger.store.stream(budget_stream(A1, YEAR))[-1]
    return last.model_copy(update={"originator_version": last.originator_version + 1})


@pytest.mark.postgres
def test_the_position_sequence_is_kept_at_the_head_for_writers_that_draw_from_it(
    pg_url: str, clock: FakeClock,
) -> None:
    with bootstrap(pg_url, clock=clock) as ledger:
        seed(ledger)  # the first write looks the sequence up; the others only name it
        dialect = ledger.store.recorder.dialect
        commit(ledger, "R-0001", "10.00")
        for ref in ("R-0002", "R-0003"):
            with traced(ledger.store) as counted:
                commit(ledger, ref, "10.00")
            assert counted == [2, 6]
            with transaction(ledger.store, commit=False) as curs:
                curs.execute(dialect.sql(
                    "SELECT pg_get_serial_sequence(?, 'notification_id') AS name"),
                    (dialect.events,))
                name = as_tuple(curs.fetchone())[0]
                curs.execute(dialect.sql("SELECT last_value, is_called FROM " + name))
                assert as_tuple(curs.fetchone()) == (ledger.store.head(), True)


def fill_factors(ledger: Ledger) -> dict[str, list[str] | None]:
    """The storage options of the tables of one row every write rewrites."""
    schema = ledger.store.recorder.datastore.schema  # type: ignore[attr-defined]
    with transaction(ledger.store, commit=False) as curs:
        curs.execute("SELECT c.relname, c.reloptions FROM pg_class c JOIN pg_namespace n "
                     "ON n.oid = c.relnamespace WHERE n.nspname = %s "
                     "AND c.relname IN ('ledger_tree', 'ledger_kinds_checked')", (schema,))
        return {str(name): options for name, options in map(as_tuple, curs.fetchall())}


@pytest.mark.postgres
def test_a_new_postgresql_ledger_has_the_pages_of_its_rewritten_rows_pruned_early(
    pg_url: str, clock: FakeClock,
) -> None:
    with bootstrap(pg_url, clock=clock) as ledger:
        seed(ledger)
        assert fill_factors(ledger) == {"ledger_tree": ["fillfactor=10"],
                                        "ledger_kinds_checked": ["fillfactor=10"]}
        # A ledger made before, with the default fill factor, writes as it did.
        dialect = ledger.store.recorder.dialect
        with transaction(ledger.store, commit=True) as curs:
            for table in ("ledger_tree", "ledger_kinds_checked"):
                curs.execute(f"ALTER TABLE {dialect.table(table)} RESET (fillfactor)")
        assert fill_factors(ledger) == {"ledger_tree": None, "ledger_kinds_checked": None}
        for n in range(30):
            commit(ledger, f"R-{n:04d}", "1.00")
        head, checked, _ = ledger.store.probe()
        assert checked == head
        assert verify_store(ledger.store).ok
