"""A financial year is written `2024-25`, however it was made."""

from __future__ import annotations

from datetime import date

import pytest

from ledger.domain.values import FinancialYear


@pytest.mark.parametrize(("year", "text"), [
    (FinancialYear.parse("2024-25"), "2024-25"),
    (FinancialYear(1999), "1999-00"),
    (FinancialYear.containing(date(2025, 3, 31)), "2024-25"),
    (FinancialYear.containing(date(2025, 4, 1)), "2025-26"),
])
def test_a_financial_year_is_written_start_year_dash_two_digits(year: FinancialYear,
                                                                text: str) -> None:
    assert year.text == text
    assert str(year) == text


def test_financial_years_compare_and_hash_by_their_start_year_alone() -> None:
    assert FinancialYear.parse("2024-25") == FinancialYear(2024)
    assert hash(FinancialYear.parse("2024-25")) == hash(FinancialYear(2024))
    assert sorted([FinancialYear(2025), FinancialYear(2024)]) == [FinancialYear(2024),
                                                                 FinancialYear(2025)]
    assert repr(FinancialYear(2024)) == "FinancialYear(start_year=2024)"
