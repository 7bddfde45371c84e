"""A read given no `--year` and no `--as-of` looks at today's financial year when it has
budgets, on SQLite and PostgreSQL: next year's budgets, allocated before 1 April, are
not shown in place of the current year's. In a year without budgets it looks at the
latest year that ended before today, else the first."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from ledger.bootstrap import Ledger
from ledger.domain import events as ev
from ledger.domain.values import Element
from projections.joint_queries import JointReads
from tests.projections.builders import History, append

D = date


@pytest.fixture
def ledger_with_next_year(ledger: Ledger) -> Ledger:
    """A81001 in 16C with a 1% pool, funded for 2024-25 and, in March 2025, for 2025-26."""
    h = History()
    h.register("A81001")
    h.form("16C")
    h.join("16C", "A81001", D(2024, 4, 1))
    h.pool("16C", 100, D(2024, 4, 1))
    h.allocate("A81001", D(2024, 4, 1), acute=1_000_000)
    h._budget(ev.BudgetAllocated, "A81001", D(2025, 4, 1), "allocator:Q71", year="2025-26",
              allocator="Q71", amounts_pence={Element("acute"): 2_000_000})
    append(ledger.store, h.events)
    return ledger


def _years(rows: list[dict[str, Any]]) -> set[str]:
    return {r["year"] for r in rows}


@pytest.mark.parametrize(("today", "year", "day"), [
    (D(2025, 3, 15), "2024-25", D(2025, 3, 15)),   # the current year, next year funded
    (D(2025, 4, 1), "2025-26", D(2025, 4, 1)),
    (D(2027, 6, 1), "2025-26", D(2026, 3, 31)),   # no budgets now: the latest before
    (D(2023, 6, 1), "2024-25", D(2024, 4, 1)),    # before any: the first
])
def test_reads_without_a_year_look_at_todays_year_else_the_nearest(
        ledger_with_next_year: Ledger, today: date, year: str, day: date) -> None:
    reads = JointReads(ledger_with_next_year.store, today=today)
    assert _years(reads.holders(practice="A81001")) == {year}
    assert _years(reads.holders(consortium="16C")) == {year}
    position = reads.position(practice="A81001")
    assert _years(position) == {year}
    assert position == reads.position(practice="A81001", year=year, as_of=day)
    assert reads.holders() == reads.holders(year=year, as_of=day)


def test_the_pool_of_the_current_year_is_shown_while_next_years_budgets_exist(
        ledger_with_next_year: Ledger) -> None:
    reads = JointReads(ledger_with_next_year.store, today=D(2025, 3, 15))
    [pool] = reads.pools()
    assert (pool["year"], pool["capacity_pence"]) == ("2024-25", 10_000)
