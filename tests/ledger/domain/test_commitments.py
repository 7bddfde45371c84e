"""Commitments: commit, vary, settle (partial and final) and cancel."""

from __future__ import annotations

import pytest

from ledger.domain.budget import Budget
from ledger.domain.errors import NotFound
from ledger.domain.values import Element
from tests.ledger.domain.builders import ME, budget, commit, ctx, refused

ACUTE = Element.ACUTE


def with_commitment(amount: int = 10_000_00) -> Budget:
    b = budget()
    commit(b, "R-1", amount)
    b.collect_events()
    return b


def totals_match_commitments(b: Budget) -> None:
    for element in Element:
        mine = [c for c in b.commitments.values() if c.element == element]
        assert b.outstanding[element] == sum(c.outstanding for c in mine)
        assert b.settled[element] == sum(c.settled for c in mine)


def test_a_commitment_is_outstanding_until_settled() -> None:
    b = with_commitment()
    assert b.outstanding[ACUTE] == 10_000_00
    assert b.commitments["R-1"].outstanding == 10_000_00
    totals_match_commitments(b)


@pytest.mark.parametrize("amount", [0, -1])
def test_a_commitment_must_be_positive(amount: int) -> None:
    b = budget()
    refused(lambda: commit(b, "R-1", amount), b, rule="amount")


def test_a_reference_is_used_once_per_budget() -> None:
    b = with_commitment()
    refused(lambda: commit(b, "R-1", 100), b, rule="commitment")


def test_a_variation_sets_the_new_total() -> None:
    b = with_commitment()
    b.vary(ctx(ME, "2024-06-02"), "R-1", 13_000_00)
    assert b.outstanding[ACUTE] == 13_000_00
    b.vary(ctx(ME, "2024-06-03"), "R-1", 9_000_00)
    assert b.outstanding[ACUTE] == 9_000_00
    totals_match_commitments(b)


def test_a_variation_may_not_fall_below_what_is_settled() -> None:
    b = with_commitment()
    b.settle(ctx(ME, "2024-06-02"), "R-1", 6_000_00)
    b.collect_events()
    refused(lambda: b.vary(ctx(ME, "2024-06-03"), "R-1", 5_999_99), b, rule="commitment")
    b.vary(ctx(ME, "2024-06-03"), "R-1", 6_000_00)  # exactly the settled amount is allowed
    assert b.commitments["R-1"].outstanding == 0


@pytest.mark.parametrize("amount", [0, -1])
def test_a_variation_must_be_positive(amount: int) -> None:
    b = with_commitment()
    refused(lambda: b.vary(ctx(ME, "2024-06-02"), "R-1", amount), b, rule="amount")


def test_a_variation_to_the_same_amount_is_refused() -> None:
    b = with_commitment()
    refused(lambda: b.vary(ctx(ME, "2024-06-02"), "R-1", 10_000_00), b, rule="commitment")


def test_partial_settlements_reduce_what_is_outstanding() -> None:
    b = with_commitment()
    b.settle(ctx(ME, "2024-06-02"), "R-1", 6_000_00)
    b.settle(ctx(ME, "2024-06-03"), "R-1", 1_000_00)
    assert (b.outstanding[ACUTE], b.settled[ACUTE]) == (3_000_00, 7_000_00)
    assert b.used(ACUTE) == 10_000_00
    totals_match_commitments(b)


def test_a_settlement_may_not_exceed_what_is_outstanding() -> None:
    b = with_commitment()
    b.settle(ctx(ME, "2024-06-02"), "R-1", 6_000_00)
    b.collect_events()
    error = refused(lambda: b.settle(ctx(ME, "2024-06-03"), "R-1", 4_000_01), b,
                    rule="commitment")
    assert "vary it first" in str(error)
    b.settle(ctx(ME, "2024-06-03"), "R-1", 4_000_00)  # exactly what is outstanding


@pytest.mark.parametrize("amount", [0, -5])
def test_a_settlement_must_be_positive(amount: int) -> None:
    b = with_commitment()
    refused(lambda: b.settle(ctx(ME, "2024-06-02"), "R-1", amount), b, rule="amount")


def test_a_final_settlement_releases_the_rest_and_closes_the_commitment() -> None:
    b = with_commitment()
    b.settle(ctx(ME, "2024-06-02"), "R-1", 6_000_00, final=True)
    commitment = b.commitments["R-1"]
    assert (commitment.open, commitment.amount, commitment.outstanding) == (False, 6_000_00, 0)
    assert (b.outstanding[ACUTE], b.settled[ACUTE]) == (0, 6_000_00)
    totals_match_commitments(b)
    b.collect_events()
    refused(lambda: b.settle(ctx(ME, "2024-06-03"), "R-1", 1), b, rule="commitment")
    refused(lambda: b.vary(ctx(ME, "2024-06-03"), "R-1", 7_000_00), b, rule="commitment")
    refused(lambda: b.cancel(ctx(ME, "2024-06-03"), "R-1"), b, rule="commitment")


def test_cancelling_releases_the_outstanding_amount_and_keeps_what_was_settled() -> None:
    b = with_commitment()
    b.settle(ctx(ME, "2024-06-02"), "R-1", 2_500_00)
    b.cancel(ctx(ME, "2024-06-03"), "R-1")
    commitment = b.commitments["R-1"]
    assert (commitment.open, commitment.settled, commitment.outstanding) == (False, 2_500_00, 0)
    assert (b.outstanding[ACUTE], b.settled[ACUTE]) == (0, 2_500_00)
    totals_match_commitments(b)
    b.collect_events()
    refused(lambda: b.cancel(ctx(ME, "2024-06-04"), "R-1"), b, rule="commitment")


def test_unknown_commitments_are_not_found() -> None:
    b = budget()
    for action in (lambda: b.vary(ctx(ME), "R-9", 100), lambda: b.settle(ctx(ME), "R-9", 100),
                   lambda: b.cancel(ctx(ME), "R-9")):
        error = refused(action, b, rule="commitment")
        assert isinstance(error, NotFound)


def test_a_commitment_cannot_be_changed_before_it_was_made() -> None:
    b = with_commitment()  # committed 2024-06-01
    refused(lambda: b.vary(ctx(ME, "2024-05-31"), "R-1", 1), b, rule="effective-date")
    refused(lambda: b.settle(ctx(ME, "2024-05-31"), "R-1", 1), b, rule="effective-date")
    refused(lambda: b.cancel(ctx(ME, "2024-05-31"), "R-1"), b, rule="effective-date")


def test_changes_to_a_commitment_need_the_holder_on_their_own_date() -> None:
    b = with_commitment()
    b.delegate(ctx(ME, "2024-07-01"), [ACUTE], "consortium:16C")
    b.collect_events()
    refused(lambda: b.settle(ctx(ME, "2024-07-01"), "R-1", 1), b, rule="authority")
    b.settle(ctx("consortium:16C", "2024-07-01"), "R-1", 1)
    b.settle(ctx(ME, "2024-06-30"), "R-1", 1)


def test_spending_needs_an_allocated_budget() -> None:
    from ledger.domain.values import FinancialYear  # noqa: PLC0415

    empty = Budget.empty("A81001", FinancialYear(2024))
    error = refused(lambda: commit(empty, "R-1", 100), empty, rule="budget")
    assert isinstance(error, NotFound)
