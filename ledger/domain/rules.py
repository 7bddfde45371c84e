"""Rules that span aggregates, as pure functions over the aggregates involved."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from ledger.domain.errors import NotFound, RuleViolation
from ledger.domain.organisations import Consortium, Practice
from ledger.domain.values import Element

HolderOf = Callable[[str, Element, date], str | None]
"""(practice code, element, day) -> that practice's holder, or None if it has no budget."""

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
    practice: str, elements: list[Element], holder: str, day: date, holder_of: HolderOf
) -> None:
    """Invariant 7: following practice-to-practice holdings never leads back to the practice."""
    for element in elements:
        seen = {practice}
        current = holder
        for _ in range(MAX_CHAIN):
            kind, _, code = current.partition(":")
            if kind != "practice":
                break
            if code in seen:
                raise RuleViolation(
                    "no-cycles",
                    f"delegating {element} of {practice} to {holder} would form a cycle "
                    f"back to practice:{code} on {day}",
                )
            seen.add(code)
            next_holder = holder_of(code, element, day)
            if next_holder is None or next_holder == f"practice:{code}":
                break
            current = next_holder
