"""Stores pydantic events through eventsourcing, round-tripping them exactly.

The stored topic is the event's stable `topic` (not its Python path), and the
stored state is the event's JSON without the stream id and version, which the
store keeps in their own columns. `schema_version` travels in the state so older
stored forms are upcast on the way out.
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from typing import Any, get_args

import orjson
import pydantic
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder

from ledger.domain.errors import UnreadableEvent
from ledger.domain.events import EVENTS_BY_TOPIC, LedgerEvent, upcast

_EXCLUDED = {"originator_id", "originator_version"}


class OrjsonTranscoder(Transcoder):
    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)


def canonical_state(event: LedgerEvent) -> bytes:
    """The stored state of an event as pydantic writes it: its JSON without the stream id
    and version, with its schema version first. The definition of the stored bytes."""
    body = event.model_dump_json(exclude=_EXCLUDED).encode()
    return b'{"schema_version":%d,' % event.schema_version + body[1:]


@functools.cache
def _layout(cls: type[LedgerEvent]) -> tuple[tuple[str, ...], bytes, tuple[str, ...]]:
    """(every field name in declaration order, the stored state's opening bytes, the
    names of its instants: fields of type datetime or datetime | None)."""
    instants = tuple(name for name, info in cls.model_fields.items()
                     if datetime in (info.annotation, *get_args(info.annotation)))
    return tuple(cls.model_fields), b'{"schema_version":%d,' % cls.schema_version, instants


def _whole_minutes(moment: datetime) -> bool:
    """Whether an instant's UTC offset is whole minutes (or it has none): orjson rounds
    the seconds of an offset (+00:00:30 as +00:01), pydantic drops them (+00:00)."""
    offset = moment.utcoffset()
    return offset is None or not (offset.seconds % 60 or offset.microseconds)


def _not_plain(value: object) -> Any:
    raise TypeError(type(value).__name__)


def encode_event(event: LedgerEvent) -> bytes:
    """The stored state of an event: exactly `canonical_state`'s bytes.

    An event whose values orjson writes as pydantic does (text, integers of up to 64
    bits, booleans, None, dates, instants whose offset is whole minutes, enumerations,
    and tuples and dicts of these) is written by orjson straight from its fields, in
    their declared order; one holding any other value (a decimal, a nested model, an
    offset with seconds) goes through `canonical_state`
    (tests/ledger/store/test_fast_encoding.py holds the two to the same bytes).
    """
    names, opening, instants = _layout(type(event))
    values = event.__dict__
    if tuple(values) != names:  # never expected: pydantic keeps fields in order
        return canonical_state(event)
    for name in instants:
        moment = values[name]
        if moment is not None and moment.tzinfo is not UTC and not _whole_minutes(moment):
            return canonical_state(event)
    state = values.copy()
    del state["originator_id"], state["originator_version"]
    try:
        body = orjson.dumps(state, default=_not_plain, option=orjson.OPT_UTC_Z)
    except TypeError:  # orjson.JSONEncodeError: a value it would not write as pydantic does
        return canonical_state(event)
    return opening + body[1:]


_VERSION_PREFIX = b'{"schema_version":'


def stored_version(state: object) -> int | None:
    """The schema version a stored state declares (1 when it names none); None if unreadable.

    The write path puts it first (`encode_event`), so it is read without parsing
    the rest; any other form is parsed in full. A state stored as anything but
    bytes (text put in with SQL) is unreadable.
    """
    if not isinstance(state, bytes | bytearray | memoryview):
        return None
    raw = bytes(state)
    if raw.startswith(_VERSION_PREFIX):
        end = raw.find(b",", len(_VERSION_PREFIX))
        digits = raw[len(_VERSION_PREFIX):end] if end > 0 else b""
        if digits.isdigit():
            return int(digits)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    version = data.get("schema_version", 1)
    return version if type(version) is int else None


def readable(topic: str, version: int | None) -> UnreadableEvent | None:
    """Why an event of this topic and stored version cannot be read, or None if it can."""
    cls = EVENTS_BY_TOPIC.get(topic)
    if cls is None:
        return UnreadableEvent(topic, version, None)
    if version is None or version < 1:
        return UnreadableEvent(topic, version, cls.schema_version,
                               problem="its schema version is missing or malformed")
    if version > cls.schema_version:
        return UnreadableEvent(topic, version, cls.schema_version)
    return None


def decode_event(
    topic: str, originator_id: uuid.UUID | str, originator_version: int, state: bytes,
    position: int | None = None,
) -> LedgerEvent:
    """The event a stored row holds, upcast to the version this code understands.

    Raises UnreadableEvent (with `position` when given) for an unknown topic, a
    newer schema version, or a stored form that does not decode: never a
    partial event, never a skipped field.
    """
    try:
        data: Any = orjson.loads(state)
    except orjson.JSONDecodeError as error:
        raise UnreadableEvent(topic, "?", EVENTS_BY_TOPIC[topic].schema_version
                              if topic in EVENTS_BY_TOPIC else None, position,
                              f"its state is not JSON ({error})") from None
    found = data.pop("schema_version", 1) if isinstance(data, dict) else None
    version: int | None = found if type(found) is int else None
    problem = readable(topic, version)
    if problem is not None:
        raise problem.at(position) if position else problem
    assert version is not None
    cls = EVENTS_BY_TOPIC[topic]
    try:
        if version != cls.schema_version:
            data = upcast(topic, version, data)
        data["originator_id"] = originator_id
        data["originator_version"] = originator_version
        return cls.model_validate(data)
    except (pydantic.ValidationError, KeyError, TypeError, ValueError) as error:
        first = str(error).splitlines()
        detail = " ".join(first[:3]) if first else type(error).__name__
        raise UnreadableEvent(topic, version, cls.schema_version, position,
                              f"it does not decode ({detail})") from None


INT64_MAX = 2**63 - 1
"""The largest integer both stores hold (SQLite INTEGER, PostgreSQL bigint)."""


def _past_64_bits(value: object) -> bool:
    """Whether a decoded JSON value holds an integer no store column can hold."""
    if isinstance(value, int | float):  # orjson reads integers past 64 bits as floats
        return not -INT64_MAX - 1 <= value <= INT64_MAX
    if isinstance(value, dict):
        return any(_past_64_bits(v) for v in value.values())
    if isinstance(value, list):
        return any(_past_64_bits(v) for v in value)
    return False


def decodes_exactly(topic: str, originator_id: uuid.UUID | str, originator_version: int,
                    state: bytes, position: int) -> None:
    """Raise UnreadableEvent (naming `position`) unless a stored row decodes as
    `decode_event` reads it and every number in it fits a 64-bit integer: one that
    does not could be shown by one read and break another (a projection's column,
    a sum). For rows that did not come through this code's write path."""
    decode_event(topic, originator_id, originator_version, state, position)
    if _past_64_bits(orjson.loads(state)):
        cls = EVENTS_BY_TOPIC[topic]
        raise UnreadableEvent(topic, stored_version(state), cls.schema_version, position,
                              "it holds a number past the 64-bit integers the stores hold")


class PydanticMapper(Mapper[uuid.UUID]):
    """Maps `LedgerEvent`s to eventsourcing's `StoredEvent`s and back."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        event: LedgerEvent = domain_event
        # Fields by position (originator_id, originator_version, topic, state): a class
        # called with keywords has them made into a dict first, on every event stored.
        return StoredEvent(event.originator_id, event.originator_version, event.topic,
                           encode_event(event))

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return decode_event(
            stored_event.topic,
            stored_event.originator_id,
            stored_event.originator_version,
            stored_event.state,
        )
