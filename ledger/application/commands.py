"""Commands: what staff ask the ledger to do, named and shaped as on the command line.

A command holds its arguments parsed into their meaning: amounts in pence, a
top-slice in basis points, codes in capitals, elements and QS codes in their
canonical order, text in Unicode NFC. Its fingerprint, used for idempotency, is
taken over those values, so `--amount 100` and `--amount 100.00` (or a JSON line
saying the same) are one command. The effective date stays `None` when not given;
the service resolves the default.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Annotated, Any, ClassVar, TypeVar

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
)

from ledger.domain.errors import InvalidInput
from ledger.domain.values import (
    ELEMENTS,
    Actor,
    Element,
    FinancialYear,
    FreeText,
    ListSizeArg,
    WeightedArg,
    money_text,
    parse_amount,
    parse_consortium_code,
    parse_element,
    parse_holder,
    parse_percent,
    parse_practice_code,
    parse_qs_code,
    parse_signed_amount,
    parse_weighted,
    shown,
)

FINGERPRINT_VERSION = "v2"
"""Fingerprints over parsed values; receipts recorded before carry a bare hex digest."""


def _canonical(value: Any) -> Any:
    """Values orjson has no form for: a decimal as its shortest exact digits."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    raise TypeError(f"no canonical form for {type(value).__name__}")


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: ClassVar[str]
    on: date | None = Field(default=None, description="effective date (default today)")

    def fingerprint(self, actor: str) -> str:
        """SHA-256 of the command's name, actor and parsed values (never their spelling)."""
        body = self.model_dump(mode="python", exclude_none=True)
        canonical = orjson.dumps(
            [self.name, actor, body],
            default=_canonical,
            option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
        )
        return f"{FINGERPRINT_VERSION}:{hashlib.sha256(canonical).hexdigest()}"

    @field_validator("on", mode="before")
    @classmethod
    def _on(cls, value: Any) -> Any:
        return None if value is None else _date(value)


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
        raise InvalidInput("percent", f"write the percentage as text, like \"1.5%\", not {value!r}")
    return parse_percent(value)


def _date(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InvalidInput("date", f"malformed date {shown(str(value))}: write it as 2024-06-01")


def _ref(value: str) -> str:
    ref = value.strip()
    if not ref or len(ref) > 64 or any(c.isspace() for c in ref):
        raise InvalidInput("ref", f"malformed commitment reference {value!r}")
    return ref


def _one_element(value: Any) -> Element:
    if isinstance(value, str):
        return parse_element(value)
    raise InvalidInput("element", f"write the element as text, like \"acute\", not {value!r}")


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
    """`{"acute": "5044.162762"}` with element names parsed; the figures parse as
    WeightedArg (exact decimals, InvalidInput naming the element when out of range)."""
    if not isinstance(value, dict):
        return value
    weighted: dict[Element, Any] = {}
    for key, figure in value.items():
        element = parse_element(str(key))
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
Ref = Annotated[str, AfterValidator(_ref)]
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
    practice_name: FreeText = Field(alias="name", min_length=1)

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class PracticeListSize(_Population):
    """A practice's list size (and weighted populations given) in force from `on`."""

    name: ClassVar[str] = "practice list-size"


class PracticeClose(_PracticeArg):
    """The practice closes on `on`: nothing may be committed for it from that day."""

    name: ClassVar[str] = "practice close"
    reason: FreeText | None = None


# --- consortia -----------------------------------------------------------------------


class ConsortiumForm(_ConsortiumArg):
    name: ClassVar[str] = "consortium form"
    consortium_name: FreeText = Field(alias="name", min_length=1)
    officer: FreeText = Field(min_length=1)

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
    basis: FreeText | None = None

    @field_validator("element", mode="before")
    @classmethod
    def _amounts(cls, value: Any) -> Any:
        """`acute=1200000` (repeatable) or {"acute": "1200000"}: pence per element.

        An element named twice is refused: one of the two amounts would be lost.
        """
        pairs: list[tuple[str, Any]]
        if isinstance(value, dict):
            pairs = list(value.items())
        else:
            pairs = []
            for item in _texts(value, "element"):
                key, sep, amount = item.partition("=")
                if not sep:
                    raise InvalidInput("element", f"write --element {item.strip()[:40]}=AMOUNT")
                pairs.append((key, amount))
        parsed: dict[Element, int] = {}
        for key, amount in pairs:
            element = parse_element(str(key))
            if element in parsed:
                raise InvalidInput("element", f"{element} is given twice")
            parsed[element] = _pence_or_zero(amount)
        return dict(sorted(parsed.items(), key=lambda item: ELEMENTS.index(item[0])))

    def amounts_pence(self) -> dict[Element, int]:
        return dict(self.element)


def _rates(value: Any) -> Any:
    """`["acute=780", ...]` or `{"acute": "780"}` as {element: rate}, each rate pounds per
    weighted head with at most two decimals (pence precision), more than zero."""
    if isinstance(value, str | list | tuple):
        pairs: dict[Element, str] = {}
        for item in [value] if isinstance(value, str) else list(value):
            key, sep, rate = str(item).partition("=")
            if not sep:
                raise InvalidInput("rate", f"write --rate {item}=POUNDS (pounds per weighted head)")
            pairs[parse_element(key)] = rate
        value = pairs
    if isinstance(value, dict):
        rates = {parse_element(str(k)): str(v).strip() for k, v in value.items()}
        for element, rate in rates.items():
            try:
                parse_amount(rate)
            except InvalidInput as error:
                raise InvalidInput("rate", f"rate for {element}: {error.message}") from None
        if not rates:
            raise InvalidInput("rate", "name at least one rate: --rate ELEMENT=POUNDS")
        return rates
    return value


class BudgetAllocateFormula(_BudgetArg):
    """One practice's allocation by formula: per rated element, its weighted population
    in force on the effective date x the rate, rounded half up to the penny."""

    name: ClassVar[str] = "budget allocate-formula"
    rate: Annotated[dict[Element, str], BeforeValidator(_rates)]

    def rates_pence(self) -> dict[Element, int]:
        return {e: parse_amount(r) for e, r in self.rate.items()}


class BudgetAdjust(_BudgetArg):
    name: ClassVar[str] = "budget adjust"
    element: OneElement
    by: Annotated[int, BeforeValidator(_signed_pence)] = Field(description="signed pence")
    reason: FreeText


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
    reason: FreeText = Field(min_length=1)


class BudgetOptIn(_BudgetArg):
    name: ClassVar[str] = "budget opt-in"
    reason: FreeText | None = None


class BudgetHarden(_BudgetArg):
    name: ClassVar[str] = "budget harden"
    reason: FreeText | None = None


class BudgetSoften(_BudgetArg):
    name: ClassVar[str] = "budget soften"
    reason: FreeText | None = None


# --- spending ------------------------------------------------------------------------


class SpendCommit(_BudgetArg):
    name: ClassVar[str] = "spend commit"
    element: OneElement
    ref: Ref
    amount: Amount
    provider: FreeText = Field(min_length=1)
    service: FreeText = Field(min_length=1)
    qs: QsCodes = ()


class SpendVary(Command):
    name: ClassVar[str] = "spend vary"
    ref: Ref
    amount: Amount
    reason: FreeText | None = None


class SpendSettle(SpendVary):
    name: ClassVar[str] = "spend settle"
    final: StrictBool = False


class SpendCancel(Command):
    name: ClassVar[str] = "spend cancel"
    ref: Ref
    reason: FreeText | None = None


# --- access to the service -----------------------------------------------------------


def _grantee(value: str) -> str:
    return str(Actor.parse(value))


class TokenCreate(Command):
    """A new bearer token for `actor`. The caller draws the secret (`new_token`) and
    passes only its public id and SHA-256 digest: the secret is never recorded."""

    name: ClassVar[str] = "token create"
    actor: Annotated[str, AfterValidator(_grantee)]
    label: FreeText | None = Field(default=None, max_length=200)
    expires: datetime | None = None
    read_only: bool = False
    bootstrap: bool = False
    token_id: str = Field(pattern=r"^[a-z0-9]{12}$")
    secret_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @field_validator("expires", mode="before")
    @classmethod
    def _expires(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_expiry(value)
        return value


class TokenRevoke(Command):
    name: ClassVar[str] = "token revoke"
    token_id: str = Field(pattern=r"^[a-z0-9]{12}$")


def parse_expiry(text: str) -> datetime:
    """`2025-03-31` (midnight UTC at its start) or an instant with a zone."""
    stripped = text.strip()
    try:
        if len(stripped) == 10:
            return datetime.combine(date.fromisoformat(stripped), time(), tzinfo=UTC)
        moment = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidInput(
            "expires", f"malformed expiry {text!r}: a date 2025-03-31 or 2025-03-31T17:00:00Z"
        )
    return moment.astimezone(UTC)


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

# Commands that carry a secret's digest drawn by the caller: not offered as plain writes.
ACCESS_COMMANDS: frozenset[type[Command]] = frozenset({TokenCreate, TokenRevoke})


def build_command(name: str, args: dict[str, Any]) -> Command:
    """A command from its CLI words and arguments; bad input raises InvalidInput."""
    cls = COMMANDS.get(" ".join(name.split()))
    if cls is None:
        raise InvalidInput("command", f"unknown command {name!r}")
    return parse_command(cls, args)


def parse_command(cls: type[C], args: dict[str, Any]) -> C:
    try:
        return cls.model_validate(args)
    except ValidationError as error:
        raise InvalidInput("arguments", describe_validation_error(cls.name, error)) from None


def describe_validation_error(name: str, error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "arguments"
    kind = first["type"]
    if kind == "missing":
        return f"{name}: missing {where}"
    if kind == "extra_forbidden":
        return f"{name}: unknown argument {where}"
    return f"{name}: {where}: {first['msg']}"
