"""positions: per practice, year and element, what is allocated, committed and settled.

Every event that moves money adds signed deltas to two tables: the running
totals (`position_totals`, what the ledger knows now) and the same deltas kept
by effective date (`position_days`), so a position as of any business date is
one indexed sum. The arithmetic mirrors ledger/domain/budget.py:

- allocated = allocations + adjustments;
- committed is what is outstanding: a commitment adds its amount, a variation
  the change in total, a settlement moves its amount from committed to settled,
  a final settlement releases what is left, a cancellation releases what is
  outstanding (what was settled stays settled);
- drawn is what the consortium's risk pool covers (draws less returns).

Hard/indicative changes are kept by effective date (`position_status`), and the
allocator of each budget (`position_budgets`) for the roll-up by allocator.
"""

from __future__ import annotations

from datetime import date

from ledger.domain.events import (
    AllocationAdjusted,
    BudgetAllocated,
    BudgetEvent,
    CommitmentCancelled,
    CommitmentSettled,
    CommitmentVaried,
    MadeHard,
    MadeIndicative,
    RiskPoolDrawn,
    RiskPoolReturned,
    SpendCommitted,
)
from projections.core import (
    Add,
    Change,
    Positioned,
    Projection,
    Put,
    State,
    Table,
    day,
    flag,
    integer,
    text,
)

AMOUNTS = (integer("allocated"), integer("committed"), integer("settled"), integer("drawn"))

TOTALS = Table(
    "position_totals",
    key=(text("practice"), text("year"), text("element")),
    values=AMOUNTS,
    indexes=(("year",),),
)
DAYS = Table(
    "position_days",
    key=(text("practice"), text("year"), text("element"), day("effective_on")),
    values=AMOUNTS,
    indexes=(("year", "effective_on"),),
)
COMMITMENTS = Table(
    "position_commitments",
    key=(text("ref"),),
    values=(text("practice"), text("year"), text("element"), integer("amount"),
            integer("settled"), flag("open")),
)
STATUS = Table(
    "position_status",
    key=(text("practice"), text("year"), day("effective_on"), integer("position")),
    values=(flag("hard"),),
)
BUDGETS = Table(
    "position_budgets",
    key=(text("practice"), text("year")),
    values=(text("allocator"),),
    indexes=(("year",),),
)


def _moved(e: BudgetEvent, element: str, on: date, deltas: tuple[int, int, int, int]
           ) -> list[Change]:
    return [
        Add(TOTALS, (e.practice, e.year, element), deltas),
        Add(DAYS, (e.practice, e.year, element, on), deltas),
    ]


def allocated(_state: State, item: Positioned) -> list[Change]:
    e = item.event
    assert isinstance(e, BudgetAllocated)
    rows: list[Change] = [Put(BUDGETS, (e.practice, e.year), (e.allocator,))]
    for element, amount in e.amounts_pence.items():
        rows += _moved(e, str(element), e.effective_on, (amount, 0, 0, 0))
    return rows


def adjusted(_state: State, item: Positioned) -> list[Change]:
    e = item.event
    assert isinstance(e, AllocationAdjusted)
    return _moved(e, str(e.element), e.effective_on, (e.delta_pence, 0, 0, 0))


def committed(_state: State, item: Positioned) -> list[Change]:
    e = item.event
    assert isinstance(e, SpendCommitted)
    return [
        Put(COMMITMENTS, (e.ref,), (e.practice, e.year, str(e.element), e.amount_pence, 0, True)),
        *_moved(e, str(e.element), e.effective_on, (0, e.amount_pence, 0, 0)),
    ]


def varied(state: State, item: Positioned) -> list[Change]:
    e = item.event
    assert isinstance(e, CommitmentVaried)
    row = state.get(COMMITMENTS, (e.ref,))
    if row is None:
        return []
    practice, year, element, amount, settled, is_open = row
    return [
        Put(COMMITMENTS, (e.ref,), (practice, year, element, e.amount_pence, settled, is_open)),
        *_moved(e, element, e.effective_on, (0, e.amount_pence - amount, 0, 0)),
    ]


def settled(state: State, item: Positioned) -> list[Change]:
    e = item.event
    assert isinstance(e, CommitmentSettled)
    row = state.get(COMMITMENTS, (e.ref,))
    if row is None:
        return []
    practice, year, element, amount, paid, _ = row
    paid += e.amount_pence
    outstanding_before = amount - (paid - e.amount_pence)
    if e.final:
        amount = paid  # a final settlement releases whatever was left outstanding
    outstanding_after = amount - paid if not e.final else 0
    return [
        Put(COMMITMENTS, (e.ref,), (practice, year, element, amount, paid, not e.final)),
        *_moved(e, element, e.effective_on,
                (0, outstanding_after - outstanding_before, e.amount_pence, 0)),
    ]


def cancelled(state: State, item: Positioned) -> list[Change]:
    e = item.event
    assert isinstance(e, CommitmentCancelled)
    row = state.get(COMMITMENTS, (e.ref,))
    if row is None:
        return []
    practice, year, element, amount, paid, is_open = row
    outstanding = amount - paid if is_open else 0
    return [
        Put(COMMITMENTS, (e.ref,), (practice, year, element, paid, paid, False)),
        *_moved(e, element, e.effective_on, (0, -outstanding, 0, 0)),
    ]


def drawn(state: State, item: Positioned) -> list[Change]:
    e = item.event
    assert isinstance(e, RiskPoolDrawn)
    row = state.get(COMMITMENTS, (e.ref,))
    if row is None:
        return []
    return _moved(e, row[2], e.effective_on, (0, 0, 0, e.amount_pence))


def returned(state: State, item: Positioned) -> list[Change]:
    e = item.event
    assert isinstance(e, RiskPoolReturned)
    row = state.get(COMMITMENTS, (e.ref,))
    if row is None:
        return []
    return _moved(e, row[2], e.effective_on, (0, 0, 0, -e.amount_pence))


def status(_state: State, item: Positioned) -> list[Change]:
    e = item.event
    assert isinstance(e, MadeHard | MadeIndicative)
    hard = isinstance(e, MadeHard)
    return [Put(STATUS, (e.practice, e.year, e.effective_on, item.position), (hard,))]


POSITIONS = Projection(
    name="positions",
    tables=(TOTALS, DAYS, COMMITMENTS, STATUS, BUDGETS),
    applies={
        BudgetAllocated.topic: allocated,
        AllocationAdjusted.topic: adjusted,
        SpendCommitted.topic: committed,
        CommitmentVaried.topic: varied,
        CommitmentSettled.topic: settled,
        CommitmentCancelled.topic: cancelled,
        RiskPoolDrawn.topic: drawn,
        RiskPoolReturned.topic: returned,
        MadeHard.topic: status,
        MadeIndicative.topic: status,
    },
    description="allocated, committed, settled per element, by effective date",
)
