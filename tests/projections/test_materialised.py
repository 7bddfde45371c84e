"""Projections in the store's own database, on SQLite and PostgreSQL: hand-checked
answers for an auditor's scenario, and rebuild equal to incremental catch-up."""

from __future__ import annotations

import fcntl
import os
import random
import time
import uuid
from contextlib import nullcontext
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger.auditlog.tables import transaction
from ledger.bootstrap import Ledger, bootstrap
from ledger.domain import events as ev
from ledger.domain.errors import InvalidInput, NotFound, UnreadableEvent
from ledger.domain.values import ELEMENTS, Element, FinancialYear
from ledger.store import catalogue
from ledger.store.eventstore import StoreTarget, open_store, parse_target
from projections import materialise
from projections.core import MemoryState, fold, positioned
from projections.materialise import Cache, Materialiser, TrackingConflictError
from projections.positions import POSITIONS, TOTALS
from projections.queries import Reads
from projections.registry import PROJECTIONS
from projections.trail import describe
from tests.ledger.application.scenario import commit as commit_by_command
from tests.ledger.application.scenario import seed as seed_by_commands
from tests.pg_round_trips import round_trips
from tests.projections.builders import History, append, random_history

D = date
TODAY = D(2024, 12, 1)


def scenario() -> tuple[History, dict[str, datetime]]:
    """Delegation, revocation, opt-out, opt-in, a same-day re-delegation, a pool."""
    h = History()
    marks: dict[str, datetime] = {}
    h.register("A81001")
    h.register("A81002")
    h.form("16C")
    h.join("16C", "A81001", D(2024, 4, 1))
    h.allocate("A81001", D(2024, 4, 1), acute=1_000_000, prescribing=500_000)
    h.allocate("A81002", D(2024, 4, 1), acute=100)
    h.delegate("A81001", ["prescribing"], "consortium:16C", D(2024, 6, 1))
    marks["after delegation"] = h.now
    h.revoke("A81001", ["prescribing"], D(2024, 9, 1))
    h.opt_out("A81001", "practice:A81002", D(2024, 10, 1))
    h.opt_in("A81001", D(2025, 1, 1))
    h.delegate("A81001", ["maternity"], "consortium:16C", D(2025, 2, 1))
    h.delegate("A81001", ["maternity"], "practice:A81002", D(2025, 2, 1))
    h.pool("16C", 100, D(2024, 4, 1))
    h.adjust("A81001", "acute", -100_000, D(2024, 5, 1))
    h.commit("A81001", "R1", "acute", 300_000, D(2024, 6, 1))
    h.harden("A81001", D(2024, 7, 1))
    h.settle("A81001", "R1", 150_000, D(2024, 8, 1))
    h.commit("A81002", "R2", "acute", 250, D(2024, 6, 1), overspend=150)
    return h, marks


@pytest.fixture
def reads(ledger: Ledger) -> Reads:
    return Reads(ledger.store, today=TODAY)


def held(rows: list[dict[str, Any]]) -> dict[str, tuple[str, date]]:
    return {r["element"]: (r["holder"], r["since"]) for r in rows}


def test_holders_on_business_dates(ledger: Ledger, reads: Reads) -> None:
    h, _ = scenario()
    append(ledger.store, h.events)
    june = held(reads.holders(practice="A81001", as_of=D(2024, 6, 15)))
    assert june["prescribing"] == ("consortium:16C", D(2024, 6, 1))
    assert june["acute"] == ("practice:A81001", D(2024, 4, 1))
    assert set(june) == {"acute", "prescribing"}  # the elements allocated by then
    assert held(reads.holders(practice="A81001", as_of=D(2024, 9, 15)))["prescribing"] == (
        "practice:A81001", D(2024, 9, 1))
    november = held(reads.holders(practice="A81001", as_of=D(2024, 11, 1)))
    assert set(november.values()) == {("practice:A81002", D(2024, 10, 1))}
    february = held(reads.holders(practice="A81001", as_of=D(2025, 2, 1)))
    assert february["acute"] == ("practice:A81001", D(2025, 1, 1))
    assert february["maternity"] == ("practice:A81002", D(2025, 2, 1))  # recorded last wins


def test_known_at_ignores_what_was_recorded_later(ledger: Ledger, reads: Reads) -> None:
    h, marks = scenario()
    append(ledger.store, h.events)
    then = held(reads.holders(practice="A81001", as_of=D(2024, 11, 1),
                              known_at=marks["after delegation"]))
    assert then["prescribing"] == ("consortium:16C", D(2024, 6, 1))
    assert then["acute"] == ("practice:A81001", D(2024, 4, 1))
    before_budgets = h.events[0].recorded_at + timedelta(seconds=1)
    assert reads.holders(practice="A81001", as_of=D(2024, 11, 1), known_at=before_budgets) == []


def test_holders_on_dates_and_as_known_once_the_write_path_has_checked_the_log(
        ledger: Ledger, reads: Reads) -> None:
    h, marks = scenario()
    append(ledger.store, h.events)
    seed_by_commands(ledger, practices=("A81009",), consortium=None)  # checks what came before
    reads.holders()  # catches the projections up
    asked = [(D(2024, 6, 15), None), (D(2024, 11, 1), None), (D(2025, 2, 1), None),
             (D(2024, 11, 1), marks["after delegation"])]
    with round_trips(ledger.store) if ledger.store.target.kind == "postgres" else (
            nullcontext([1] * len(asked))) as trips:
        found = [held(reads.holders(practice="A81001", as_of=on, known_at=known))
                 for on, known in asked]
    assert found[0]["prescribing"] == ("consortium:16C", D(2024, 6, 1))
    assert set(found[1].values()) == {("practice:A81002", D(2024, 10, 1))}
    assert found[2]["maternity"] == ("practice:A81002", D(2025, 2, 1))
    assert found[3]["prescribing"] == ("consortium:16C", D(2024, 6, 1))
    assert [set(f) for f in found] == [{"acute", "prescribing"}] * 2 + [
        {"acute", "prescribing", "maternity"}, {"acute", "prescribing"}]
    assert sum(trips) == len(asked)  # PostgreSQL: one round trip each


def test_holders_show_the_elements_a_budget_has_by_the_date_and_instant_asked(
        ledger: Ledger, reads: Reads) -> None:
    """An element joins its budget with its first allocation, adjustment or delegation;
    one never named is no part of the budget and has no holders row, even through an
    opt-out that moves every element."""
    h = History()
    h.register("A81001")
    h.register("A81002")
    h.allocate("A81001", D(2024, 4, 1), acute=1_000, maternity=0)  # zero is allocated
    recorded_first = h.now
    h.allocate("A81001", D(2024, 7, 1), community=500)
    h.delegate("A81001", ["prescribing"], "practice:A81002", D(2024, 6, 1))
    h.adjust("A81001", "mental-health", 300, D(2024, 8, 1))
    h.opt_out("A81001", "practice:A81002", D(2024, 10, 1))
    append(ledger.store, h.events)

    def elements(**asked: Any) -> dict[str, tuple[str, date]]:
        return held(reads.holders(practice="A81001", **asked))

    assert elements(as_of=D(2024, 5, 1)) == {
        "acute": ("practice:A81001", D(2024, 4, 1)),
        "maternity": ("practice:A81001", D(2024, 4, 1))}
    assert set(elements(as_of=D(2024, 6, 1))) == {"acute", "maternity", "prescribing"}
    assert set(elements(as_of=D(2024, 8, 1))) == {
        "acute", "maternity", "prescribing", "community", "mental-health"}
    assert set(elements(as_of=D(2024, 8, 1), known_at=recorded_first)) == {
        "acute", "maternity"}
    november = elements(as_of=D(2024, 11, 1))
    assert set(november) == {"acute", "maternity", "prescribing", "community",
                             "mental-health"}
    assert november.pop("prescribing") == ("practice:A81002", D(2024, 6, 1))
    assert set(november.values()) == {("practice:A81002", D(2024, 10, 1))}
    by_holder = reads.holders(holder="practice:A81002", as_of=D(2024, 11, 1))
    assert len(by_holder) == 5


def test_a_projection_missing_a_table_is_folded_again_from_zero(
        ledger: Ledger, reads: Reads) -> None:
    """A projection whose tables an older version made without one of them (here the
    elements each budget has) is folded again from zero, not read half empty."""
    h, _ = scenario()
    append(ledger.store, h.events)
    before = reads.holders(practice="A81001", as_of=D(2024, 6, 15))
    with reads.db.cursor(write=True) as c:
        c.execute(f"DROP TABLE {reads.db.name('holder_elements')}")
    again = Reads(ledger.store, today=TODAY)
    assert again.holders(practice="A81001", as_of=D(2024, 6, 15)) == before
    assert len(before) == 2


def test_holders_by_holder_and_by_consortium(ledger: Ledger, reads: Reads) -> None:
    h, marks = scenario()
    append(ledger.store, h.events)
    by_holder = reads.holders(holder="consortium:16C", as_of=D(2024, 7, 1))
    assert [(r["practice"], r["element"]) for r in by_holder] == [("A81001", "prescribing")]
    known = reads.holders(holder="practice:A81002", as_of=D(2024, 11, 1),
                          known_at=marks["after delegation"])
    # It held only its own budget then: A81001's opt-out to it was recorded later.
    assert {r["practice"] for r in known} == {"A81002"}
    later = reads.holders(holder="practice:A81002", as_of=D(2024, 11, 1))
    assert {r["practice"] for r in later} == {"A81001", "A81002"}
    members = reads.holders(consortium="16C", as_of=D(2024, 7, 1))
    assert {r["practice"] for r in members} == {"A81001"}


def test_bad_questions_are_refused(reads: Reads, ledger: Ledger) -> None:
    h, _ = scenario()
    append(ledger.store, h.events)
    with pytest.raises(NotFound):
        reads.holders(practice="A99999")
    with pytest.raises(NotFound):
        reads.holders(consortium="99X")
    with pytest.raises(NotFound):
        reads.holders(as_of=D(2031, 1, 1))
    with pytest.raises(InvalidInput):
        reads.holders(year="2024-25", as_of=D(2025, 6, 1))
    with pytest.raises(InvalidInput):
        reads.holders(practice="A81001", holder="consortium:16C")
    with pytest.raises(InvalidInput):
        reads.position(by="region")


def test_years_with_budgets_are_listed_once_each_in_order(ledger: Ledger, reads: Reads) -> None:
    h, _ = scenario()
    for year, practice in (("2026-27", "A81001"), ("2023-24", "A81002"), ("2026-27", "A81002")):
        h._budget(ev.BudgetAllocated, practice, FinancialYear.parse(year).first_day,
                  "allocator:Q71", year=year, allocator="Q71",
                  amounts_pence={Element("acute"): 100})
    append(ledger.store, h.events)
    reads.position()  # catches the projections up
    assert reads.years() == ["2023-24", "2024-25", "2026-27"]
    with pytest.raises(NotFound, match=r"budgets: 2023-24, 2024-25, 2026-27\)"):
        reads.holders(as_of=D(2025, 6, 1))
    assert {r["year"] for r in reads.holders(practice="A81002", as_of=D(2023, 6, 1))} == {
        "2023-24"}
    # No year asked: today's (TODAY, 2024-12-01), not the latest funded in advance.
    assert {r["year"] for r in reads.holders(practice="A81002")} == {"2024-25"}


def test_years_are_none_before_any_budget(ledger: Ledger, reads: Reads) -> None:
    h = History()
    h.register("A81001")
    append(ledger.store, h.events)
    with pytest.raises(NotFound, match="none yet"):
        reads.holders(as_of=D(2024, 6, 1))
    assert reads.years() == []


def test_a_read_asks_its_questions_on_one_connection(ledger: Ledger, reads: Reads,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    h, _ = scenario()
    append(ledger.store, h.events)
    reads.holders()  # catches the projections up
    opened: list[str] = []
    cursor = reads.db.cursor

    def counted(*, write: bool) -> Any:
        opened.append("write" if write else "read")
        return cursor(write=write)

    monkeypatch.setattr(reads.db, "cursor", counted)
    if reads.db.kind == "postgres":
        connection = reads.db.postgres.get_connection

        def borrowed() -> Any:
            opened.append("connection")
            return connection()

        monkeypatch.setattr(reads.db.postgres, "get_connection", borrowed)
    one = ["read"] if reads.db.kind == "sqlite" else ["connection"]
    monkeypatch.setattr(reads.views, "catch_up", lambda *_a, **_k: 0)
    assert len(reads.holders(practice="A81001", as_of=D(2024, 6, 15))) == 2
    assert opened == one
    opened.clear()
    assert reads.position(by="consortium", consortium="16C")
    assert opened == one
    with pytest.raises(NotFound):
        reads.holders(practice="A99999")
    assert reads.holders(practice="A81002", as_of=D(2024, 6, 15))  # after a refusal too


def test_holders_of_a_practice_on_a_date_checks_year_and_practice_in_one_query(
        ledger: Ledger, reads: Reads, monkeypatch: pytest.MonkeyPatch) -> None:
    h, _ = scenario()
    append(ledger.store, h.events)
    reads.holders()  # catches the projections up
    monkeypatch.setattr(reads.views, "catch_up", lambda *_a, **_k: 0)
    asked: list[str] = []
    query = reads._q

    def counted(sql: str, params: Any = ()) -> Any:
        asked.append(sql)
        return query(sql, params)

    monkeypatch.setattr(reads, "_q", counted)
    assert len(reads.holders(practice="A81001", as_of=D(2024, 6, 15))) == 2
    assert len(asked) == 2  # the checks, then the holders
    with pytest.raises(NotFound, match="outside every budget year"):
        reads.holders(practice="A99999", as_of=D(2031, 6, 1))
    with pytest.raises(NotFound, match="no practice A99999"):
        reads.holders(practice="A99999", as_of=D(2024, 6, 1))
    with pytest.raises(InvalidInput):
        reads.holders(practice="not a code", as_of=D(2024, 6, 1))
    with pytest.raises(NotFound, match="outside every budget year"):
        reads.holders(practice="not a code", as_of=D(2031, 6, 1))
    assert held(reads.holders(practice="A81002", as_of=D(2024, 6, 15)))["acute"] == (
        "practice:A81002", D(2024, 4, 1))


def test_positions_now_and_as_of(ledger: Ledger, reads: Reads) -> None:
    h, _ = scenario()
    append(ledger.store, h.events)
    now = {(r["practice"], r["element"]): r for r in reads.position()}
    acute = now[("A81001", "acute")]
    assert (acute["allocated_pence"], acute["available_pence"], acute["committed_pence"],
            acute["settled_pence"], acute["remaining_pence"]) == (
        900_000, 891_000, 150_000, 150_000, 591_000)
    assert acute["hard"] is True
    assert acute["overspent"] is False
    assert acute["consortium"] == "16C"
    assert now[("A81002", "acute")]["remaining_pence"] == -150
    assert now[("A81002", "acute")]["overspent"] is True
    june = {(r["practice"], r["element"]): r for r in reads.position(as_of=D(2024, 6, 15))}
    assert june[("A81001", "acute")]["committed_pence"] == 300_000
    assert june[("A81001", "acute")]["settled_pence"] == 0
    assert june[("A81001", "acute")]["hard"] is False


def test_positions_roll_up_to_consortium_and_allocator(ledger: Ledger, reads: Reads) -> None:
    h, _ = scenario()
    append(ledger.store, h.events)
    groups = {(r["consortium"], r["element"]): r for r in reads.position(by="consortium")}
    assert groups[("16C", "acute")]["remaining_pence"] == 591_000
    assert groups[("", "acute")]["overspent"] is True
    allocators = {(r["allocator"], r["element"]): r for r in reads.position(by="allocator")}
    assert allocators[("Q71", "acute")]["allocated_pence"] == 900_100
    assert allocators[("Q71", "acute")]["practices"] == 2
    only = reads.position(consortium="16C")
    assert {r["practice"] for r in only} == {"A81001"}


def test_trail_includes_consortium_events_concerning_the_practice(
        ledger: Ledger, reads: Reads) -> None:
    h, _ = scenario()
    append(ledger.store, h.events)
    trail = reads.trail("A81001")
    events = [r["event"] for r in trail]
    assert events[:3] == ["PracticeRegistered", "PracticeJoined", "BudgetAllocated"]
    assert "RiskPoolAgreed" in events
    assert "ConsortiumFormed" not in events
    assert [r["position"] for r in trail] == sorted(r["position"] for r in trail)
    a2 = [r["event"] for r in reads.trail("A81002")]
    assert "OptedOut" in a2  # it became the holder
    assert "RiskPoolAgreed" not in a2  # not a member
    summer = reads.trail("A81001", since=D(2024, 6, 1), until=D(2024, 8, 31))
    assert {r["effective_on"] for r in summer} <= {D(2024, 6, 1), D(2024, 7, 1), D(2024, 8, 1)}


def test_trail_rows_take_who_when_and_words_from_the_event_at_their_position(
        ledger: Ledger, reads: Reads) -> None:
    h, _ = scenario()
    append(ledger.store, h.events)
    by_position = dict(ledger.store.iter_events())
    trail = reads.trail("A81001")
    assert trail
    for row in trail:
        event = by_position[row["position"]]
        assert row["event"] == event.topic
        assert row["summary"] == describe(event)
        assert row["actor"] == event.actor
        assert row["recorded_at"] == event.recorded_at
        assert row["effective_on"] == event.effective_on
        assert row["year"] == event.__dict__.get("year")


def test_a_trail_table_laid_out_with_its_words_stored_is_caught_up_and_read_the_same(
        ledger: Ledger, reads: Reads, tmp_path: Path) -> None:
    """A ledger whose trail table was made when the rows carried their words keeps it;
    the rows caught up into it, and the trail read from it, are the same."""
    h, _ = scenario()
    db = Materialiser(ledger.store).db
    clustered = " WITHOUT ROWID" if db.kind == "sqlite" else ""
    with db.cursor(write=True) as c:
        c.execute(f"CREATE TABLE {db.name('trail')} (subject TEXT, position BIGINT, "
                  "year TEXT, recorded_at TEXT, effective_on TEXT, actor TEXT, event TEXT, "
                  f"summary TEXT, PRIMARY KEY (subject, position)){clustered}")
    append(ledger.store, h.events)
    with bootstrap(str(tmp_path / "fresh.db")) as fresh:
        append(fresh.store, h.events)
        expected = Reads(fresh.store, today=TODAY).trail("A81001")
    assert reads.trail("A81001") == expected
    assert db.query(f"SELECT count(*) FROM {db.name('trail')} WHERE summary IS NULL"
                    )[0][0] > 0


def test_a_trail_naming_an_event_of_a_kind_this_code_cannot_read_is_refused_not_crashed(
        ledger: Ledger, reads: Reads) -> None:
    """Read as it stands (a projector keeps it current), a trail row of an event whose kind
    this code does not know stops the read with UnreadableEvent at its position."""
    h, _ = scenario()
    append(ledger.store, h.events)
    reads.trail("A81001")
    store = ledger.store
    dialect = store.recorder.dialect
    at = store.head() + 1
    stream: Any = uuid.uuid4() if dialect.kind == "postgres" else uuid.uuid4().hex
    db = Materialiser(store).db
    with transaction(store, commit=True) as curs:
        curs.execute(dialect.sql("INSERT INTO {events} ({position}, originator_id, "
                                 "originator_version, topic, state) VALUES (?, ?, 1, ?, ?)"),
                     (at, stream, "PracticeRenamed", b'{"schema_version":1}'))
    with db.cursor(write=True) as c:
        c.execute(f"INSERT INTO {db.name('trail')} (subject, position, year, effective_on, "
                  f"event) VALUES ({db.p}, {db.p}, NULL, {db.p}, {db.p})",
                  ("practice:A81001", at, "2024-05-01", "PracticeRenamed"))
    with pytest.raises(UnreadableEvent) as refused:
        Reads(store, today=TODAY, catch_up=False).trail("A81001")
    assert refused.value.position == at


def test_replay_steps_through_one_budget_without_writing(ledger: Ledger, reads: Reads) -> None:
    h, _ = scenario()
    append(ledger.store, h.events)
    steps = reads.replay("A81001", "2024-25")
    assert [s["event"] for s in steps][:3] == ["BudgetAllocated", "HoldingDelegated",
                                               "DelegationRevoked"]
    assert steps[1]["holders"]["prescribing"] == "consortium:16C"
    assert steps[3]["holders"]["acute"] == "practice:A81002"
    # Each step shows the elements the budget has, as holders does: the opt-out moves
    # every element, but this budget has only acute and prescribing then.
    assert steps[3]["holders"] == {"acute": "practice:A81002",
                                   "prescribing": "practice:A81002"}
    delegated = [s for s in steps if s["effective_on"] == D(2025, 2, 1)]
    assert [s["holders"]["maternity"] for s in delegated] == [
        "consortium:16C", "practice:A81002"]
    assert all("maternity" not in s["holders"] for s in steps
               if s["effective_on"] < D(2025, 2, 1))
    assert steps[-1]["settled_pence"] == 150_000
    assert Materialiser(ledger.store).positions() == dict.fromkeys(
        [p.name for p in PROJECTIONS], 0)  # nothing was even caught up
    until = reads.replay("A81001", "2024-25", until=D(2024, 6, 30))
    assert all(s["effective_on"] <= D(2024, 6, 30) for s in until)


def snapshot(views: Materialiser) -> dict[str, list[tuple[Any, ...]]]:
    tables: dict[str, list[tuple[Any, ...]]] = {}
    for projection in PROJECTIONS:
        for table in projection.tables:
            rows = views.db.query(f"SELECT * FROM {views.db.name(table.name)}")
            tables[table.name] = sorted(rows, key=repr)
    return tables


@pytest.mark.parametrize("seed", [1, 2])
def test_rebuild_equals_incremental_catch_up(ledger: Ledger, seed: int) -> None:
    history = random_history(seed, 400)
    views = Materialiser(ledger.store)
    events = history.events
    cut = 0
    rng = random.Random(seed)
    while cut < len(events):
        step = rng.randrange(1, 60)
        append(ledger.store, events[cut:cut + step])
        cut += step
        # Sometimes one projection at a time, sometimes all: positions diverge and reconverge.
        names = [rng.choice(PROJECTIONS).name] if rng.random() < 0.3 else None
        views.catch_up(names)
    views.catch_up()
    incremental = snapshot(views)
    assert set(views.positions().values()) == {len(events)}
    views.rebuild()
    assert snapshot(views) == incremental
    fresh = Materialiser(ledger.store)  # a second process, cold cache
    fresh.rebuild(["positions"])
    assert snapshot(fresh) == incremental
    # And the tables equal the pure fold in memory.
    memory = fold(POSITIONS, positioned(events), MemoryState())
    totals = dict(memory.table(TOTALS))
    stored = {tuple(r[:3]): tuple(int(x) for x in r[3:])
              for r in incremental["position_totals"]}
    assert stored == totals


def test_rows_written_in_bulk_equal_rows_written_one_statement_each(
        ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL every table's rows go through COPY here, catch-up's and rebuild's."""
    history = random_history(4, 400)
    views = Materialiser(ledger.store)
    append(ledger.store, history.events[:250])
    views.catch_up()
    append(ledger.store, history.events[250:])
    views.catch_up()
    one_each = snapshot(views)
    monkeypatch.setattr(materialise, "PG_COPY_MIN_ROWS", 1)
    copied = Materialiser(ledger.store)
    copied.rebuild(workers=1)
    assert snapshot(copied) == one_each
    copied.rebuild(["trail", "positions"], workers=1)
    assert snapshot(copied) == one_each
    monkeypatch.setattr(materialise, "REBUILD_BATCH", 97)  # many batches, rows merged
    copied.rebuild(workers=1)
    assert snapshot(copied) == one_each


def test_a_rebuild_on_postgresql_leaves_statistics_for_the_planner(pg_url: str) -> None:
    with bootstrap(pg_url) as ledger:
        append(ledger.store, random_history(5, 60).events)
        views = Materialiser(ledger.store)
        views.rebuild()
        schema = views.db.schema
        names = [t.name for p in PROJECTIONS for t in p.tables]
        found = views.db.query(
            "SELECT relname FROM pg_stat_user_tables WHERE schemaname = ? "
            "AND last_analyze IS NOT NULL", (schema,))
        assert set(names) <= {r[0] for r in found}


@pytest.mark.postgres
def test_a_rebuild_on_postgresql_outlasts_the_stores_idle_in_transaction_limit(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process starved in the middle of a batch's transaction for longer than the
    store's idle-in-transaction limit (which guards the write path) still rebuilds."""
    with bootstrap(pg_url) as ledger:
        append(ledger.store, random_history(6, 120).events)
        caught_up = Materialiser(ledger.store)
        caught_up.catch_up()
        expected = snapshot(caught_up)
    parsed = parse_target(pg_url)
    store = open_store(StoreTarget(
        parsed.kind, parsed.location,
        {**parsed.env, "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "1"}), create=False)
    flush = Cache.flush
    paused: list[float] = []

    def flush_after_a_pause(cache: Cache, cursor: Any, prepared: Any = None) -> None:
        if not paused:
            paused.append(1.5)
            time.sleep(1.5)
        flush(cache, cursor, prepared)

    monkeypatch.setattr(Cache, "flush", flush_after_a_pause)
    try:
        views = Materialiser(store)
        views.rebuild(workers=1)
        assert paused
        assert snapshot(views) == expected
    finally:
        store.close()


def test_a_read_on_postgresql_opens_no_transaction_when_the_projections_are_current(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg  # noqa: PLC0415 - PostgreSQL only

    with bootstrap(pg_url) as ledger:
        append(ledger.store, scenario()[0].events)
        reads = Reads(ledger.store, today=TODAY)
        reads.holders()  # catches the projections up (that writes: a transaction)
        opened: list[object] = []
        transaction = psycopg.Connection.transaction

        def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            opened.append(self)
            return transaction(self, *args, **kwargs)

        monkeypatch.setattr(psycopg.Connection, "transaction", counted)
        assert reads.years() == ["2024-25"]
        assert len(reads.holders(practice="A81001", as_of=D(2024, 6, 15))) == 2
        assert opened == []


def written_by_commands(ledger: Ledger) -> None:
    """Practices, budgets, a consortium and a commitment, through the write path (which
    keeps the catalogue of kinds up to the head)."""
    seed_by_commands(ledger)
    commit_by_command(ledger, "R-0001", "10.00")


@pytest.mark.postgres
def test_a_read_on_postgresql_takes_one_to_three_round_trips_when_projections_are_current(
        pg_url: str) -> None:
    with bootstrap(pg_url) as ledger:
        written_by_commands(ledger)
        reads = Reads(ledger.store, today=TODAY)
        reads.holders(practice="A81001", as_of=D(2024, 6, 15))  # catches the projections up
        reads.position(by="consortium")
        # The readability check, the log's head and the projections' positions: one
        # round trip, which for holders of a practice on a date also asks whether its
        # year and practice exist and fetches its holder changes; then the read's own
        # queries.
        with round_trips(ledger.store) as holders:
            assert len(reads.holders(practice="A81001", as_of=D(2024, 6, 15))) == 3
        with round_trips(ledger.store) as position:
            assert reads.position(by="consortium")
        assert holders == [1]
        assert position == [3]


def test_a_read_catches_up_after_a_command_moves_the_head(ledger: Ledger, reads: Reads) -> None:
    written_by_commands(ledger)
    before = reads.position(practice="A81001")
    commit_by_command(ledger, "R-0002", "25.00")
    assert Materialiser(ledger.store).status()[0].lag > 0
    after = reads.position(practice="A81001")
    assert Materialiser(ledger.store).status()[0].lag == 0
    committed = {r["element"]: r["committed_pence"] for r in after}
    assert committed["acute"] == 3_500
    assert committed != {r["element"]: r["committed_pence"] for r in before}


def test_a_holders_read_of_a_practice_on_a_date_catches_up_after_a_command(
        ledger: Ledger, reads: Reads) -> None:
    written_by_commands(ledger)
    assert len(reads.holders(practice="A81001", as_of=D(2024, 6, 15))) == 3
    seed_by_commands(ledger, practices=("A81004",), consortium=None)
    assert {s.name: s.lag for s in Materialiser(ledger.store).status()}["holders"] > 0
    rows = reads.holders(practice="A81004", as_of=D(2024, 6, 15))
    assert {r["holder"] for r in rows} == {"practice:A81004"}
    lags = {s.name: s.lag for s in Materialiser(ledger.store).status()}
    assert [lags[n] for n in ("organisations", "holders", "portfolio", "positions")] == [0] * 4


def test_a_holders_read_catches_up_holding_no_connection_of_its_own(
        ledger: Ledger, reads: Reads, monkeypatch: pytest.MonkeyPatch) -> None:
    written_by_commands(ledger)
    reads.holders(practice="A81001", as_of=D(2024, 7, 15))
    commit_by_command(ledger, "R-0002", "25.00")  # the projections are behind now
    holding: list[bool] = []
    fresh = reads._fresh

    def watched(*names: str) -> None:
        holding.append(reads._cursor is not None)  # a served read waits here for its turn
        fresh(*names)

    monkeypatch.setattr(reads, "_fresh", watched)
    assert len(reads.holders(practice="A81001", as_of=D(2024, 7, 15))) == 3
    assert holding == [False]


def test_projections_count_as_current_only_when_each_is_tracked_at_the_head(
        ledger: Ledger) -> None:
    written_by_commands(ledger)
    views = Materialiser(ledger.store)
    views.catch_up(["holders", "trail"])
    holders, trail, positions = (views.projections[n] for n in ("holders", "trail", "positions"))
    assert views._current([holders, trail])
    assert not views._current([holders, positions])  # one of them behind
    with views.db.cursor(write=True) as c:
        c.execute(f"DELETE FROM {views.db.tracking_table} "
                  f"WHERE application_name = {views.db.p}", ("projection:trail",))
    assert views._current([holders])
    assert not views._current([holders, trail])  # one of them not tracked at all


def test_a_kind_a_newer_version_catalogued_stops_the_reads(ledger: Ledger, reads: Reads) -> None:
    written_by_commands(ledger)
    reads.holders()
    store = ledger.store
    dialect = store.recorder.dialect
    at = store.head() + 1
    stream: Any = uuid.uuid4() if dialect.kind == "postgres" else uuid.uuid4().hex
    with transaction(store, commit=True) as curs:  # as a newer version's write path would
        curs.execute(dialect.sql("INSERT INTO {events} ({position}, originator_id, "
                                 "originator_version, topic, state) VALUES (?, ?, 1, ?, ?)"),
                     (at, stream, "ListSizeRecorded", b'{"schema_version":99}'))
        catalogue.record(curs, dialect, [(at, "ListSizeRecorded", 99)], set())
    with pytest.raises(UnreadableEvent) as holders:
        reads.holders(practice="A81001", as_of=D(2024, 6, 15))
    with pytest.raises(UnreadableEvent) as position:
        reads.position(by="consortium")
    with pytest.raises(UnreadableEvent) as trail:
        reads.trail("A81001")
    assert [e.value.position for e in (holders, position, trail)] == [at, at, at]


def test_a_rebuild_reads_events_stored_in_an_older_schema_version_as_catch_up_does(
        ledger: Ledger) -> None:
    h = History()
    h.register("A81001")
    h.allocate("A81001", D(2024, 4, 1), acute=1_000)
    append(ledger.store, h.events)
    dialect = ledger.store.recorder.dialect
    older = [  # version 1: weighted populations could be left out, allocations had no formula
        (ev.practice_stream("B82001"), "PracticeRegistered",
         b'{"schema_version":1,"recorded_at":"2024-04-02T09:00:00Z","effective_on":'
         b'"2024-04-01","actor":"allocator:Q71","command_id":"old-1","reason":null,'
         b'"practice":"B82001","name":"Old Surgery","list_size":4069,"allocator":"Q71"}'),
        (ev.budget_stream("B82001", "2024-25"), "BudgetAllocated",
         b'{"schema_version":1,"recorded_at":"2024-04-02T09:00:01.5Z","effective_on":'
         b'"2024-04-01","actor":"allocator:Q71","command_id":"old-2","reason":null,'
         b'"practice":"B82001","year":"2024-25","allocator":"Q71",'
         b'"amounts_pence":{"acute":250000},"basis":null}'),
    ]
    views = Materialiser(ledger.store)
    with views.db.cursor(write=True) as cursor:
        for stream, topic, state in older:
            cursor.execute(dialect.sql(
                "INSERT INTO {events} (originator_id, originator_version, topic, state) "
                "VALUES (?, ?, ?, ?)"),
                (stream.hex if dialect.kind == "sqlite" else stream, 1, topic, state))
    views.catch_up()
    incremental = snapshot(views)
    views.rebuild(workers=1)
    assert snapshot(views) == incremental
    populations, totals = (views.db.name(t) for t in ("variation_population_figures",
                                                       "position_totals"))
    weighted = views.db.query(f"SELECT weighted FROM {populations} "
                              "WHERE practice = 'B82001' AND element = 'acute'")
    assert weighted == [(None,)]
    assert views.db.query(f"SELECT allocated FROM {totals} "
                          "WHERE practice = 'B82001'") == [(250000,)]


def test_a_rebuild_in_parallel_processes_equals_one_in_this_process(ledger: Ledger) -> None:
    history = random_history(3, 400)
    append(ledger.store, history.events)
    views = Materialiser(ledger.store)
    views.catch_up()
    incremental = snapshot(views)
    views.rebuild(workers=1)
    assert snapshot(views) == incremental
    read: list[int] = []
    assert views.rebuild(workers=3, progress=read.append) == len(history.events)
    assert snapshot(views) == incremental
    assert sum(read) == len(history.events)
    assert set(views.positions().values()) == {len(history.events)}
    views.rebuild(["positions", "trail"], workers=2)  # some of them, in two processes
    assert snapshot(views) == incremental


def _emptied(views: Materialiser, names: list[str]) -> None:
    """The projections emptied at position 0, as a rebuild leaves them for its processes."""
    with views.db.cursor(write=True) as c:
        for name in names:
            c.execute(f"UPDATE {views.db.tracking_table} SET notification_id = 0 "
                      f"WHERE application_name = {views.db.p}", (f"projection:{name}",))
            for table in views.projections[name].tables:
                c.execute(f"DELETE FROM {views.db.name(table.name)}")


def files_beside(ledger: Ledger) -> set[Path]:
    """The files in a SQLite ledger's directory (none for PostgreSQL)."""
    if ledger.store.target.kind != "sqlite":
        return set()
    return set(Path(ledger.store.target.location).parent.iterdir())


def test_projections_built_apart_equal_catch_up_and_leave_no_scratch_file(
        ledger: Ledger) -> None:
    history = random_history(6, 400)
    append(ledger.store, history.events)
    views = Materialiser(ledger.store)
    views.catch_up()
    incremental = snapshot(views)
    names = ["positions", "trail", "holders"]
    _emptied(views, names)
    before = files_beside(ledger)
    assert views.build_apart(names) == len(history.events)
    assert snapshot(views) == incremental
    assert set(views.positions().values()) == {len(history.events)}
    assert files_beside(ledger) == before


def test_projections_built_apart_writing_rows_out_as_they_pile_up_equal_catch_up(
        ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite: rows held over several batches, written out into the scratch file whenever
    enough have piled up and at the end (rows put, replaced, added to and deleted across
    those writes), or after every batch, or once; PostgreSQL writes every batch."""
    history = random_history(8, 400)
    append(ledger.store, history.events)
    views = Materialiser(ledger.store)
    views.catch_up()
    incremental = snapshot(views)
    names = [p.name for p in PROJECTIONS]
    monkeypatch.setattr(materialise, "REBUILD_BATCH", 37)
    batches = -(-len(history.events) // 37)
    writes: list[int] = []
    flush = materialise.Cache.flush

    def counted(cache: materialise.Cache, cursor: Any, prepared: Any = None) -> None:
        writes.append(cache.held())
        flush(cache, cursor, prepared)

    monkeypatch.setattr(materialise.Cache, "flush", counted)
    for held in (1, 1_000, 10**9):
        monkeypatch.setattr(materialise, "SCRATCH_HELD_ROWS", held)
        writes.clear()
        _emptied(views, names)
        assert views.build_apart(names) == len(history.events)
        assert snapshot(views) == incremental, held
        if ledger.store.target.kind != "sqlite":
            continue
        if held == 1:
            assert len(writes) == batches
        elif held == 10**9:
            assert len(writes) == 1
        else:
            assert 1 < len(writes) < batches
            assert all(n >= held for n in writes[:-1]), writes


def test_projections_built_apart_are_caught_up_when_another_process_moved_them_meanwhile(
        ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    history = random_history(7, 300)
    append(ledger.store, history.events)
    views = Materialiser(ledger.store)
    views.catch_up()
    incremental = snapshot(views)
    _emptied(views, ["positions", "trail"])
    build_in = Materialiser._build_in

    def raced(self: Materialiser, *args: Any) -> Any:
        built = build_in(self, *args)
        Materialiser(ledger.store).catch_up(["trail"])  # another reader catches trail up
        return built

    monkeypatch.setattr(Materialiser, "_build_in", raced)
    views.build_apart(["positions", "trail"])
    assert snapshot(views) == incremental
    assert set(views.positions().values()) == {len(history.events)}


def test_a_sqlite_build_apart_that_fails_leaves_the_projections_empty_at_zero(
        sqlite_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = bootstrap(sqlite_path)
    append(ledger.store, random_history(8, 200).events)
    views = Materialiser(ledger.store)
    views.catch_up()
    _emptied(views, ["positions"])
    before = files_beside(ledger)

    def broken(*_args: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Materialiser, "_copy_in", broken)
    with pytest.raises(OSError, match="disk full"):
        views.build_apart(["positions"])
    assert views.positions()["positions"] == 0
    assert views.db.query(f"SELECT count(*) FROM {views.db.name(TOTALS.name)}") == [(0,)]
    assert files_beside(ledger) == before
    ledger.close()


def _slow_worker(target: Any, names: list[str], counter: Any) -> None:
    """A rebuild worker whose fold stops for a minute once it has made its scratch file."""
    import time  # noqa: PLC0415 - in the spawned process only

    def stalled(*_args: Any) -> None:
        counter.value = 1
        time.sleep(60)

    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(Materialiser, "_fold_bulk", stalled)
    materialise._worker_start(counter)
    materialise._worker_rebuild(target, names)


def test_a_rebuild_worker_ended_from_outside_removes_its_scratch_file(sqlite_path: str
                                                                        ) -> None:
    import multiprocessing  # noqa: PLC0415
    import signal  # noqa: PLC0415
    import time  # noqa: PLC0415

    ledger = bootstrap(sqlite_path)
    append(ledger.store, random_history(9, 50).events)
    views = Materialiser(ledger.store)
    views.catch_up()
    _emptied(views, ["trail"])
    before = files_beside(ledger)
    context = multiprocessing.get_context("spawn")
    started = context.Value("q", 0)
    worker = context.Process(target=_slow_worker,
                             args=(ledger.store.target, ["trail"], started))
    worker.start()
    deadline = time.monotonic() + 60
    while not started.value and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.value, "the worker never began its fold"
    assert len(files_beside(ledger) - before) == 1  # its scratch file
    worker.terminate()
    worker.join(30)
    assert worker.exitcode == -signal.SIGTERM
    assert files_beside(ledger) == before
    assert views.positions()["trail"] == 0
    ledger.close()


def _stalled_worker(sqlite_path: str, name: str) -> tuple[Any, Path]:
    """A rebuild worker of `name` started in its own process and stalled in its fold, and
    the scratch file it builds in."""
    import multiprocessing  # noqa: PLC0415

    ledger = Path(sqlite_path)
    before = set(ledger.parent.iterdir())
    context = multiprocessing.get_context("spawn")
    started = context.Value("q", 0)
    worker = context.Process(target=_slow_worker,
                             args=(parse_target(sqlite_path), [name], started))
    worker.start()
    deadline = time.monotonic() + 60
    while not started.value and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.value, "the worker never began its fold"
    (scratch,) = set(ledger.parent.iterdir()) - before
    return worker, scratch


def test_a_rebuild_removes_the_scratch_files_of_killed_workers_but_not_of_live_ones(
        sqlite_path: str) -> None:
    import signal  # noqa: PLC0415

    ledger = bootstrap(sqlite_path)
    append(ledger.store, random_history(10, 50).events)
    views = Materialiser(ledger.store)
    views.catch_up()
    _emptied(views, ["trail", "holders"])
    killed, left = _stalled_worker(sqlite_path, "trail")
    killed.kill()  # SIGKILL: no handler runs, the scratch file stays
    killed.join(30)
    assert killed.exitcode == -signal.SIGKILL
    live, in_use = _stalled_worker(sqlite_path, "holders")
    # A scratch file left by a rebuild of an earlier version of this code: never locked.
    unlocked = Path(sqlite_path).with_name(f".{Path(sqlite_path).name}.rebuild-old")
    unlocked.write_bytes(b"")
    other_ledger = Path(sqlite_path).with_name(".other.db.rebuild-abc")
    other_ledger.write_bytes(b"")
    companion = in_use.with_name(in_use.name + "-journal")  # never locked by its builder
    companion.write_bytes(b"")
    try:
        assert left.exists()
        views.rebuild(["positions"], workers=1)
        assert not left.exists()
        assert not unlocked.exists()
        assert in_use.exists()
        assert other_ledger.exists()
        assert companion.exists()
    finally:
        live.terminate()
        live.join(30)
        ledger.close()
    assert not in_use.exists()


def test_a_scratch_file_removed_before_its_builder_locks_it_is_made_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = tmp_path / "ledger.db"
    flock = fcntl.flock
    swept: list[Path] = []

    def raced(handle: int, operation: int) -> None:
        if not swept:  # another rebuild sweeps between the builder's mkstemp and flock
            monkeypatch.setattr(fcntl, "flock", flock)
            swept.extend(materialise.remove_stale_scratch(ledger))
        flock(handle, operation)

    monkeypatch.setattr(fcntl, "flock", raced)
    handle, scratch = materialise._new_scratch(ledger)
    try:
        assert len(swept) == 1
        assert scratch not in swept
        assert scratch.exists()
        assert materialise.remove_stale_scratch(ledger) == []
        assert scratch.exists()
    finally:
        os.close(handle)
    assert materialise.remove_stale_scratch(ledger) == [scratch]


def test_a_rebuilds_sweep_passes_over_a_pipe_named_as_a_scratch_file(tmp_path: Path
                                                                       ) -> None:
    """Anyone who may write the ledger's folder may make a pipe of a scratch file's name:
    the sweep neither waits for a writer to open it nor removes it."""
    import threading  # noqa: PLC0415

    ledger = tmp_path / "ledger.db"
    pipe = tmp_path / f".{ledger.name}.rebuild-abc123"
    os.mkfifo(pipe)
    removed: list[list[Path]] = []
    sweep = threading.Thread(
        target=lambda: removed.append(materialise.remove_stale_scratch(ledger)), daemon=True)
    sweep.start()
    sweep.join(10)
    if sweep.is_alive():  # waiting on the pipe: open its other end to let it go
        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
        sweep.join(10)
        pytest.fail("the sweep waited on a pipe named as a scratch file")
    assert removed == [[]]
    assert pipe.exists()


def test_a_parallel_rebuild_gives_each_projection_to_exactly_one_process(ledger: Ledger
                                                                         ) -> None:
    views = Materialiser(ledger.store)
    for workers in (1, 2, 3, 8, 20):
        groups = views._groups(list(PROJECTIONS), workers)
        assert len(groups) == min(workers, len(PROJECTIONS))
        assert sorted(n for g in groups for n in g) == sorted(p.name for p in PROJECTIONS)
    assert views._groups([POSITIONS], 4) == [["positions"]]
    # A small log is rebuilt in this process unless asked otherwise.
    assert len(views._groups(list(PROJECTIONS), None)) == 1


def test_status_reports_lag_until_a_read_catches_up(ledger: Ledger, reads: Reads) -> None:
    h, _ = scenario()
    append(ledger.store, h.events[:5])
    reads.holders()
    append(ledger.store, h.events[5:])
    status = {s.name: s for s in Materialiser(ledger.store).status()}
    assert status["holders"].position == 5
    assert status["holders"].lag == len(h.events) - 5
    reads.holders()
    assert Materialiser(ledger.store).status()[1].lag == 0


def test_two_catch_ups_racing_never_apply_an_event_twice(ledger: Ledger) -> None:
    h, _ = scenario()
    append(ledger.store, h.events)
    first, second = Materialiser(ledger.store), Materialiser(ledger.store)
    first.setup()
    second.catch_up(["positions"])
    # A batch read from a stale position (0) is refused under the lock, nothing written ...
    with pytest.raises(TrackingConflictError):
        first._commit(Cache(first.db), [POSITIONS], {"positions": 0}, len(h.events))
    # ... and a catch-up starts again from where the other process left off.
    first.catch_up(["positions"])
    totals = first.db.query("SELECT allocated FROM " + first.db.name("position_totals")
                            + " WHERE practice = 'A81001' AND element = 'acute'")
    assert totals == [(900_000,)]


def roll_up(detail: list[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    """The roll-up worked out in Python from the per-practice rows (the reference)."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    money = ("allocated_pence", "available_pence", "committed_pence", "settled_pence",
             "drawn_pence", "remaining_pence")
    for r in detail:
        key = (r[by] or "", r["element"])
        g = groups.setdefault(key, {by: key[0], "year": r["year"], "element": r["element"],
                                    "practices": 0, **dict.fromkeys(money, 0),
                                    "hard_practices": 0, "overspent_practices": 0})
        g["practices"] += 1
        for field in money:
            g[field] += r[field]
        g["hard_practices"] += int(r["hard"])
        g["overspent_practices"] += int(r["overspent"])
    order = [str(e) for e in ELEMENTS]
    rows = []
    for _, g in sorted(groups.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]))):
        used = g["committed_pence"] + g["settled_pence"]
        g["used_percent"] = (round(100 * used / g["available_pence"], 1)
                             if g["available_pence"] else None)
        g["hard"] = g["hard_practices"] == g["practices"]
        g["overspent"] = g["overspent_practices"] > 0
        rows.append(g)
    return rows


@pytest.mark.parametrize("seed", [3, 4])
def test_roll_ups_in_sql_equal_summing_the_practice_rows(ledger: Ledger, reads: Reads,
                                                         seed: int) -> None:
    history = random_history(seed, 300)
    append(ledger.store, history.events)
    reads.position()  # catches the projections up
    fy = FinancialYear.parse("2024-25")
    rng = random.Random(seed)
    days = [None, *sorted(D(2024, 4, 1) + timedelta(days=rng.randrange(365)) for _ in range(4))]
    for on in days:
        day = on or TODAY
        detail = reads._position_rows(fy, day, None, on is not None)
        for by in ("consortium", "allocator"):
            assert reads.position(by=by, as_of=on) == roll_up(detail, by), (by, on)
    members = reads.position(by="consortium", consortium="16C")
    detail = reads._position_rows(fy, TODAY, reads._members("16C", TODAY), False)
    assert members == roll_up(detail, "consortium")
