"""Events are the public contract: frozen, versioned, exportable, and stored exactly."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ledger.domain.access import AccessRegister, secret_digest
from ledger.domain.events import (
    EVENT_TYPES,
    EVENTS_BY_TOPIC,
    LedgerEvent,
    SpendCommitted,
    budget_stream,
    event_schemas,
)
from ledger.domain.organisations import Consortium
from ledger.domain.values import Element, WeightedPopulation, contains_nhs_number
from ledger.store.mapper import decode_event, encode_event
from tests.ledger.domain.builders import (
    ALLOCATOR,
    ME,
    RECORDED_AT,
    YEAR,
    budget,
    commit,
    ctx,
    practice,
)


def one_of_each() -> list[LedgerEvent]:
    """At least one event of every type, produced by the domain itself where it can."""
    events: list[LedgerEvent] = []
    p = practice()
    p.record_list_size(ctx(ALLOCATOR), 5000, {Element.MATERNITY: Decimal("12.345678")})
    p.close(ctx(ALLOCATOR, "2025-03-31"))
    c = Consortium.form(ctx("consortium:16C"), code="16C", name="Tees Valley", officer="Dr A")
    c.join(ctx("consortium:16C", "2024-04-01"), "A81001")
    c.agree_risk_pool(ctx("consortium:16C", "2024-04-01"), YEAR, 150)
    c.adopt_standards(ctx("consortium:16C"), YEAR, ["QS1", "QS3"])
    c.leave(ctx("consortium:16C", "2024-12-01"), "A81001")
    b = budget(saved=False)
    b.adjust(ctx(ALLOCATOR, reason="recount"), Element.ACUTE, -5000)
    b.delegate(ctx(ME, "2024-05-01"), [Element.PRESCRIBING, Element.ACUTE], "consortium:16C")
    b.revoke(ctx(ME, "2024-06-01"), [Element.ACUTE])
    b.opt_out(ctx(ME, "2024-07-01", reason="merger"), "practice:A81002")
    b.opt_in(ctx(ME, "2024-08-01"))
    b.make_hard(ctx(ALLOCATOR, "2024-08-01"))
    b.make_indicative(ctx(ALLOCATOR, "2024-09-01"))
    commit(b, "R-1", 12_500_00, on="2024-09-01")
    b.vary(ctx(ME, "2024-09-02"), "R-1", 13_000_00)
    b.settle(ctx(ME, "2024-09-03"), "R-1", 6_000_00)
    b.settle(ctx(ME, "2024-09-04"), "R-1", 1_000_00, final=True)
    commit(b, "R-2", 1, on="2024-09-05")
    b.cancel(ctx(ME, "2024-09-06"), "R-2")
    a = AccessRegister()
    a.grant(ctx(ALLOCATOR), token_id="0123456789ab", grantee="consortium:16C",
            grantee_known=True, digest=secret_digest("s" * 43), label="finance team")
    a.revoke(ctx(ALLOCATOR), "0123456789ab")
    for aggregate in (p, c, b, a):
        events.extend(aggregate.collect_events())
    produced = {type(e) for e in events}
    # Types the domain above does not produce (registration happens inside the builder,
    # pool events need a pool) are synthesised from their fields, so new event types
    # are covered as soon as they are added to EVENT_TYPES.
    events.extend(synthesise(cls) for cls in EVENT_TYPES if cls not in produced)
    return events


SAMPLE_VALUES: dict[object, object] = {
    str: "A81001",
    int: 150,
    bool: True,
    Element: Element.MATERNITY,
    date: date(2024, 9, 30),
    datetime: datetime(2024, 9, 30, 23, 59, 59, 123456, tzinfo=UTC),
    uuid.UUID: uuid.UUID(int=7),
    tuple[Element, ...]: (Element.ACUTE, Element.PRESCRIBING),
    tuple[str, ...]: ("QS1", "QS201"),
    dict[Element, int]: {Element.ACUTE: 0, Element.COMMUNITY: 12_000_00},
    dict[Element, WeightedPopulation]: {Element.ACUTE: Decimal("5044.162762"),
                                        Element.COMMUNITY: Decimal("0.000001")},
}


def synthesise(cls: type[LedgerEvent]) -> LedgerEvent:
    values: dict[str, object] = {}
    for name, field in cls.model_fields.items():
        annotation = field.annotation
        if annotation in SAMPLE_VALUES:
            values[name] = SAMPLE_VALUES[annotation]
        elif str(annotation).startswith(("typing.Annotated[str", "str | None", "typing.Optional")):
            values[name] = "free text"
        else:
            values[name] = SAMPLE_VALUES[str] if "str" in str(annotation) else None
    values.update(originator_id=uuid.uuid4(), originator_version=3, actor="allocator:Q71",
                  command_id="c-1", reason="because")
    return cls.model_validate(values)


def test_the_sample_covers_every_event_type() -> None:
    assert {type(e) for e in one_of_each()} == set(EVENT_TYPES)
    assert len(EVENTS_BY_TOPIC) == len(EVENT_TYPES), "topics must be unique"


@pytest.mark.parametrize("event", one_of_each(), ids=lambda e: f"{e.topic}-{e.originator_version}")
def test_every_event_round_trips_exactly_through_the_store_encoding(event: LedgerEvent) -> None:
    state = encode_event(event)
    decoded = decode_event(event.topic, event.originator_id, event.originator_version, state)
    assert type(decoded) is type(event)
    assert decoded == event
    assert decoded.model_dump() == event.model_dump()
    assert encode_event(decoded) == state
    # The id and version live in their own columns, not in the state.
    stored = json.loads(state)
    assert "originator_id" not in stored
    assert stored["schema_version"] == event.schema_version


def test_decoding_accepts_the_stream_id_as_text() -> None:
    event = one_of_each()[0]
    decoded = decode_event(event.topic, str(event.originator_id), event.originator_version,
                           encode_event(event))
    assert decoded == event


@settings(max_examples=100, deadline=None)
@given(
    text=st.text(min_size=1, max_size=60).filter(lambda t: not contains_nhs_number(t)),
    pence=st.integers(min_value=1, max_value=10**15),
    offset_minutes=st.integers(min_value=-12 * 60, max_value=14 * 60),
    micro=st.integers(min_value=0, max_value=999_999),
    qs=st.lists(st.integers(min_value=1, max_value=9999).map(lambda n: f"QS{n}"), max_size=4),
)
def test_random_commitments_round_trip_exactly(
    text: str, pence: int, offset_minutes: int, micro: int, qs: list[str]
) -> None:
    recorded = datetime(2024, 7, 15, 9, 30, 1, micro,
                        tzinfo=timezone(timedelta(minutes=offset_minutes)))
    event = SpendCommitted(
        originator_id=budget_stream("A81001", "2024-25"), originator_version=7,
        recorded_at=recorded, effective_on=date(2024, 7, 1), actor="practice:A81001/" + "x",
        command_id=text, reason=text, practice="A81001", year="2024-25", ref="R-1",
        element=Element.ACUTE, amount_pence=pence, provider=text, service=text,
        qs_codes=tuple(qs), overspend_pence=pence // 2,
    )
    decoded = decode_event(event.topic, event.originator_id, 7, encode_event(event))
    assert decoded == event
    assert decoded.recorded_at.utcoffset() == recorded.utcoffset()


def test_events_are_frozen_and_refuse_unknown_fields() -> None:
    event = one_of_each()[0]
    with pytest.raises(ValidationError):
        event.actor = "practice:A81002"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        type(event).model_validate({**event.model_dump(), "surprise": 1})


def test_money_fields_are_integers_not_floats() -> None:
    committed = next(e for e in one_of_each() if isinstance(e, SpendCommitted))
    with pytest.raises(ValidationError):
        SpendCommitted.model_validate({**committed.model_dump(), "amount_pence": 1.5})
    with pytest.raises(ValidationError):
        SpendCommitted.model_validate({**committed.model_dump(), "amount_pence": 0})


def test_every_event_carries_the_common_fields() -> None:
    for event in one_of_each():
        assert event.actor
        assert event.command_id
        assert event.recorded_at.tzinfo is not None
        assert isinstance(event.effective_on, date)
        assert event.event_id == uuid.uuid5(event.originator_id, str(event.originator_version))


def test_stream_ids_are_deterministic_uuid5_of_natural_keys() -> None:
    assert budget_stream("A81001", "2024-25") == budget_stream("A81001", "2024-25")
    assert budget_stream("A81001", "2024-25") != budget_stream("A81001", "2025-26")
    assert budget_stream("A81001", "2024-25").version == 5


def test_json_schemas_export_for_every_event_and_version() -> None:
    schemas = event_schemas()
    assert set(schemas) == {f"{t}/v{c.schema_version}" for t, c in EVENTS_BY_TOPIC.items()}
    assert len(schemas) == len(EVENT_TYPES)
    json.dumps(schemas)  # exportable as JSON
    committed = schemas["SpendCommitted/v1"]
    for field in ("originator_id", "originator_version", "recorded_at", "effective_on", "actor",
                  "command_id", "reason", "ref", "element", "amount_pence", "qs_codes"):
        assert field in committed["properties"], field
    assert {"actor", "command_id", "amount_pence"} <= set(committed["required"])


def test_recorded_at_keeps_its_instant_in_utc() -> None:
    event = one_of_each()[0]
    assert event.recorded_at == RECORDED_AT
    assert event.recorded_at.utcoffset() == timedelta(0)
