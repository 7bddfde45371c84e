"""Allocations and adjustments: allocated = allocations plus signed adjustments."""

from __future__ import annotations

from ledger.domain.budget import Budget
from ledger.domain.values import Element
from tests.ledger.domain.builders import (
    ALLOCATOR,
    ME,
    YEAR,
    budget,
    commit,
    ctx,
    practice,
    refused,
)

ACUTE = Element.ACUTE


def test_an_allocation_may_be_zero_for_an_element() -> None:
    b = Budget.empty("A81001", YEAR)
    b.allocate(ctx(ALLOCATOR, "2024-04-01"), practice(), {ACUTE: 0, Element.PRESCRIBING: 5})
    assert b.allocated[ACUTE] == 0
    assert b.exists


def test_an_allocation_may_not_be_negative_or_empty() -> None:
    b = Budget.empty("A81001", YEAR)
    owner = practice()
    refused(lambda: b.allocate(ctx(ALLOCATOR, "2024-04-01"), owner, {ACUTE: -1}), b,
            rule="amount")
    refused(lambda: b.allocate(ctx(ALLOCATOR, "2024-04-01"), owner, {}), b, rule="allocation")


def test_an_element_is_allocated_once_then_adjusted() -> None:
    b = budget({ACUTE: 1000_00})
    error = refused(lambda: b.allocate(ctx(ALLOCATOR), practice(), {ACUTE: 5}), b,
                    rule="allocation")
    assert "budget adjust" in str(error)
    b.allocate(ctx(ALLOCATOR), practice(), {Element.MATERNITY: 5})  # a new element is fine


def test_adjustments_add_signed_deltas_to_the_allocation() -> None:
    b = budget({ACUTE: 1000_00})
    b.adjust(ctx(ALLOCATOR, reason="recount"), ACUTE, -300_00)
    b.adjust(ctx(ALLOCATOR, reason="growth"), ACUTE, 50_00)
    assert b.allocated[ACUTE] == 750_00


def test_an_adjustment_is_non_zero_and_has_a_reason() -> None:
    b = budget({ACUTE: 1000_00})
    refused(lambda: b.adjust(ctx(ALLOCATOR, reason="x"), ACUTE, 0), b, rule="amount")
    refused(lambda: b.adjust(ctx(ALLOCATOR), ACUTE, 5), b, rule="reason")


def test_an_adjustment_may_not_take_an_allocation_below_zero() -> None:
    b = budget({ACUTE: 1000_00})
    refused(lambda: b.adjust(ctx(ALLOCATOR, reason="x"), ACUTE, -1000_01), b, rule="allocation")
    b.adjust(ctx(ALLOCATOR, reason="x"), ACUTE, -1000_00)
    assert b.allocated[ACUTE] == 0


def test_on_a_hard_budget_an_adjustment_never_goes_below_committed_and_settled() -> None:
    b = budget({ACUTE: 1000_00}, hard_from="2024-04-01")
    commit(b, "R-1", 500_00)
    b.settle(ctx(ME, "2024-06-02"), "R-1", 200_00)
    commit(b, "R-2", 100_00)
    b.collect_events()  # used: 300 outstanding + 200 settled + 100 = 600
    refused(lambda: b.adjust(ctx(ALLOCATOR, reason="cut"), ACUTE, -400_01), b,
            rule="hard-budget")
    b.adjust(ctx(ALLOCATOR, reason="cut"), ACUTE, -400_00)  # down to exactly what is used
    assert b.remaining(ACUTE) == 0


def test_on_an_indicative_budget_an_adjustment_may_go_below_what_is_used() -> None:
    b = budget({ACUTE: 1000_00})
    commit(b, "R-1", 900_00)
    b.adjust(ctx(ALLOCATOR, reason="cut"), ACUTE, -500_00)
    assert b.remaining(ACUTE) == -400_00


def test_a_backdated_cut_cannot_overspend_a_budget_that_is_hard_now() -> None:
    b = budget({ACUTE: 1000_00})
    commit(b, "R-1", 900_00, on="2024-05-01")
    b.make_hard(ctx(ALLOCATOR, "2024-10-01"))
    b.collect_events()
    refused(lambda: b.adjust(ctx(ALLOCATOR, "2024-06-01", reason="cut"), ACUTE, -500_00), b,
            rule="hard-budget")


def test_an_increase_is_always_allowed_on_a_hard_budget() -> None:
    b = budget({ACUTE: 1000_00}, hard_from="2024-04-01")
    commit(b, "R-1", 1000_00)
    b.adjust(ctx(ALLOCATOR, reason="growth"), ACUTE, 1)
    assert b.remaining(ACUTE) == 1
