"""Rules that span aggregates, as pure functions over the aggregates involved."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from ledger.domain.errors import NotFound, RuleViolation
from ledger.domain.organisations import Consortium, Practice
from ledger.domain.values import Element

HolderOf = Callable[[str, Element, date], str | None]
"""(practice code, element, day) -> that practice's holder, or None if it has no budget."""

ChangesAfter = Callable[[str, Element, date], list[date]]
"""(practice code, element, day) -> dates after `day` its holder of that element changes."""

MAX_CHAIN = 10_000


def check_new_holder(
    practice: str,
    holder: str,
    day: date,
    *,
    consortium: Consortium | None,
    holder_practice: Practice | None,
) -> None:
    """Invariant 7: a consortium holder needs the practice as a member on the day."""
    if holder == f"practice:{practice}":
        raise RuleViolation(
            "holder", f"the holder cannot be {practice} itself; it holds what it has not handed on"
        )
    kind, _, code = holder.partition(":")
    if kind == "consortium":
        if consortium is None:
            raise NotFound("consortium", f"no consortium {code}")
        if not consortium.is_member(practice, day):
            raise RuleViolation(
                "membership",
                f"{practice} is not a member of consortium {code} on {day}; "
                "join it first (`ledger consortium join`)",
            )
        leaving = consortium.leaves_on(practice, day)
        if leaving is not None:
            # The holding would outlive the membership: the consortium would hold
            # the practice's element after it had left.
            raise RuleViolation(
                "membership",
                f"{practice} leaves consortium {code} on {leaving}; a holding that starts "
                f"on {day} would outlast its membership",
            )
    elif kind == "practice":
        if holder_practice is None:
            raise NotFound("practice", f"no practice {code}")
        holder_practice.require_open_on(day)


def check_no_cycle(
    practice: str,
    elements: list[Element],
    holder: str,
    day: date,
    holder_of: HolderOf,
    *,
    changes_after: ChangesAfter | None = None,
) -> None:
    """Invariant 7: following practice-to-practice holdings never leads back to the practice.

    The new holding lasts from `day` on, so the chain is walked on `day` and again
    on every later date a practice met along the way changes its holder: a
    future-dated delegation elsewhere may close the loop then.
    """
    for element in elements:
        pending, checked = [day], set[date]()
        while pending:
            on = pending.pop()
            if on in checked:
                continue
            checked.add(on)
            for code in _chain(practice, element, holder, on, holder_of):
                if changes_after is not None:
                    pending.extend(d for d in changes_after(code, element, day) if d not in checked)


def _chain(
    practice: str, element: Element, holder: str, on: date, holder_of: HolderOf
) -> list[str]:
    """The practices the new holding passes through on `on`; refuses if it loops back."""
    seen = [practice]
    current = holder
    for _ in range(MAX_CHAIN):
        kind, _, code = current.partition(":")
        if kind != "practice":
            break
        if code in seen:
            raise RuleViolation(
                "no-cycles",
                f"delegating {element} of {practice} to {holder} would form a cycle "
                f"back to practice:{code} on {on}",
            )
        seen.append(code)
        next_holder = holder_of(code, element, on)
        if next_holder is None or next_holder == f"practice:{code}":
            break
        current = next_holder
    return seen[1:]
