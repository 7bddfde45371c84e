"""Invariants 1 and 2 and the holder rules: delegation, revocation, opt-out and opt-in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pytest

from ledger.domain.budget import Budget
from ledger.domain.errors import NotAuthorised, RuleViolation
from ledger.domain.events import BudgetEvent
from ledger.domain.values import ELEMENTS, Element
from tests.ledger.domain.builders import ALLOCATOR, ME, YEAR, budget, commit, ctx

ACUTE, PRESCRIBING, COMMUNITY = Element.ACUTE, Element.PRESCRIBING, Element.COMMUNITY
C16 = "consortium:16C"
C07 = "consortium:07L"
A2 = "practice:A81002"


def d(text: str) -> date:
    return date.fromisoformat(text)


def refused(action: Callable[[], object], budget_: Budget, rule: str) -> None:
    """Assert `action` is refused under `rule`, recording nothing."""
    with pytest.raises(RuleViolation) as error:
        action()
    assert error.value.rule == rule
    assert budget_.pending_events == ()


def every_day_of_the_year() -> list[date]:
    return [YEAR.first_day + timedelta(days=n)
            for n in range((YEAR.last_day - YEAR.first_day).days + 1)]


def test_every_element_starts_held_by_the_practice_itself() -> None:
    b = budget()
    for day in (YEAR.first_day, d("2024-10-01"), YEAR.last_day):
        assert b.holders_on(day) == dict.fromkeys(ELEMENTS, ME)


def test_a_delegation_moves_only_the_named_elements() -> None:
    b = budget()
    b.delegate(ctx(ME, "2024-06-01"), [PRESCRIBING, COMMUNITY], C16)
    holders = b.holders_on(d("2024-06-01"))
    assert holders[PRESCRIBING] == holders[COMMUNITY] == C16
    assert all(h == ME for e, h in holders.items() if e not in (PRESCRIBING, COMMUNITY))


def test_a_change_of_holder_takes_effect_at_the_start_of_its_effective_date() -> None:
    b = budget()
    b.delegate(ctx(ME, "2024-06-01"), [PRESCRIBING], C16)
    assert b.holder_on(PRESCRIBING, d("2024-05-31")) == ME
    assert b.holder_on(PRESCRIBING, d("2024-06-01")) == C16
    # The current holder of a command is the holder on the command's effective date.
    commit(b, "R-1", 100, element=PRESCRIBING, actor=C16, on="2024-06-01")
    with pytest.raises(NotAuthorised):
        commit(b, "R-2", 100, element=PRESCRIBING, actor=C16, on="2024-05-31")
    commit(b, "R-3", 100, element=PRESCRIBING, actor=ME, on="2024-05-31")


def test_an_element_already_delegated_may_be_redelegated_to_a_new_holder() -> None:
    b = budget()
    b.delegate(ctx(ME, "2024-06-01"), [PRESCRIBING], C16)
    b.delegate(ctx(ME, "2024-08-01"), [PRESCRIBING], A2)
    assert b.holder_on(PRESCRIBING, d("2024-07-31")) == C16
    assert b.holder_on(PRESCRIBING, d("2024-08-01")) == A2


def test_redelegating_to_the_current_holder_is_refused() -> None:
    b = budget()
    b.delegate(ctx(ME, "2024-06-01"), [PRESCRIBING], C16)
    b.collect_events()
    refused(lambda: b.delegate(ctx(ME, "2024-07-01"), [PRESCRIBING], C16), b, "holder")


def test_revoking_returns_the_element_to_the_practice() -> None:
    b = budget()
    b.delegate(ctx(ME, "2024-06-01"), [PRESCRIBING, ACUTE], C16)
    b.revoke(ctx(ME, "2024-09-01"), [PRESCRIBING])
    assert b.holder_on(PRESCRIBING, d("2024-08-31")) == C16
    assert b.holder_on(PRESCRIBING, d("2024-09-01")) == ME
    assert b.holder_on(ACUTE, d("2024-09-01")) == C16


def test_revoking_an_element_that_is_not_delegated_is_refused() -> None:
    b = budget()
    refused(lambda: b.revoke(ctx(ME, "2024-06-01"), [PRESCRIBING]), b, "holder")


def test_the_practice_cannot_delegate_to_itself() -> None:
    b = budget()
    refused(lambda: b.delegate(ctx(ME, "2024-06-01"), [PRESCRIBING], ME), b, "holder")


def test_a_delegation_must_name_at_least_one_element() -> None:
    b = budget()
    refused(lambda: b.delegate(ctx(ME, "2024-06-01"), [], C16), b, "element")


def test_a_holding_change_cannot_be_dated_before_one_already_recorded() -> None:
    b = budget()
    b.delegate(ctx(ME, "2024-09-01"), [PRESCRIBING], C16)
    b.collect_events()
    refused(lambda: b.revoke(ctx(ME, "2024-08-01"), [PRESCRIBING]), b, "effective-date")
    refused(lambda: b.opt_out(ctx(ME, "2024-08-01", reason="r"), A2), b, "effective-date")
    # Other elements have no later change and stay free to move earlier.
    b.delegate(ctx(ME, "2024-08-01"), [ACUTE], C16)


def test_two_changes_on_the_same_day_apply_in_recorded_order() -> None:
    b = budget()
    b.delegate(ctx(ME, "2024-06-01"), [PRESCRIBING], C16)
    b.delegate(ctx(ME, "2024-06-01"), [PRESCRIBING], A2)
    assert b.holder_on(PRESCRIBING, d("2024-06-01")) == A2
    assert b.holder_on(PRESCRIBING, d("2024-05-31")) == ME


def test_opting_out_hands_every_element_to_the_nominated_holder() -> None:
    b = budget()
    b.delegate(ctx(ME, "2024-05-01"), [PRESCRIBING], C16)
    b.opt_out(ctx(ME, "2024-06-01", reason="merger talks"), A2)
    assert b.holders_on(d("2024-06-01")) == dict.fromkeys(ELEMENTS, A2)
    assert b.opted_out_to(d("2024-06-01")) == A2
    assert b.opted_out_to(d("2024-05-31")) is None


def test_an_opt_out_needs_a_reason_and_another_holder() -> None:
    b = budget()
    refused(lambda: b.opt_out(ctx(ME, "2024-06-01"), A2), b, "reason")
    refused(lambda: b.opt_out(ctx(ME, "2024-06-01", reason="r"), ME), b, "holder")


def test_while_opted_out_the_practice_cannot_delegate_revoke_or_opt_out_again() -> None:
    b = budget()
    b.opt_out(ctx(ME, "2024-06-01", reason="merger"), A2)
    b.collect_events()
    refused(lambda: b.delegate(ctx(ME, "2024-07-01"), [PRESCRIBING], C16), b, "opt-out")
    refused(lambda: b.revoke(ctx(ME, "2024-07-01"), [PRESCRIBING]), b, "opt-out")
    refused(lambda: b.opt_out(ctx(ME, "2024-07-01", reason="again"), C16), b, "opt-out")


def test_opting_in_when_not_opted_out_is_refused() -> None:
    b = budget()
    refused(lambda: b.opt_in(ctx(ME, "2024-07-01")), b, "opt-out")


def test_opting_in_returns_everything_and_does_not_restore_earlier_delegations() -> None:
    b = budget()
    b.delegate(ctx(ME, "2024-05-01"), [PRESCRIBING, ACUTE], C16)
    b.opt_out(ctx(ME, "2024-06-01", reason="merger"), A2)
    b.opt_in(ctx(ME, "2024-10-01"))
    assert b.holders_on(d("2024-10-01")) == dict.fromkeys(ELEMENTS, ME)
    assert b.holder_on(PRESCRIBING, d("2024-05-15")) == C16  # history is kept
    assert b.opted_out_to(d("2024-10-01")) is None
    # After opting in the practice may delegate again.
    b.delegate(ctx(ME, "2024-11-01"), [PRESCRIBING], C07)
    assert b.holder_on(PRESCRIBING, d("2024-11-01")) == C07


def test_every_element_has_exactly_one_holder_every_day_through_a_busy_year() -> None:
    b = budget()
    b.delegate(ctx(ME, "2024-05-01"), [PRESCRIBING, ACUTE], C16)
    b.delegate(ctx(ME, "2024-06-01"), [ACUTE], A2)
    b.revoke(ctx(ME, "2024-07-01"), [PRESCRIBING])
    b.opt_out(ctx(ME, "2024-08-01", reason="merger"), C07)
    b.opt_in(ctx(ME, "2024-12-01"))
    b.delegate(ctx(ALLOCATOR, "2025-02-01"), [COMMUNITY], C16)
    expected = {
        d("2024-04-30"): {ACUTE: ME, PRESCRIBING: ME, COMMUNITY: ME},
        d("2024-05-01"): {ACUTE: C16, PRESCRIBING: C16, COMMUNITY: ME},
        d("2024-06-15"): {ACUTE: A2, PRESCRIBING: C16, COMMUNITY: ME},
        d("2024-07-01"): {ACUTE: A2, PRESCRIBING: ME, COMMUNITY: ME},
        d("2024-11-30"): {ACUTE: C07, PRESCRIBING: C07, COMMUNITY: C07},
        d("2024-12-01"): {ACUTE: ME, PRESCRIBING: ME, COMMUNITY: ME},
        d("2025-03-31"): {ACUTE: ME, PRESCRIBING: ME, COMMUNITY: C16},
    }
    for day, holders in expected.items():
        for element, holder in holders.items():
            assert b.holder_on(element, day) == holder, (day, element)
    for day in every_day_of_the_year():
        holders = b.holders_on(day)
        assert set(holders) == set(ELEMENTS)
        assert all(h.startswith(("practice:", "consortium:")) for h in holders.values())


def test_the_accountable_practice_never_changes() -> None:
    b = budget(saved=False)
    b.delegate(ctx(ME, "2024-05-01"), [PRESCRIBING], C16)
    b.opt_out(ctx(ME, "2024-08-01", reason="merger"), A2)
    events = b.collect_events()
    assert b.accountable == ME
    assert b.practice == "A81001"
    assert {e.practice for e in events if isinstance(e, BudgetEvent)} == {"A81001"}
    assert all(isinstance(e, BudgetEvent) for e in events)
    replayed = Budget.from_events(b.id, events)
    assert replayed.accountable == ME


def test_folding_the_events_again_gives_the_same_holders() -> None:
    b = budget(saved=False)
    b.delegate(ctx(ME, "2024-05-01"), [PRESCRIBING], C16)
    b.opt_out(ctx(ME, "2024-08-01", reason="merger"), A2)
    b.opt_in(ctx(ME, "2024-09-01"))
    replayed = Budget.from_events(b.id, b.collect_events())
    for day in every_day_of_the_year():
        assert replayed.holders_on(day) == b.holders_on(day)
