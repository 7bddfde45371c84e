"""holders and portfolio: who holds each element of each budget, on any date.

`holders` keeps every change of holder with its effective date *and* the instant
it was recorded, so both auditor questions are indexed lookups: the holder on a
business date (`--as-of`) is the last change effective on or before it (ties in
recorded order), and what the ledger knew at an instant (`--known-at`) is the
same question over the changes recorded by then.

`holder_elements` keeps which elements each budget has: an element joins its budget
with the first allocation, adjustment or delegation that names it (each kept with its
effective date and recorded instant). A holders read shows only the elements a budget
has by the date and instant asked: every element has a holder from the first day of
the year, but an element never allocated nor delegated is no part of the budget.

`portfolio` keeps, per holder, the periods in which it holds each element:
the same timelines cut into intervals, indexed by holder.

Both mirror ledger/domain/budget.py: a budget starts with every element held by
its practice from the first day of its year; a delegation moves the listed
elements, a revocation returns them, an opt-out moves every element to the
nominee and an opt-in returns every element to the practice.
"""

from __future__ import annotations

from datetime import date
from typing import Any, TypeVar

import orjson

from ledger.domain.events import (
    AllocationAdjusted,
    BudgetAllocated,
    BudgetEvent,
    DelegationRevoked,
    HoldingDelegated,
    OptedIn,
    OptedOut,
)
from ledger.domain.values import ELEMENTS, FinancialYear
from projections.core import (
    BulkApply,
    Change,
    Delete,
    Positioned,
    Projection,
    Put,
    Rows,
    State,
    Table,
    day,
    instant,
    integer,
    sql_instant,
    text,
)

HOLDER_CHANGES = Table(
    "holder_changes",
    key=(text("practice"), text("year"), text("element"), integer("position")),
    values=(day("effective_on"), instant("recorded_at"), text("holder")),
    indexes=(("holder",),),
)

HOLDER_ELEMENTS = Table(
    "holder_elements",
    key=(text("practice"), text("year"), text("element"), integer("position")),
    values=(day("effective_on"), instant("recorded_at")),
)


# The events that move a holding; any other budget event changes holders only when it
# opens its budget (the first event of the stream).
MOVES = frozenset({HoldingDelegated.topic, DelegationRevoked.topic, OptedOut.topic,
                   OptedIn.topic})


_ELEMENT_NAMES = tuple(str(element) for element in ELEMENTS)

# The events that make an element part of its budget: an allocation, an adjustment or
# a delegation naming it.
NAMES_ELEMENTS = frozenset({BudgetAllocated.topic, AllocationAdjusted.topic,
                            HoldingDelegated.topic})


def elements_named(topic: str, fields: dict[str, Any]) -> list[str]:
    """The elements an allocation, adjustment or delegation (stored or validated fields)
    makes part of its budget; none for any other event."""
    if topic == BudgetAllocated.topic:
        return [str(element) for element in fields["amounts_pence"]]
    if topic == AllocationAdjusted.topic:
        return [str(fields["element"])]
    if topic == HoldingDelegated.topic:
        return [str(element) for element in fields["elements"]]
    return []


def changes_of(item: Positioned) -> list[tuple[str, str]]:
    """(element, new holder) pairs a budget event makes (the opening of a budget aside)."""
    e = item.event
    assert isinstance(e, BudgetEvent)
    return moves_of(e.topic, e.__dict__)


def moves_of(topic: str, fields: dict[str, Any]) -> list[tuple[str, str]]:
    """`changes_of`, given a budget event's topic and fields (stored or validated)."""
    if topic == HoldingDelegated.topic:
        return [(str(element), fields["holder"]) for element in fields["elements"]]
    if topic == DelegationRevoked.topic:
        practice = f"practice:{fields['practice']}"
        return [(str(element), practice) for element in fields["elements"]]
    if topic == OptedOut.topic:
        holder = fields["holder"]
        return [(element, holder) for element in _ELEMENT_NAMES]
    if topic == OptedIn.topic:
        practice = f"practice:{fields['practice']}"
        return [(element, practice) for element in _ELEMENT_NAMES]
    return []


def opening_day(item: Positioned) -> date | None:
    """The first day of the year when this event opens its budget's stream."""
    e = item.event
    assert isinstance(e, BudgetEvent)
    if e.originator_version != 1:
        return None
    return FinancialYear.parse(e.year).first_day


def holder_rows(_state: State, item: Positioned) -> list[Change]:
    e = item.event
    if e.originator_version != 1 and e.topic not in MOVES and e.topic not in NAMES_ELEMENTS:
        return []
    assert isinstance(e, BudgetEvent)
    rows: list[Change] = [
        Put(HOLDER_ELEMENTS, (e.practice, e.year, element, item.position),
            (e.effective_on, e.recorded_at))
        for element in elements_named(e.topic, e.__dict__)
    ]
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
# A day as a date, or as its ISO text (a bulk fold's): both sort in calendar order.
Day = TypeVar("Day", date, str)


def insert_breakpoint(points: list[tuple[Day, str]], on: Day, holder: str
                      ) -> list[tuple[Day, str]]:
    kept = [(d, h) for d, h in points if d != on]
    kept.append((on, holder))
    kept.sort(key=lambda p: p[0])
    return kept


def intervals(points: list[tuple[Day, str]]) -> list[tuple[str, Day, Day | None]]:
    """Consecutive periods of one holder (equal neighbours merged)."""
    merged: list[tuple[Day, str]] = []
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


_OPENING_DAYS: dict[str, str] = {}  # year -> its first day, ISO


def _opening_day(year: str) -> str:
    found = _OPENING_DAYS.get(year)
    if found is None:
        found = _OPENING_DAYS[year] = FinancialYear.parse(year).first_day.isoformat()
    return found


class HoldersBulk:
    """`holder_rows` over stored fields, for a rebuild from zero."""

    def __init__(self, rows: Rows) -> None:
        changes, named = rows.puts(HOLDER_CHANGES), rows.puts(HOLDER_ELEMENTS)

        def opening(f: dict[str, Any], recorded: str) -> None:
            practice, year = f["practice"], f["year"]
            row = (_opening_day(year), recorded, f"practice:{practice}")
            for element in _ELEMENT_NAMES:
                changes[(practice, year, element, 0)] = row

        def b_opened(_p: int, version: int, f: dict[str, Any]) -> None:
            if version == 1:
                opening(f, sql_instant(f["recorded_at"]))

        def changing(topic: str) -> BulkApply:
            def b_changed(position: int, version: int, f: dict[str, Any]) -> None:
                recorded = sql_instant(f["recorded_at"])
                if version == 1:
                    opening(f, recorded)
                practice, year, on = f["practice"], f["year"], f["effective_on"]
                for element in elements_named(topic, f):
                    named[(practice, year, element, position)] = (on, recorded)
                for element, holder in moves_of(topic, f):
                    changes[(practice, year, element, position)] = (on, recorded, holder)
            return b_changed

        self.handlers: dict[str, BulkApply] = {
            topic: changing(topic) if topic in MOVES | NAMES_ELEMENTS else b_opened
            for topic in _budget_topics()}

    def end_batch(self) -> None:
        pass


class PortfolioBulk:
    """`portfolio_rows` over stored fields, for a rebuild from zero: the timelines are
    kept in memory, and each one a batch moved is written once when the batch ends."""

    def __init__(self, rows: Rows) -> None:
        self.timelines_out, self.portfolio = rows.puts(TIMELINES), rows.puts(PORTFOLIO)
        self.timelines: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
        # The timelines this batch moved, as they were before it.
        self.before: dict[tuple[str, str, str], list[tuple[str, str]]] = {}

        def moving(topic: str) -> BulkApply:
            def b_moved(_p: int, version: int, f: dict[str, Any]) -> None:
                if version != 1 and topic not in MOVES:
                    return
                practice, year = f["practice"], f["year"]
                moves: list[tuple[str, str, str]] = []
                if version == 1:
                    opened, own = _opening_day(year), f"practice:{practice}"
                    moves += [(element, opened, own) for element in _ELEMENT_NAMES]
                on = f["effective_on"]
                moves += [(element, on, holder) for element, holder in moves_of(topic, f)]
                for element, day_on, holder in moves:
                    key = (practice, year, element)
                    points = self.timelines.get(key, [])
                    if key not in self.before:
                        self.before[key] = points
                    self.timelines[key] = insert_breakpoint(points, day_on, holder)
            return b_moved

        self.handlers: dict[str, BulkApply] = {topic: moving(topic) for topic in _budget_topics()}

    def end_batch(self) -> None:
        for key, points in self.before.items():
            after = self.timelines[key]
            old = {(h, s): end for h, s, end in intervals(points)}
            new = {(h, s): end for h, s, end in intervals(after)}
            for h, s in old.keys() - new.keys():
                self.portfolio[(h, *key, s)] = None
            for (h, s), end in new.items():
                if old.get((h, s), 0) != end:
                    self.portfolio[(h, *key, s)] = (end,)
            self.timelines_out[key] = (orjson.dumps([[d, h] for d, h in after]).decode(),)
        self.before = {}


def _budget_topics() -> list[str]:
    from ledger.domain.events import EVENT_TYPES  # noqa: PLC0415

    return [cls.topic for cls in EVENT_TYPES if issubclass(cls, BudgetEvent)]


HOLDERS = Projection(
    name="holders",
    tables=(HOLDER_CHANGES, HOLDER_ELEMENTS),
    applies=dict.fromkeys(_budget_topics(), holder_rows),
    description="every change of holder, and the elements each budget has, by effective "
                "date and by recorded instant",
    bulk=HoldersBulk,
)

PORTFOLIO_PROJECTION = Projection(
    name="portfolio",
    tables=(TIMELINES, PORTFOLIO),
    applies=dict.fromkeys(_budget_topics(), portfolio_rows),
    description="per holder, the elements of each practice it holds and when",
    bulk=PortfolioBulk,
)
