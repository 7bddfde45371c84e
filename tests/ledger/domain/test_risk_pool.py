"""Risk pools: a hard budget's overspend is drawn from its consortium's pool, or refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.budget import Budget, top_slice
from ledger.domain.errors import RuleViolation
from ledger.domain.events import (
    PoolDrawRecorded,
    PoolDrawReturned,
    RiskPoolDrawn,
    RiskPoolReturned,
    SpendCommitted,
)
from ledger.domain.pool import PoolAccess, RiskPool
from ledger.domain.values import Element
from tests.ledger.domain.builders import ME, budget, commit, ctx, refused

BP = 100  # a 1% top-slice
ALLOCATED = 100_000_00


def pool_access(capacity: int, pool: RiskPool | None = None) -> PoolAccess:
    return PoolAccess("16C", BP, capacity, pool or RiskPool.empty("16C", "2024-25"))


def hard_budget() -> Budget:
    return budget({Element.ACUTE: ALLOCATED}, hard_from="2024-04-01")


def spend(target: Budget, ref: str, amount: int, access: PoolAccess | None) -> None:
    target.commit(ctx(ME, "2024-06-01"), ref=ref, element=Element.ACUTE, amount=amount,
                  provider="RTR", service="Hip replacement", basis_points=BP, pool=access)


def test_top_slice_is_rounded_down_to_the_penny() -> None:
    assert top_slice(12_345, 150) == 185  # 185.175 pence
    assert top_slice(0, 1000) == 0


def test_available_is_allocation_less_top_slice_when_the_practice_is_in_a_pool() -> None:
    target = hard_budget()
    assert target.available(Element.ACUTE) == ALLOCATED
    assert target.available(Element.ACUTE, BP) == ALLOCATED - ALLOCATED // 100


def test_hard_overspend_is_drawn_from_the_pool_with_the_commitment() -> None:
    target, access = hard_budget(), pool_access(5_000_00)
    available = target.available(Element.ACUTE, BP)
    spend(target, "R1", available + 1_234, access)
    kinds = [type(e) for e in target.collect_events()]
    assert kinds == [SpendCommitted, RiskPoolDrawn]
    [draw] = access.pool.collect_events()
    assert isinstance(draw, PoolDrawRecorded)
    assert draw.amount_pence == 1_234
    assert access.pool.drawn == 1_234
    assert target.drawn[Element.ACUTE] == 1_234
    assert target.remaining(Element.ACUTE, BP) == 0


def test_spend_up_to_available_draws_nothing() -> None:
    target, access = hard_budget(), pool_access(5_000_00)
    spend(target, "R1", target.available(Element.ACUTE, BP), access)
    assert [type(e) for e in target.collect_events()] == [SpendCommitted]
    assert access.pool.drawn == 0


def test_excess_beyond_headroom_is_refused_whole_and_nothing_is_recorded() -> None:
    target, access = hard_budget(), pool_access(1_000)
    available = target.available(Element.ACUTE, BP)
    error = refused(lambda: spend(target, "R1", available + 1_001, access), target, access.pool,
                    rule="hard-budget")
    assert "headroom" in str(error)
    assert access.pool.drawn == 0


def test_excess_equal_to_headroom_is_drawn() -> None:
    target, access = hard_budget(), pool_access(1_000)
    spend(target, "R1", target.available(Element.ACUTE, BP) + 1_000, access)
    assert access.pool.drawn == 1_000
    assert access.headroom == 0


def test_indicative_overspend_is_flagged_and_never_drawn() -> None:
    target, access = budget({Element.ACUTE: ALLOCATED}), pool_access(5_000_00)
    spend(target, "R1", target.available(Element.ACUTE, BP) + 500, access)
    [committed] = target.collect_events()
    assert isinstance(committed, SpendCommitted)
    assert committed.overspend_pence == 500
    assert access.pool.drawn == 0


def test_cancelling_returns_the_whole_draw() -> None:
    target, access = hard_budget(), pool_access(5_000_00)
    spend(target, "R1", target.available(Element.ACUTE, BP) + 700, access)
    target.cancel(ctx(ME, "2024-07-01"), "R1", access)
    returned = [e for e in target.collect_events() if isinstance(e, RiskPoolReturned)]
    assert [e.amount_pence for e in returned] == [700]
    assert isinstance(access.pool.collect_events()[-1], PoolDrawReturned)
    assert access.pool.drawn == 0
    assert target.drawn[Element.ACUTE] == 0


def test_reducing_a_commitment_returns_at_most_its_draw() -> None:
    target, access = hard_budget(), pool_access(5_000_00)
    available = target.available(Element.ACUTE, BP)
    spend(target, "R1", available + 700, access)
    target.vary(ctx(ME, "2024-07-01"), "R1", available + 200, BP, access)
    assert access.pool.drawn == 200
    target.vary(ctx(ME, "2024-07-02"), "R1", 100, BP, access)
    assert access.pool.drawn == 0
    assert target.drawn[Element.ACUTE] == 0


def test_final_settlement_returns_the_draw_on_what_it_releases() -> None:
    target, access = hard_budget(), pool_access(5_000_00)
    available = target.available(Element.ACUTE, BP)
    spend(target, "R1", available + 700, access)
    target.settle(ctx(ME, "2024-07-01"), "R1", available + 300, final=True, pool=access)
    assert access.pool.drawn == 300
    assert target.remaining(Element.ACUTE, BP) == 0


def test_a_draw_cannot_be_returned_without_its_pool() -> None:
    target, access = hard_budget(), pool_access(5_000_00)
    spend(target, "R1", target.available(Element.ACUTE, BP) + 700, access)
    refused(lambda: target.cancel(ctx(ME, "2024-07-01"), "R1", None), target, rule="risk-pool")


def test_increase_on_a_hard_budget_draws_the_new_excess() -> None:
    target, access = hard_budget(), pool_access(5_000_00)
    available = target.available(Element.ACUTE, BP)
    spend(target, "R1", available, access)
    target.vary(ctx(ME, "2024-07-01"), "R1", available + 450, BP, access)
    assert access.pool.drawn == 450


# --- properties ----------------------------------------------------------------------

operations = st.lists(
    st.tuples(
        st.sampled_from(["commit", "vary", "settle", "final", "cancel"]),
        st.integers(0, 1),  # which member
        st.integers(0, 5),  # which ref
        st.integers(1, 60_000_00),  # amount in pence
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(operations, st.integers(0, 20_000_00))
def test_pool_never_negative_and_equals_the_sum_of_live_draws(
    ops: list[tuple[str, int, int, int]], capacity: int
) -> None:
    members = [budget({Element.ACUTE: 50_000_00}, code=code, hard_from="2024-04-01")
               for code in ("A81001", "A81002")]
    pool = RiskPool.empty("16C", "2024-25")
    access = PoolAccess("16C", BP, capacity, pool)
    for op, which, ref_no, amount in ops:
        target = members[which]
        ref = f"R{which}-{ref_no}"
        actor = f"practice:{target.practice}"
        day = ctx(actor, "2024-06-01")
        try:
            if op == "commit":
                target.commit(day, ref=ref, element=Element.ACUTE, amount=amount,
                              provider="RTR", service="Hip", basis_points=BP, pool=access)
            elif op == "vary":
                target.vary(day, ref, amount, BP, access)
            elif op in ("settle", "final"):
                target.settle(day, ref, amount, final=op == "final", pool=access)
            else:
                target.cancel(day, ref, access)
        except RuleViolation:  # refusals (NotFound included) are part of the walk
            pass
        assert pool.drawn >= 0
        assert pool.drawn <= capacity
        assert pool.drawn == sum(m.drawn[Element.ACUTE] for m in members)
        for member in members:
            live = sum(c.drawn for c in member.commitments.values())
            assert live == member.drawn[Element.ACUTE]
            assert member.used(Element.ACUTE) <= (
                member.available(Element.ACUTE, BP) + member.drawn[Element.ACUTE]
            )


@pytest.mark.parametrize("extra", [1, 99, 1_000_00])
def test_without_a_pool_one_penny_over_a_hard_budget_is_refused(extra: int) -> None:
    target = hard_budget()
    commit(target, "R1", ALLOCATED)
    refused(lambda: commit(target, "R2", extra), target, rule="hard-budget")
