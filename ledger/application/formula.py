"""Allocation by formula for many practices at once: weighted population x £ per head.

A run covers the practices of one consortium on the effective date (`consortium`),
or every practice the acting allocator registered; practices not yet registered or
already closed on that date are left out (and listed). Each practice is one
`budget allocate-formula` command with the command id `<run id>:<practice>`; the
run id is `--command-id`, or derived from what the run asks (year, rates, scope,
date), so running it again records nothing twice. The whole run is one atomic
batch: one refusal (a practice without a weighted population for a rated element,
an element already allocated) records nothing. A dry run computes the same
amounts, with the same domain function, and records nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

import orjson

from ledger.application.commands import BudgetAllocateFormula, parse_command
from ledger.application.service import LedgerService, Outcome, Request
from ledger.domain.budget import formula_amounts
from ledger.domain.characters import COMMAND_ID_MAX, parse_command_id
from ledger.domain.errors import InvalidInput, LedgerError, NotFound, RuleViolation
from ledger.domain.events import (
    FormulaTerm,
    PracticeRegistered,
    consortium_stream,
    practice_stream,
)
from ledger.domain.organisations import Consortium, Practice
from ledger.domain.values import Actor, Element, FinancialYear, Role, parse_consortium_code


@dataclass(frozen=True, slots=True)
class FormulaLine:
    practice: str
    amounts: dict[Element, int]
    terms: dict[Element, FormulaTerm]
    command_id: str


@dataclass(frozen=True, slots=True)
class FormulaRun:
    year: str
    effective_on: date
    run_id: str
    lines: tuple[FormulaLine, ...]
    left_out: tuple[str, ...]  # "A81009 (closed 2024-05-01)", ...
    dry_run: bool
    outcomes: tuple[Outcome, ...] = ()

    @property
    def total(self) -> int:
        return sum(sum(line.amounts.values()) for line in self.lines)

    @property
    def already_applied(self) -> int:
        return sum(1 for o in self.outcomes if o.status == "already applied")


def allocate_by_formula(
    service: LedgerService,
    *,
    actor: str,
    year: str,
    rates: dict[str, str] | list[str],
    consortium: str | None = None,
    on: str | None = None,
    command_id: str | None = None,
    dry_run: bool = False,
) -> FormulaRun:
    """Allocate (or, with `dry_run`, show) every in-scope practice's budget by formula.

    Raises InvalidInput for malformed rates or dates, NotFound for an unknown
    consortium, RuleViolation (rule `formula`, naming the practice and element) when
    a practice lacks a weighted population for a rated element, and whatever refuses
    a practice's command (the same with `dry_run`); nothing is recorded.
    """
    args: dict[str, object] = {"practice": "A00000", "year": year, "rate": rates}
    if on:
        args["on"] = on
    template = parse_command(BudgetAllocateFormula, args)
    fy = FinancialYear.parse(template.year)
    day = template.on or min(max(service.clock().date(), fy.first_day), fy.last_day)
    who = Actor.parse(actor)
    codes = _scope(service, who, consortium, day)
    rates_pence = template.rates_pence()
    scope = consortium or f"allocator:{who.code}"
    run_id = "formula:" + hashlib.sha256(orjson.dumps(
        [template.year, {str(e): p for e, p in sorted(rates_pence.items())}, scope,
         day.isoformat()])).hexdigest()[:16] if command_id is None else parse_command_id(
             command_id)
    room = COMMAND_ID_MAX - len(":A00000")
    if len(run_id) > room:  # each practice's command is <run id>:<practice>
        raise InvalidInput(
            "identifier", f"the run's command id is {len(run_id)} characters long: each "
            f"practice is recorded as <id>:<practice>, at most {COMMAND_ID_MAX} characters, "
            f"so give one of at most {room}")
    lines: list[FormulaLine] = []
    left_out: list[str] = []
    for code in codes:
        practice = _practice(service, code)
        if day < practice.registered_on:
            left_out.append(f"{code} (registered {practice.registered_on})")
            continue
        if practice.closed_on is not None and day >= practice.closed_on:
            left_out.append(f"{code} (closed {practice.closed_on})")
            continue
        amounts, terms = formula_amounts(practice, day, rates_pence)
        lines.append(FormulaLine(code, amounts, terms, f"{run_id}:{code}"))
    if not lines:
        raise RuleViolation("formula", f"no open practice in scope ({scope}) on {day}")
    requests = [
        Request(template.model_copy(update={"practice": line.practice, "on": day}), actor,
                line.command_id)
        for line in lines
    ]
    # A dry run decides every practice's command as the run would, recording nothing, so
    # it is refused exactly when and as the run would be (an element already allocated,
    # a date outside the year, an element moving past its bound).
    outcomes = service.execute_batch(requests, atomic=True, decide_only=dry_run)
    for outcome, line in zip(outcomes, lines, strict=True):
        if outcome.error is not None:
            raise _for_practice(outcome.error, line.practice)
    return FormulaRun(template.year, day, run_id, tuple(lines), tuple(left_out),
                      dry_run=dry_run, outcomes=() if dry_run else tuple(outcomes))


def _for_practice(error: LedgerError, practice: str) -> LedgerError:
    if practice in error.message:
        return type(error)(error.rule, f"{error.message}; nothing was allocated")
    return type(error)(error.rule, f"{practice}: {error.message}; nothing was allocated")


def _practice(service: LedgerService, code: str) -> Practice:
    practice = Practice.from_events(practice_stream(code),
                                    service.store.stream(practice_stream(code)))
    if not practice.version:
        raise NotFound("practice", f"no practice {code}; register it first")
    return practice


def _scope(service: LedgerService, actor: Actor, consortium: str | None, day: date
           ) -> list[str]:
    """The practices a run covers, in code order."""
    if consortium is not None:
        code = parse_consortium_code(consortium)
        found = Consortium.from_events(consortium_stream(code),
                                       service.store.stream(consortium_stream(code)))
        if not found.version:
            raise NotFound("consortium", f"no consortium {code}; form it first")
        members = found.members_on(day)
        if not members:
            raise RuleViolation("formula", f"consortium {code} has no members on {day}")
        return members
    if actor.role is not Role.ALLOCATOR:
        raise RuleViolation("authority", f"only an allocator allocates budgets; {actor} may not")
    return sorted(
        event.practice
        for event in service.store.events_of(PracticeRegistered.topic)
        if isinstance(event, PracticeRegistered) and event.allocator == actor.code
    )
