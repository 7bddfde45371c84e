"""A consortium's risk pool for one year: joint accountability for hard-budget overspends.

The pool's capacity is the sum of its members' top-slices (computed from their
budgets by the application); this stream holds what has been drawn on it, so
every draw on one pool is serialised through one stream version.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from ledger.domain.aggregate import Aggregate, Context, applies
from ledger.domain.events import PoolDrawRecorded, PoolDrawReturned, PoolEvent, pool_stream


class RiskPool(Aggregate):
    def __init__(self, aggregate_id: uuid.UUID) -> None:
        super().__init__(aggregate_id)
        self.consortium = ""
        self.year = ""
        self.draws: dict[str, int] = {}

    @classmethod
    def empty(cls, consortium: str, year: str) -> RiskPool:
        pool = cls(pool_stream(consortium, year))
        pool.consortium = consortium
        pool.year = year
        return pool

    @property
    def drawn(self) -> int:
        return sum(self.draws.values())

    def record_draw(self, context: Context, practice: str, ref: str, amount: int) -> None:
        self._record(PoolDrawRecorded, context, practice, ref, amount)

    def record_return(self, context: Context, practice: str, ref: str, amount: int) -> None:
        self._record(PoolDrawReturned, context, practice, ref, amount)

    def _record(self, kind: type[PoolEvent], context: Context, practice: str, ref: str,
                amount: int) -> None:
        self.trigger(kind, context, consortium=self.consortium, year=self.year,
                     practice=practice, ref=ref, amount_pence=amount)

    @applies(PoolDrawRecorded)
    def _drawn(self, event: PoolDrawRecorded) -> None:
        self.consortium, self.year = event.consortium, event.year
        self.draws[event.ref] = self.draws.get(event.ref, 0) + event.amount_pence


    @applies(PoolDrawReturned)
    def _returned(self, event: PoolDrawReturned) -> None:
        left = self.draws.get(event.ref, 0) - event.amount_pence
        if left > 0:
            self.draws[event.ref] = left
        else:
            self.draws.pop(event.ref, None)


@dataclass(frozen=True, slots=True)
class PoolAccess:
    """What a budget needs to draw on its consortium's pool: the pool and its capacity."""

    consortium: str
    basis_points: int
    capacity: int
    pool: RiskPool

    @property
    def headroom(self) -> int:
        return self.capacity - self.pool.drawn
