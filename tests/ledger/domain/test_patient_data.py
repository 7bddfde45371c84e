"""Invariant 9: free text holding a valid NHS number is refused, in any common spacing."""

from __future__ import annotations

import pytest

from ledger.domain.errors import InvalidInput
from ledger.domain.events import SpendCommitted
from ledger.domain.values import (
    check_free_text,
    contains_nhs_number,
    is_valid_nhs_number,
    name_text,
    written_nhs_number,
)
from tests.ledger.domain.builders import RECORDED_AT, YEAR, ctx


def test_the_modulus_eleven_check_accepts_a_valid_number() -> None:
    assert is_valid_nhs_number("9434765919")


@pytest.mark.parametrize("digits", ["9434765918", "9434765910", "1234567890", "943476591",
                                    "94347659190", "94347x5919"])
def test_the_modulus_eleven_check_rejects_invalid_numbers(digits: str) -> None:
    assert not is_valid_nhs_number(digits)


def test_a_number_whose_check_digit_would_be_ten_is_never_valid() -> None:
    # 100000001?: weighted sum 1*10 + 1*2 = 12, 12 % 11 = 1, check 11 - 1 = 10: no valid digit.
    assert not any(is_valid_nhs_number(f"100000001{d}") for d in "0123456789")


@pytest.mark.parametrize(
    "text",
    [
        "9434765919",
        "943 476 5919",
        "943-476-5919",
        "943 476-5919",
        "patient 9434765919 seen",
        "ref:943-476-5919.",
        "(943 476 5919)",
    ],
)
def test_valid_nhs_numbers_are_found_with_or_without_spaces_and_dashes(text: str) -> None:
    assert contains_nhs_number(text)
    with pytest.raises(InvalidInput) as refused:
        check_free_text(text, "service")
    assert refused.value.rule == "no-patient-data"


@pytest.mark.parametrize(
    "text",
    [
        "9434765918",  # invalid check digit
        "943 476 5918",
        "1234567890",
        "Hip replacement",
        "94347659191",  # eleven digits: not an NHS number
        "19434765919",
        "phone 01642 850850",
        "",
    ],
)
def test_numbers_failing_the_check_are_not_flagged(text: str) -> None:
    assert not contains_nhs_number(text)
    assert check_free_text(text, "service") == text


def test_event_free_text_fields_refuse_nhs_numbers() -> None:
    context = ctx("practice:A81001")
    fields = {
        "originator_id": "6f1c3b0e-8a53-5d2f-9c41-0d7f3a9e2b15",
        "originator_version": 1,
        **context.event_fields(),
        "practice": "A81001",
        "year": str(YEAR),
        "ref": "R-1",
        "element": "acute",
        "amount_pence": 100,
        "provider": "RTR",
        "service": "Hip",
    }
    SpendCommitted.model_validate(fields)
    for field in ("service", "provider", "reason"):
        with pytest.raises(InvalidInput, match="NHS number"):
            SpendCommitted.model_validate({**fields, field: "for 943 476 5919"})
    assert context.recorded_at == RECORDED_AT


WRITTEN_OTHER_WAYS = [
    "Patient 943.476.5919",
    "943/476/5919",
    "943_476_5919",
    "943  476  5919",
    "943 - 476 - 5919",
    "943\u2013476\u20135919",  # en dashes
    "943\u00a0476\u00a05919",  # no-break spaces
    "94347 65919",
    "943 4765 919",
    "9 4 3 4 7 6 5 9 1 9",
    "\uff19\uff14\uff13\uff14\uff17\uff16\uff15\uff19\uff11\uff19",  # fullwidth
    "\u0669\u0664\u0663\u0664\u0667\u0666\u0665\u0669\u0661\u0669",  # Arabic-Indic
]


@pytest.mark.parametrize("text", WRITTEN_OTHER_WAYS)
def test_an_nhs_number_written_any_other_way_is_refused_as_input(text: str) -> None:
    assert written_nhs_number(text)
    with pytest.raises(InvalidInput) as refused:
        name_text(f"Review {text} done", "service")
    assert refused.value.rule == "no-patient-data"


@pytest.mark.parametrize("text", [
    "943 476 5918", "phone 01642 850850", "Tel 0800 123 4567", "reduced by 1,234,567.89",
    "01/04/2024-31/03/2025", "943    476 5919", "943a476b5919", "94347659191",
    "uplift for 1/4/24 - 30/09/24", "1.4.24 - 30.9.24", "1/4/24-30/9/24",
    "from 1/10/24 to 31/3/25",
])
def test_other_numbers_written_with_separators_are_not_refused(text: str) -> None:
    assert not written_nhs_number(text)
    assert name_text(text, "service") == text


@pytest.mark.parametrize("text", WRITTEN_OTHER_WAYS)
def test_events_older_versions_recorded_with_such_text_still_read(text: str) -> None:
    """Stored events are read with the rule they were recorded under: a stricter input
    rule never makes a recorded event unreadable."""
    fields = {
        "originator_id": "6f1c3b0e-8a53-5d2f-9c41-0d7f3a9e2b15",
        "originator_version": 1,
        **ctx("practice:A81001").event_fields(),
        "practice": "A81001", "year": str(YEAR), "ref": "R-1", "element": "acute",
        "amount_pence": 100, "provider": "RTR", "service": f"Review {text}",
    }
    assert SpendCommitted.model_validate(fields).service == f"Review {text}"
