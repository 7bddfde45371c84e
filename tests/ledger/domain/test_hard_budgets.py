"""Invariants 4 and 5: hard budgets refuse overspend; indicative budgets flag it."""

from __future__ import annotations

import pytest

from ledger.domain.budget import Budget, top_slice
from ledger.domain.events import CommitmentVaried, SpendCommitted
from ledger.domain.values import Element
from tests.ledger.domain.builders import ALLOCATOR, ME, budget, commit, ctx, refused

ACUTE = Element.ACUTE
POUNDS_1000 = 1000_00


def small(hard_from: str | None = "2024-04-01") -> Budget:
    return budget(dict.fromkeys(Element, POUNDS_1000), hard_from=hard_from)


def test_a_hard_budget_may_be_committed_up_to_exactly_its_available_amount() -> None:
    b = small()
    commit(b, "R-1", 600_00)
    commit(b, "R-2", 400_00)
    assert b.used(ACUTE) == b.available(ACUTE) == POUNDS_1000
    assert b.remaining(ACUTE) == 0


def test_one_penny_more_than_available_is_refused_on_a_hard_budget() -> None:
    b = small()
    commit(b, "R-1", 600_00)
    b.collect_events()
    error = refused(lambda: commit(b, "R-2", 400_01), b, rule="hard-budget")
    assert "£400.01" in str(error)
    assert "R-2" not in b.commitments
    assert b.used(ACUTE) == 600_00


def test_a_single_commitment_above_the_allocation_is_refused_on_a_hard_budget() -> None:
    b = small()
    refused(lambda: commit(b, "R-1", POUNDS_1000 + 1), b, rule="hard-budget")


def test_settled_amounts_count_against_a_hard_budget() -> None:
    b = small()
    commit(b, "R-1", 600_00)
    b.settle(ctx(ME, "2024-06-02"), "R-1", 600_00, final=True)
    commit(b, "R-2", 400_00)
    b.collect_events()
    refused(lambda: commit(b, "R-3", 1), b, rule="hard-budget")


def test_elements_are_limited_separately() -> None:
    b = small()
    commit(b, "R-1", POUNDS_1000)
    commit(b, "R-2", POUNDS_1000, element=Element.PRESCRIBING)


def test_increasing_a_commitment_beyond_available_is_refused_on_a_hard_budget() -> None:
    b = small()
    commit(b, "R-1", 900_00)
    b.vary(ctx(ME, "2024-06-02"), "R-1", POUNDS_1000)
    b.collect_events()
    refused(lambda: b.vary(ctx(ME, "2024-06-03"), "R-1", POUNDS_1000 + 1), b,
            rule="hard-budget")


def test_an_indicative_budget_records_overspend_and_flags_it() -> None:
    b = small(hard_from=None)
    commit(b, "R-1", 900_00)
    commit(b, "R-2", 300_00)
    event = b.pending_events[-1]
    assert isinstance(event, SpendCommitted)
    assert event.overspend_pence == 200_00
    assert b.remaining(ACUTE) == -200_00
    b.vary(ctx(ME, "2024-06-03"), "R-2", 350_00)
    varied = b.pending_events[-1]
    assert isinstance(varied, CommitmentVaried)
    assert varied.overspend_pence == 250_00


def test_an_indicative_commitment_within_budget_is_not_flagged() -> None:
    b = small(hard_from=None)
    commit(b, "R-1", POUNDS_1000)
    event = b.pending_events[-1]
    assert isinstance(event, SpendCommitted)
    assert event.overspend_pence == 0


def test_hard_status_applies_from_its_effective_date() -> None:
    b = small(hard_from="2024-10-01")
    assert not b.is_hard_on(b.year.first_day)
    assert b.is_hard_on(b.year.last_day)
    b.make_indicative(ctx(ALLOCATOR, "2025-01-01"))
    assert b.is_hard_on(b.year.first_day.replace(year=2024, month=12, day=31))
    assert not b.is_hard_on(b.year.last_day)


def test_an_overspent_budget_cannot_be_made_hard() -> None:
    b = small(hard_from=None)
    commit(b, "R-1", POUNDS_1000 + 1)
    b.collect_events()
    refused(lambda: b.make_hard(ctx(ALLOCATOR, "2024-07-01")), b, rule="hard-budget")


def test_status_changes_to_the_current_status_are_refused() -> None:
    hard, soft = small(), small(hard_from=None)
    refused(lambda: hard.make_hard(ctx(ALLOCATOR, "2024-07-01")), hard, rule="status")
    refused(lambda: soft.make_indicative(ctx(ALLOCATOR, "2024-07-01")), soft, rule="status")


def test_a_commitment_backdated_before_hardening_cannot_overspend_the_hard_budget() -> None:
    # Made hard from October, a commitment effective in May (still indicative then)
    # is recorded against the same totals: the budget is hard now, so it may not
    # take used above available (invariant 4 holds whatever the effective date).
    b = small(hard_from="2024-10-01")
    refused(lambda: commit(b, "R-1", POUNDS_1000 + 1, on="2024-05-01"), b, rule="hard-budget")
    commit(b, "R-2", POUNDS_1000, on="2024-05-01")
    assert b.used(ACUTE) <= b.available(ACUTE)


def test_reducing_a_commitment_is_never_refused_as_overspend() -> None:
    # Hard from October to December, indicative from January: a February commitment
    # overspends legitimately. Reducing a commitment made while hard, effective on a
    # hard date, only helps and must be allowed.
    b = small(hard_from="2024-10-01")
    commit(b, "R-1", 500_00, on="2024-11-01")
    b.make_indicative(ctx(ALLOCATOR, "2025-01-01"))
    commit(b, "R-2", 1000_00, on="2025-02-01")
    assert b.remaining(ACUTE) < 0
    b.collect_events()
    b.vary(ctx(ME, "2024-12-01"), "R-1", 400_00)
    assert b.commitments["R-1"].amount == 400_00
    b.cancel(ctx(ME, "2024-12-02"), "R-1")
    assert b.used(ACUTE) == 1000_00


def test_a_risk_pool_top_slice_reduces_what_is_available_rounding_down() -> None:
    assert top_slice(100_001, 100) == 1000  # 1% of £1,000.01 is 1,000.01p: rounded down
    b = small()
    assert b.available(ACUTE, basis_points=100) == POUNDS_1000 - 10_00
    b.collect_events()
    refused(lambda: b.commit(ctx(ME), ref="R-1", element=ACUTE, amount=POUNDS_1000 - 10_00 + 1,
                             provider="RTR", service="Hip", basis_points=100), b,
            rule="hard-budget")
    b.commit(ctx(ME), ref="R-1", element=ACUTE, amount=POUNDS_1000 - 10_00, provider="RTR",
             service="Hip", basis_points=100)


@pytest.mark.parametrize("hard_from", ["2024-04-01", None])
def test_cancelling_and_final_settlement_release_headroom(hard_from: str | None) -> None:
    b = small(hard_from=hard_from)
    commit(b, "R-1", POUNDS_1000)
    b.cancel(ctx(ME, "2024-06-02"), "R-1")
    commit(b, "R-2", POUNDS_1000)
    b.settle(ctx(ME, "2024-06-03"), "R-2", 10_00, final=True)
    commit(b, "R-3", POUNDS_1000 - 10_00)
    assert b.remaining(ACUTE) == 0
