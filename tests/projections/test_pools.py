"""pools: each risk pool's capacity, drawn and headroom (issue 6), on both stores."""

from __future__ import annotations

from datetime import UTC, date, datetime

from ledger.bootstrap import Ledger
from ledger.domain.events import PoolDrawRecorded, PoolDrawReturned, PoolEvent, pool_stream
from projections.core import fold, positioned
from projections.joint_queries import JointReads
from projections.pools import POOL_TOTALS, POOLS
from tests.ledger.application.scenario import A1, A2, A3, ALLOCATOR, YEAR, commit, run, seed

TODAY = date(2025, 6, 1)


def _pool_event(cls: type[PoolEvent], version: int, ref: str, amount: int) -> PoolEvent:
    return cls(
        originator_id=pool_stream("16C", YEAR), originator_version=version,
        recorded_at=datetime(2024, 7, 1, tzinfo=UTC), effective_on=date(2024, 7, 1),
        actor=f"practice:{A1}", command_id=f"c-{version}", consortium="16C", year=YEAR,
        practice=A1, ref=ref, amount_pence=amount,
    )


def test_drawn_is_draws_less_returns() -> None:
    state = fold(POOLS, positioned([
        _pool_event(PoolDrawRecorded, 1, "R1", 500),
        _pool_event(PoolDrawRecorded, 2, "R2", 300),
        _pool_event(PoolDrawReturned, 3, "R1", 200),
    ]))
    assert state.get(POOL_TOTALS, ("16C", YEAR)) == (600, 2)


def test_capacity_drawn_and_headroom_on_each_store(ledger: Ledger) -> None:
    seed(ledger, members=(A1, A2, A3))
    run(ledger, "consortium risk-pool", "consortium:16C", consortium="16C", year=YEAR,
        top_slice="1%", on="2024-04-01")
    run(ledger, "budget harden", ALLOCATOR, practice=A1, year=YEAR, on="2024-04-02")
    commit(ledger, "R1", "9900")
    commit(ledger, "R2", "250")
    commit(ledger, "R3", "100")
    run(ledger, "spend cancel", f"practice:{A1}", ref="R3", on="2024-07-02")
    [row] = JointReads(ledger.store, today=TODAY).pools(year=YEAR)
    # Three members, £10,000 on each of three elements, 1% each: £900.
    assert row == {
        "consortium": "16C", "year": YEAR, "as_of": "2025-03-31", "top_slice_percent": 1.0,
        "members": 3, "capacity_pence": 90_000, "drawn_pence": 25_000, "draws": 2,
        "headroom_pence": 65_000,
    }
    earlier = JointReads(ledger.store, today=TODAY).pools(year=YEAR, as_of=date(2024, 4, 1))
    assert earlier[0]["members"] == 3
