"""The bulk-load commands parse, without pydantic's machinery, to exactly what validation
gives: the same values of the same types, or the same refusal in the same words.

`parse_command` takes a fast path for `spend ...` arguments in their usual JSON
shapes (commands.py `_trusted`) and hands anything it is not sure of to validation.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ledger.application.commands import (
    COMMANDS,
    BudgetAllocateFormula,
    Command,
    SpendCancel,
    SpendCommit,
    SpendSettle,
    SpendVary,
    _digest,
    _trusted,
    build_command,
    describe_validation_error,
    parse_command,
)
from ledger.domain.errors import InvalidInput
from ledger.domain.values import Actor, FinancialYear

# Values each argument may be given: valid ones in several spellings, refused ones,
# and values of other JSON types.
ODD = [None, 0, 7, -3, True, False, 1.5, Decimal("10.5"), [], {}, ["x"], {"a": 1}, "", "  "]
FIELD_VALUES: dict[str, list[Any]] = {
    "practice": ["A81001", " a81001 ", "A8100", "AA1001", "\u200bA81001", "\u0131" + "81001"],
    "year": ["2024-25", " 2024-25", "2024-26", "1899-00", "2024/25"],
    "element": ["acute", " ACUTE ", "Mental-Health", "acutes", "acute,community"],
    "ref": ["R-1", " R-1 ", "R 1", "R-\u200b1", "x" * 65, "a:b/c#d@e+f=g"],
    "amount": ["125.00", "£1,000", "1,00", "0", "-5", "1.234", 12, 10**20, "1e3"],
    "provider": ["RTR", " Royal Trust ", "Caf\u0065\u0301", "\u202eevil", "x" * 201,
                 "NHS 943 476 5919", "\u0301x"],
    "service": ["Hip replacement", "svc", "\t", "\u3164"],
    "qs": [["QS3"], ["qs10", "QS2", "QS2"], "QS1", ["QS0"], [], ["QS1", 3], "QS1,QS2",
           ["Q\u017f1"], [""], "", [" QS4 "], ["QS1", None]],
    "on": ["2024-06-01", " 2024-06-01 ", "2024-6-1", "20240601", "2024-02-30"],
    "reason": ["late invoice", " padded ", "\x00", "NHS 943 476 5919", "y" * 1001],
    "final": [True, False, "true", 1],
}

VALID: dict[str, list[Any]] = {
    "practice": FIELD_VALUES["practice"][:2], "year": FIELD_VALUES["year"][:2],
    "element": FIELD_VALUES["element"][:3], "ref": [*FIELD_VALUES["ref"][:2], "a:b/c#d@e+f=g"],
    "amount": [*FIELD_VALUES["amount"][:2], 12, "0.5"],
    "provider": FIELD_VALUES["provider"][:3], "service": FIELD_VALUES["service"][:2],
    "qs": [*FIELD_VALUES["qs"][:3], [], None], "on": [*FIELD_VALUES["on"][:2], None],
    "reason": [*FIELD_VALUES["reason"][:2], None], "final": [True, False],
}


def _values(name: str) -> st.SearchStrategy[Any]:
    return st.sampled_from(FIELD_VALUES.get(name, []) + ODD)


@st.composite
def spend_args(draw: st.DrawFn) -> tuple[type[Any], dict[str, Any]]:
    kinds: list[type[Command]] = [SpendCommit, SpendVary, SpendSettle, SpendCancel]
    cls = draw(st.sampled_from(kinds))
    args: dict[str, Any] = {}
    for name in cls.model_fields:
        if draw(st.integers(0, 9)) < 9:  # now and then a field is left out
            usual = st.sampled_from(VALID.get(name, ["x"]))
            args[name] = draw(_values(name) if draw(st.integers(0, 9)) == 0 else usual)
    if draw(st.integers(0, 19)) == 0:
        args[draw(st.sampled_from(["extra", "name", "Practice"]))] = "x"
    return cls, args


def _validated(cls: type[Any], args: dict[str, Any]) -> Any:
    """What validation alone makes of `args`: the command, or the refusal's (type, text)."""
    try:
        command = cls.model_validate(args)
    except ValidationError as error:
        return ("InvalidInput",
                str(InvalidInput("arguments", describe_validation_error(cls.name, error))))
    except InvalidInput as error:
        return ("InvalidInput", str(error))
    command._given = dict(args)
    return command


def _outcome(cls: type[Any], args: dict[str, Any]) -> Any:
    try:
        return parse_command(cls, args)
    except InvalidInput as error:
        return ("InvalidInput", str(error))


def _same_command(fast: Any, slow: Any) -> None:
    assert type(fast) is type(slow)
    assert fast == slow
    assert list(fast.__dict__) == list(slow.__dict__)
    for name, value in slow.__dict__.items():
        assert type(fast.__dict__[name]) is type(value), name
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.given == slow.given
    assert fast.fingerprint("practice:A81001") == slow.fingerprint("practice:A81001")
    assert fast.model_dump_json() == slow.model_dump_json()


@settings(max_examples=400, deadline=None)
@given(spend_args())
def test_a_spend_command_parses_as_validation_parses_it_or_is_refused_in_its_words(
    case: tuple[type[Any], dict[str, Any]],
) -> None:
    cls, args = case
    slow = _validated(cls, args)
    fast = _trusted(cls, args)
    event("fast path" if fast is not None else "validation")
    if fast is not None:
        _same_command(fast, slow)
    outcome = _outcome(cls, args)
    if isinstance(slow, tuple):
        assert outcome == slow
    else:
        _same_command(outcome, slow)


def test_a_usual_apply_line_takes_the_fast_path() -> None:
    args = {"practice": "a81001", "year": "2024-25", "element": "acute", "ref": "R-1",
            "amount": "125.00", "provider": "RTR", "service": "Hip replacement",
            "qs": ["QS3"], "on": "2024-06-01"}
    fast = _trusted(SpendCommit, args)
    assert fast is not None
    _same_command(fast, _validated(SpendCommit, args))
    assert _trusted(SpendSettle, {"ref": "R-1", "amount": 5, "final": True}) is not None


# A command of every kind, with optional values given and left out.
EXAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("practice register", {"practice": "A81001", "name": "Surgery", "list_size": 9000,
                           "weighted": {"acute": "5044.162762"}, "on": "2024-04-01"}),
    ("practice list-size", {"practice": "A81001", "list_size": "4,069"}),
    ("practice close", {"practice": "A81001", "reason": "merged"}),
    ("consortium form", {"consortium": "16C", "name": "Tees", "officer": "J Smith"}),
    ("consortium join", {"consortium": "16C", "practice": "A81001"}),
    ("consortium leave", {"consortium": "16C", "practice": "A81001"}),
    ("consortium risk-pool", {"consortium": "16C", "year": "2024-25", "top_slice": "1.5%"}),
    ("consortium adopt", {"consortium": "16C", "year": "2024-25", "codes": ["QS2", "QS1"]}),
    ("budget allocate", {"practice": "A81001", "year": "2024-25",
                         "element": {"acute": "1200", "community": "0"}, "basis": "b"}),
    ("budget allocate-formula", {"practice": "A81001", "year": "2024-25",
                                 "rate": {"acute": "780.5"}}),
    ("budget adjust", {"practice": "A81001", "year": "2024-25", "element": "acute",
                       "by": "-5", "reason": "r"}),
    ("budget delegate", {"practice": "A81001", "year": "2024-25",
                         "element": ["community", "acute"], "to": "consortium:16c"}),
    ("budget revoke", {"practice": "A81001", "year": "2024-25", "element": "acute"}),
    ("budget opt-out", {"practice": "A81001", "year": "2024-25", "to": "consortium:16C",
                        "reason": "r"}),
    ("budget opt-in", {"practice": "A81001", "year": "2024-25"}),
    ("budget harden", {"practice": "A81001", "year": "2024-25", "reason": "r"}),
    ("budget soften", {"practice": "A81001", "year": "2024-25"}),
    ("spend commit", {"practice": "A81001", "year": "2024-25", "element": "acute",
                      "ref": "R-1", "amount": "1", "provider": "P", "service": "S"}),
    ("spend vary", {"ref": "R-1", "amount": "2"}),
    ("spend settle", {"ref": "R-1", "amount": "2", "final": True, "on": "2024-06-01"}),
    ("spend cancel", {"ref": "R-1"}),
    ("token create", {"actor": "practice:a81001", "label": "l", "expires": "2025-03-31",
                      "token_id": "abcdefabcdef", "secret_sha256": "0" * 64}),
    ("token revoke", {"token_id": "abcdefabcdef"}),
]


def test_every_kind_of_command_has_an_example() -> None:
    assert {name for name, _ in EXAMPLES} == set(COMMANDS)


@pytest.mark.parametrize(("name", "args"), EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_a_fingerprint_is_taken_over_the_values_a_dump_of_the_command_gives(
    name: str, args: dict[str, Any]
) -> None:
    command = build_command(name, args)
    body = command.model_dump(mode="python", exclude_none=True)
    if isinstance(command, BudgetAllocateFormula):
        body["rate"] = command.rates_pence()  # its rates are compared by meaning
    for actor in ("practice:A81001", "allocator:Q71/J Smith"):
        assert command.fingerprint(actor) == f"v3:{_digest(command.name, actor, body)}"


def test_an_actor_names_itself_and_its_holder_as_parsed() -> None:
    actor = Actor.parse(" practice:a81001/Dr Jones ")
    assert str(actor) == "practice:A81001/Dr Jones"
    assert actor.holder == "practice:A81001"
    assert actor == Actor.recorded("practice:A81001/Dr Jones")
    assert hash(actor) == hash(Actor.recorded("practice:A81001/Dr Jones"))
    assert str(Actor.recorded("allocator:Q71")) == "allocator:Q71"
    assert repr(Actor.parse("allocator:q71")) == (
        "Actor(role=<Role.ALLOCATOR: 'allocator'>, code='Q71', person=None)")


@settings(max_examples=300, deadline=None)
@given(st.dates(min_value=date(1899, 1, 1), max_value=date(9999, 12, 31)),
       st.integers(1900, 9998))
def test_a_financial_year_holds_the_days_from_1_april_to_31_march(day: date, start: int
                                                                  ) -> None:
    year = FinancialYear(start)
    assert (day in year) == (date(start, 4, 1) <= day <= date(start + 1, 3, 31))
    assert str(year) == f"{start}-{(start + 1) % 100:02d}"
