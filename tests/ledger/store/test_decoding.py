"""Decoding stored events: exactly, or an UnreadableEvent naming why (no DB)."""

from __future__ import annotations

import uuid

import orjson
import pytest

from ledger.domain.errors import UnreadableEvent
from ledger.store.mapper import decode_event, readable, stored_version

STREAM = uuid.uuid4()
LIST_SIZE: dict[str, object] = {"recorded_at": "2024-07-15T09:30:00Z", "effective_on": "2024-07-15",
             "actor": "allocator:Q71", "command_id": "c-1", "reason": None,
             "practice": "A81001", "list_size": 4100, "weighted_population": {}}


def state(**fields: object) -> bytes:
    return orjson.dumps({**LIST_SIZE, **fields})


def test_a_current_event_decodes() -> None:
    event = decode_event("ListSizeRecorded", STREAM, 2, state(schema_version=1))
    assert event.topic == "ListSizeRecorded"


def test_an_unknown_topic_is_unreadable_with_its_position() -> None:
    with pytest.raises(UnreadableEvent) as error:
        decode_event("BudgetFrozen", STREAM, 1, state(schema_version=1), 17)
    assert error.value.position == 17
    assert error.value.understood is None
    assert "position 17" in str(error.value)
    assert "'BudgetFrozen'" in str(error.value)
    assert "upgrade the ledger" in str(error.value)


def test_a_newer_version_that_adds_a_field_is_unreadable() -> None:
    with pytest.raises(UnreadableEvent) as error:
        decode_event("ListSizeRecorded", STREAM, 2, state(schema_version=3, source="x"), 9)
    assert (error.value.stored, error.value.understood) == (3, 2)
    assert "schema version 3" in str(error.value)
    assert "understands up to 2" in str(error.value)


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", orjson.dumps({"schema_version": "1"})])
def test_a_state_that_does_not_decode_is_unreadable(raw: bytes) -> None:
    with pytest.raises(UnreadableEvent):
        decode_event("ListSizeRecorded", STREAM, 2, raw, 3)


def test_a_current_version_missing_a_field_is_unreadable_not_a_traceback() -> None:
    broken = orjson.loads(state(schema_version=1))
    del broken["list_size"]
    with pytest.raises(UnreadableEvent) as error:
        decode_event("ListSizeRecorded", STREAM, 2, orjson.dumps(broken), 4)
    assert "does not decode" in str(error.value)


@pytest.mark.parametrize(("raw", "version"), [
    (b'{"schema_version":3,"a":1}', 3),
    (b'{"a":1}', 1),
    (b'{"a":1,"schema_version":2}', 2),
    (b'{"schema_version":true}', None),
    (b"nonsense", None),
])
def test_the_stored_version_is_read_from_the_state(raw: bytes, version: int | None) -> None:
    assert stored_version(raw) == version


def test_readable_knows_topics_and_versions() -> None:
    assert readable("ListSizeRecorded", 1) is None
    assert readable("ListSizeRecorded", 2) is None
    assert readable("ListSizeRecorded", 3) is not None
    assert readable("ListSizeRecorded", None) is not None
    assert readable("Nope", 1) is not None
