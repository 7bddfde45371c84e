"""Codes: ODS practice codes, consortium codes, QS codes, elements, holders and actors."""

from __future__ import annotations

import pytest

from ledger.domain.errors import InvalidInput
from ledger.domain.values import (
    Actor,
    Element,
    Role,
    parse_consortium_code,
    parse_element,
    parse_holder,
    parse_practice_code,
    parse_qs_code,
)


@pytest.mark.parametrize(("text", "code"), [("A81001", "A81001"), ("a81001", "A81001"),
                                            (" Y00001 ", "Y00001")])
def test_practice_codes_are_one_letter_and_five_digits(text: str, code: str) -> None:
    assert parse_practice_code(text) == code


@pytest.mark.parametrize("text", ["A8100", "A810011", "81001A", "AB1001", "A8100X", "", "A 81001",
                                  "A81-001"])
def test_malformed_practice_codes_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_practice_code(text)
    assert refused.value.rule == "practice-code"


@pytest.mark.parametrize(("text", "code"), [("16C", "16C"), ("07l", "07L"), ("00C", "00C"),
                                            ("X2C4Y", "X2C4Y")])
def test_consortium_codes_are_three_or_five_characters(text: str, code: str) -> None:
    assert parse_consortium_code(text) == code


@pytest.mark.parametrize("text", ["ABC", "16", "16CC", "X2C4YZ", "1-C", "", "16 C"])
def test_malformed_consortium_codes_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_consortium_code(text)
    assert refused.value.rule == "consortium-code"


@pytest.mark.parametrize(("text", "code"), [("QS1", "QS1"), ("qs201", "QS201"), ("QS3", "QS3")])
def test_quality_standards_are_qs_and_a_number(text: str, code: str) -> None:
    assert parse_qs_code(text) == code


@pytest.mark.parametrize("text", ["QS", "QS0", "QS01", "Q1", "QSX", "QS-1", "1"])
def test_malformed_quality_standards_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_qs_code(text)


def test_elements_are_the_fixed_set() -> None:
    assert [e.value for e in Element] == [
        "acute", "community", "mental-health", "maternity", "prescribing",
        "health-inequalities", "primary-care",
    ]
    assert parse_element(" Mental-Health ") is Element.MENTAL_HEALTH


@pytest.mark.parametrize("text", ["dental", "mental health", "", "acute,community"])
def test_unknown_elements_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_element(text)
    assert refused.value.rule == "element"


@pytest.mark.parametrize(("text", "holder"), [("practice:a81002", "practice:A81002"),
                                              ("Consortium:16c", "consortium:16C")])
def test_holders_are_practices_or_consortia(text: str, holder: str) -> None:
    assert parse_holder(text) == holder


@pytest.mark.parametrize("text", ["allocator:Q71", "auditor:bob", "A81002", "practice:", "16C",
                                  "practice:16C", "consortium:A81001"])
def test_other_holders_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_holder(text)


@pytest.mark.parametrize(
    ("text", "role", "code", "person"),
    [
        ("allocator:Q71", Role.ALLOCATOR, "Q71", None),
        ("practice:a81001", Role.PRACTICE, "A81001", None),
        ("consortium:16C/Dr Jones", Role.CONSORTIUM, "16C", "Dr Jones"),
        ("auditor:jsmith", Role.AUDITOR, "jsmith", None),
    ],
)
def test_actors_are_role_code_and_optional_person(
    text: str, role: Role, code: str, person: str | None
) -> None:
    actor = Actor.parse(text)
    assert (actor.role, actor.code, actor.person) == (role, code, person)


@pytest.mark.parametrize("text", ["Q71", "boss:Q71", "practice:", "practice:XYZ",
                                  "consortium:ABCD", "allocator:Q", ""])
def test_malformed_actors_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        Actor.parse(text)


def test_actor_person_may_not_carry_an_nhs_number() -> None:
    with pytest.raises(InvalidInput) as refused:
        Actor.parse("practice:A81001/943 476 5919")
    assert refused.value.rule == "no-patient-data"
