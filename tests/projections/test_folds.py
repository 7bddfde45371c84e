"""The folds alone, in memory: no database."""

from __future__ import annotations

from datetime import date

from ledger.store.mapper import encode_event
from projections.core import MemoryState, fold, positioned, trusted_event
from projections.holders import (
    HOLDER_CHANGES,
    HOLDERS,
    PORTFOLIO,
    PORTFOLIO_PROJECTION,
    insert_breakpoint,
    intervals,
)
from projections.positions import COMMITMENTS, DAYS, POSITIONS, STATUS, TOTALS
from projections.trail import TRAIL, TRAIL_PROJECTION, describe, subjects
from tests.projections.builders import History

D = date


def budget_history() -> History:
    h = History()
    h.register("A81001")
    h.allocate("A81001", D(2024, 4, 1), acute=1_000_000, prescribing=500_000)
    h.delegate("A81001", ["prescribing"], "consortium:16C", D(2024, 6, 1))
    h.revoke("A81001", ["prescribing"], D(2024, 9, 1))
    h.opt_out("A81001", "practice:A81002", D(2024, 10, 1))
    h.opt_in("A81001", D(2025, 1, 1))
    return h


def holder_on(state: MemoryState, element: str, day: date) -> str:
    changes = sorted(
        (on, position, who)
        for (_, _, e, position), (on, _, who) in state.table(HOLDER_CHANGES).items()
        if e == element and on <= day
    )
    return changes[-1][2] if changes else ""


def test_a_budget_opens_with_every_element_held_by_its_practice() -> None:
    state = fold(HOLDERS, positioned(budget_history().events[:2]))
    rows = state.table(HOLDER_CHANGES)
    assert len(rows) == 7
    assert {v[2] for v in rows.values()} == {"practice:A81001"}
    assert {v[0] for v in rows.values()} == {D(2024, 4, 1)}


def test_holders_follow_delegation_revocation_opt_out_and_opt_in() -> None:
    state = fold(HOLDERS, positioned(budget_history().events))
    assert holder_on(state, "prescribing", D(2024, 5, 31)) == "practice:A81001"
    assert holder_on(state, "prescribing", D(2024, 6, 1)) == "consortium:16C"
    assert holder_on(state, "prescribing", D(2024, 9, 1)) == "practice:A81001"
    assert holder_on(state, "acute", D(2024, 10, 1)) == "practice:A81002"
    assert holder_on(state, "maternity", D(2024, 12, 31)) == "practice:A81002"
    assert holder_on(state, "acute", D(2025, 1, 1)) == "practice:A81001"


def test_portfolio_cuts_timelines_into_periods_per_holder() -> None:
    state = fold(PORTFOLIO_PROJECTION, positioned(budget_history().events))
    prescribing = sorted(
        (start, holder, row[0]) for (holder, _, _, element, start), row
        in state.table(PORTFOLIO).items() if element == "prescribing"
    )
    assert prescribing == [
        (D(2024, 4, 1), "practice:A81001", D(2024, 6, 1)),
        (D(2024, 6, 1), "consortium:16C", D(2024, 9, 1)),
        (D(2024, 9, 1), "practice:A81001", D(2024, 10, 1)),
        (D(2024, 10, 1), "practice:A81002", D(2025, 1, 1)),
        (D(2025, 1, 1), "practice:A81001", None),
    ]
    acute = sorted((start, holder) for (holder, _, _, element, start)
                   in state.table(PORTFOLIO) if element == "acute")
    # The practice held acute from the opening until the opt-out, in one period.
    assert acute == [(D(2024, 4, 1), "practice:A81001"), (D(2024, 10, 1), "practice:A81002"),
                     (D(2025, 1, 1), "practice:A81001")]


def test_a_later_recorded_change_on_the_same_day_wins() -> None:
    points = insert_breakpoint([(D(2024, 4, 1), "practice:A81001")], D(2024, 6, 1),
                               "consortium:16C")
    points = insert_breakpoint(points, D(2024, 6, 1), "practice:A81002")
    assert intervals(points) == [("practice:A81001", D(2024, 4, 1), D(2024, 6, 1)),
                                 ("practice:A81002", D(2024, 6, 1), None)]


def spending_history() -> History:
    h = History()
    h.allocate("A81001", D(2024, 4, 1), acute=1_000_000)
    h.adjust("A81001", "acute", -100_000, D(2024, 5, 1))
    h.commit("A81001", "R1", "acute", 300_000, D(2024, 6, 1))
    h.commit("A81001", "R2", "acute", 200_000, D(2024, 6, 15))
    h.vary("A81001", "R1", 400_000, D(2024, 7, 1))
    h.harden("A81001", D(2024, 7, 1))
    h.settle("A81001", "R1", 150_000, D(2024, 8, 1))
    h.cancel("A81001", "R2", D(2024, 9, 1))
    h.settle("A81001", "R1", 100_000, D(2024, 10, 1), final=True)
    return h


def test_positions_mirror_the_budget_arithmetic() -> None:
    state = fold(POSITIONS, positioned(spending_history().events))
    # Totals are (allocated, committed: outstanding, settled, drawn).
    assert state.table(TOTALS)[("A81001", "2024-25", "acute")] == (900_000, 0, 250_000, 0)
    assert state.table(COMMITMENTS)[("R1",)] == ("A81001", "2024-25", "acute", 250_000,
                                                 250_000, False)
    assert state.table(COMMITMENTS)[("R2",)][3:] == (0, 0, False)


def test_position_deltas_are_kept_by_effective_date() -> None:
    state = fold(POSITIONS, positioned(spending_history().events))
    days = state.table(DAYS)

    def as_of(day: date) -> tuple[int, ...]:
        rows = [v for (_, _, _, on), v in days.items() if on <= day]
        return tuple(sum(col) for col in zip(*rows, strict=True))

    assert as_of(D(2024, 7, 15)) == (900_000, 600_000, 0, 0)
    assert as_of(D(2024, 8, 15)) == (900_000, 450_000, 150_000, 0)
    assert as_of(D(2024, 9, 15)) == (900_000, 250_000, 150_000, 0)
    assert as_of(D(2025, 3, 31)) == (900_000, 0, 250_000, 0)
    assert list(state.table(STATUS).values()) == [(True,)]


def test_risk_pool_draws_and_returns_move_drawn() -> None:
    h = History()
    h.allocate("A81001", D(2024, 4, 1), acute=100)
    h.commit("A81001", "R1", "acute", 250, D(2024, 6, 1))
    h.draw("A81001", "R1", "16C", 150, D(2024, 6, 1))
    h.give_back("A81001", "R1", "16C", 40, D(2024, 7, 1))
    state = fold(POSITIONS, positioned(h.events))
    assert state.table(TOTALS)[("A81001", "2024-25", "acute")] == (100, 250, 0, 110)


def test_trail_names_every_practice_an_event_touches() -> None:
    h = History()
    joined = h.join("16C", "A81001", D(2024, 4, 1))
    delegated = h.delegate("A81001", ["acute"], "practice:A81002", D(2024, 6, 1))
    assert subjects(joined) == ["consortium:16C", "practice:A81001"]
    assert subjects(delegated) == ["practice:A81001", "practice:A81002"]
    state = fold(TRAIL_PROJECTION, positioned(h.events))
    assert sorted(state.table(TRAIL)) == [("consortium:16C", 1), ("practice:A81001", 1),
                                          ("practice:A81001", 2), ("practice:A81002", 2)]


def test_trail_tells_what_happened_in_words() -> None:
    h = History()
    committed = h.commit("A81001", "R-0001", "acute", 1_250_000, D(2024, 6, 1), overspend=500)
    opted_out = h.opt_out("A81001", "practice:A81002", D(2024, 10, 1))
    assert describe(committed) == (
        "committed £12,500.00 as R-0001 against acute of A81001 2024-25: Hip replacement "
        "from RTR (QS3); OVERSPEND £5.00"
    )
    assert describe(opted_out) == (
        "A81001 opted out of its 2024-25 budget to practice:A81002; it stays accountable "
        "— merger talks"
    )


def test_a_hardened_budget_is_described_once_with_the_reason_given() -> None:
    h = History()
    hardened = h.harden("A81001", D(2024, 9, 15), reason="competence assured")
    softened = h.soften("A81001", D(2025, 1, 1))
    assert describe(hardened) == (
        "A81001 2024-25 budget made hard: overspend refused — competence assured")
    assert describe(softened) == "A81001 2024-25 budget made indicative: overspend flagged"


def test_trusted_decoding_gives_back_the_recorded_event() -> None:
    for event in spending_history().events + budget_history().events:
        again = trusted_event(event.topic, event.originator_id, event.originator_version,
                              encode_event(event))
        assert type(again) is type(event)
        assert again.recorded_at == event.recorded_at
        assert again.effective_on == event.effective_on
        assert describe(again) == describe(event)
