"""Value types of the commissioning domain: codes, money, years, actors, free text.

Every parser here is strict: it accepts exactly the documented forms and
raises `InvalidInput` (naming the rule) for anything else. Nothing here does I/O.
"""

from __future__ import annotations

import calendar
import functools
import json
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, ValidationInfo

from ledger.domain.characters import (
    NAME_MAX,
    REASON_MAX,
    parse_identifier,
    parse_text,
    trim_spaces,
)
from ledger.domain.errors import InvalidInput


class Element(StrEnum):
    """The fixed set of budget elements."""

    ACUTE = "acute"
    COMMUNITY = "community"
    MENTAL_HEALTH = "mental-health"
    MATERNITY = "maternity"
    PRESCRIBING = "prescribing"
    HEALTH_INEQUALITIES = "health-inequalities"
    PRIMARY_CARE = "primary-care"


ELEMENTS: Final[tuple[Element, ...]] = tuple(Element)


def parse_element(text: str) -> Element:
    """One of `ELEMENTS`, any case, spaces around it trimmed; InvalidInput (rule `element`)
    otherwise. An element written as a heading (`Mental Health`, `primary_care`) is
    refused too, the message naming the element meant."""
    try:
        return Element(_ascii(text).lower())
    except ValueError:
        known = ", ".join(ELEMENTS)
        words = re.sub(r"[\s_-]+", "-", _ascii(text).lower())
        hint = f": write {words}" if words in ELEMENTS else f" (one of: {known})"
        raise InvalidInput("element", f"unknown element {shown(text)}{hint}") from None


def _ascii(text: str) -> str:
    """`text` trimmed when it is ASCII, else "" (which no code or name matches): a letter
    such as U+0131 (dotless i) or U+017F (long s) would otherwise upper-case to an ASCII
    `I` or `S` and be recorded as a code that was never written."""
    stripped = trim_spaces(text)
    return stripped if stripped.isascii() else ""


# --- organisation codes --------------------------------------------------------------

_ODS_PRACTICE = re.compile(r"[A-Z][0-9]{5}")
# Three-character commissioner codes always contain a digit (16C, 07L, 00C); the
# five-character form used since 2021 (X2C4Y) is alphanumeric.
_CONSORTIUM = re.compile(r"(?=[A-Z]*[0-9])[A-Z0-9]{3}|[A-Z0-9]{5}")
_ALLOCATOR = re.compile(r"[A-Z0-9]{3,5}")


def parse_practice_code(text: str) -> str:
    code = _ascii(text).upper()
    if not _ODS_PRACTICE.fullmatch(code):
        raise InvalidInput(
            "practice-code", f"malformed practice code {shown(text)}: one letter and five digits"
        )
    return code


def parse_consortium_code(text: str) -> str:
    code = _ascii(text).upper()
    if not _CONSORTIUM.fullmatch(code):
        raise InvalidInput(
            "consortium-code",
            f"malformed consortium code {shown(text)}: 3 characters with a digit (16C) "
            "or 5 characters (X2C4Y)",
        )
    return code


def parse_qs_code(text: str) -> str:
    code = _ascii(text).upper()
    if not re.fullmatch(r"QS[1-9][0-9]{0,3}", code):
        raise InvalidInput("qs-code", f"malformed quality standard {shown(text)}: QS and a number")
    return code


# --- financial years -----------------------------------------------------------------


@dataclass(frozen=True, order=True, slots=True)
class FinancialYear:
    """1 April to 31 March, written `2024-25`."""

    start_year: int
    # `str(year)`, kept: the write path names a budget's year several times a command, and
    # an attribute is read for a fraction of what a call of __str__ costs.
    text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", _year_text(self.start_year))

    @classmethod
    def parse(cls, text: str) -> FinancialYear:
        return _parse_year(text)

    @classmethod
    def _parse(cls, text: str) -> FinancialYear:
        match = re.fullmatch(r"([0-9]{4})-([0-9]{2})", trim_spaces(text))
        if not match or (int(match[1]) + 1) % 100 != int(match[2]):
            raise InvalidInput(
                "year", f"malformed financial year {shown(text)}: write it as 2024-25"
            )
        if not 1900 <= int(match[1]) <= 9998:
            raise InvalidInput("year", f"financial year {trim_spaces(text)} is out of range: "
                               "1900-01 to 9998-99")
        return cls(int(match[1]))

    @classmethod
    def containing(cls, day: date) -> FinancialYear:
        return cls(day.year if day.month >= 4 else day.year - 1)

    @property
    def first_day(self) -> date:
        return date(self.start_year, 4, 1)

    @property
    def last_day(self) -> date:
        return date(self.start_year + 1, 3, 31)

    def __contains__(self, day: object) -> bool:
        if type(day) is date:  # the common case, without building the year's bounds
            return (day.year if day.month >= 4 else day.year - 1) == self.start_year
        return isinstance(day, date) and self.first_day <= day <= self.last_day

    def __str__(self) -> str:
        return self.text


@functools.lru_cache(maxsize=256)
def _year_text(start_year: int) -> str:
    return f"{start_year}-{(start_year + 1) % 100:02d}"


# --- money ---------------------------------------------------------------------------

MAX_AMOUNT_PENCE: Final = 100_000_000_000_000
"""The largest amount any input may give: £1,000,000,000,000.00 (10^14 pence), five times
NHS England's whole yearly budget and about 1/92,000 of 2^63 pence. Larger amounts are
malformed input (`InvalidInput`, rule `amount-range`), refused before any arithmetic."""

MAX_ELEMENT_TURNOVER_PENCE: Final = 1_000_000_000_000
"""The most money one element of one practice's budget may move in its year:
£10,000,000,000.00 (10^12 pence), about a hundred times the largest practice budget.
Every allocation, adjustment, commitment, variation, settlement, release and pool draw
or return counts at its size, so every figure shown for the element (allocated,
committed, settled, drawn, remaining, as of any date) lies within ±10^12 pence, and a
roll-up over all 2,600,000 possible practice codes within ±2.6 x 10^18, below 2^63 - 1.
A command that would pass it is refused (`RuleViolation`, rule `overflow`)."""

# Digits either plain (1234) or grouped in threes (1,234,567); at most two decimals.
_AMOUNT = re.compile(r"(?P<sign>[+-])?£?(?P<units>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)"
                     r"(?:\.(?P<fraction>[0-9]{1,2}))?")
_MAX_UNITS_DIGITS = len(str(MAX_AMOUNT_PENCE // 100))


def _out_of_range(text: str) -> InvalidInput:
    """Names the bound the amount passed: a reduction passes the lower one."""
    bound = (f"at least {format_pence(-MAX_AMOUNT_PENCE)}" if trim_spaces(text).startswith("-")
             else f"at most {format_pence(MAX_AMOUNT_PENCE)}")
    return InvalidInput("amount-range", f"amount {shown(text)} is out of range: {bound}")


def shown(text: str, limit: int = 40) -> str:
    """User input quoted for a one-line message: escaped by repr, long input cut short."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}… ({len(text):,} characters)"


_DAY_FIRST = re.compile(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})")


_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_iso_date(text: str, option: str | None = None) -> date:
    """A business date written as ISO 8601's calendar date `YYYY-MM-DD` (surrounding
    spaces aside), and no other way: not the basic form `20240601` nor a week date
    `2024-W23`, which Python's `date.fromisoformat` would also take. Raises InvalidInput
    (`malformed_date`) otherwise, `option` naming where it was given."""
    trimmed = trim_spaces(text)
    if _ISO_DAY.fullmatch(trimmed):
        try:
            return date.fromisoformat(trimmed)
        except ValueError:
            raise _no_such_day(text, trimmed, option) from None
    raise malformed_date(text, option)


def _no_such_day(text: str, trimmed: str, option: str | None) -> InvalidInput:
    """The error (rule `date`) for a date written `YYYY-MM-DD` that the calendar has not:
    a 29 February outside a leap year, a 31 April, month 13, day 00 or year 0000."""
    where = f" for {option}" if option else ""
    year, month, day = (int(part) for part in trimmed.split("-"))
    if year == 0:
        why = "there is no year 0000 (the first is 0001)"
    elif not 1 <= month <= 12:
        why = f"there is no month {month:02d}"
    else:
        days = calendar.monthrange(year, month)[1]
        why = f"{calendar.month_name[month]} {year} has {days} days"
        if day == 0:
            why = f"days run from 01; {why}"
    return InvalidInput("date", f"malformed date {shown(text)}{where}: written YYYY-MM-DD, "
                                f"but no such day: {why}")


def malformed_date(text: str, option: str | None = None) -> InvalidInput:
    """The error (rule `date`) for a date not written as ISO 8601 `YYYY-MM-DD`.

    `option` names where it was given (`--as-of`); None for a write's `--on`. A date
    written day/month/year, as UK forms write it (`14/10/2024`, `14.10.2024`), is
    shown in the form wanted (`2024-10-14`) when it is a real day read that way.
    """
    where = f" for {option}" if option else ""
    example = "like 2024-06-01"
    day_first = _DAY_FIRST.fullmatch(trim_spaces(text))
    if day_first:
        day, month, year = (int(part) for part in day_first.groups())
        if year and 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]:
            example = f"here {date(year, month, day).isoformat()} if it is day/month/year"
    return InvalidInput("date", f"malformed date {shown(text)}{where}: write it as "
                                f"YYYY-MM-DD, {example}")


def _parse_money(text: str) -> int:
    """Signed pence from `1234`, `1234.5`, `1,234.56`, `£1,234.56`, `-5000`.

    The size is limited to ±MAX_AMOUNT_PENCE (`InvalidInput`, rule `amount-range`).
    """
    match = _AMOUNT.fullmatch(trim_spaces(text))
    if not match:
        raise InvalidInput(
            "amount",
            f"malformed amount {shown(text)}: write pounds like 1234.56 or £1,234.56 "
            "(at most two decimals, no exponents)",
        )
    digits = match["units"].replace(",", "").lstrip("0")
    if len(digits) > _MAX_UNITS_DIGITS:  # before int(): thousands of digits are refused fast
        raise _out_of_range(text)
    units = int(digits or "0")
    fraction = int((match["fraction"] or "0").ljust(2, "0"))
    pence = units * 100 + fraction
    if pence > MAX_AMOUNT_PENCE:
        raise _out_of_range(text)
    return -pence if match["sign"] == "-" else pence


def parse_amount(text: str, *, allow_zero: bool = False) -> int:
    """A positive amount (zero where allowed) in pence, at most MAX_AMOUNT_PENCE.

    Raises `InvalidInput`: rule `amount` when malformed, signed or zero (unless
    allowed), `amount-range` when above MAX_AMOUNT_PENCE.
    """
    stripped = trim_spaces(text)
    if not stripped:
        raise InvalidInput("amount", "the amount is empty: write pounds, e.g. 1234.56")
    if stripped[0] in "+-":
        raise InvalidInput("amount", f"amount {shown(text)} must not carry a sign")
    pence = _parse_money(stripped)
    if pence == 0 and not allow_zero:
        raise InvalidInput("amount", f"amount {shown(text)} must be more than zero")
    return pence


def parse_signed_amount(text: str) -> int:
    """A non-zero signed amount in pence, for adjustments; |amount| ≤ MAX_AMOUNT_PENCE.

    A reduction is written with a minus sign (`-5000`, `-£5,000`); one in accounting
    brackets (`(5,000)`) is refused (rule `amount`) naming that spelling of it.
    """
    stripped = trim_spaces(text)
    if len(stripped) > 2 and stripped[0] == "(" and stripped[-1] == ")":
        raise InvalidInput("amount", f"malformed amount {shown(text)}: write a reduction "
                           f"with a minus sign, as {shown('-' + stripped[1:-1])}")
    pence = _parse_money(text)
    if pence == 0:
        raise InvalidInput("amount", "an adjustment must not be zero")
    return pence


def money_text(value: object) -> str:
    """The text of an amount given in JSON: a string, or a whole number of pounds.

    Booleans, fractions (which a float would round) and other types are refused, so
    what is recorded is exactly what was written.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > MAX_AMOUNT_PENCE // 100:
            raise _out_of_range(str(value))
        return str(value)
    raise InvalidInput(
        "amount", f"amount {json_spelling(value)} must be written as text, like \"12500.00\""
    )


def json_spelling(value: object) -> str:
    """`value` written as JSON writes it (`true`, `null`, `10.5`), for a refusal to quote
    what was given rather than its Python form (`True`, `None`, `Decimal('10.5')`)."""
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, default=str)


def utc_text(instant: datetime) -> str:
    """An instant in UTC as the ledger writes instants, ending in Z
    (`2024-04-01T08:00:00.020000Z`); an instant with another offset keeps it."""
    return instant.isoformat().replace("+00:00", "Z")


_FRACTION = re.compile(r"[.,]([0-9]+)")
_STORED_DIGITS = 6
"""Decimals of a second an instant is recorded and stored with (microseconds)."""
INSTANT_RULE = ("an instant with its zone (2024-07-15T09:30:00Z or 2024-07-15T10:30:00+01:00), "
                "or a date, meaning the end of that day, UTC")
"""How every instant the command line and the API read is written, as refusals say it."""


def parse_instant(text: str, what: str, rule: str, *, stored: bool = False) -> datetime | date:
    """An instant as the command line and the API read it (`--known-at`, `--expires` and
    the API's `known_at` and `expires`), all by one rule (`INSTANT_RULE`): an ISO 8601
    date and time with its zone (`Z` or an offset), returned in UTC; or a bare date
    however ISO writes it (`2024-07-15`, `20240715`, `2024-W29-1`), returned as the date
    for its caller to read as the end of that day, UTC. A time without a zone is
    refused: read as UTC by one reader and as local time by another, it names two
    instants an hour apart. Digits finer than the microsecond, which instants are
    recorded to, are refused for an instant that is `stored` (never cut to a time the
    caller did not write) and dropped for a question, where they change no answer.
    Raises InvalidInput (`rule`, the message naming `what`, e.g. "expiry") when
    malformed, without a zone, too precise to store, or outside 0001-01-01 to
    9999-12-31 in UTC."""
    stripped = trim_spaces(text)
    try:
        return date.fromisoformat(stripped)
    except ValueError:
        pass
    finer = next((f for f in _FRACTION.findall(stripped) if len(f) > _STORED_DIGITS), None)
    if stored and finer is not None:
        raise InvalidInput(
            rule, f"{what} {shown(text)} is more precise than it is kept: {len(finer)} "
            f"decimals of a second, at most {_STORED_DIGITS} (microseconds), e.g. "
            "2025-03-31T17:00:00.123456Z")
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise InvalidInput(rule, f"malformed {what} {shown(text)}: write {INSTANT_RULE}"
                           ) from None
    if moment.tzinfo is None:
        raise InvalidInput(
            rule, f"{what} {shown(text)} has no zone: write it with Z for UTC "
            f"({moment.replace(tzinfo=UTC).isoformat().replace('+00:00', 'Z')}) or with its "
            "offset (+01:00 in summer time)")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00:00-05:00 is in the year 10000 in UTC
        raise InvalidInput(
            rule, f"{what} {shown(text)} is out of range: 0001-01-01 to 9999-12-31 in UTC"
        ) from None


def end_of_day(day: date) -> datetime:
    """The first instant after `day`, UTC (00:00 on the next day): where a bare date read
    as an instant ends; for 9999-12-31, the last microsecond the calendar has."""
    if day == date.max:
        return datetime.max.replace(tzinfo=UTC)
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)


def number_runs(numbers: Sequence[int]) -> str:
    """`1-4, 7, 9-10` from sorted whole numbers (line numbers, stream versions): a list of
    thousands in a few characters when few are missing."""
    parts: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], -1]:
        if n == prev + 1:
            prev = n
            continue
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
        start = prev = n
    return ", ".join(parts)


_HUNDREDTHS = tuple(f"{n:02d}" for n in range(100))


def format_pence(pence: int) -> str:
    """`£1,234.56`, with a leading minus for negative amounts."""
    sign = "-" if pence < 0 else ""
    pounds, rest = divmod(abs(pence), 100)
    # Every answer names an amount: a format spec costs several times what str() and a
    # lookup do, so one is used only where it adds something (thousands separators).
    whole = str(pounds) if pounds < 1000 else f"{pounds:,}"
    return f"{sign}£{whole}.{_HUNDREDTHS[rest]}"


def parse_percent(text: str) -> int:
    """A percentage such as `1%`, `0.5%` or `2.5` in basis points (1% = 100).

    A figure under one with decimals and no per-cent sign (`0.01`) is refused
    (InvalidInput, rule percent) rather than read: written as a fraction it would mean
    a hundred times what it says as a percentage (0.01 is 1% as a fraction, 0.01% as a
    percentage). With its sign it is read as written (`0.01%`)."""
    match = re.fullmatch(r"([0-9]{1,3})(?:\.([0-9]{1,2}))?\s*(%?)", trim_spaces(text))
    if not match:
        raise InvalidInput("percent", f"malformed percentage {shown(text)}: write it like 1.5%")
    whole, hundredths, sign = match[1], (match[2] or "0").ljust(2, "0"), match[3]
    if not sign and int(whole) == 0 and int(hundredths):
        as_fraction = Decimal(f"0.{match[2]}") * 100
        raise InvalidInput("percent", f"percentage {shown(text)} is ambiguous: write "
                                      f"{as_fraction.normalize():f}% if it is a fraction, "
                                      f"{trim_spaces(text)}% if it is a percentage")
    return int(whole) * 100 + int(hundredths)


# --- populations ---------------------------------------------------------------------

LIST_SIZE_MAX: Final = 1_000_000
"""Registered patients of one practice: a whole number from 0 to 1,000,000 (the largest
English practices list well under 150,000)."""

WEIGHTED_MAX: Final = Decimal(10_000_000)
WEIGHTED_PLACES: Final = 6
"""A weighted population: an exact decimal from 0 to 10,000,000 with at most six decimal
places, as NHS England publishes them (`5044.162762`)."""

# Digits either plain (4069) or grouped in threes (4,069); the decimals of a weighted figure.
_COUNT = re.compile(r"(?P<units>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.(?P<fraction>[0-9]+))?")


def _number_text(value: object, field: str) -> str:
    """The text of a count as given; booleans and non-numbers are refused."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        spelled = json_spelling(value)
        if len(spelled) > 40:
            spelled = f"{spelled[:40]}… ({len(spelled):,} characters)"
        raise InvalidInput(field, f"{field.replace('-', ' ')} {spelled} is not a number")
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as this float
    return value if isinstance(value, str) else str(value)


MAX_WHOLE_NUMBER = 2**63 - 1
"""The largest position, count or limit a whole number may be: 64-bit, as positions are."""
WHOLE_NUMBER = r"^[0-9]+$"
"""What parse_whole_number reads, as a JSON Schema pattern (its range aside)."""


def parse_whole_number(value: object, name: str, *, minimum: int = 0,
                       maximum: int = MAX_WHOLE_NUMBER, rule: str | None = None,
                       malformed_rule: str | None = None) -> int:
    """A position, count, limit or port from user text (an option, a query parameter, a
    JSON integer): the ASCII digits 0-9 and nothing else, from `minimum` to `maximum`.

    Python's int() also reads `+5`, ` 5 `, `5_0`, Arabic-Indic digits (U+0665 for 5) and, with a
    base, `0x5`; none of them is a plain number as a person or another program writes
    one, so each is refused rather than read as what int() makes of it. Raises
    InvalidInput saying what is expected, `name` naming the value (`--limit`, or
    `connect_timeout (seconds) in the PostgreSQL URL '…'`): its rule is `rule`, by default
    `name` less its dashes, or `malformed_rule` for a value that is not digits."""
    rule = rule or name.lstrip("-")
    expected = f"{minimum} or more" if maximum == MAX_WHOLE_NUMBER else (
        f"{minimum} to {maximum}")
    if type(value) is int:
        number, text = value, str(value)
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        text = value
        # Counted before int(): thousands of digits are out of range, not a fault.
        number = int(value) if len(value.lstrip("0")) <= len(str(maximum)) else maximum + 1
    elif isinstance(value, str) and value[:1] == "-" and value[1:].isascii() and (
            value[1:].isdigit()):  # a number, below any minimum: out of range
        raise InvalidInput(rule, f"{name} must be {expected}, not {shown(value)}")
    else:
        spelled = shown(value) if isinstance(value, str) else json_spelling(value)
        raise InvalidInput(malformed_rule or rule, f"{name} must be a whole number written "
                           "in the digits 0-9 alone (no sign, space, underscore, other "
                           f"digits or 0x), {expected}: not {spelled}")
    if number < minimum:
        raise InvalidInput(rule, f"{name} must be {expected}, not {shown(text)}")
    if number > maximum:  # past the largest: name it, even where it is "or more" otherwise
        largest = f"{maximum:,}" if maximum == MAX_WHOLE_NUMBER else str(maximum)
        raise InvalidInput(rule, f"{name} must be {minimum} to {largest}, not {shown(text)}")
    return number


_SECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")


def parse_seconds(value: object, name: str, *, minimum: float,
                  maximum: float | None = None) -> float:
    """A number of seconds from user text (a wait, an age): the digits 0-9 with an
    optional decimal point and fraction (`2`, `0.5`), from `minimum` to `maximum`.

    Python's float() also reads `+2`, ` 2 `, `1_0`, `2e1`, `nan`, `inf` and other
    scripts' digits; each is refused as parse_whole_number refuses them for whole
    numbers. Raises InvalidInput (rule `name` less its dashes) saying what is expected."""
    rule = name.lstrip("-")
    expected = f"{minimum:g} or more" if maximum is None else f"{minimum:g} to {maximum:g}"
    if not (isinstance(value, str) and value.isascii() and _SECONDS.fullmatch(value)):
        spelled = shown(value) if isinstance(value, str) else json_spelling(value)
        raise InvalidInput(rule, f"{name} must be seconds written in the digits 0-9 with an "
                           f"optional decimal point (2, 0.5), {expected}: not {spelled}")
    seconds = float(value)
    if seconds < minimum or (maximum is not None and seconds > maximum):
        raise InvalidInput(rule, f"{name} must be {expected} seconds, not {shown(value)}")
    return seconds


def parse_list_size(value: object) -> int:
    """Registered patients: a whole number 0..LIST_SIZE_MAX, as `4069` or `4,069`."""
    text = trim_spaces(_number_text(value, "list-size"))
    match = _COUNT.fullmatch(text)
    if not match or match["fraction"] is not None:
        raise InvalidInput(
            "list-size",
            f"malformed list size {shown(text)}: a whole number of patients like 4069 or 4,069",
        )
    digits = match["units"].replace(",", "").lstrip("0")
    # Counted before int(): a number of thousands of digits is out of range, not a fault.
    if len(digits) > len(str(LIST_SIZE_MAX)) or int(digits or "0") > LIST_SIZE_MAX:
        raise InvalidInput(
            "list-size",
            f"list size {shown(text)} is out of range: at most {LIST_SIZE_MAX:,} patients"
        )
    return int(digits or "0")


def parse_weighted(value: object) -> Decimal:
    """A weighted population, exactly: 0..WEIGHTED_MAX with at most six decimals.

    Accepts `5044.162762`, `5,044.162762`, `4310`; refuses signs, exponents, NaN,
    infinities, more than six decimals and values above the range (InvalidInput).
    """
    text = trim_spaces(_number_text(value, "weighted-population"))
    match = _COUNT.fullmatch(text)
    if not match:
        raise InvalidInput(
            "weighted-population",
            f"malformed weighted population {shown(text)}: a non-negative decimal like 5044.162762 "
            f"(at most {WEIGHTED_PLACES} decimals, no sign or exponent)",
        )
    fraction = match["fraction"]
    if fraction is not None and len(fraction) > WEIGHTED_PLACES:
        raise InvalidInput(
            "weighted-population",
            f"weighted population {shown(text)} has more than {WEIGHTED_PLACES} decimals",
        )
    units = match["units"].replace(",", "").lstrip("0")
    weighted = Decimal((units or "0") + (f".{fraction}" if fraction else ""))
    if len(units) > len(str(WEIGHTED_MAX)) or weighted > WEIGHTED_MAX:
        raise InvalidInput(
            "weighted-population",
            f"weighted population {shown(text)} is out of range: at most {WEIGHTED_MAX:,}",
        )
    return weighted


def format_weighted(value: Any) -> str:
    """A weighted population as published: its exact digits, never an exponent."""
    return format(Decimal(str(value)), "f")


WeightedPopulation = Annotated[
    Decimal, PlainSerializer(format_weighted, return_type=str, when_used="json")
]
"""A stored weighted population: exact, written in JSON as a string of its digits."""

WeightedArg = Annotated[
    Decimal,
    BeforeValidator(parse_weighted),
    PlainSerializer(format_weighted, return_type=str, when_used="json"),
]
"""A weighted population given as input: parsed strictly by `parse_weighted`."""

ListSizeArg = Annotated[int, BeforeValidator(parse_list_size)]
"""A list size given as input: parsed strictly by `parse_list_size`."""


# --- actors --------------------------------------------------------------------------


class Role(StrEnum):
    ALLOCATOR = "allocator"
    PRACTICE = "practice"
    CONSORTIUM = "consortium"
    AUDITOR = "auditor"
    SERVICE = "service"  # a system that only reads (a feed consumer, a dashboard)


READ_ONLY_ROLES: Final[frozenset[Role]] = frozenset({Role.AUDITOR, Role.SERVICE})


@dataclass(frozen=True, slots=True)
class Actor:
    """Who issues a command: `role:code`, optionally `/person`."""

    role: Role
    code: str
    person: str | None = None
    # Derived once: an actor is parsed once and named on every event it records.
    _holder: str = field(init=False, repr=False, compare=False)
    _text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        holder = f"{self.role}:{self.code}"
        object.__setattr__(self, "_holder", holder)
        object.__setattr__(self, "_text", f"{holder}/{self.person}" if self.person else holder)

    @classmethod
    def parse(cls, text: str) -> Actor:
        return _parse_actor(text)

    @classmethod
    def recorded(cls, text: str) -> Actor:
        """An actor as a stored event names it, without the input rules: an event is
        never refused on reading for text that older versions accepted."""
        role_text, _, rest = text.partition(":")
        code, _, person = rest.partition("/")
        return cls(Role(role_text), code, person or None)

    @classmethod
    def _parse(cls, text: str) -> Actor:
        role_text, sep, rest = trim_spaces(text).partition(":")
        code, slash, person = rest.partition("/")
        try:
            role = Role(_ascii(role_text).lower())
        except ValueError:
            role = None
        if not sep or role is None or not code:
            raise InvalidInput(
                "actor",
                f"malformed actor {shown(text)}: write role:code, e.g. allocator:Q71, "
                "practice:A81001, consortium:16C, auditor:jsmith or service:dashboard",
            )
        parsers: dict[Role, Callable[[str], str]] = {
            Role.PRACTICE: parse_practice_code,
            Role.CONSORTIUM: parse_consortium_code,
            Role.ALLOCATOR: _parse_allocator_code,
            Role.AUDITOR: _parse_auditor_name,
            Role.SERVICE: _parse_service_name,
        }
        code = parsers[role](code)
        if not slash:
            return cls(role, code)
        # A `/` names a person: one left blank is refused like any blank name, never
        # dropped (`allocator:Q71/` is not `allocator:Q71`).
        return cls(role, code, check_free_text(parse_text(person, "actor's person"), "actor"))

    @property
    def holder(self) -> str:
        """The holder string this actor acts as (`practice:A81001`)."""
        return self._holder

    def __str__(self) -> str:
        return self._text


# Parsed values are immutable, and the same few years and actors recur on every
# line of a large `apply`: parse each distinct text once. Errors are not cached.
@functools.lru_cache(maxsize=1024)
def _parse_actor(text: str) -> Actor:
    return Actor._parse(text)


@functools.lru_cache(maxsize=256)
def _parse_year(text: str) -> FinancialYear:
    return FinancialYear._parse(text)


def _parse_service_name(text: str) -> str:
    name = trim_spaces(text)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise InvalidInput(
            "actor", f"malformed service name {shown(text)}: letters, digits, . _ - (at most 64)"
        )
    return name


def _parse_auditor_name(text: str) -> str:
    return parse_identifier(text, "auditor name", max_length=64)


def _parse_allocator_code(text: str) -> str:
    code = _ascii(text).upper()
    if not _ALLOCATOR.fullmatch(code):
        raise InvalidInput("actor", f"malformed allocator code {shown(text)}: 3 to 5 characters")
    return code


# --- holders -------------------------------------------------------------------------


def parse_holder(text: str) -> str:
    """`practice:A81002` or `consortium:16C`, normalised."""
    kind, sep, code = trim_spaces(text).partition(":")
    kind = kind.lower()
    if sep and kind == "practice":
        return f"practice:{parse_practice_code(code)}"
    if sep and kind == "consortium":
        return f"consortium:{parse_consortium_code(code)}"
    raise InvalidInput(
        "holder", f"malformed holder {shown(text)}: write practice:A81002 or consortium:16C"
    )


def practice_holder(code: str) -> str:
    return f"practice:{code}"


# --- patient-identifiable data -------------------------------------------------------

# Ten digits, optionally grouped 3-3-4 with spaces or dashes, not part of a longer number.
_NHS_CANDIDATE = re.compile(r"(?<![0-9])([0-9]{3})[ -]?([0-9]{3})[ -]?([0-9]{4})(?![0-9])")


def is_valid_nhs_number(digits: str) -> bool:
    """The modulus-11 check of the NHS number."""
    if len(digits) != 10 or not digits.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(digits[9])


def contains_nhs_number(text: str) -> bool:
    if sum(map(str.isdigit, text)) < 10:  # cheap: most free text has few digits
        return False
    return any(is_valid_nhs_number("".join(m.groups())) for m in _NHS_CANDIDATE.finditer(text))


def check_free_text(text: str, field: str) -> str:
    if contains_nhs_number(text):
        raise InvalidInput(
            "no-patient-data",
            f"{field} appears to contain an NHS number; patient-identifiable data "
            "must not be recorded",
        )
    return text


NHS_NUMBER_SEPARATOR_RUN: Final = 3
"""The most characters between two groups of an NHS number's digits (` - `)."""


def _is_separator(char: str) -> bool:
    """Space of any width, a dash of any kind (and the minus sign), a full stop, a slash
    or an underscore: what people put between groups of digits."""
    return char in "./_\u2212" or unicodedata.category(char) in ("Zs", "Pd")


def written_nhs_number(text: str) -> bool:
    """Whether `text` holds ten digits that pass the NHS number's check however they are
    written: in any script's decimal digits (fullwidth, Arabic-Indic), grouped any way
    (`94347 65919`), with the same run of up to NHS_NUMBER_SEPARATOR_RUN spaces, dashes
    of any kind, full stops, slashes or underscores between every two groups. Groups so
    joined are read as one number, checked when it has ten digits (a longer one, `01642
    850850`, is another kind of number). A change of separator ends a number: a range of
    dates (`1/4/24 - 30/09/24`) is not one. Input only: events are read back with
    `contains_nhs_number`, which whatever older versions recorded passes."""
    if sum(map(str.isdecimal, text)) < 10:
        return False
    return any(len(digits) == 10 and is_valid_nhs_number(digits)
               for digits in _digit_chains(text))


def _digit_chains(text: str) -> list[str]:
    """The runs of digit groups in `text` joined by one and the same separator run
    (`_is_separator`, at most NHS_NUMBER_SEPARATOR_RUN characters), each as its digits."""
    chains: list[str] = []
    chain, joiner = "", None  # the chain being read, and the separator run it uses
    group: list[str] = []
    run: str | None = None  # separators since the last group; None once anything else came
    for char in text + "\n":
        value = unicodedata.decimal(char, None) if char.isdecimal() else None
        if value is not None:
            group.append(str(value))
            continue
        if group:
            if run is not None and joiner in (None, run):
                chain, joiner = chain + "".join(group), run
            else:
                chains.append(chain)
                chain, joiner = "".join(group), None
            group, run = [], ""
        if run is not None and _is_separator(char) and len(run) < NHS_NUMBER_SEPARATOR_RUN:
            run += char
        else:
            run = None
    chains.append(chain)
    return chains


def check_input_text(text: str, field: str) -> str:
    """Text given as input, refused (InvalidInput, rule `no-patient-data`, invariant 9)
    when it holds an NHS number as `contains_nhs_number` or `written_nhs_number` finds
    one."""
    if written_nhs_number(text):
        raise InvalidInput(
            "no-patient-data",
            f"{field} appears to contain an NHS number; patient-identifiable data "
            "must not be recorded",
        )
    return check_free_text(text, field)


def _free_text(text: str, info: ValidationInfo) -> str:
    return check_free_text(text, (info.field_name or "text").replace("_", " "))


FreeText = Annotated[str, AfterValidator(_free_text)]
"""Stored free text (an event's field): refuses NHS numbers (invariant 9). Events are
read back with this type, so it accepts whatever older versions recorded."""


def name_text(text: str, field: str) -> str:
    """A name given as input (NameText), `field` naming it in a refusal."""
    return check_input_text(parse_text(text, field, max_length=NAME_MAX), field)


def long_text(text: str, field: str) -> str:
    """A reason or basis given as input (LongText), `field` naming it in a refusal."""
    return check_input_text(parse_text(text, field, max_length=REASON_MAX), field)


def _name_text(text: str, info: ValidationInfo) -> str:
    return name_text(text, (info.field_name or "text").replace("_", " "))


def _long_text(text: str, info: ValidationInfo) -> str:
    return long_text(text, (info.field_name or "text").replace("_", " "))


NameText = Annotated[str, AfterValidator(_name_text)]
"""A name given as input (practice, consortium, officer, provider, service, label):
printable, NFC, trimmed, 1..NAME_MAX characters, no NHS number (ledger/domain/characters.py)."""

LongText = Annotated[str, AfterValidator(_long_text)]
"""A reason or basis given as input: as NameText, 1..REASON_MAX characters."""
