"""List sizes and weighted populations: exact, in range, or refused naming the rule."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.errors import InvalidInput
from ledger.domain.values import (
    LIST_SIZE_MAX,
    WEIGHTED_MAX,
    format_weighted,
    parse_list_size,
    parse_weighted,
)


@pytest.mark.parametrize(("given_", "expected"), [
    ("5044.162762", Decimal("5044.162762")),
    ("5,044.162762", Decimal("5044.162762")),
    ("4310", Decimal(4310)),
    (4310, Decimal(4310)),
    ("0", Decimal(0)),
    ("0.000001", Decimal("0.000001")),
    ("10000000", WEIGHTED_MAX),
    ("3980.100000", Decimal("3980.100000")),
    (5044.162762, Decimal("5044.162762")),  # a JSON number, read by its shortest text
])
def test_weighted_populations_parse_exactly(given_: object, expected: Decimal) -> None:
    parsed = parse_weighted(given_)
    assert parsed == expected
    assert isinstance(parsed, Decimal)


def test_weighted_populations_are_shown_as_published() -> None:
    assert format_weighted(parse_weighted("3980.100000")) == "3980.100000"
    assert format_weighted(parse_weighted("5,044.162762")) == "5044.162762"
    assert format_weighted("4310") == "4310"


@pytest.mark.parametrize(("bad", "fragment"), [
    ("-5", "malformed weighted population '-5'"),
    ("+5", "malformed weighted population"),
    ("1e3", "no sign or exponent"),
    ("NaN", "malformed"),
    ("inf", "malformed"),
    ("Infinity", "malformed"),
    ("5044.1627621", "more than 6 decimals"),
    ("10000000.000001", "out of range: at most 10,000,000"),
    ("99999999999999999999", "out of range"),
    ("", "malformed"),
    ("50,44.1", "malformed"),
    (True, "is not a number"),
    (None, "is not a number"),
    (float("nan"), "malformed"),
    (-1, "malformed"),
])
def test_bad_weighted_populations_are_refused(bad: object, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=r"weighted population|not a number") as error:
        parse_weighted(bad)
    assert fragment in error.value.message
    assert error.value.rule == "weighted-population"


@pytest.mark.parametrize(("given_", "expected"), [
    ("4069", 4069), ("4,069", 4069), (" 11000 ", 11000), (0, 0), ("1,000,000", LIST_SIZE_MAX),
])
def test_list_sizes_parse_with_separators(given_: object, expected: int) -> None:
    assert parse_list_size(given_) == expected


@pytest.mark.parametrize(("bad", "fragment"), [
    ("-5", "malformed list size '-5'"),
    ("4.5", "whole number"),
    ("1000001", "out of range: at most 1,000,000"),
    ("9223372036854775808", "out of range"),
    (10**30, "out of range"),
    (True, "is not a number"),
    ("40,69", "malformed"),
    ("", "malformed"),
])
def test_bad_list_sizes_are_refused(bad: object, fragment: str) -> None:
    with pytest.raises(InvalidInput) as error:
        parse_list_size(bad)
    assert fragment in error.value.message
    assert error.value.rule == "list-size"


@given(st.decimals(min_value=0, max_value=WEIGHTED_MAX, places=6, allow_nan=False,
                   allow_infinity=False))
def test_any_weighted_population_in_range_round_trips_through_its_text(value: Decimal) -> None:
    text = format_weighted(value)
    assert parse_weighted(text) == value
    assert format_weighted(parse_weighted(text)) == text


@given(st.text(max_size=20))
def test_any_text_is_a_weighted_population_in_range_or_refused(text: str) -> None:
    try:
        parsed = parse_weighted(text)
    except InvalidInput:
        return
    assert Decimal(0) <= parsed <= WEIGHTED_MAX
    assert -parsed.as_tuple().exponent <= 6  # type: ignore[operator]
