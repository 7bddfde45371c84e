"""The one parser of text and identifiers: NFC, trimmed, printable, bounded; refs ASCII."""

from __future__ import annotations

import json
import unicodedata
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.characters import (
    COMMAND_ID_MAX,
    NAME_MAX,
    REASON_MAX,
    REF_MAX,
    SPACES,
    UNPRINTABLE,
    escaped,
    json_escaped,
    parse_command_id,
    parse_identifier,
    parse_ref,
    parse_text,
    unprintable,
)
from ledger.domain.errors import InvalidInput
from ledger.domain.events import PracticeRegistered
from ledger.domain.values import Actor, Role
from ledger.store.mapper import decode_event, encode_event

REFUSED_CATEGORIES = frozenset(UNPRINTABLE)


def refusal(value: object, *, max_length: int = NAME_MAX) -> InvalidInput:
    with pytest.raises(InvalidInput) as refused:
        parse_text(value, "practice name", max_length=max_length)
    return refused.value


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("Densham\x00", "control character (U+0000"),
        ("\x1b[31mDensham", "control character (U+001B"),
        ("Dens\tham", "control character (U+0009"),
        ("Dens\nham", "control character (U+000A"),
        ("Dens\x85ham", "control character (U+0085"),
        ("\u202eDensham", "invisible format character (U+202E RIGHT-TO-LEFT OVERRIDE)"),
        ("Den\u2066sham\u2069", "invisible format character (U+2066 LEFT-TO-RIGHT ISOLATE)"),
        ("Dens\u200bham", "invisible format character (U+200B ZERO WIDTH SPACE)"),
        ("Dens\u200dham", "invisible format character (U+200D ZERO WIDTH JOINER)"),
        ("\ufeffDensham", "invisible format character (U+FEFF ZERO WIDTH NO-BREAK SPACE)"),
        ("Dens\u00adham", "invisible format character (U+00AD SOFT HYPHEN)"),
        ("Dens\u2028ham", "line separator (U+2028"),
        ("Dens\u2029ham", "paragraph separator (U+2029"),
        ("Dens\ud800ham", "surrogate (U+D800)"),
        ("Dens\ue000ham", "private-use character (U+E000)"),
        ("Dens\U000f0000ham", "private-use character (U+F0000)"),
        ("Dens\u0378ham", "unassigned character (U+0378)"),
        ("\u3164", "blank character (U+3164 HANGUL FILLER)"),
        ("Dens\u2800ham", "blank character (U+2800 BRAILLE PATTERN BLANK)"),
        ("\ufe0f", "invisible mark (U+FE0F VARIATION SELECTOR-16)"),
        ("Densham\ufe0e", "invisible mark (U+FE0E VARIATION SELECTOR-15)"),
        ("Dens\U000e0100ham", "invisible mark (U+E0100 VARIATION SELECTOR-17)"),
        ("Dens\u034fham", "invisible mark (U+034F COMBINING GRAPHEME JOINER)"),
        ("Dens\u180bham", "invisible mark (U+180B MONGOLIAN FREE VARIATION SELECTOR ONE)"),
    ],
)
def test_text_with_an_unprintable_character_is_refused_naming_it(text: str, what: str) -> None:
    refused = refusal(text)
    assert refused.rule == "text-characters"
    assert refused.message.startswith("practice name holds a")
    assert what in refused.message
    assert "\n" not in str(refused)


@pytest.mark.parametrize("text", ["", " ", "   \u00a0 ", "\u3000"])
def test_blank_text_is_refused(text: str) -> None:
    refused = refusal(text)
    assert (refused.rule, refused.message) == (
        "text-blank", "practice name is blank: write some text")


def test_text_longer_than_its_bound_is_refused_and_the_bound_itself_is_accepted() -> None:
    assert parse_text("x" * NAME_MAX, "practice name") == "x" * NAME_MAX
    refused = refusal("x" * (NAME_MAX + 1))
    assert refused.rule == "text-length"
    assert "201 characters long: at most 200" in refused.message
    assert parse_text("y" * REASON_MAX, "reason", max_length=REASON_MAX) == "y" * REASON_MAX
    assert refusal("y" * (REASON_MAX + 1), max_length=REASON_MAX).rule == "text-length"


def test_the_bound_counts_characters_after_normalising() -> None:
    decomposed = "e\u0301" * NAME_MAX  # 400 code points, 200 characters in NFC
    assert parse_text(decomposed, "practice name") == "\u00e9" * NAME_MAX


def test_text_is_normalised_to_nfc_and_trimmed() -> None:
    assert parse_text("  Cafe\u0301 Surgery \u00a0", "practice name") == "Caf\u00e9 Surgery"
    assert parse_text("Caf\u00e9 Surgery", "practice name") == "Caf\u00e9 Surgery"


def test_printable_text_of_other_scripts_and_combining_marks_is_kept() -> None:
    for text in ("Ysbyty Gwynedd", "Ma\u00f1ana", "\u0421\u0430\u043d\u043a\u0442",
                 "\u0627\u0644\u0639\u064a\u0627\u062f\u0629", "Dr \U0001f642", "Y\u0300\u0323s"):
        accepted = parse_text(text, "service")
        assert accepted == unicodedata.normalize("NFC", text)


@pytest.mark.parametrize("text", ["\u0301", " \u0301Densham", "\u0903x", "\u20dd"])
def test_text_beginning_with_a_combining_mark_is_refused(text: str) -> None:
    refused = refusal(text)
    assert refused.rule == "text-characters"
    assert refused.message.startswith("practice name begins with a combining mark (U+")


def test_text_that_is_not_a_string_is_refused() -> None:
    assert refusal(12).rule == "text"
    assert refusal(None).rule == "text"


# --- properties ----------------------------------------------------------------------

ANY_TEXT = st.text(st.characters(codec=None), max_size=60)
ODD_TEXT = st.lists(
    st.sampled_from(["\u3164", "\u2800", "a", "e", "\u0301", "\u0323", "\u00e9", " ",
                     "\u00a0", "\x00", "\x1b", "\u202e", "\u2066", "\u200b", "\u200d",
                     "\ufeff", "\ud800", "\ue000",
                     "\u0378", "\u2028", "\U0001f642", "\uac00", "\u1100\u1161"]),
    max_size=12,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(ANY_TEXT, ODD_TEXT))
def test_accepted_text_is_nfc_printable_trimmed_bounded_and_parses_to_itself(text: str) -> None:
    try:
        accepted = parse_text(text, "reason", max_length=REASON_MAX)
    except InvalidInput as error:
        rule: str | None = error.rule
    else:
        rule = None
    if rule is not None:
        assert rule in {"text-characters", "text-blank", "text-length"}
        return
    assert unicodedata.is_normalized("NFC", accepted)
    assert not {unicodedata.category(c) for c in accepted} & REFUSED_CATEGORIES
    assert all(unprintable(c) is None for c in accepted)
    assert accepted == accepted.strip()
    assert accepted
    assert len(accepted) <= REASON_MAX
    assert parse_text(accepted, "reason", max_length=REASON_MAX) == accepted


@settings(max_examples=150, deadline=None)
@given(st.one_of(ANY_TEXT, ODD_TEXT))
def test_accepted_text_round_trips_through_an_event_exactly(text: str) -> None:
    try:
        name = parse_text(text, "practice name")
    except InvalidInput:
        return
    event = PracticeRegistered(
        originator_id=uuid.uuid4(), originator_version=1,
        recorded_at=datetime(2024, 7, 15, 9, 30, tzinfo=UTC), effective_on=date(2024, 4, 1),
        actor="allocator:Q71", command_id="c-1", practice="A81001", name=name, list_size=1,
        allocator="Q71",
    )
    stored = encode_event(event)
    decoded = decode_event(event.topic, event.originator_id, 1, stored)
    assert isinstance(decoded, PracticeRegistered)
    assert decoded.name == name


@settings(max_examples=300, deadline=None)
@given(st.one_of(ANY_TEXT, ODD_TEXT))
def test_escaped_text_holds_no_unprintable_character_and_keeps_printable_text(
        text: str) -> None:
    shown = escaped(text)
    assert all(unprintable(c) is None for c in shown)
    if all(unprintable(c) is None for c in text):
        assert shown == text


def test_escaped_writes_each_unprintable_character_as_an_escape() -> None:
    assert escaped("\x1b[2J\x00\u202eok\U000f0000\u00e9") == (
        "\\x1b[2J\\x00\\u202eok\\U000f0000\u00e9")


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(codec="utf-8"), max_size=40))
def test_json_escaped_is_the_same_json_value_without_unprintable_characters(
        text: str) -> None:
    encoded = json.dumps({"name": text}, ensure_ascii=False)
    shown = json_escaped(encoded)
    assert json.loads(shown) == {"name": text}
    assert not {unicodedata.category(c) for c in shown} & REFUSED_CATEGORIES - {"Cc"}
    assert not any(unicodedata.category(c) == "Cc" for c in shown.replace("\n", ""))


# --- identifiers ---------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["R-0001", "PO/2024/17", "inv#12", "a.b_c:d", "x+y=z@w",
                                 "R" * REF_MAX, " R-0001 "])
def test_refs_of_the_documented_characters_are_accepted(ref: str) -> None:
    assert parse_ref(ref) == ref.strip()


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        ("R-0001\u200b", "U+200B ZERO WIDTH SPACE at character 7"),
        ("\u0420-0001", "U+0420 CYRILLIC CAPITAL LETTER ER at character 1"),
        ("\uff32-0001", "U+FF32 FULLWIDTH LATIN CAPITAL LETTER R"),
        ("R 0001", "U+0020 SPACE at character 2"),
        ("R-\x1b1", "U+001B at character 3"),
        ("R" * (REF_MAX + 1), "65 characters long: at most 64"),
        ("", "empty or blank"),
        ("   ", "empty or blank"),
    ],
)
def test_refs_outside_the_documented_characters_are_refused(ref: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_ref(ref)
    assert refused.value.rule == "identifier"
    assert refused.value.message.startswith("commitment reference ")
    assert fragment in refused.value.message


@pytest.mark.parametrize("command_id", ["", " ", "  ", "\t", "c 1", "c-\u200b1", "c-\x00",
                                        "x" * (COMMAND_ID_MAX + 1), "\u00e9"])
def test_empty_blank_and_malformed_command_ids_are_refused(command_id: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_command_id(command_id)
    assert refused.value.rule == "identifier"
    assert refused.value.message.startswith("command id ")


def test_command_ids_such_as_uuids_and_derived_ids_are_accepted() -> None:
    for command_id in (str(uuid.uuid4()), "import:practices:0123abcd", "c-1", "x" * 128):
        assert parse_command_id(command_id) == command_id


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_any_accepted_identifier_is_printable_ascii(text: str) -> None:
    try:
        accepted = parse_ref(text)
    except InvalidInput:
        return
    assert accepted.isascii()
    assert accepted.isprintable()
    assert " " not in accepted


def test_an_actor_person_given_is_checked_but_one_stored_by_an_older_version_still_reads(
) -> None:
    assert Actor.parse("consortium:16C/ Dr Cafe\u0301 ").person == "Dr Caf\u00e9"
    with pytest.raises(InvalidInput) as refused:
        Actor.parse("consortium:16C/Dr \x1b[2J")
    assert refused.value.rule == "text-characters"
    stored = Actor.recorded("consortium:16C/Dr \x1b[2J")
    assert (stored.role, stored.code, stored.person) == (Role.CONSORTIUM, "16C", "Dr \x1b[2J")
    with pytest.raises(InvalidInput) as auditor:
        Actor.parse("auditor:j\u200bsmith")
    assert auditor.value.rule == "identifier"


def test_the_spaces_trimmed_are_every_space_separator_this_python_knows() -> None:
    separators = {chr(point) for point in range(0x110000)
                  if unicodedata.category(chr(point)) == "Zs"}
    assert set(SPACES) == separators
    assert len(SPACES) == len(separators)


def _identifier_outcome(parse: Any, value: object) -> object:
    try:
        return ("ok", parse(value))
    except InvalidInput as error:
        return ("refused", str(error))


_IDENTIFIER_TEXT = st.text(alphabet=st.sampled_from("Aa0._-:/#@+= \t\u200b\u00e9"),
                           max_size=140)


@settings(max_examples=500, deadline=None)
@given(st.one_of(_IDENTIFIER_TEXT, st.integers(), st.none()))
def test_refs_and_command_ids_read_as_the_identifier_reader_reads_them(value: object) -> None:
    """`parse_ref` and `parse_command_id` answer an identifier given with nothing to trim
    without the full reader: the same text, and every other value as the reader says."""
    assert _identifier_outcome(parse_ref, value) == _identifier_outcome(
        lambda v: parse_identifier(v, "commitment reference", max_length=REF_MAX), value)
    assert _identifier_outcome(parse_command_id, value) == _identifier_outcome(
        lambda v: parse_identifier(v, "command id", max_length=COMMAND_ID_MAX), value)
