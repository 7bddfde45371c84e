"""`holders --known-at` without `--as-of`: the instant's day is the business date, kept
inside the year as today is, on SQLite and PostgreSQL. A 2024-25 budget recorded
and looked at after 31 March 2025 (the year-end's accounts) answers as of 31 March,
not a refusal of a date outside every budget year."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from ledger.bootstrap import Ledger
from ledger.domain.errors import InvalidInput, NotFound
from projections.queries import Reads
from tests.projections.builders import History, append

D = date
RECORDED_FROM = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)  # after the year 2024-25 ended
LATER = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def reads(ledger: Ledger) -> Reads:
    """A81001's 2024-25 budget, recorded in June 2025: delegated from 1 June 2024, the
    delegation revoked from 1 March 2025."""
    h = History(start=RECORDED_FROM)
    h.register("A81001")
    h.form("16C")
    h.join("16C", "A81001", D(2024, 4, 1))
    h.allocate("A81001", D(2024, 4, 1), acute=1_000_000, prescribing=500_000)
    h.delegate("A81001", ["prescribing"], "consortium:16C", D(2024, 6, 1))
    h.revoke("A81001", ["prescribing"], D(2025, 3, 1))
    append(ledger.store, h.events)
    return Reads(ledger.store, today=D(2026, 2, 1))


def _held(rows: list[dict[str, Any]]) -> dict[str, tuple[str, date]]:
    return {r["element"]: (r["holder"], r["since"]) for r in rows}


@pytest.mark.parametrize("year", [None, "2024-25"])
@pytest.mark.parametrize("scope", ["practice", "consortium", "holder", "all"])
def test_known_at_after_the_year_answers_as_of_its_last_day(
        reads: Reads, year: str | None, scope: str) -> None:
    ask: dict[str, Any] = {"practice": {"practice": "A81001"},
                           "consortium": {"consortium": "16C"},
                           "holder": {"holder": "practice:A81001"}, "all": {}}[scope]
    known = reads.holders(year=year, known_at=LATER, **ask)
    assert known == reads.holders(year=year, as_of=D(2025, 3, 31), **ask)
    assert _held(known)["prescribing"] == ("practice:A81001", D(2025, 3, 1))


@pytest.mark.parametrize("year", [None, "2024-25"])
def test_known_at_before_anything_was_recorded_or_the_year_began_shows_nothing(
        reads: Reads, year: str | None) -> None:
    before_the_year = datetime(2024, 2, 1, tzinfo=UTC)
    assert reads.holders(practice="A81001", year=year, known_at=before_the_year) == []


def test_an_as_of_outside_the_year_is_still_refused_with_known_at(reads: Reads) -> None:
    with pytest.raises(InvalidInput, match="outside the financial year 2024-25"):
        reads.holders(practice="A81001", year="2024-25", as_of=D(2025, 6, 1), known_at=LATER)
    with pytest.raises(NotFound, match="outside every budget year"):
        reads.holders(practice="A81001", as_of=D(2025, 6, 1), known_at=LATER)
