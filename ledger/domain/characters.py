"""Text that cannot deceive: the one parser of every name, reason and identifier.

Two kinds of text reach the ledger from people:

- **Text** (practice and consortium names, officers, providers, services, token
  labels, reasons, bases): any printable Unicode. It is normalised to NFC (so
  `é` typed as one character or as `e` + combining accent is the same name),
  trimmed, and refused when blank, longer than its bound, or holding a character
  that is not printable: a control (Unicode category Cc: NUL, ESC, tab, newline),
  an invisible format character (Cf: bidi overrides and isolates, zero-width
  space and joiners, the byte-order mark), a line or paragraph separator (Zl, Zp),
  a surrogate (Cs), a private-use character (Co), one unassigned in the
  Unicode version this Python knows (Cn), a letter that prints as nothing
  (BLANK_LETTERS: the Hangul fillers, the blank braille pattern) or a mark that
  prints as nothing (INVISIBLE_MARKS: variation selectors, the combining grapheme
  joiner); nor may it begin with a combining mark. Such characters make text that
  prints differently from what is stored, or not at all.
- **Identifiers** (commitment refs, command ids): ASCII only, from the set
  `A-Z a-z 0-9 . _ - : / # @ + =`, so two identifiers that look the same are the
  same. A ref with a zero-width space is refused, not recorded as another
  commitment.

Bounds, in characters after NFC: names, officers, providers, services and labels
at most NAME_MAX (200); reasons and bases at most REASON_MAX (1,000); refs at most
REF_MAX (64); command ids at most COMMAND_ID_MAX (128).

Every refusal is `InvalidInput` naming the field and the rule: `text-blank`,
`text-length`, `text-characters`, `identifier`. Nothing here does I/O.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from ledger.domain.errors import InvalidInput

NAME_MAX: Final = 200
"""Names, officers, providers, services, token labels, a person after an actor's `/`."""

REASON_MAX: Final = 1_000
"""Reasons and allocation bases."""

REF_MAX: Final = 64
COMMAND_ID_MAX: Final = 128

UNPRINTABLE: Final[dict[str, str]] = {
    "Cc": "a control character",
    "Cf": "an invisible format character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Cs": "a surrogate",
    "Co": "a private-use character",
    "Cn": "an unassigned character",
}
"""Unicode general categories refused in text, with what each is called in a refusal."""

BLANK_LETTERS: Final = frozenset("\u115f\u1160\u3164\uffa0\u2800")
"""Characters of printable categories that print as nothing (the Hangul fillers, the
blank braille pattern): refused like invisible format characters, so no name can look
blank or hide among spaces."""

INVISIBLE_MARKS: Final = frozenset(
    "\u034f\u180b\u180c\u180d\u180f"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)
"""Marks (Unicode category Mn) that print as nothing: the combining grapheme joiner,
the Mongolian free variation selectors and the variation selectors (the Unicode
Standard, chapter 23, Variation Selectors). Refused like invisible format
characters: `Tees Valley` with a variation selector after it prints as `Tees Valley`
but is another name, and a name of nothing but them prints as nothing."""

COMBINING: Final = frozenset({"Mn", "Mc", "Me"})
"""Categories of combining marks: text may not begin with one, as it would sit on
whatever is printed before the text (a table's border, a quote) or on nothing."""

IDENTIFIER_CHARACTERS: Final = "A-Z a-z 0-9 . _ - : / # @ + ="
_IDENTIFIER = re.compile(r"[A-Za-z0-9._\-:/#@+=]+")
_ASCII_PRINTABLE = re.compile(r"[\x20-\x7e]+")


def unprintable(char: str) -> str | None:
    """What `char` is called when it may not appear in text, or None when it may."""
    if " " <= char <= "~":  # the common case, without a table look-up
        return None
    if char in BLANK_LETTERS:
        return "a blank character"
    if char in INVISIBLE_MARKS:
        return "an invisible mark"
    return UNPRINTABLE.get(unicodedata.category(char))


# Every space separator (Unicode category Zs: the space, no-break space, the em and en
# spaces, the ideographic space...), the only characters trimmed from a code, number or
# year: a tab, a line break or another control character is refused, never trimmed away.
# Written out rather than found among all 1,114,112 code points at import (0.15 s for
# every process, a rebuild's workers included); tests/ledger/domain/test_characters.py
# checks it against the Unicode version of the Python running them.
SPACES: Final = ("\u0020\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
                 "\u2008\u2009\u200a\u202f\u205f\u3000")


def trim_spaces(text: str) -> str:
    """`text` without the space separators (SPACES) around it; other characters stay,
    so a code ending in a control character is refused by its parser, not trimmed."""
    return text.strip(SPACES)


def codepoint(char: str) -> str:
    """`U+202E RIGHT-TO-LEFT OVERRIDE`: a character named so it can be seen."""
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" {name}" if name else "")


def _first_unprintable(text: str) -> tuple[int, str, str] | None:
    if _ASCII_PRINTABLE.fullmatch(text):
        return None
    for index, char in enumerate(text):
        kind = unprintable(char)
        if kind is not None:
            return index, char, kind
    return None


def refuse_unprintable(text: str, field: str) -> str:
    """`text` unchanged, or InvalidInput (rule `text-characters`) naming the field and
    the first character of a category in UNPRINTABLE and where it is."""
    found = _first_unprintable(text)
    if found is not None:
        index, char, kind = found
        raise InvalidInput(
            "text-characters",
            f"{field} holds {kind} ({codepoint(char)}) at character {index + 1}: "
            "only printable characters may be recorded",
        )
    return text


def parse_text(value: object, field: str, *, max_length: int = NAME_MAX) -> str:
    """Text a person wrote, made safe to store and print: NFC, trimmed, printable.

    `field` names the text in a refusal (`practice name`). Raises `InvalidInput`:
    `text-characters` for a character of a category in UNPRINTABLE, BLANK_LETTERS or
    INVISIBLE_MARKS (checked before normalising, so a lone surrogate is named, not a
    codec error) or for text beginning with a combining mark, `text-blank` for
    nothing but spaces, `text-length` for more than `max_length` characters.
    The result is its own NFC form and parses to itself again.
    """
    if not isinstance(value, str):
        raise InvalidInput("text", f"{field} must be text, not {type(value).__name__}")
    refuse_unprintable(value, field)
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        raise InvalidInput("text-blank", f"{field} is blank: write some text")
    if unicodedata.category(text[0]) in COMBINING:
        raise InvalidInput(
            "text-characters",
            f"{field} begins with a combining mark ({codepoint(text[0])}): "
            "write the letter it belongs to first",
        )
    if len(text) > max_length:
        raise InvalidInput(
            "text-length",
            f"{field} is {len(text):,} characters long: at most {max_length:,}",
        )
    return text


def parse_identifier(value: object, field: str, *, max_length: int) -> str:
    """An identifier: trimmed, 1..max_length ASCII characters of IDENTIFIER_CHARACTERS.

    Raises `InvalidInput` (rule `identifier`) naming the field and, for a character
    outside the set, which one (escaped: a zero-width space is shown as U+200B).
    """
    if not isinstance(value, str):
        raise InvalidInput("identifier", f"{field} must be text, not {type(value).__name__}")
    text = value.strip(" ")
    if not text:
        raise InvalidInput("identifier", f"{field} is empty or blank: give one")
    if len(text) > max_length:
        raise InvalidInput(
            "identifier",
            f"{field} is {len(text):,} characters long: at most {max_length}",
        )
    if not _IDENTIFIER.fullmatch(text):
        index, char = next((i, c) for i, c in enumerate(text) if not _IDENTIFIER.fullmatch(c))
        raise InvalidInput(
            "identifier",
            f"{field} holds {codepoint(char)} at character {index + 1}: use only ASCII "
            f"letters, digits and . _ - : / # @ + =",
        )
    return text


# An identifier with nothing to trim, of a length allowed, is itself: `parse_identifier`
# of it gives it back, and checking that in one match is the common case of every line.
_REF_AS_GIVEN = re.compile(rf"{_IDENTIFIER.pattern[:-1]}{{1,{REF_MAX}}}").fullmatch
_COMMAND_ID_AS_GIVEN = re.compile(
    rf"{_IDENTIFIER.pattern[:-1]}{{1,{COMMAND_ID_MAX}}}").fullmatch


def parse_ref(value: object) -> str:
    """A commitment reference (`R-0001`): an identifier of at most REF_MAX characters."""
    if type(value) is str and _REF_AS_GIVEN(value):
        return value
    return parse_identifier(value, "commitment reference", max_length=REF_MAX)


def parse_command_id(value: object) -> str:
    """A command id, the idempotency key: an identifier of at most COMMAND_ID_MAX
    characters. An empty or blank id is refused, never replaced by a random one: a
    retry whose id went missing would otherwise record twice."""
    if type(value) is str and _COMMAND_ID_AS_GIVEN(value):
        return value
    return parse_identifier(value, "command id", max_length=COMMAND_ID_MAX)


_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")
_NOT_ASCII = re.compile(r"[^\x00-\x7e]")


def escaped(text: str) -> str:
    """`text` with every character of UNPRINTABLE written as an escape (`\\x1b`,
    `\\u202e`, `\\U000f0000`), everything else as it is: for showing on a terminal
    text that older versions stored, which may hold such characters."""
    return _NOT_PRINTABLE_ASCII.sub(_escape_unprintable, text)


def json_escaped(text: str) -> str:
    """JSON text with every character of UNPRINTABLE outside ASCII written as a JSON
    escape (`\\u202e`); JSON encoders already escape the ASCII controls. The result
    is valid JSON of the same value, and prints on a terminal as it reads."""
    return _NOT_ASCII.sub(_json_escape_unprintable, text.replace("\x7f", "\\u007f"))


def _escape_unprintable(match: re.Match[str]) -> str:
    char = match[0]
    if unprintable(char) is None:
        return char
    point = ord(char)
    if point <= 0xFF:
        return f"\\x{point:02x}"
    if point <= 0xFFFF:
        return f"\\u{point:04x}"
    return f"\\U{point:08x}"


def _json_escape_unprintable(match: re.Match[str]) -> str:
    char = match[0]
    if unprintable(char) is None:
        return char
    point = ord(char)
    if point <= 0xFFFF:
        return f"\\u{point:04x}"
    high, low = divmod(point - 0x10000, 0x400)
    return f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}"
