"""The mapper stores pydantic events through eventsourcing and gets them back exactly."""

from __future__ import annotations

import json

from eventsourcing.persistence import StoredEvent

from ledger.domain.events import EVENTS_BY_TOPIC, upcast
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
        assert state.startswith(b'{"schema_version":1,')
        assert encode_event(decode_event(event.topic, event.originator_id,
                                         event.originator_version, state)) == state
        assert json.loads(state)["recorded_at"].endswith("Z")


def test_older_schema_versions_are_upcast_on_the_way_out() -> None:
    event = one_of_each()[0]
    state = json.loads(encode_event(event))
    # With every event at version 1 there is nothing to upcast: the state is returned as is.
    assert upcast(event.topic, 1, dict(state)) == state
    assert all(cls.schema_version >= 1 for cls in EVENTS_BY_TOPIC.values())
    decoded = decode_event(event.topic, event.originator_id, event.originator_version,
                           json.dumps({k: v for k, v in state.items()
                                       if k != "schema_version"}).encode())
    assert decoded == event  # a state without a version is read as version 1


def test_the_transcoder_round_trips_json() -> None:
    transcoder = OrjsonTranscoder()
    data = {"a": [1, 2, {"b": "£"}], "c": None}
    assert transcoder.decode(transcoder.encode(data)) == data
