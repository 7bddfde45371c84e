"""Stores pydantic events through eventsourcing, round-tripping them exactly.

The stored topic is the event's stable `topic` (not its Python path), and the
stored state is the event's JSON without the stream id and version, which the
store keeps in their own columns. `schema_version` travels in the state so older
stored forms are upcast on the way out.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder

from ledger.domain.events import EVENTS_BY_TOPIC, LedgerEvent, upcast

_EXCLUDED = {"originator_id", "originator_version"}


class OrjsonTranscoder(Transcoder):
    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)


def encode_event(event: LedgerEvent) -> bytes:
    """The stored state of an event: canonical JSON with its schema version first."""
    body = event.model_dump_json(exclude=_EXCLUDED).encode()
    return b'{"schema_version":%d,' % event.schema_version + body[1:]


def decode_event(
    topic: str, originator_id: uuid.UUID | str, originator_version: int, state: bytes
) -> LedgerEvent:
    data: dict[str, Any] = orjson.loads(state)
    version = data.pop("schema_version", 1)
    cls = EVENTS_BY_TOPIC[topic]
    if version != cls.schema_version:
        data = upcast(topic, version, data)
    data["originator_id"] = originator_id
    data["originator_version"] = originator_version
    return cls.model_validate(data)


class PydanticMapper(Mapper[uuid.UUID]):
    """Maps `LedgerEvent`s to eventsourcing's `StoredEvent`s and back."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        event: LedgerEvent = domain_event
        return StoredEvent(
            originator_id=event.originator_id,
            originator_version=event.originator_version,
            topic=event.topic,
            state=encode_event(event),
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return decode_event(
            stored_event.topic,
            stored_event.originator_id,
            stored_event.originator_version,
            stored_event.state,
        )
