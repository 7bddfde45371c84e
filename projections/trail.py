"""trail: every event that touched a practice, in order, in words.

Rows are kept per subject: `practice:A81001` for events about the practice, its
budgets, and holdings handed to it; `consortium:16C` for events of a
consortium. A practice's trail is its own rows plus the consortium-wide events
(risk pool, quality standards) of the consortia it belonged to when they took
effect, joined at query time from the organisations read model.

A row names the event by its position with what a trail is filtered on (year,
effective date, kind); who recorded it, when, and what it did in words (`describe`)
are read from the event itself when the trail is read. The log is the one record of
them, and a rebuild writes a fifth of the bytes it would with the words stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger.domain.events import (
    EVENTS_BY_TOPIC,
    AccessGranted,
    AccessRevoked,
    AllocationAdjusted,
    BudgetAllocated,
    BudgetEvent,
    CommitmentCancelled,
    CommitmentSettled,
    CommitmentVaried,
    ConsortiumEvent,
    ConsortiumFormed,
    DelegationRevoked,
    HoldingDelegated,
    LedgerEvent,
    ListSizeRecorded,
    MadeHard,
    MadeIndicative,
    OptedIn,
    OptedOut,
    PoolDrawRecorded,
    PoolDrawReturned,
    PoolEvent,
    PracticeClosed,
    PracticeEvent,
    PracticeJoined,
    PracticeLeft,
    PracticeRegistered,
    QualityStandardsAdopted,
    RiskPoolAgreed,
    RiskPoolDrawn,
    RiskPoolReturned,
    SpendCommitted,
)
from ledger.domain.values import format_pence, format_weighted
from projections.core import (
    BulkApply,
    Change,
    Positioned,
    Projection,
    Put,
    Rows,
    State,
    Table,
    day,
    integer,
    text,
)

TRAIL = Table(
    "trail",
    key=(text("subject"), integer("position")),
    values=(text("year"), day("effective_on"), text("event")),
)

# Consortium events that concern every member practice.
CONSORTIUM_WIDE = (RiskPoolAgreed.topic, QualityStandardsAdopted.topic)


def _elements(elements: Any) -> str:
    return ", ".join(str(e) for e in elements)


def _allocated(e: Any) -> str:
    total = sum(e.amounts_pence.values())
    formula = getattr(e, "formula", None) or {}
    parts = ", ".join(
        f"{el} {format_pence(v)}" + (_term(formula[el]) if el in formula else "")
        for el, v in e.amounts_pence.items())
    return f"{e.allocator} allocated {format_pence(total)} for {e.year} ({parts})"


def _term(term: Any) -> str:
    """` = 5044.162762 x £780.00`: the basis of an allocation by formula. Events read back
    without validation carry the term as a plain dict."""
    if isinstance(term, dict):
        weighted, rate = term["weighted_population"], term["rate_pence"]
    else:
        weighted, rate = term.weighted_population, term.rate_pence
    return f" = {format_weighted(weighted)} weighted x {format_pence(int(rate))}"


def _weighted(e: Any) -> str:
    """Weighted populations as published (exact decimals), element by element."""
    figures = ", ".join(f"{el} {format_weighted(v)}" for el, v in e.weighted_population.items())
    return f"; weighted population {figures}" if figures else ""


_WORDS: dict[str, Callable[[Any], str]] = {
    AccessGranted.topic: lambda e: (
        f"token {e.token_id} granted to {e.grantee}"
        f"{' (read-only)' if e.read_only else ''}"),
    AccessRevoked.topic: lambda e: f"token {e.token_id} revoked",
    PracticeRegistered.topic: lambda e: (
        f"{e.practice} ({e.name}) registered by allocator {e.allocator}, "
        f"list size {e.list_size:,}{_weighted(e)}"),
    ListSizeRecorded.topic: lambda e: (
        f"list size of {e.practice} recorded as {e.list_size:,}{_weighted(e)}"),
    PracticeClosed.topic: lambda e: (
        f"{e.practice} closed from {e.effective_on}; nothing may be committed for it from "
        "that day, its budgets stay accountable"),
    ConsortiumFormed.topic: lambda e: (
        f"consortium {e.consortium} ({e.name}) formed, accountable officer "
        f"{e.accountable_officer}"),
    PracticeJoined.topic: lambda e: f"{e.practice} joined consortium {e.consortium}",
    PracticeLeft.topic: lambda e: f"{e.practice} left consortium {e.consortium}",
    RiskPoolAgreed.topic: lambda e: (
        f"consortium {e.consortium} agreed a {e.top_slice_basis_points / 100:g}% risk pool "
        f"top-slice for {e.year}"),
    QualityStandardsAdopted.topic: lambda e: (
        f"consortium {e.consortium} adopted {', '.join(e.codes)} for {e.year}"),
    BudgetAllocated.topic: _allocated,
    AllocationAdjusted.topic: lambda e: (
        f"{e.element} allocation of {e.practice} {e.year} adjusted by "
        f"{format_pence(e.delta_pence)}"),
    HoldingDelegated.topic: lambda e: (
        f"{e.practice} delegated holding of {_elements(e.elements)} ({e.year}) to {e.holder}"),
    DelegationRevoked.topic: lambda e: (
        f"{e.practice} revoked its delegation of {_elements(e.elements)} ({e.year}); "
        "held by the practice again"),
    OptedOut.topic: lambda e: (
        f"{e.practice} opted out of its {e.year} budget to {e.holder}; "
        "it stays accountable"),
    OptedIn.topic: lambda e: (
        f"{e.practice} opted back in for {e.year}; every element held by the practice again"),
    MadeHard.topic: lambda e: f"{e.practice} {e.year} budget made hard: overspend refused",
    MadeIndicative.topic: lambda e: (
        f"{e.practice} {e.year} budget made indicative: overspend flagged"),
    SpendCommitted.topic: lambda e: (
        f"committed {format_pence(e.amount_pence)} as {e.ref} against {e.element} of "
        f"{e.practice} {e.year}: {e.service} from {e.provider}"
        + (f" ({', '.join(e.qs_codes)})" if e.qs_codes else "")
        + (f"; OVERSPEND {format_pence(e.overspend_pence)}" if e.overspend_pence else "")),
    CommitmentVaried.topic: lambda e: (
        f"commitment {e.ref} varied to {format_pence(e.amount_pence)}"
        + (f"; OVERSPEND {format_pence(e.overspend_pence)}" if e.overspend_pence else "")),
    CommitmentSettled.topic: lambda e: (
        f"{'final ' if e.final else ''}settlement of {format_pence(e.amount_pence)} "
        f"on {e.ref}"),
    CommitmentCancelled.topic: lambda e: f"commitment {e.ref} cancelled",
    RiskPoolDrawn.topic: lambda e: (
        f"{format_pence(e.amount_pence)} drawn from consortium {e.consortium}'s risk pool "
        f"for {e.ref}"),
    RiskPoolReturned.topic: lambda e: (
        f"{format_pence(e.amount_pence)} of {e.ref}'s draw returned to consortium "
        f"{e.consortium}'s risk pool"),
    PoolDrawRecorded.topic: lambda e: (
        f"risk pool {e.consortium} {e.year}: {format_pence(e.amount_pence)} drawn by "
        f"{e.practice} for {e.ref}"),
    PoolDrawReturned.topic: lambda e: (
        f"risk pool {e.consortium} {e.year}: {format_pence(e.amount_pence)} returned by "
        f"{e.practice} for {e.ref}"),
}


def describe(event: LedgerEvent) -> str:
    """One line in words: what happened (the reason, when there is one, appended)."""
    words = _WORDS[event.topic](event)
    return f"{words} — {event.reason}" if event.reason else words


def subjects(event: LedgerEvent) -> list[str]:
    """Whose trails an event belongs to."""
    return subjects_of(event.topic, event.__dict__)


def _subjects_rule(cls: type[LedgerEvent]) -> Callable[[dict[str, Any]], list[str]]:
    """Whose trails an event of this type belongs to, given its fields."""
    if issubclass(cls, PoolEvent):
        return lambda fields: [f"consortium:{fields['consortium']}"]
    practice_event = issubclass(cls, PracticeEvent | BudgetEvent)
    consortium_event = issubclass(cls, ConsortiumEvent)

    def rule(fields: dict[str, Any]) -> list[str]:
        found: list[str] = []
        if practice_event:
            found.append(f"practice:{fields['practice']}")
        if consortium_event:
            found.append(f"consortium:{fields['consortium']}")
            practice = fields.get("practice")
            if isinstance(practice, str):
                found.append(f"practice:{practice}")
        holder = fields.get("holder")
        if isinstance(holder, str) and holder not in found:
            found.append(holder)
        return found
    return rule


_SUBJECTS = {topic: _subjects_rule(cls) for topic, cls in EVENTS_BY_TOPIC.items()}


def subjects_of(topic: str, fields: dict[str, Any]) -> list[str]:
    """Whose trails an event of this topic with these fields belongs to."""
    return _SUBJECTS[topic](fields)


def trail_rows(_state: State, item: Positioned) -> list[Change]:
    e = item.event
    values = (e.__dict__.get("year"), e.effective_on, e.topic)
    return [Put(TRAIL, (subject, item.position), values) for subject in subjects(e)]


class TrailBulk:
    """`trail_rows` over stored fields, for a rebuild from zero.

    An event about one practice and nobody else (a practice or budget event with no
    holder named: nearly every event) is given its one row directly, with the practice's
    subject made once per practice; any other goes through its subjects rule."""

    def __init__(self, rows: Rows) -> None:
        trail = rows.puts(TRAIL)
        practices: dict[str, str] = {}  # practice -> "practice:<practice>"

        def handler(topic: str) -> BulkApply:
            subjects_for = _SUBJECTS[topic]
            cls = EVENTS_BY_TOPIC[topic]
            alone = (issubclass(cls, PracticeEvent | BudgetEvent)
                     and not issubclass(cls, PoolEvent | ConsortiumEvent))

            def b_trail(position: int, _v: int, f: dict[str, Any]) -> None:
                values = (f.get("year"), f["effective_on"], topic)
                for subject in subjects_for(f):
                    trail[(subject, position)] = values

            def b_practice(position: int, _v: int, f: dict[str, Any]) -> None:
                if f.get("holder") is not None:
                    b_trail(position, _v, f)
                    return
                practice = f["practice"]
                subject = practices.get(practice) if type(practice) is str else None
                if subject is None:
                    subject = f"practice:{practice}"
                    if type(practice) is str:
                        practices[practice] = subject
                trail[(subject, position)] = (f.get("year"), f["effective_on"], topic)
            return b_practice if alone else b_trail

        self.handlers: dict[str, BulkApply] = {topic: handler(topic) for topic in _WORDS}

    def end_batch(self) -> None:
        pass


TRAIL_PROJECTION = Projection(
    name="trail",
    tables=(TRAIL,),
    applies=dict.fromkeys(_WORDS, trail_rows),
    description="every event per practice and consortium, in words",
    bulk=TrailBulk,
)
