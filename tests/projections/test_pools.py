"""Risk pools: each pool's capacity, drawn and headroom, now and as of a date, on both stores."""

from __future__ import annotations

from datetime import UTC, date, datetime

from ledger.bootstrap import Ledger
from ledger.domain.events import PoolDrawRecorded, PoolDrawReturned, PoolEvent, pool_stream
from projections.core import fold, positioned
from projections.joint_queries import JointReads
from projections.pools import POOL_DAYS, POOLS
from tests.ledger.application.scenario import A1, A2, A3, ALLOCATOR, YEAR, commit, run, seed

TODAY = date(2025, 6, 1)


def _pool_event(cls: type[PoolEvent], version: int, ref: str, amount: int,
                on: date = date(2024, 7, 1)) -> PoolEvent:
    return cls(
        originator_id=pool_stream("16C", YEAR), originator_version=version,
        recorded_at=datetime(2024, 7, 1, tzinfo=UTC), effective_on=on,
        actor=f"practice:{A1}", command_id=f"c-{version}", consortium="16C", year=YEAR,
        practice=A1, ref=ref, amount_pence=amount,
    )


def test_drawn_is_draws_less_returns_kept_by_effective_date() -> None:
    later = date(2025, 1, 15)
    state = fold(POOLS, positioned([
        _pool_event(PoolDrawRecorded, 1, "R1", 500),
        _pool_event(PoolDrawRecorded, 2, "R2", 300),
        _pool_event(PoolDrawReturned, 3, "R1", 200),
        _pool_event(PoolDrawRecorded, 4, "R4", 50, on=later),
        _pool_event(PoolDrawReturned, 5, "R2", 300, on=later),
    ]))
    assert state.get(POOL_DAYS, ("16C", YEAR, date(2024, 7, 1))) == (600, 2)
    assert state.get(POOL_DAYS, ("16C", YEAR, later)) == (-250, 1)


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


def test_a_pool_as_of_a_date_counts_only_what_is_effective_by_then(ledger: Ledger) -> None:
    seed(ledger, members=(A1, A2, A3))
    run(ledger, "consortium risk-pool", "consortium:16C", consortium="16C", year=YEAR,
        top_slice="1%", on="2024-04-01")
    run(ledger, "budget harden", ALLOCATOR, practice=A1, year=YEAR, on="2024-04-02")
    commit(ledger, "R1", "9900")
    commit(ledger, "R2", "250")  # £250 over: drawn from the pool, effective 2024-07-01
    commit(ledger, "R3", "100", on="2025-01-15")  # drawn, effective 2025-01-15
    run(ledger, "spend cancel", f"practice:{A1}", ref="R2", on="2025-02-01")  # returned
    run(ledger, "budget adjust", ALLOCATOR, practice=A2, year=YEAR, element="acute",
        by="1000", reason="list growth", on="2024-10-01")
    reads = JointReads(ledger.store, today=TODAY)

    def pool(on: date | None) -> tuple[int, int, int, int]:
        [row] = reads.pools(year=YEAR, as_of=on)
        return (row["capacity_pence"], row["drawn_pence"], row["draws"],
                row["headroom_pence"])

    assert pool(date(2024, 4, 1)) == (90_000, 0, 0, 90_000)
    assert pool(date(2024, 7, 1)) == (90_000, 25_000, 1, 65_000)
    # £1,000 more for A2 from October: 1% of it is £10 more capacity.
    assert pool(date(2024, 10, 1)) == (91_000, 25_000, 1, 66_000)
    assert pool(date(2025, 1, 15)) == (91_000, 35_000, 2, 56_000)
    assert pool(date(2025, 2, 1)) == (91_000, 10_000, 2, 81_000)
    assert pool(None) == (91_000, 10_000, 2, 81_000)
