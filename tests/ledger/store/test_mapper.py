"""The mapper stores pydantic events through eventsourcing and gets them back exactly."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from eventsourcing.persistence import StoredEvent

from ledger.domain.events import EVENTS_BY_TOPIC, upcast
from ledger.domain.values import Element
from ledger.store.mapper import OrjsonTranscoder, PydanticMapper, decode_event, encode_event
from tests.ledger.domain.test_events import one_of_each


def test_the_mapper_round_trips_every_event_type() -> None:
    mapper = PydanticMapper(transcoder=OrjsonTranscoder())
    for event in one_of_each():
        stored = mapper.to_stored_event(event)
        assert isinstance(stored, StoredEvent)
        assert stored.topic == event.topic  # the stable name, not a Python path
        assert stored.originator_id == event.originator_id
        assert stored.originator_version == event.originator_version
        assert mapper.to_domain_event(stored) == event


def test_the_stored_state_is_canonical_json_led_by_its_schema_version() -> None:
    for event in one_of_each():
        state = encode_event(event)
        assert state.startswith(b'{"schema_version":%d,' % event.schema_version)
        assert encode_event(decode_event(event.topic, event.originator_id,
                                         event.originator_version, state)) == state
        assert json.loads(state)["recorded_at"].endswith("Z")


def test_older_schema_versions_are_upcast_on_the_way_out() -> None:
    event = next(e for e in one_of_each() if e.topic == "AllocationAdjusted")
    state = json.loads(encode_event(event))
    # An event still at version 1 has nothing to upcast: the state is returned as is.
    assert upcast(event.topic, 1, dict(state)) == state
    assert all(cls.schema_version >= 1 for cls in EVENTS_BY_TOPIC.values())
    decoded = decode_event(event.topic, event.originator_id, event.originator_version,
                           json.dumps({k: v for k, v in state.items()
                                       if k != "schema_version"}).encode())
    assert decoded == event  # a state without a version is read as version 1


V1_REGISTERED = (
    b'{"schema_version":1,"recorded_at":"2024-03-01T09:00:00Z","effective_on":"2024-03-01",'
    b'"actor":"allocator:Q71","command_id":"c-1","reason":null,"practice":"A81001",'
    b'"name":"The Densham Surgery","list_size":4069,'
    b'"weighted_population":{"acute":4310,"prescribing":3980},"allocator":"Q71"}'
)


@pytest.mark.parametrize("topic", ["PracticeRegistered", "ListSizeRecorded"])
def test_whole_number_weighted_populations_of_version_1_read_as_exact_decimals(
    topic: str,
) -> None:
    stored = V1_REGISTERED
    if topic == "ListSizeRecorded":
        body = json.loads(stored)
        for name in ("name", "allocator"):
            body.pop(name)
        stored = json.dumps(body).encode()
    stream = uuid.uuid4()
    event = decode_event(topic, stream, 1, stored)
    assert event.schema_version == 2
    assert event.weighted_population == {  # type: ignore[attr-defined]
        Element.ACUTE: Decimal("4310"), Element.PRESCRIBING: Decimal("3980")}
    # Written again, it is version 2 with the figures as exact decimal strings; the stored
    # version-1 bytes are never rewritten, only read.
    again = json.loads(encode_event(event))
    assert again["schema_version"] == 2
    assert again["weighted_population"] == {"acute": "4310", "prescribing": "3980"}
    assert again["list_size"] == 4069


def test_six_decimal_weighted_populations_round_trip_exactly() -> None:
    stored = V1_REGISTERED.replace(b'"schema_version":1', b'"schema_version":2').replace(
        b'"acute":4310', b'"acute":"5044.162762"').replace(b'"prescribing":3980',
                                                         b'"prescribing":"3980.100000"')
    event = decode_event("PracticeRegistered", uuid.uuid4(), 1, stored)
    assert event.weighted_population[Element.ACUTE] == Decimal("5044.162762")  # type: ignore[attr-defined]
    assert encode_event(event) == stored  # as published, trailing zeros and all


def test_the_transcoder_round_trips_json() -> None:
    transcoder = OrjsonTranscoder()
    data = {"a": [1, 2, {"b": "£"}], "c": None}
    assert transcoder.decode(transcoder.encode(data)) == data
