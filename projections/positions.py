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
from typing import Any

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
    BulkApply,
    Change,
    Key,
    Positioned,
    Projection,
    Put,
    Rows,
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


def _add(table: dict[Key, list[int]], key: Key,
         deltas: tuple[int, int, int, int]) -> None:
    """Add `deltas` (allocated, committed, settled, outstanding pence) to `table[key]`."""
    total = table.get(key)
    if total is None:
        table[key] = list(deltas)
    else:
        total[0] += deltas[0]
        total[1] += deltas[1]
        total[2] += deltas[2]
        total[3] += deltas[3]


def _grow(table: dict[Key, list[int]], key: Key, column: int, amount: int) -> None:
    """Add `amount` pence to one column of `table[key]` (`_add` with one delta)."""
    row = table.get(key)
    if row is None:
        row = table[key] = [0, 0, 0, 0]
    row[column] += amount


# Every movement adds the same deltas to its totals and to its day: the totals are the
# days summed over their dates.
TOTALS_FROM_DAYS = (
    "SELECT practice, year, element, sum(allocated), sum(committed), sum(settled), "
    "sum(drawn) FROM {position_days} GROUP BY practice, year, element")


class PositionsBulk:
    """The applies above over stored fields, for a rebuild from zero (the totals left to
    the materialiser when it derives them from the days).

    Each movement adds to one row of `position_days` (and of `position_totals` when the
    fold keeps them): a row made on its first movement, its columns added to in place
    after, with no tuple of deltas built on the way."""

    def __init__(self, rows: Rows) -> None:  # noqa: PLR0915 - one closure per event type
        days = rows.adds(DAYS)
        totals = None if rows.derives(TOTALS) else rows.adds(TOTALS)
        commitments = rows.puts(COMMITMENTS)
        statuses, budgets = rows.puts(STATUS), rows.puts(BUDGETS)
        # ref -> [practice, year, element, amount, settled, open]
        known: dict[str, list[Any]] = {}

        # One column (0 allocated, 1 committed, 3 drawn) of a budget element's total and
        # of its day row grows by the amount.
        def grown(column: int, budget_element: tuple[str, str, str], on: str, amount: int
                  ) -> None:
            if totals is not None:
                _grow(totals, budget_element, column, amount)
            _grow(days, (*budget_element, on), column, amount)

        def allocated_by(practice: str, year: str, element: str, on: str, amount: int
                         ) -> None:
            grown(0, (practice, year, element), on, amount)

        def committed_by(practice: str, year: str, element: str, on: str, amount: int
                         ) -> None:
            grown(1, (practice, year, element), on, amount)

        def drawn_by(practice: str, year: str, element: str, on: str, amount: int) -> None:
            grown(3, (practice, year, element), on, amount)

        def b_allocated(_p: int, _v: int, f: dict[str, Any]) -> None:
            practice, year, on = f["practice"], f["year"], f["effective_on"]
            budgets[(practice, year)] = (f["allocator"],)
            for element, amount in f["amounts_pence"].items():
                allocated_by(practice, year, element, on, amount)

        def b_adjusted(_p: int, _v: int, f: dict[str, Any]) -> None:
            allocated_by(f["practice"], f["year"], f["element"], f["effective_on"],
                         f["delta_pence"])

        def b_committed(_p: int, _v: int, f: dict[str, Any]) -> None:
            practice, year, element, amount = (f["practice"], f["year"], f["element"],
                                               f["amount_pence"])
            ref = f["ref"]
            known[ref] = [practice, year, element, amount, 0, True]
            commitments[(ref,)] = (practice, year, element, amount, 0, 1)
            committed_by(practice, year, element, f["effective_on"], amount)

        def b_varied(_p: int, _v: int, f: dict[str, Any]) -> None:
            ref = f["ref"]
            row = known.get(ref)
            if row is None:
                return
            practice, year, element, amount, paid, is_open = row
            new = f["amount_pence"]
            row[3] = new
            commitments[(ref,)] = (practice, year, element, new, paid, int(is_open))
            committed_by(practice, year, element, f["effective_on"], new - amount)

        def b_settled(_p: int, _v: int, f: dict[str, Any]) -> None:
            ref = f["ref"]
            row = known.get(ref)
            if row is None:
                return
            practice, year, element, amount, paid, _ = row
            part, final = f["amount_pence"], f["final"]
            paid += part
            outstanding_before = amount - (paid - part)
            if final:
                amount = paid
            outstanding_after = amount - paid if not final else 0
            row[3], row[4], row[5] = amount, paid, not final
            commitments[(ref,)] = (practice, year, element, amount, paid, int(not final))
            committed = outstanding_after - outstanding_before
            on = f["effective_on"]
            if totals is not None:
                _add(totals, (practice, year, element), (0, committed, part, 0))
            _add(days, (practice, year, element, on), (0, committed, part, 0))

        def b_cancelled(_p: int, _v: int, f: dict[str, Any]) -> None:
            ref = f["ref"]
            row = known.get(ref)
            if row is None:
                return
            practice, year, element, amount, paid, is_open = row
            outstanding = amount - paid if is_open else 0
            row[3], row[5] = paid, False
            commitments[(ref,)] = (practice, year, element, paid, paid, 0)
            committed_by(practice, year, element, f["effective_on"], -outstanding)

        def b_drawn(_p: int, _v: int, f: dict[str, Any]) -> None:
            row = known.get(f["ref"])
            if row is not None:
                drawn_by(f["practice"], f["year"], row[2], f["effective_on"],
                         f["amount_pence"])

        def b_returned(_p: int, _v: int, f: dict[str, Any]) -> None:
            row = known.get(f["ref"])
            if row is not None:
                drawn_by(f["practice"], f["year"], row[2], f["effective_on"],
                         -f["amount_pence"])

        def b_hard(position: int, _v: int, f: dict[str, Any]) -> None:
            statuses[(f["practice"], f["year"], f["effective_on"], position)] = (1,)

        def b_indicative(position: int, _v: int, f: dict[str, Any]) -> None:
            statuses[(f["practice"], f["year"], f["effective_on"], position)] = (0,)

        self.handlers: dict[str, BulkApply] = {
            BudgetAllocated.topic: b_allocated,
            AllocationAdjusted.topic: b_adjusted,
            SpendCommitted.topic: b_committed,
            CommitmentVaried.topic: b_varied,
            CommitmentSettled.topic: b_settled,
            CommitmentCancelled.topic: b_cancelled,
            RiskPoolDrawn.topic: b_drawn,
            RiskPoolReturned.topic: b_returned,
            MadeHard.topic: b_hard,
            MadeIndicative.topic: b_indicative,
        }

    def end_batch(self) -> None:
        pass


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
    bulk=PositionsBulk,
    derived=((TOTALS, TOTALS_FROM_DAYS),),
)
