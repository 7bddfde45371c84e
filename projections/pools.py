"""pool_draws: what each consortium's risk pool has paid out, per year, by effective date.

Folded from the pool's own stream (PoolDrawRecorded / PoolDrawReturned), which
serialises every draw on one pool, so `drawn` is exactly the sum of live draws.
The deltas are kept per effective date, so a pool as of any business date is
one indexed sum (draws effective later are not counted), and the pool now is
the sum of every day. Capacity and headroom are worked out at query time: capacity
is the sum of the members' top-slices on the day asked about, from the
positions and organisations projections.
"""

from __future__ import annotations

from typing import Any

from ledger.domain.events import PoolDrawRecorded, PoolDrawReturned
from projections.core import (
    Add,
    BulkApply,
    Change,
    Positioned,
    Projection,
    Rows,
    State,
    Table,
    add_to,
    day,
    integer,
    text,
)

POOL_DAYS = Table(
    "pool_days",
    key=(text("consortium"), text("year"), day("effective_on")),
    values=(integer("drawn"), integer("draws_made")),
)


def drawn(_state: State, item: Positioned) -> list[Change]:
    e = item.event
    assert isinstance(e, PoolDrawRecorded)
    return [Add(POOL_DAYS, (e.consortium, e.year, e.effective_on), (e.amount_pence, 1))]


def returned(_state: State, item: Positioned) -> list[Change]:
    e = item.event
    assert isinstance(e, PoolDrawReturned)
    return [Add(POOL_DAYS, (e.consortium, e.year, e.effective_on), (-e.amount_pence, 0))]


class PoolsBulk:
    """`drawn` and `returned` over stored fields, for a rebuild from zero."""

    def __init__(self, rows: Rows) -> None:
        days = rows.adds(POOL_DAYS)

        def bulk_drawn(_position: int, _version: int, f: dict[str, Any]) -> None:
            add_to(days, (f["consortium"], f["year"], f["effective_on"]),
                   (f["amount_pence"], 1))

        def bulk_returned(_position: int, _version: int, f: dict[str, Any]) -> None:
            add_to(days, (f["consortium"], f["year"], f["effective_on"]),
                   (-f["amount_pence"], 0))

        self.handlers: dict[str, BulkApply] = {
            PoolDrawRecorded.topic: bulk_drawn, PoolDrawReturned.topic: bulk_returned}

    def end_batch(self) -> None:
        pass


# Named apart from the earlier `pools` projection (running totals without dates), so a
# store that has one catches this one up from the start of the log.
POOLS = Projection(
    name="pool_draws",
    tables=(POOL_DAYS,),
    applies={PoolDrawRecorded.topic: drawn, PoolDrawReturned.topic: returned},
    description="risk pools: drawn per consortium and year, by effective date",
    bulk=PoolsBulk,
)
