"""Financial years run 1 April to 31 March and are written `2024-25`."""

from __future__ import annotations

from datetime import date

import pytest

from ledger.domain.errors import InvalidInput
from ledger.domain.values import FinancialYear


def test_a_year_runs_from_the_first_of_april_to_the_thirty_first_of_march() -> None:
    year = FinancialYear.parse("2024-25")
    assert (year.first_day, year.last_day) == (date(2024, 4, 1), date(2025, 3, 31))
    assert str(year) == "2024-25"


def test_the_century_turn_is_written_with_two_digits() -> None:
    assert str(FinancialYear.parse("1999-00")) == "1999-00"


@pytest.mark.parametrize(
    "text", ["2024-26", "2024-2025", "2024/25", "24-25", "2024", "", "abcd-ef"]
)
def test_malformed_years_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        FinancialYear.parse(text)
    assert refused.value.rule == "year"


@pytest.mark.parametrize(
    ("day", "inside"),
    [(date(2024, 4, 1), True), (date(2025, 3, 31), True), (date(2024, 12, 25), True),
     (date(2024, 3, 31), False), (date(2025, 4, 1), False)],
)
def test_days_inside_the_year_include_both_ends(day: date, inside: bool) -> None:
    assert (day in FinancialYear(2024)) is inside


@pytest.mark.parametrize(("day", "year"), [(date(2024, 4, 1), "2024-25"),
                                           (date(2025, 3, 31), "2024-25"),
                                           (date(2025, 1, 1), "2024-25")])
def test_the_year_containing_a_day(day: date, year: str) -> None:
    assert str(FinancialYear.containing(day)) == year
