"""Invariant 7, as pure rules: membership on the effective date, and no cycles."""

from __future__ import annotations

from datetime import date

import pytest

from ledger.domain.errors import NotFound, RuleViolation
from ledger.domain.rules import check_new_holder, check_no_cycle
from ledger.domain.values import Element
from tests.ledger.domain.builders import consortium, ctx, practice

ACUTE = Element.ACUTE
JUNE = date(2024, 6, 1)


def test_a_consortium_holder_needs_the_practice_as_member_on_the_effective_date() -> None:
    c = consortium("16C", "A81001", joined="2024-06-01")
    check_new_holder("A81001", "consortium:16C", JUNE, consortium=c, holder_practice=None)
    with pytest.raises(RuleViolation) as refused:
        check_new_holder("A81001", "consortium:16C", date(2024, 5, 31), consortium=c,
                         holder_practice=None)
    assert refused.value.rule == "membership"
    with pytest.raises(RuleViolation):
        check_new_holder("A81002", "consortium:16C", JUNE, consortium=c, holder_practice=None)


def test_a_membership_that_ended_does_not_count() -> None:
    c = consortium("16C", "A81001")
    c.leave(ctx("consortium:16C", "2024-09-01"), "A81001")
    with pytest.raises(RuleViolation):
        check_new_holder("A81001", "consortium:16C", date(2024, 9, 1), consortium=c,
                         holder_practice=None)


def test_a_holding_may_not_outlast_a_membership_whose_end_is_recorded() -> None:
    c = consortium("16C", "A81001")
    c.leave(ctx("consortium:16C", "2024-09-01"), "A81001")
    with pytest.raises(RuleViolation, match="leaves consortium 16C on 2024-09-01") as refused:
        check_new_holder("A81001", "consortium:16C", JUNE, consortium=c, holder_practice=None)
    assert refused.value.rule == "membership"


def test_an_unknown_holder_is_not_found() -> None:
    with pytest.raises(NotFound):
        check_new_holder("A81001", "consortium:16C", JUNE, consortium=None, holder_practice=None)
    with pytest.raises(NotFound):
        check_new_holder("A81001", "practice:A81002", JUNE, consortium=None,
                         holder_practice=None)


def test_a_closed_practice_cannot_become_a_holder() -> None:
    other = practice("A81002")
    other.close(ctx("allocator:Q71", "2024-05-01"))
    with pytest.raises(RuleViolation) as refused:
        check_new_holder("A81001", "practice:A81002", JUNE, consortium=None,
                         holder_practice=other)
    assert refused.value.rule == "practice-open"


def test_delegating_back_along_a_chain_would_form_a_cycle() -> None:
    holdings = {"A81002": "practice:A81001"}  # A81002 has delegated acute to A81001
    with pytest.raises(RuleViolation) as refused:
        check_no_cycle("A81001", [ACUTE], "practice:A81002", JUNE,
                       lambda code, e, d: holdings.get(code, f"practice:{code}"))
    assert refused.value.rule == "no-cycles"


def test_longer_cycles_are_found_too() -> None:
    holdings = {"A81002": "practice:A81003", "A81003": "practice:A81001"}
    with pytest.raises(RuleViolation):
        check_no_cycle("A81001", [ACUTE], "practice:A81002", JUNE,
                       lambda code, e, d: holdings.get(code, f"practice:{code}"))


def test_chains_ending_at_a_consortium_or_a_self_holding_practice_are_fine() -> None:
    holdings = {"A81002": "practice:A81003", "A81003": "consortium:16C"}
    check_no_cycle("A81001", [ACUTE], "practice:A81002", JUNE,
                   lambda code, e, d: holdings.get(code, f"practice:{code}"))
    check_no_cycle("A81001", [ACUTE], "practice:A81004", JUNE, lambda code, e, d: None)


def test_a_cycle_closed_by_a_later_dated_holding_is_found() -> None:
    # A81002 hands acute to A81001 from September; A81001 now delegates to A81002 from June.
    september = date(2024, 9, 1)

    def holder_of(code: str, _element: Element, on: date) -> str:
        if code == "A81002" and on >= september:
            return "practice:A81001"
        return f"practice:{code}"

    def changes_after(code: str, _element: Element, on: date) -> list[date]:
        return [september] if code == "A81002" and on < september else []

    check_no_cycle("A81001", [ACUTE], "practice:A81002", JUNE, holder_of)  # June alone: fine
    with pytest.raises(RuleViolation, match="on 2024-09-01") as refused:
        check_no_cycle("A81001", [ACUTE], "practice:A81002", JUNE, holder_of,
                       changes_after=changes_after)
    assert refused.value.rule == "no-cycles"


def test_the_practice_itself_is_never_a_new_holder() -> None:
    with pytest.raises(RuleViolation) as refused:
        check_new_holder("A81001", "practice:A81001", JUNE, consortium=None,
                         holder_practice=practice("A81001"))
    assert refused.value.rule == "holder"
