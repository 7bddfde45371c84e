"""Builders for domain unit tests: aggregates and contexts, no database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from ledger.domain.aggregate import Aggregate, Context
from ledger.domain.budget import Budget
from ledger.domain.errors import LedgerError
from ledger.domain.organisations import Consortium, Practice
from ledger.domain.values import Actor, Element, FinancialYear

YEAR = FinancialYear(2024)
ALLOCATOR = "allocator:Q71"
PRACTICE = "A81001"
OTHER = "A81002"
ME = f"practice:{PRACTICE}"
RECORDED_AT = datetime(2024, 7, 15, 9, 30, tzinfo=UTC)

_counter = [0]


def ctx(
    actor: str,
    on: date | str = "2024-06-01",
    *,
    reason: str | None = None,
    command_id: str | None = None,
) -> Context:
    """A context for one command; every call gets a fresh command id."""
    _counter[0] += 1
    day = date.fromisoformat(on) if isinstance(on, str) else on
    return Context(
        actor=Actor.parse(actor),
        command_id=command_id or f"cmd-{_counter[0]}",
        effective_on=day,
        recorded_at=RECORDED_AT,
        reason=reason,
    )


def practice(code: str = PRACTICE, allocator: str = ALLOCATOR) -> Practice:
    registered = Practice.register(
        ctx(allocator, "2024-04-01"),
        code=code,
        name=f"Surgery {code}",
        list_size=4069,
        weighted_population={Element.ACUTE: Decimal("4100")},
    )
    registered.collect_events()
    return registered


def consortium(code: str = "16C", *members: str, joined: str = "2024-04-01") -> Consortium:
    formed = Consortium.form(ctx(f"consortium:{code}", joined), code=code, name="Tees Valley",
                             officer="Dr A Officer")
    for member in members:
        formed.join(ctx(f"consortium:{code}", joined), member)
    formed.collect_events()
    return formed


def budget(
    amounts: dict[Element, int] | None = None,
    *,
    code: str = PRACTICE,
    hard_from: str | None = None,
    saved: bool = True,
) -> Budget:
    """An allocated budget, optionally hard from a date.

    `saved` budgets have no pending events; unsaved ones keep their whole history
    pending, so a test can fold it again.
    """
    owner = practice(code)
    allocated = Budget.empty(code, YEAR)
    allocated.allocate(
        ctx(ALLOCATOR, "2024-04-01"),
        owner,
        amounts if amounts is not None else dict.fromkeys(Element, 100_000_00),
    )
    if hard_from is not None:
        allocated.make_hard(ctx(ALLOCATOR, hard_from))
    if saved:
        allocated.collect_events()
    return allocated


def commit(
    target: Budget,
    ref: str,
    amount: int,
    *,
    element: Element = Element.ACUTE,
    actor: str = ME,
    on: str = "2024-06-01",
) -> None:
    target.commit(
        ctx(actor, on), ref=ref, element=element, amount=amount, provider="RTR",
        service="Hip replacement", qs_codes=("QS3",),
    )


def refused(
    action: Callable[[], object], *aggregates: Aggregate, rule: str | None = None
) -> LedgerError:
    """Assert `action` is refused (under `rule`, if given) and the aggregates record nothing."""
    before = [len(a.pending_events) for a in aggregates]
    with pytest.raises(LedgerError) as error:
        action()
    if rule is not None:
        assert error.value.rule == rule, str(error.value)
    assert [len(a.pending_events) for a in aggregates] == before
    return error.value
