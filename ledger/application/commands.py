"""Commands: what staff ask the ledger to do, named and shaped as on the command line.

A command holds its arguments parsed into their meaning: amounts in pence, a
top-slice in basis points, codes in capitals, elements and QS codes in their
canonical order, text in Unicode NFC. Its fingerprint, used for idempotency, is
taken over those values, so `--amount 100` and `--amount 100.00` (or a JSON line
saying the same) are one command. The effective date stays `None` when not given;
the service resolves the default.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, TypeVar

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    ValidationError,
    field_validator,
)

from ledger.domain.characters import parse_ref
from ledger.domain.errors import InvalidInput
from ledger.domain.trusted import construct, set_dict, set_extra, set_fields_set, set_private
from ledger.domain.values import (
    ELEMENTS,
    Actor,
    Element,
    FinancialYear,
    ListSizeArg,
    LongText,
    NameText,
    WeightedArg,
    end_of_day,
    json_spelling,
    long_text,
    malformed_date,
    money_text,
    name_text,
    parse_amount,
    parse_consortium_code,
    parse_element,
    parse_holder,
    parse_instant,
    parse_iso_date,
    parse_percent,
    parse_practice_code,
    parse_qs_code,
    parse_signed_amount,
    parse_weighted,
    shown,
)

FINGERPRINT_VERSION = "v3"
"""Receipts carry `v3:` and a SHA-256 over the command's parsed values, text in NFC and
trimmed. Receipts of older versions still compare as they were taken (`Command.matches`):
`v2:` over parsed values with text as given; a bare hex digest (v1) over the arguments
as given (amounts, percentages and text as written, elements and QS codes in the order
given) and the actor as given."""

# Text arguments (field -> its key in the arguments as given), spelled as given by v1 and v2.
_TEXT_FIELDS = {"practice_name": "name", "consortium_name": "name", "officer": "officer",
                "provider": "provider", "service": "service", "reason": "reason",
                "basis": "basis", "label": "label"}


def _canonical(value: Any) -> Any:
    """Values orjson has no form for: a decimal as its shortest exact digits."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    raise TypeError(f"no canonical form for {type(value).__name__}")


def _digest(name: str, actor: str, body: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(
        [name, actor, body], default=_canonical,
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
    )).hexdigest()


CompactCommand = tuple[type["Command"], dict[str, Any], set[str] | None, Any]
"""A command's class, field values, fields given and arguments as given (`Command.compact`;
the arguments may be `(read, source)`, see `Command._given`)."""


class Command(BaseModel):
    # A run makes one kind of command: each builds its validator when first used.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    name: ClassVar[str]
    on: date | None = Field(default=None, description="effective date (default today)")
    _given: Any = PrivateAttr(default_factory=dict)
    """The arguments as given (`parse_command`), for comparing with older receipts; or,
    for a command made again without them (`from_compact`), `(read, source)`: they are
    `read(source)`, read when first asked for (`_arguments`)."""

    @property
    def given(self) -> dict[str, Any]:
        """The arguments it was built from, by their CLI names (`build_command` builds the
        same command from them again, as a service does from an `apply` line)."""
        return dict(self._arguments())

    def _arguments(self) -> dict[str, Any]:
        given: Any = self._given
        if type(given) is tuple:
            read, source = given
            given = self._given = read(source)
        return given  # type: ignore[no-any-return]

    def __eq__(self, other: object) -> bool:
        """Commands are equal when their parsed values are, however they were spelled."""
        if not isinstance(other, Command):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((type(self), orjson.dumps(self.model_dump(mode="json"),
                                              option=orjson.OPT_SORT_KEYS)))

    def compact(self) -> CompactCommand:
        """The command as plain values, to pickle cheaply between processes (a pydantic
        model pickles several times slower); `from_compact` makes it again. The fields
        given are None when they are all the fields (as for most commands)."""
        fields_set = self.__pydantic_fields_set__
        values = self.__dict__
        # The private attribute read from where pydantic keeps it: `self._given` goes
        # through BaseModel.__getattr__, which costs more than the rest of this.
        private = self.__pydantic_private__
        given = private["_given"] if private else {}
        return (type(self), values,
                None if len(fields_set) == len(values) else fields_set, given)

    @staticmethod
    def from_compact(kind: type[Command], values: dict[str, Any], fields_set: set[str] | None,
                     given: Any) -> Command:
        """The command `compact` gave these of, field for field, without validating its
        values again: they are what validation made of them. `given` is its arguments as
        given, or `(read, source)` that reads them when they are first asked for."""
        command = kind.__new__(kind)
        set_dict(command, values)
        set_fields_set(command, set(values) if fields_set is None else fields_set)
        set_extra(command, None)
        set_private(command, {"_given": given})
        return command

    def fingerprint(self, actor: str) -> str:
        """`v3:` and the SHA-256 of the command's name, actor (as parsed) and parsed values
        (never their spelling): `--amount 100` and `--amount 100.00` are one command."""
        # The parsed values: every field that is not None (what `model_dump(exclude_none=
        # True)` gives, without its cost: no command has a nested model).
        values = self.__dict__
        # Most commands have no field at None: their values are the body as they are (a
        # value that merely compares equal to None is left to the comprehension).
        body = values if None not in values.values() else {
            name: value for name, value in values.items() if value is not None}
        return f"{FINGERPRINT_VERSION}:{_digest(self.name, actor, body)}"

    def matches(self, stored: str, actor: str, given_actor: str) -> bool:
        """Whether a receipt's fingerprint `stored`, of any version, is this command's.

        `actor` is the actor as parsed, `given_actor` as given. Receipts of v1 and v2
        were taken over the arguments' spelling; they compare against the spelling this
        command was given, so a retry of the same command still answers "already applied".
        """
        version, sep, _ = stored.partition(":")
        if not sep:  # v1: a bare hex digest
            return stored == _digest(self.name, given_actor, self._v1_body())
        if version == "v2":
            body = self.model_dump(mode="python", exclude_none=True) | self._given_text()
            return stored in {f"v2:{_digest(self.name, who, body)}"
                              for who in (actor, given_actor)}
        return stored == self.fingerprint(actor)

    def _given_text(self) -> dict[str, Any]:
        given = self._arguments()
        return {field: given[key] for field, key in _TEXT_FIELDS.items()
                if field in type(self).model_fields and isinstance(given.get(key), str)}

    def _v1_body(self) -> dict[str, Any]:
        """The body v1 took: parsed values, but amounts, percentages and text as written
        and elements and QS codes in the order given."""
        body = self.model_dump(mode="json", exclude_none=True) | self._given_text()
        given = self._arguments()
        for key in ("amount", "by", "top_slice"):
            if key in body and isinstance(given.get(key), str):
                body[key] = given[key].strip()
        if isinstance(self, BudgetAllocate) and given.get("element") is not None:
            body["element"] = _v1_allocation(given["element"])
        for key, parse in (("element", parse_element), ("qs", parse_qs_code),
                           ("codes", parse_qs_code)):
            if isinstance(body.get(key), list) and given.get(key) is not None:
                texts = _texts(given[key], key)
                parts = [p for t in texts for p in (t.split(",") if key == "element" else [t])]
                body[key] = list(dict.fromkeys(str(parse(p)) for p in parts if p.strip()))
        return body

    @field_validator("on", mode="before")
    @classmethod
    def _on(cls, value: Any) -> Any:
        return None if value is None else _date(value)


def _v1_allocation(given: Any) -> dict[str, str]:
    """`budget allocate`'s amounts as v1 recorded them in a fingerprint: as written."""
    pairs = given.items() if isinstance(given, dict) else (
        str(item).partition("=")[::2] for item in _texts(given, "element"))
    return {str(parse_element(str(key))): str(amount) for key, amount in pairs}


def _year(value: str) -> str:
    return str(FinancialYear.parse(value))


def _pence(value: Any) -> int:
    return parse_amount(money_text(value))


def _pence_or_zero(value: Any) -> int:
    return parse_amount(money_text(value), allow_zero=True)


def _signed_pence(value: Any) -> int:
    return parse_signed_amount(money_text(value))


def _basis_points(value: Any) -> int:
    if not isinstance(value, str):
        raise InvalidInput("percent", "write the percentage as text, like \"1.5%\", not "
                           f"{shown(json_spelling(value))}")
    return parse_percent(value)


def _date(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return parse_iso_date(value)
    raise malformed_date(str(value))


def _one_element(value: Any) -> Element:
    if isinstance(value, str):
        return parse_element(value)
    raise InvalidInput("element", "write the element as text, like \"acute\", not "
                       f"{shown(json_spelling(value))}")


def _texts(value: Any, what: str) -> list[str]:
    """One string or a list of strings (JSON); anything else is malformed."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(v, str) for v in items):
        raise InvalidInput(what, f"write {what} as a string or a list of strings")
    return list(items)


def _elements(value: Any) -> tuple[Element, ...]:
    """Elements in the canonical order of ELEMENTS, each once."""
    parsed = {parse_element(v) for part in _texts(value, "element")
              for v in part.split(",") if v.strip()}
    return tuple(e for e in ELEMENTS if e in parsed)


def _qs_codes(value: Any) -> tuple[str, ...]:
    """QS codes in numeric order, each once."""
    codes = {parse_qs_code(v) for v in _texts(value or [], "qs")}
    return tuple(sorted(codes, key=lambda code: int(code[2:])))


def _weighted_by_element(value: Any) -> Any:
    """`{"acute": "5044.162762"}` (or, as `--weighted` and the `element` of an allocation
    take it, `["acute=5044.162762", ...]`) with element names parsed; the figures parse as
    WeightedArg (exact decimals, InvalidInput naming the element when out of range)."""
    if not isinstance(value, dict | str | list | tuple):
        return value
    pairs = _element_figures(value, "weighted", "N")
    weighted: dict[Element, Any] = {}
    for key, figure in pairs:
        element = parse_element(str(key))
        if element in weighted:
            raise InvalidInput("element", f"weighted {element} is given twice")
        try:
            weighted[element] = parse_weighted(figure)
        except InvalidInput as error:
            raise InvalidInput(error.rule, f"weighted {element}: {error.message}") from None
    return weighted


# Argument types shared by the commands: each parses as the CLI documents and
# raises InvalidInput, naming the rule, for anything else.
PracticeCode = Annotated[str, AfterValidator(parse_practice_code)]
ConsortiumCode = Annotated[str, AfterValidator(parse_consortium_code)]
Year = Annotated[str, AfterValidator(_year)]
Amount = Annotated[int, BeforeValidator(_pence)]
"""A positive amount in pence, parsed from `12500`, `£12,500.50` (or a JSON whole number)."""
Ref = Annotated[str, AfterValidator(parse_ref)]
"""A commitment reference: ASCII identifier characters only (ledger/domain/characters.py)."""
Holder = Annotated[str, AfterValidator(parse_holder)]
OneElement = Annotated[Element, BeforeValidator(_one_element)]
Elements = Annotated[tuple[Element, ...], BeforeValidator(_elements)]
QsCodes = Annotated[tuple[str, ...], BeforeValidator(_qs_codes)]


class _PracticeArg(Command):
    practice: PracticeCode


class _ConsortiumArg(Command):
    consortium: ConsortiumCode


class _BudgetArg(_PracticeArg):
    year: Year

    @property
    def financial_year(self) -> FinancialYear:
        return FinancialYear.parse(self.year)


# --- practices -----------------------------------------------------------------------


class _Population(_PracticeArg):
    """A list size and weighted populations by element, parsed exactly and in range."""

    list_size: ListSizeArg
    weighted: dict[Element, WeightedArg] = Field(default_factory=dict)

    @field_validator("weighted", mode="before")
    @classmethod
    def _weighted(cls, value: Any) -> Any:
        return _weighted_by_element(value)


class PracticeRegister(_Population):
    name: ClassVar[str] = "practice register"
    practice_name: NameText = Field(alias="name")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class PracticeListSize(_Population):
    """A practice's list size (and weighted populations given) in force from `on`."""

    name: ClassVar[str] = "practice list-size"


class PracticeClose(_PracticeArg):
    """The practice closes on `on`: nothing may be committed for it from that day."""

    name: ClassVar[str] = "practice close"
    reason: LongText | None = None


# --- consortia -----------------------------------------------------------------------


class ConsortiumForm(_ConsortiumArg):
    name: ClassVar[str] = "consortium form"
    consortium_name: NameText = Field(alias="name")
    officer: NameText

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ConsortiumJoin(_ConsortiumArg, _PracticeArg):
    name: ClassVar[str] = "consortium join"


class ConsortiumLeave(_ConsortiumArg, _PracticeArg):
    name: ClassVar[str] = "consortium leave"


class ConsortiumRiskPool(_ConsortiumArg):
    name: ClassVar[str] = "consortium risk-pool"
    year: Year
    top_slice: Annotated[int, BeforeValidator(_basis_points)] = Field(
        description="basis points (1% = 100)")


class ConsortiumAdopt(_ConsortiumArg):
    name: ClassVar[str] = "consortium adopt"
    year: Year
    codes: QsCodes


# --- budgets -------------------------------------------------------------------------


class BudgetAllocate(_BudgetArg):
    name: ClassVar[str] = "budget allocate"
    element: dict[Element, int] = Field(description="pence per element")
    basis: LongText | None = None

    @field_validator("element", mode="before")
    @classmethod
    def _amounts(cls, value: Any) -> Any:
        """`acute=1200000` (repeatable) or {"acute": "1200000"}: pence per element.

        An element named twice is refused: one of the two amounts would be lost.
        """
        pairs = _element_figures(value, "element", "AMOUNT")
        parsed: dict[Element, int] = {}
        for key, amount in pairs:
            element = parse_element(str(key))
            if element in parsed:
                raise InvalidInput("element", f"{element} is given twice")
            parsed[element] = _pence_or_zero(amount)
        return dict(sorted(parsed.items(), key=lambda item: ELEMENTS.index(item[0])))

    def amounts_pence(self) -> dict[Element, int]:
        return dict(self.element)


def _element_figures(value: Any, option: str, figure: str) -> list[tuple[Any, Any]]:
    """`{"acute": "1200000"}`, or `acute=1200000` as the repeatable `--OPTION` takes it
    (one string or a list), as (element, figure) pairs, neither parsed yet. Raises
    InvalidInput naming `option`, saying how to write an item given without `=`."""
    if isinstance(value, dict):
        return list(value.items())
    pairs: list[tuple[Any, Any]] = []
    for item in _texts(value, option):
        key, sep, given = item.partition("=")
        if not sep:
            raise InvalidInput(
                option, f"write --{option} {name_value_written(item, f'ELEMENT={figure}')}")
        pairs.append((key, given))
    return pairs


def name_value_written(given: str, metavar: str) -> str:
    """How `given`, the value of a NAME=VALUE option written without `=`, should have been
    written, for a usage error's "write --OPTION …"; `metavar` is the option's NAME=VALUE
    (`ELEMENT=AMOUNT`, `ELEMENT=N`, `FIELD=COLUMN`, `URL=WITNESS_KEY`).

    The command line (commands/options.py, name_values) and `ledger apply` lines both
    ask here, so they suggest the same. For an element's figure (NAME is `ELEMENT`):
    `acute:5000`, `acute: 5000` and `acute 5000` (one string) become `acute=5000`, and a
    lone figure (`5000`, `£5,000`, `.5`) becomes `ELEMENT=£5,000`. Otherwise, and for
    other options (where `:` may belong, as in a URL), `acute` becomes `acute=AMOUNT`.
    Input is trimmed and cut to 40 characters; unprintable input is shown escaped."""
    text = given.strip()[:40]
    if not text.isprintable():
        text = repr(text)[1:-1]
    name, _, value_word = metavar.partition("=")
    if name == "ELEMENT":
        words = text.replace(":", " ", 1).split()
        if len(words) == 2:
            return f"{words[0]}={words[1]}"
        if text[:1].isdigit() or text[:1] in ("£", "."):
            return f"{name}={text}"
    return f"{text}={value_word}"


def _rates(value: Any) -> Any:
    """`["acute=780", ...]` or `{"acute": "780"}` as {element: rate}, each rate pounds per
    weighted head with at most two decimals (pence precision), more than zero, written as
    text or a whole number (a JSON fraction or boolean is refused, as for amounts). An
    element rated twice is refused: one of the two rates would be lost."""
    if isinstance(value, str | list | tuple):
        listed: list[tuple[str, Any]] = []
        for item in [value] if isinstance(value, str) else list(value):
            key, sep, rate = str(item).partition("=")
            if not sep:
                raise InvalidInput("rate", f"write --rate "
                                   f"{name_value_written(str(item), 'ELEMENT=POUNDS')} "
                                   "(pounds per weighted head)")
            listed.append((key, rate))
        pairs = listed
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        return value
    rates: dict[Element, str] = {}
    for key, given in pairs:
        element = parse_element(str(key))
        if element in rates:
            raise InvalidInput("rate", f"the rate for {element} is given twice")
        try:
            rate = money_text(given).strip()
            parse_amount(rate)
        except InvalidInput as error:
            raise InvalidInput("rate", f"rate for {element}: {error.message}") from None
        rates[element] = rate
    if not rates:
        raise InvalidInput("rate", "name at least one rate: --rate ELEMENT=POUNDS")
    return rates


class BudgetAllocateFormula(_BudgetArg):
    """One practice's allocation by formula: per rated element, its weighted population
    in force on the effective date x the rate, rounded half up to the penny."""

    name: ClassVar[str] = "budget allocate-formula"
    rate: Annotated[dict[Element, str], BeforeValidator(_rates)]

    def rates_pence(self) -> dict[Element, int]:
        return {e: parse_amount(r) for e, r in self.rate.items()}

    def fingerprint(self, actor: str) -> str:
        """`v3:` over the parsed values with each rate in pence, as for amounts: `780` and
        `780.00` are one rate, so a rerun spelled either way answers "already applied"."""
        body = self.model_dump(mode="python", exclude_none=True) | {
            "rate": self.rates_pence()}
        return f"{FINGERPRINT_VERSION}:{_digest(self.name, actor, body)}"

    def matches(self, stored: str, actor: str, given_actor: str) -> bool:
        """As Command.matches; a v3 receipt taken by an older version over each rate's
        text (as given, trimmed) still matches the same command spelled the same way."""
        if super().matches(stored, actor, given_actor):
            return True
        body = self.model_dump(mode="python", exclude_none=True)
        return stored == f"{FINGERPRINT_VERSION}:{_digest(self.name, actor, body)}"


class BudgetAdjust(_BudgetArg):
    name: ClassVar[str] = "budget adjust"
    element: OneElement
    by: Annotated[int, BeforeValidator(_signed_pence)] = Field(description="signed pence")
    reason: LongText


class BudgetDelegate(_BudgetArg):
    name: ClassVar[str] = "budget delegate"
    element: Elements
    to: Holder


class BudgetRevoke(_BudgetArg):
    name: ClassVar[str] = "budget revoke"
    element: Elements


class BudgetOptOut(_BudgetArg):
    name: ClassVar[str] = "budget opt-out"
    to: Holder
    reason: LongText


class BudgetOptIn(_BudgetArg):
    name: ClassVar[str] = "budget opt-in"
    reason: LongText | None = None


class BudgetHarden(_BudgetArg):
    name: ClassVar[str] = "budget harden"
    reason: LongText | None = None


class BudgetSoften(_BudgetArg):
    name: ClassVar[str] = "budget soften"
    reason: LongText | None = None


# --- spending ------------------------------------------------------------------------


class SpendCommit(_BudgetArg):
    name: ClassVar[str] = "spend commit"
    element: OneElement
    ref: Ref
    amount: Amount
    provider: NameText
    service: NameText
    qs: QsCodes = ()


class SpendVary(Command):
    name: ClassVar[str] = "spend vary"
    ref: Ref
    amount: Amount
    reason: LongText | None = None


class SpendSettle(SpendVary):
    name: ClassVar[str] = "spend settle"
    final: StrictBool = False


class SpendCancel(Command):
    name: ClassVar[str] = "spend cancel"
    ref: Ref
    reason: LongText | None = None


# --- access to the service -----------------------------------------------------------


def _grantee(value: str) -> str:
    return str(Actor.parse(value))


class TokenCreate(Command):
    """A new bearer token for `actor`. The caller draws the secret (`new_token`) and
    passes only its public id and SHA-256 digest: the secret is never recorded."""

    name: ClassVar[str] = "token create"
    actor: Annotated[str, AfterValidator(_grantee)]
    label: NameText | None = None
    expires: datetime | None = None
    read_only: StrictBool = False
    bootstrap: StrictBool = False
    token_id: str = Field(pattern=r"^[a-z0-9]{12}$")
    secret_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @field_validator("expires", mode="before")
    @classmethod
    def _expires(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_expiry(value)
        if value is not None and not isinstance(value, datetime):  # not seconds since 1970
            raise InvalidInput("expires", f"expiry {shown(json_spelling(value))} must be "
                               "written as text: a date 2025-03-31 or an instant "
                               "2025-03-31T17:00:00Z")
        return value


class TokenRevoke(Command):
    name: ClassVar[str] = "token revoke"
    token_id: str = Field(pattern=r"^[a-z0-9]{12}$")


def parse_expiry(text: str) -> datetime:
    """A token's expiry, the first instant it no longer works, in UTC, by the rule every
    instant is read with (`parse_instant`): a bare date means the end of that day, UTC,
    so the token works through it (it expires at 00:00 UTC on the day after; 9999-12-31
    at its last microsecond); an instant with its zone (`2025-03-31T17:00:00Z`) is exact,
    to the microsecond at most, as it is stored. Raises InvalidInput (rule `expires`)
    for anything else."""
    found = parse_instant(text, "expiry", "expires", stored=True)
    return found if isinstance(found, datetime) else end_of_day(found)


C = TypeVar("C", bound=Command)

COMMANDS: dict[str, type[Command]] = {
    cls.name: cls
    for cls in (
        PracticeRegister,
        PracticeListSize,
        PracticeClose,
        ConsortiumForm,
        ConsortiumJoin,
        ConsortiumLeave,
        ConsortiumRiskPool,
        ConsortiumAdopt,
        BudgetAllocate,
        BudgetAllocateFormula,
        BudgetAdjust,
        BudgetDelegate,
        BudgetRevoke,
        BudgetOptOut,
        BudgetOptIn,
        BudgetHarden,
        BudgetSoften,
        SpendCommit,
        SpendVary,
        SpendSettle,
        SpendCancel,
        TokenCreate,
        TokenRevoke,
    )
}


def build_validators() -> None:
    """Build every command's validator now rather than at its first use.

    Commands defer building (`defer_build`), so a run of the command line pays only for
    the one kind it makes. A server that validates on several threads calls this before
    it serves: in some pydantic 2 releases this project allows, a build takes the class's
    own validator away until it is done, and a first use racing it on another thread
    validates with the base class's validator, refusing good input as extra fields.
    """
    for command in COMMANDS.values():
        command.model_rebuild()


# Commands that carry a secret's digest drawn by the caller: not offered as plain writes.
ACCESS_COMMANDS: frozenset[type[Command]] = frozenset({TokenCreate, TokenRevoke})


def build_command(name: str, args: dict[str, Any]) -> Command:
    """A command from its CLI words and arguments; bad input raises InvalidInput."""
    cls = COMMANDS.get(name)
    if cls is None:
        meant = command_meant(name)
        how = (f" (did you mean {meant!r}? command names are written exactly: lower case, "
               "one space between words)" if meant else "")
        raise InvalidInput("command", f"unknown command {shown(name)}{how}")
    return parse_command(cls, args)


_NOT_A_NAME_CHARACTER = re.compile(r"[^a-z0-9-]+")


def command_meant(name: str) -> str | None:
    """The command a name not written exactly seems to mean (`spend\tcommit`, `Spend
    Commit`, ` spend  commit`, `spend_commit`, `spend comit`), to name it in the refusal;
    None when it seems to mean none. Only the exact name is ever run."""
    words = " ".join(_NOT_A_NAME_CHARACTER.sub(" ", name[:100].casefold().replace("_", "-"))
                     .split())
    for candidate in (words, words.replace("-", " ")):
        if candidate in COMMANDS:
            return candidate
    close = difflib.get_close_matches(words, COMMANDS, n=1, cutoff=0.8)
    return close[0] if close else None


def parse_command(cls: type[C], args: dict[str, Any]) -> C:
    """`cls` from its arguments by field name; bad input raises InvalidInput.

    The commands of bulk loads (`spend ...`) given in their usual JSON shapes are
    parsed by `_trusted` with the same parsers, without pydantic's machinery;
    anything else, and every input either path refuses, goes through pydantic, so
    what is refused and how it is said is the same on both.
    """
    fast = _trusted(cls, args)
    if fast is not None:
        return fast
    try:
        command = cls.model_validate(args)
    except ValidationError as error:
        raise InvalidInput("arguments", describe_validation_error(cls.name, error)) from None
    command._given = dict(args)
    return command


def describe_validation_error(name: str, error: ValidationError) -> str:
    errors = error.errors()
    # An argument named but for its spelling (`Practice`) is the one to tell of, before
    # the argument it then leaves missing (`practice`).
    first = next((e for e in errors if e["type"] == "extra_forbidden" and len(e["loc"]) == 1
                  and _argument_meant(name, str(e["loc"][0])) is not None), errors[0])
    where = ".".join(str(p) for p in first["loc"]) or "arguments"
    if len(where) > 60:  # a name of thousands of characters is cut, as values are
        where = f"{where[:60]}… ({len(where):,} characters)"
    kind = first["type"]
    if kind == "missing":
        return f"{name}: missing {where}"
    if kind == "extra_forbidden":
        key = str(first["loc"][0]) if len(first["loc"]) == 1 else None
        meant = _argument_meant(name, key) if key is not None else None
        if meant is None:
            return f"{name}: unknown argument {where}"
        return (f"{name}: unknown argument {shown(key or '')} (did you mean {meant!r}? "
                "argument names are written exactly)")
    return f"{name}: {where}: {first['msg']}"


_ARGUMENT_SPELLING = re.compile(r"[\s\-]+")


def _argument_meant(name: str, key: str) -> str | None:
    """The argument of command `name` that `key` names but for its spacing, letter case or
    dashes (` practice`, `Practice`, `list-size`); None for any other key."""
    cls = COMMANDS.get(name)
    if cls is None or len(key) > 100:
        return None
    spelled = _ARGUMENT_SPELLING.sub("_", key.strip().casefold()).strip("_")
    return spelled if spelled in cls.model_fields and spelled != key else None


# --- the fast path of bulk loads -----------------------------------------------------
#
# Each parser takes a value as JSON gives it and returns what the command's field
# validation makes of it, or raises (any exception) when the value is not of a shape
# it is sure of. Parsers of values that recur across lines are cached on the text;
# refusals are never cached.


class _Unsure(Exception):  # noqa: N818 - control flow only, never leaves this module
    """The fast path does not decide this value: validation does."""


def _none(value: Any) -> None:
    if value is not None:
        raise _Unsure


@functools.lru_cache(maxsize=4096)
def _date_text(text: str) -> date:
    day = _date(text)
    assert type(day) is date
    return day


@functools.lru_cache(maxsize=4096)
def _amount_text(text: str) -> int:
    return _pence(text)


def _amount_number(value: Any) -> int:
    if type(value) is not int:
        raise _Unsure
    return _pence(value)


@functools.lru_cache(maxsize=4096)
def _qs_one(text: str) -> tuple[str, ...]:
    return _qs_codes([text])


def _qs_value(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if type(value) is list and len(value) == 1 and type(value[0]) is str:
        return _qs_one(value[0])
    if type(value) is list and all(type(v) is str for v in value):
        return _qs_of(tuple(value))
    raise _Unsure


@functools.lru_cache(maxsize=4096)
def _qs_of(texts: tuple[str, ...]) -> tuple[str, ...]:
    return _qs_codes(list(texts) or [])


def _bool(value: Any) -> bool:
    if type(value) is not bool:
        raise _Unsure
    return value


def _text_parser(parse: Any, size: int = 4096) -> Any:
    """`parse` of a text cached on the text: a hit costs no Python call."""
    return functools.lru_cache(maxsize=size)(parse)


_PRACTICE = _text_parser(parse_practice_code)
_YEAR = _text_parser(_year, 256)
_ELEMENT = _text_parser(parse_element, 256)
_REASON = _text_parser(functools.partial(long_text, field="reason"))
_PROVIDER = _text_parser(functools.partial(name_text, field="provider"), 8192)
_SERVICE = _text_parser(functools.partial(name_text, field="service"), 8192)

_VARY_TEXT = {"on": _date_text, "ref": parse_ref, "amount": _amount_text, "reason": _REASON}
_VARY_VALUE = {"on": _none, "amount": _amount_number, "reason": _none}

_FAST: dict[type[Command], tuple[dict[str, Any], dict[str, Any]]] = {
    SpendCommit: (
        {"on": _date_text, "practice": _PRACTICE, "year": _YEAR, "element": _ELEMENT,
         "ref": parse_ref, "amount": _amount_text, "provider": _PROVIDER,
         "service": _SERVICE, "qs": _qs_one},
        {"on": _none, "amount": _amount_number, "qs": _qs_value}),
    SpendVary: (_VARY_TEXT, _VARY_VALUE),
    SpendSettle: (_VARY_TEXT, _VARY_VALUE | {"final": _bool}),
    SpendCancel: ({"on": _date_text, "ref": parse_ref, "reason": _REASON},
                  {"on": _none, "reason": _none}),
}
"""Per command: a parser for each field given as text, and one for each field that may
be given as another JSON value (by name; none has an alias). A field given in a shape
its command has no parser for here is left to validation."""

_REQUIRED: dict[type[Command], frozenset[str]] = {
    cls: frozenset(name for name, info in cls.model_fields.items() if info.is_required())
    for cls in _FAST
}
_SIZE: dict[type[Command], int] = {cls: len(cls.model_fields) for cls in _FAST}


def _trusted(cls: type[C], args: dict[str, Any]) -> C | None:
    """`cls` parsed from `args` as validation would parse it, or None when not sure
    (a field missing or unknown, a value of another type, a value refused)."""
    parsers = _FAST.get(cls)
    if parsers is None or type(args) is not dict:
        return None
    # Every field given (each key is checked to be one below): none required is missing.
    if len(args) != _SIZE[cls] and not _REQUIRED[cls] <= args.keys():
        return None
    texts, others = parsers
    values: dict[str, Any] = {}
    try:
        for name, value in args.items():
            values[name] = (texts if type(value) is str else others)[name](value)
    except Exception:  # noqa: BLE001 - validation decides, and words, every refusal
        return None
    return construct(cls, values, {"_given": dict(args)})
