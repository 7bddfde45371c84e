"""Risk pools end to end on both stores: agreement rules, atomic draws, returns."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ledger.bootstrap import Ledger
from ledger.domain.errors import InvalidInput, RuleViolation
from ledger.domain.events import PoolDrawRecorded, RiskPoolAgreed, RiskPoolDrawn, SpendCommitted
from tests.ledger.application.scenario import A1, A2, A3, ALLOCATOR, YEAR, commit, events, run, seed

OFFICER = "consortium:16C"


def pooled(ledger: Ledger, top_slice: str = "1%") -> None:
    """Three members with £10,000 on each of three elements; a 1% pool holding £900."""
    seed(ledger, members=(A1, A2, A3))
    run(ledger, "consortium risk-pool", OFFICER, consortium="16C", year=YEAR,
        top_slice=top_slice, on="2024-04-01")
    run(ledger, "budget harden", ALLOCATOR, practice=A1, year=YEAR, on="2024-04-02")


@pytest.mark.parametrize("top_slice", ["0%", "10.5%", "11", "-1%", "abc"])
def test_top_slice_outside_zero_to_ten_percent_is_refused(ledger: Ledger, top_slice: str) -> None:
    seed(ledger, members=(A1,))
    head = ledger.store.head()
    with pytest.raises(Exception, match=r"top-slice|percent") as error:
        run(ledger, "consortium risk-pool", OFFICER, consortium="16C", year=YEAR,
            top_slice=top_slice, on="2024-04-01")
    assert "Traceback" not in str(error.value)
    assert ledger.store.head() == head


@pytest.mark.parametrize(("written", "agreed"), [("0.5", None), ("0.01", None),
                                                  ("0.5%", 50), ("1", 100), ("2.5", 250)])
def test_a_top_slice_under_one_without_its_sign_is_refused_as_ambiguous(
        ledger: Ledger, written: str, agreed: int | None) -> None:
    seed(ledger, members=(A1,))
    head = ledger.store.head()
    if agreed is None:
        with pytest.raises(InvalidInput, match="ambiguous") as error:
            run(ledger, "consortium risk-pool", OFFICER, consortium="16C", year=YEAR,
                top_slice=written, on="2024-04-01")
        assert error.value.rule == "percent"
        assert ledger.store.head() == head
        return
    run(ledger, "consortium risk-pool", OFFICER, consortium="16C", year=YEAR,
        top_slice=written, on="2024-04-01")
    assert [e.top_slice_basis_points for _, e in events(ledger)
            if isinstance(e, RiskPoolAgreed)] == [agreed]


def test_pool_for_a_consortium_with_no_members_is_refused(ledger: Ledger) -> None:
    seed(ledger, members=())
    with pytest.raises(RuleViolation, match="no members"):
        run(ledger, "consortium risk-pool", OFFICER, consortium="16C", year=YEAR,
            top_slice="1%", on="2024-04-01")


def test_only_the_officer_or_an_allocator_agrees_a_pool(ledger: Ledger) -> None:
    seed(ledger)
    with pytest.raises(RuleViolation, match="officer or an allocator"):
        run(ledger, "consortium risk-pool", f"practice:{A1}", consortium="16C", year=YEAR,
            top_slice="1%", on="2024-04-01")


def test_a_second_pool_for_the_same_year_is_refused(ledger: Ledger) -> None:
    pooled(ledger)
    with pytest.raises(RuleViolation, match="already agreed"):
        run(ledger, "consortium risk-pool", OFFICER, consortium="16C", year=YEAR,
            top_slice="2%", on="2024-05-01")


def test_overspend_is_drawn_atomically_with_the_commitment(ledger: Ledger) -> None:
    pooled(ledger)
    # Acute: £10,000 less a 1% top-slice = £9,900 available; the pool holds 3 x 1% of
    # each member's three elements = £900.
    commit(ledger, "R1", "9900")
    head = ledger.store.head()
    answer = commit(ledger, "R2", "250")
    assert "£250.00 drawn from consortium 16C's risk pool" in answer.summary
    recorded = [(p, type(e)) for p, e in events(ledger) if p > head]
    assert [t for _, t in recorded] == [SpendCommitted, RiskPoolDrawn, PoolDrawRecorded]
    assert [p for p, _ in recorded] == [head + 1, head + 2, head + 3]


def test_overspend_beyond_headroom_is_refused_with_remaining_and_headroom(
    ledger: Ledger,
) -> None:
    pooled(ledger)
    commit(ledger, "R1", "9900")
    commit(ledger, "R2", "800")
    head = ledger.store.head()
    with pytest.raises(RuleViolation) as error:
        commit(ledger, "R3", "100.01")
    message = str(error.value)
    assert "£0.00 remaining" in message
    assert "£100.00 headroom" in message
    assert ledger.store.head() == head


def test_cancelling_returns_the_draw_so_another_member_can_use_it(ledger: Ledger) -> None:
    pooled(ledger)
    run(ledger, "budget harden", ALLOCATOR, practice=A2, year=YEAR, on="2024-04-02")
    commit(ledger, "R1", "9900")
    commit(ledger, "R2", "900")
    with pytest.raises(RuleViolation, match="headroom"):
        commit(ledger, "R3", "9901", practice=A2)
    run(ledger, "spend cancel", f"practice:{A1}", ref="R2", on="2024-07-02")
    answer = commit(ledger, "R3", "9901", practice=A2, on="2024-07-03")
    assert "£1.00 drawn" in answer.summary


def test_a_member_joining_later_adds_its_top_slice_to_the_capacity(ledger: Ledger) -> None:
    seed(ledger, members=(A1,))
    run(ledger, "consortium risk-pool", OFFICER, consortium="16C", year=YEAR,
        top_slice="1%", on="2024-04-01")
    run(ledger, "budget harden", ALLOCATOR, practice=A1, year=YEAR, on="2024-04-02")
    commit(ledger, "R1", "9900")
    # Alone, A1's own three top-slices (£300) are the pool.
    with pytest.raises(RuleViolation, match="headroom"):
        commit(ledger, "R2", "301")
    run(ledger, "consortium join", OFFICER, consortium="16C", practice=A2, on="2024-06-01")
    answer = commit(ledger, "R2", "301", on="2024-07-01")
    assert "£301.00 drawn" in answer.summary


def test_a_fresh_ledger_instance_sees_the_same_pool(
    open_ledger: Callable[[], Ledger],
) -> None:
    first = open_ledger()
    pooled(first)
    commit(first, "R1", "9900")
    commit(first, "R2", "850")
    second = open_ledger()
    with pytest.raises(RuleViolation, match=r"£50\.00 headroom"):
        commit(second, "R3", "51")


def test_joining_a_pool_may_not_top_slice_a_hard_budget_below_its_spend(ledger: Ledger) -> None:
    pooled(ledger)
    run(ledger, "budget harden", ALLOCATOR, practice=A2, year=YEAR, on="2024-04-02")
    run(ledger, "consortium leave", OFFICER, consortium="16C", practice=A2, on="2024-05-01")
    commit(ledger, "R1", "10000", practice=A2, on="2024-06-01")
    head = ledger.store.head()
    with pytest.raises(RuleViolation, match="top-slice would leave A81002's hard") as error:
        run(ledger, "consortium join", OFFICER, consortium="16C", practice=A2, on="2024-07-01")
    assert error.value.rule == "hard-budget"
    assert ledger.store.head() == head


def test_agreeing_a_pool_may_not_top_slice_a_hard_budget_below_its_spend(
    ledger: Ledger,
) -> None:
    seed(ledger, members=(A1, A2))
    run(ledger, "budget harden", ALLOCATOR, practice=A1, year=YEAR, on="2024-04-02")
    commit(ledger, "R1", "10000")
    with pytest.raises(RuleViolation, match="1% top-slice would leave A81001's hard"):
        run(ledger, "consortium risk-pool", OFFICER, consortium="16C", year=YEAR,
            top_slice="1%", on="2024-07-01")


def test_a_pool_may_not_shrink_below_what_it_has_paid_out(ledger: Ledger) -> None:
    pooled(ledger)
    commit(ledger, "R1", "9900")
    commit(ledger, "R2", "850")  # £850 of the £900 drawn
    head = ledger.store.head()
    with pytest.raises(RuleViolation, match=r"below the £850\.00 already drawn") as cut:
        run(ledger, "budget adjust", ALLOCATOR, practice=A2, year=YEAR, element="acute",
            by="-10000", reason="list cleansing", on="2024-08-01")
    assert cut.value.rule == "risk-pool"
    with pytest.raises(RuleViolation, match=r"A81002 leaving 16C would cut"):
        run(ledger, "consortium leave", OFFICER, consortium="16C", practice=A2, on="2024-08-01")
    assert ledger.store.head() == head
    # A small cut that keeps the capacity above the draws is fine.
    run(ledger, "budget adjust", ALLOCATOR, practice=A2, year=YEAR, element="acute",
        by="-1000", reason="list cleansing", on="2024-08-01")
