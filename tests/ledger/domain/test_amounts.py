"""Invariant 6: amounts are positive pence, at most two decimals, in the listed forms only."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.errors import InvalidInput
from ledger.domain.values import (
    MAX_AMOUNT_PENCE,
    format_pence,
    parse_amount,
    parse_signed_amount,
)

LARGEST_SUM = 2**63 - 1
"""Pence a total may reach: the stores' signed 64-bit integers."""


@pytest.mark.parametrize(
    ("text", "pence"),
    [
        ("1234", 123400),
        ("1234.5", 123450),
        ("1234.56", 123456),
        ("1,234.56", 123456),
        ("£1,234.56", 123456),
        ("£1234", 123400),
        ("1,234,567.89", 123456789),
        ("0.01", 1),
        ("  12500  ", 1250000),
    ],
)
def test_accepted_amount_forms_parse_to_exact_pence(text: str, pence: int) -> None:
    assert parse_amount(text) == pence


@pytest.mark.parametrize(
    "text",
    [
        "-5",
        "+5",
        "-£5",
        "£-5",
        "1.234",
        "abc",
        "1e9",
        "1E9",
        "NaN",
        "nan",
        "inf",
        "-inf",
        "Infinity",
        "£1,2,3",
        "1,23",
        "12,34.56",
        "1,2345",
        ",123",
        "123,",
        "1234.",
        ".5",
        "1 234",
        "£ 1234",
        "$1234",
        "1234p",
        "0x10",
        "1_000",
        "\uff11\uff12\uff13",  # full-width digits
        "",
        "   ",
    ],
)
def test_malformed_or_signed_amounts_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_amount(text)
    assert refused.value.rule == "amount"


@pytest.mark.parametrize("text", ["0", "0.00", "£0", "0.0"])
def test_zero_is_refused_where_a_positive_amount_is_needed(text: str) -> None:
    with pytest.raises(InvalidInput, match="more than zero"):
        parse_amount(text)


@pytest.mark.parametrize("text", ["0", "0.00", "£0"])
def test_zero_is_accepted_for_allocations(text: str) -> None:
    assert parse_amount(text, allow_zero=True) == 0


def test_allow_zero_still_refuses_signs_and_malformed_forms() -> None:
    for text in ("-5", "1.234", "NaN", "£1,2,3"):
        with pytest.raises(InvalidInput):
            parse_amount(text, allow_zero=True)


@pytest.mark.parametrize(
    ("text", "pence"),
    [("-5000", -500000), ("5000", 500000), ("+5000", 500000), ("-£1,234.56", -123456),
     ("-0.01", -1)],
)
def test_adjustments_accept_signed_amounts(text: str, pence: int) -> None:
    assert parse_signed_amount(text) == pence


@pytest.mark.parametrize("text", ["0", "-0", "+0.00", "1.234", "--5", "+-5", "1e3", "NaN",
                                  "-inf", "£-5", "1,23"])
def test_adjustments_refuse_zero_and_malformed_amounts(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_signed_amount(text)


@pytest.mark.parametrize(("text", "bound"), [
    ("-1000000000000.01", "at least -£1,000,000,000,000.00"),
    ("-£99,999,999,999,999", "at least -£1,000,000,000,000.00"),
    ("1000000000000.01", "at most £1,000,000,000,000.00"),
    ("+1000000000000.01", "at most £1,000,000,000,000.00"),
])
def test_an_adjustment_out_of_range_names_the_bound_on_its_side(text: str, bound: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_signed_amount(text)
    assert refused.value.rule == "amount-range"
    assert f"is out of range: {bound} [" in str(refused.value)


def test_money_is_integer_pence_never_float() -> None:
    value = parse_amount("310000.50")
    assert type(value) is int
    assert value == 31000050


@pytest.mark.parametrize("pence", [0, 1, 99, 100, 123456, 100_000_000_00, -500000])
def test_formatted_pence_parse_back_to_the_same_amount(pence: int) -> None:
    text = format_pence(pence)
    if pence < 0:
        assert parse_signed_amount(text) == pence
    else:
        assert parse_amount(text, allow_zero=True) == pence


@pytest.mark.parametrize(("pence", "text"), [
    (0, "£0.00"), (7, "£0.07"), (99, "£0.99"), (100, "£1.00"), (12_345, "£123.45"),
    (99_999, "£999.99"), (100_000, "£1,000.00"), (123_456_789, "£1,234,567.89"),
    (-5, "-£0.05"), (-99_999, "-£999.99"), (-100_001, "-£1,000.01"),
])
def test_formatted_pence_are_pounds_with_thousands_separators_and_two_decimals(
        pence: int, text: str) -> None:
    assert format_pence(pence) == text


@given(st.one_of(st.integers(-100_000_00, 100_000_00),
                 st.integers(-MAX_AMOUNT_PENCE, MAX_AMOUNT_PENCE),
                 st.integers(-LARGEST_SUM, LARGEST_SUM)))
def test_every_amount_is_written_as_pounds_in_groups_of_three_and_two_digits_of_pence(
        pence: int) -> None:
    text = format_pence(pence)
    sign = "-" if pence < 0 else ""
    assert text.startswith(f"{sign}£")
    pounds, rest = text.removeprefix(f"{sign}£").split(".")
    first, *groups = pounds.split(",")
    assert 1 <= len(first) <= 3
    assert first == "0" or not first.startswith("0")
    assert all(len(group) == 3 for group in groups)
    assert set(pounds.replace(",", "") + rest) <= set("0123456789")
    assert len(rest) == 2
    assert int(first + "".join(groups)) * 100 + int(rest) == abs(pence)
