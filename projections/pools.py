"""pools: what each consortium's risk pool has paid out, per year (issue 6).

Folded from the pool's own stream (PoolDrawRecorded / PoolDrawReturned), which
serialises every draw on one pool, so `drawn` is exactly the sum of live draws.
Capacity and headroom are computed at query time: capacity is the sum of the
members' top-slices on the day asked about (DESIGN §4), from the positions and
organisations projections.
"""

from __future__ import annotations

from ledger.domain.events import PoolDrawRecorded, PoolDrawReturned
from projections.core import Add, Change, Positioned, Projection, State, Table, integer, text

POOL_TOTALS = Table(
    "pool_totals",
    key=(text("consortium"), text("year")),
    values=(integer("drawn"), integer("draws_made")),
)


def drawn(_state: State, item: Positioned) -> list[Change]:
    e = item.event
    assert isinstance(e, PoolDrawRecorded)
    return [Add(POOL_TOTALS, (e.consortium, e.year), (e.amount_pence, 1))]


def returned(_state: State, item: Positioned) -> list[Change]:
    e = item.event
    assert isinstance(e, PoolDrawReturned)
    return [Add(POOL_TOTALS, (e.consortium, e.year), (-e.amount_pence, 0))]


POOLS = Projection(
    name="pools",
    tables=(POOL_TOTALS,),
    applies={PoolDrawRecorded.topic: drawn, PoolDrawReturned.topic: returned},
    description="risk pools: drawn per consortium and year",
)
