"""The write path's encoder stores every event as the same bytes as pydantic's JSON.

The stored state is part of the Merkle evidence (ledger/audit/leaf.py), so
`encode_event`, which writes most events with orjson straight from their fields,
must give exactly `canonical_state`'s bytes for every event of every type, whatever
its values (text with escapes, integers past 64 bits, instants in any zone) and
however it was built (validated, or constructed from proven values).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, get_args, get_origin

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ledger.domain.events import (
    EVENT_TYPES,
    BudgetAllocated,
    FormulaTerm,
    LedgerEvent,
    ListSizeRecorded,
    PracticeRegistered,
)
from ledger.domain.trusted import construct
from ledger.domain.values import Element
from ledger.store import mapper
from ledger.store.mapper import canonical_state, encode_event
from tests.ledger.domain.test_events import one_of_each

TEXT = st.text(st.characters(codec="utf-8"), max_size=12)  # any text but lone surrogates
ZONES = st.sampled_from([UTC, None, timezone(timedelta(0)),
                         timezone(timedelta(hours=5, minutes=30)),
                         timezone(-timedelta(hours=11, minutes=15, seconds=7)),
                         # offsets in seconds: orjson rounds them, pydantic truncates
                         timezone(timedelta(seconds=30)), timezone(-timedelta(seconds=59)),
                         timezone(timedelta(hours=1, minutes=19, seconds=32)),
                         timezone(-timedelta(microseconds=1))])
INTEGERS = st.one_of(st.integers(0, 1000), st.integers(-(2**70), 2**70),
                     st.sampled_from([2**63 - 1, 2**63, 2**64, -(2**63), -(2**63) - 1]))
DECIMALS = st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=0,
                       max_value=10**9)
PATTERNS = {"token_id": r"[a-z0-9]{12}", "secret_sha256": r"[0-9a-f]{64}"}


def strategy(annotation: Any) -> st.SearchStrategy[Any]:
    """Values of a field's type, including ones at the edges of what JSON writers differ on."""
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is FormulaTerm:
        return st.builds(FormulaTerm, weighted_population=DECIMALS,
                         rate_pence=st.integers(1, 2**64))
    if origin is not None and type(None) in args:  # X | None
        return st.none() | strategy(next(a for a in args if a is not type(None)))
    if origin is tuple:
        return st.lists(strategy(args[0]), max_size=3).map(tuple)
    if origin is dict:
        return st.dictionaries(strategy(args[0]), strategy(args[1]), max_size=3)
    base = getattr(annotation, "__origin__", annotation)  # Annotated[X, ...] -> X
    if base is str:
        return TEXT
    if base is Decimal:
        return DECIMALS
    simple: dict[Any, st.SearchStrategy[Any]] = {
        int: INTEGERS, bool: st.booleans(), Element: st.sampled_from(list(Element)),
        date: st.dates(), uuid.UUID: st.uuids(),
        datetime: st.datetimes(timezones=ZONES),
    }
    return simple[annotation]


def within(bounds: list[Any]) -> st.SearchStrategy[int]:
    """Integers a field bounded by `bounds` (Ge, Gt, Le) accepts, its edges among them."""
    low = max([b.ge for b in bounds if hasattr(b, "ge")]
              + [b.gt + 1 for b in bounds if hasattr(b, "gt")], default=-(2**70))
    high = min([b.le for b in bounds if hasattr(b, "le")], default=2**70)
    edges = [n for n in (low, high, 2**63 - 1, 2**63, 2**64) if low <= n <= high]
    return st.integers(low, high) | st.sampled_from(edges)


@st.composite
def events(draw: st.DrawFn, cls: type[LedgerEvent]) -> LedgerEvent:
    values = {
        name: draw(st.from_regex(PATTERNS[name], fullmatch=True) if name in PATTERNS
                   else within(field.metadata) if field.annotation is int and field.metadata
                   else strategy(field.annotation))
        for name, field in cls.model_fields.items()
    }
    try:
        return cls.model_validate(values)
    except ValidationError:
        assume(False)
        raise


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda cls: cls.topic)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_the_fast_encoder_stores_every_event_as_pydantic_would(
    cls: type[LedgerEvent], data: st.DataObject
) -> None:
    event = data.draw(events(cls))
    state = canonical_state(event)
    assert encode_event(event) == state
    built = construct(cls, dict(event.__dict__))  # as the write path's trusted events are
    assert encode_event(built) == state


def test_events_of_plain_values_are_written_without_pydantic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain = [e for e in one_of_each()
             if not isinstance(e, PracticeRegistered | ListSizeRecorded | BudgetAllocated)]
    expected = [canonical_state(e) for e in plain]

    def refuse(_event: LedgerEvent) -> bytes:
        raise AssertionError("went through pydantic")

    monkeypatch.setattr(mapper, "canonical_state", refuse)
    assert [encode_event(e) for e in plain] == expected


@pytest.mark.parametrize("offset", [
    timedelta(seconds=30), -timedelta(seconds=30), timedelta(minutes=19, seconds=32),
    -timedelta(microseconds=1), timedelta(hours=1, seconds=59, microseconds=5),
])
def test_an_instant_in_a_zone_of_seconds_is_stored_as_pydantic_writes_it(
    offset: timedelta,
) -> None:
    event = one_of_each()[0]
    moment = datetime(2024, 1, 15, 9, 30, tzinfo=timezone(offset))
    for changed in (event.model_copy(update={"recorded_at": moment}),
                    construct(type(event), {**event.__dict__, "recorded_at": moment})):
        assert encode_event(changed) == canonical_state(changed)
