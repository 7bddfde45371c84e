"""holders and portfolio: who holds each element of each budget, on any date.

`holders` keeps every change of holder with its effective date *and* the instant
it was recorded, so both auditor questions are indexed lookups: the holder on a
business date (`--as-of`) is the last change effective on or before it (ties in
recorded order), and what the ledger knew at an instant (`--known-at`) is the
same question over the changes recorded by then.

`portfolio` keeps, per holder, the periods in which it holds each element:
the same timelines cut into intervals, indexed by holder.

Both mirror ledger/domain/budget.py: a budget starts with every element held by
its practice from the first day of its year; a delegation moves the listed
elements, a revocation returns them, an opt-out moves every element to the
nominee and an opt-in returns every element to the practice.
"""

from __future__ import annotations

from datetime import date

import orjson

from ledger.domain.events import (
    BudgetEvent,
    DelegationRevoked,
    HoldingDelegated,
    OptedIn,
    OptedOut,
)
from ledger.domain.values import ELEMENTS, FinancialYear
from projections.core import (
    Change,
    Delete,
    Positioned,
    Projection,
    Put,
    State,
    Table,
    day,
    instant,
    integer,
    text,
)

HOLDER_CHANGES = Table(
    "holder_changes",
    key=(text("practice"), text("year"), text("element"), integer("position")),
    values=(day("effective_on"), instant("recorded_at"), text("holder")),
    indexes=(("holder",),),
)


# The events that move a holding; any other budget event changes holders only when it
# opens its budget (the first event of the stream).
MOVES = frozenset({HoldingDelegated.topic, DelegationRevoked.topic, OptedOut.topic,
                   OptedIn.topic})


def changes_of(item: Positioned) -> list[tuple[str, str]]:
    """(element, new holder) pairs a budget event makes; the opening of a budget included."""
    e = item.event
    assert isinstance(e, BudgetEvent)
    practice = f"practice:{e.practice}"
    moved: list[tuple[str, str]] = []
    if isinstance(e, HoldingDelegated):
        moved = [(str(element), e.holder) for element in e.elements]
    elif isinstance(e, DelegationRevoked):
        moved = [(str(element), practice) for element in e.elements]
    elif isinstance(e, OptedOut):
        moved = [(str(element), e.holder) for element in ELEMENTS]
    elif isinstance(e, OptedIn):
        moved = [(str(element), practice) for element in ELEMENTS]
    return moved


def opening_day(item: Positioned) -> date | None:
    """The first day of the year when this event opens its budget's stream."""
    e = item.event
    assert isinstance(e, BudgetEvent)
    if e.originator_version != 1:
        return None
    return FinancialYear.parse(e.year).first_day


def holder_rows(_state: State, item: Positioned) -> list[Change]:
    e = item.event
    if e.originator_version != 1 and e.topic not in MOVES:
        return []
    assert isinstance(e, BudgetEvent)
    rows: list[Change] = []
    opened = opening_day(item)
    if opened is not None:
        rows += [
            # Position 0: the opening sorts before every change of the budget.
            Put(HOLDER_CHANGES, (e.practice, e.year, str(element), 0),
                (opened, e.recorded_at, f"practice:{e.practice}"))
            for element in ELEMENTS
        ]
    rows += [
        Put(HOLDER_CHANGES, (e.practice, e.year, element, item.position),
            (e.effective_on, e.recorded_at, holder))
        for element, holder in changes_of(item)
    ]
    return rows


# --- portfolio -----------------------------------------------------------------------

# The timeline of one element of one budget: [[iso date, holder], ...] in date order,
# one breakpoint a date (a later-recorded change on the same date replaces it).
TIMELINES = Table(
    "portfolio_timelines",
    key=(text("practice"), text("year"), text("element")),
    values=(text("breakpoints"),),
)
PORTFOLIO = Table(
    "portfolio",
    key=(text("holder"), text("practice"), text("year"), text("element"), day("start_on")),
    values=(day("end_on"),),
    indexes=(("practice", "year", "element"),),
)

Breakpoints = list[tuple[date, str]]
Interval = tuple[str, date, date | None]  # holder, first day, first day after (None: open)


def insert_breakpoint(points: Breakpoints, on: date, holder: str) -> Breakpoints:
    kept = [(d, h) for d, h in points if d != on]
    kept.append((on, holder))
    kept.sort(key=lambda p: p[0])
    return kept


def intervals(points: Breakpoints) -> list[Interval]:
    """Consecutive periods of one holder (equal neighbours merged)."""
    merged: list[tuple[date, str]] = []
    for on, holder in points:
        if merged and merged[-1][1] == holder:
            continue
        merged.append((on, holder))
    return [
        (holder, on, merged[i + 1][0] if i + 1 < len(merged) else None)
        for i, (on, holder) in enumerate(merged)
    ]


def _load(state: State, key: tuple[str, str, str]) -> Breakpoints:
    row = state.get(TIMELINES, key)
    if row is None:
        return []
    return [(date.fromisoformat(d), h) for d, h in orjson.loads(row[0])]


def portfolio_rows(state: State, item: Positioned) -> list[Change]:
    e = item.event
    if e.originator_version != 1 and e.topic not in MOVES:
        return []
    assert isinstance(e, BudgetEvent)
    moves: list[tuple[str, date, str]] = []
    opened = opening_day(item)
    if opened is not None:
        moves += [(str(element), opened, f"practice:{e.practice}") for element in ELEMENTS]
    moves += [(element, e.effective_on, holder) for element, holder in changes_of(item)]
    if not moves:
        return []
    timelines: dict[str, Breakpoints] = {}
    for element, on, holder in moves:
        key = (e.practice, e.year, element)
        before = timelines[element] if element in timelines else _load(state, key)
        timelines[element] = insert_breakpoint(before, on, holder)
    rows: list[Change] = []
    for element, after in timelines.items():
        key = (e.practice, e.year, element)
        old = {(h, s): end for h, s, end in intervals(_load(state, key))}
        new = {(h, s): end for h, s, end in intervals(after)}
        rows += [Delete(PORTFOLIO, (h, e.practice, e.year, element, s))
                 for (h, s) in old.keys() - new.keys()]
        rows += [Put(PORTFOLIO, (h, e.practice, e.year, element, s), (end,))
                 for (h, s), end in new.items() if old.get((h, s), 0) != end]
        encoded = orjson.dumps([[d.isoformat(), h] for d, h in after]).decode()
        rows.append(Put(TIMELINES, key, (encoded,)))
    return rows


def _budget_topics() -> list[str]:
    from ledger.domain.events import EVENT_TYPES  # noqa: PLC0415

    return [cls.topic for cls in EVENT_TYPES if issubclass(cls, BudgetEvent)]


HOLDERS = Projection(
    name="holders",
    tables=(HOLDER_CHANGES,),
    applies=dict.fromkeys(_budget_topics(), holder_rows),
    description="every change of holder, by effective date and by recorded instant",
)

PORTFOLIO_PROJECTION = Projection(
    name="portfolio",
    tables=(TIMELINES, PORTFOLIO),
    applies=dict.fromkeys(_budget_topics(), portfolio_rows),
    description="per holder, the elements of each practice it holds and when",
)
