"""Invariant 8: every budget command takes effect inside the budget's financial year."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from ledger.domain.budget import Budget
from ledger.domain.errors import InvalidInput
from ledger.domain.organisations import Consortium
from ledger.domain.values import Element, FinancialYear, parse_iso_date
from tests.ledger.domain.builders import (
    ALLOCATOR,
    ME,
    budget,
    commit,
    consortium,
    ctx,
    practice,
    refused,
)

OUTSIDE = ["2024-03-31", "2025-04-01", "2023-06-01", "2026-01-01"]

COMMANDS: dict[str, Callable[[Budget, str], None]] = {
    "adjust": lambda b, on: b.adjust(ctx(ALLOCATOR, on, reason="x"), Element.ACUTE, 1),
    "harden": lambda b, on: b.make_hard(ctx(ALLOCATOR, on)),
    "delegate": lambda b, on: b.delegate(ctx(ME, on), [Element.ACUTE], "consortium:16C"),
    "opt out": lambda b, on: b.opt_out(ctx(ME, on, reason="x"), "consortium:16C"),
    "commit": lambda b, on: commit(b, "R-2", 100, on=on),
    "vary": lambda b, on: b.vary(ctx(ME, on), "R-1", 200),
    "settle": lambda b, on: b.settle(ctx(ME, on), "R-1", 50),
    "cancel": lambda b, on: b.cancel(ctx(ME, on), "R-1"),
}


def prepared() -> Budget:
    b = budget()
    commit(b, "R-1", 100, on="2024-04-01")
    b.collect_events()
    return b


@pytest.mark.parametrize("on", OUTSIDE)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_budget_commands_dated_outside_the_year_are_refused(command: str, on: str) -> None:
    b = prepared()
    error = refused(lambda: COMMANDS[command](b, on), b, rule="effective-date")
    assert "2024-25" in str(error)


@pytest.mark.parametrize("on", ["2024-04-01", "2025-03-31"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_budget_commands_on_the_first_and_last_day_are_accepted(command: str, on: str) -> None:
    COMMANDS[command](prepared(), on)


def test_revoke_and_opt_in_are_dated_inside_the_year_too() -> None:
    b = prepared()
    b.delegate(ctx(ME, "2024-05-01"), [Element.ACUTE], "consortium:16C")
    b.collect_events()
    refused(lambda: b.revoke(ctx(ME, "2025-04-01"), [Element.ACUTE]), b, rule="effective-date")
    b.revoke(ctx(ME, "2024-06-01"), [Element.ACUTE])
    b.opt_out(ctx(ME, "2024-07-01", reason="x"), "consortium:16C")
    b.collect_events()
    refused(lambda: b.opt_in(ctx(ME, "2025-04-01")), b, rule="effective-date")


def test_an_allocation_is_dated_inside_its_year() -> None:
    b = Budget.empty("A81001", FinancialYear(2024))
    refused(lambda: b.allocate(ctx(ALLOCATOR, "2024-03-31"), practice(), {Element.ACUTE: 1}), b,
            rule="effective-date")


def test_a_risk_pool_is_agreed_inside_its_year() -> None:
    group: Consortium = consortium("16C", "A81001")
    refused(lambda: group.agree_risk_pool(ctx("consortium:16C", "2025-04-01"),
                                          FinancialYear(2024), 100), group,
            rule="effective-date")


@pytest.mark.parametrize("text", ["2024-06-01", " 2024-06-01 ", "2024-02-29"])
def test_a_business_date_is_read_from_yyyy_mm_dd(text: str) -> None:
    assert parse_iso_date(text) == date.fromisoformat(text.strip())


@pytest.mark.parametrize("text", [
    "20240601", "2024-W23", "2024-W23-1", "2024-153", "2024-6-1", "2023-02-29",
    "\u0662\u0660\u0662\u0664-06-01", "2024-06-01T00:00", "", "2024-06-01\n2024-07-01"])
def test_a_business_date_written_any_other_way_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as refused_date:
        parse_iso_date(text, "--as-of")
    assert refused_date.value.rule == "date"
    assert "YYYY-MM-DD" in str(refused_date.value)


@pytest.mark.parametrize(("text", "why"), [
    ("2025-02-29", "February 2025 has 28 days"),
    ("2024-04-31", "April 2024 has 30 days"),
    ("2024-13-01", "there is no month 13"),
    ("2024-00-10", "there is no month 00"),
    ("2024-06-00", "days run from 01; June 2024 has 30 days"),
    ("0000-06-01", "there is no year 0000 (the first is 0001)"),
])
def test_a_date_written_yyyy_mm_dd_that_the_calendar_has_not_is_refused_saying_why(
        text: str, why: str) -> None:
    with pytest.raises(InvalidInput) as refused_date:
        parse_iso_date(text, "--as-of")
    assert refused_date.value.rule == "date"
    assert refused_date.value.message == (f"malformed date {text!r} for --as-of: written "
                                           f"YYYY-MM-DD, but no such day: {why}")
