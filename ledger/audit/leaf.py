"""What one stored event contributes to the log: its leaf input and leaf hash. No I/O.

Leaf input, version 1 (all integers big-endian):

    0x01                      leaf format version
    uint64  position          global position (notification id) of the event
    16 bytes stream id        the aggregate's UUID, raw bytes
    uint64  version           the event's version in its stream
    uint16  len(topic) || topic (UTF-8)
    uint32  len(state) || state   the stored state bytes exactly as in the database
                                  (JSON holding recorded_at, actor, amounts, ...)

Leaf hash = SHA-256(0x00 || leaf input), as RFC 6962 hashes leaves. Every byte the
store keeps for an event is covered, so editing any of them (an amount, an actor,
recorded_at, the topic, the stream or its version) or moving the event to another
position changes the leaf.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass

LEAF_FORMAT = 1
LEAF_ENCODING = "ledger-event-v1"

_HEAD = struct.Struct(">BBQ16sQH")
_LEN = struct.Struct(">I")
_sha256 = hashlib.sha256


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An event exactly as stored: the bytes a leaf covers."""

    position: int
    stream_id: bytes  # 16 raw bytes
    version: int
    topic: str
    state: bytes

    @property
    def stream_uuid(self) -> uuid.UUID:
        return uuid.UUID(bytes=self.stream_id)

    def leaf_input(self) -> bytes:
        return leaf_input(self.position, self.stream_id, self.version, self.topic, self.state)

    def leaf_hash(self) -> bytes:
        return event_leaf_hash(self.position, self.stream_id, self.version, self.topic, self.state)


def leaf_input(position: int, stream_id: bytes, version: int, topic: str, state: bytes) -> bytes:
    topic_bytes = topic.encode()
    return (
        _HEAD.pack(0, LEAF_FORMAT, position, stream_id, version, len(topic_bytes))[1:]
        + topic_bytes
        + _LEN.pack(len(state))
        + state
    )


def event_leaf_hash(
    position: int, stream_id: bytes, version: int, topic: str, state: bytes
) -> bytes:
    """SHA-256(0x00 || leaf input), without building the input twice: all of it before
    the state packed in one call, by a packer made once for the topic."""
    shape = _SHAPES.get(topic)
    if shape is None:
        shape = _shape(topic)
    pack, size, encoded = shape
    return _sha256(
        pack(0, LEAF_FORMAT, position, stream_id, version, size, encoded, len(state)) + state
    ).digest()


_SHAPES: dict[str, tuple[Callable[..., bytes], int, bytes]] = {}
_SHAPES_LIMIT = 1_024


def _shape(topic: str) -> tuple[Callable[..., bytes], int, bytes]:
    """The packer of 0x00 and the leaf input up to its state for events of `topic` (as
    `_HEAD`, the topic and `_LEN` would pack them), its length and UTF-8 bytes;
    remembered (at most _SHAPES_LIMIT)."""
    encoded = topic.encode()
    if len(_SHAPES) >= _SHAPES_LIMIT:
        _SHAPES.clear()
    shape = _SHAPES[topic] = (
        struct.Struct(f"{_HEAD.format}{len(encoded)}s{_LEN.format[1:]}").pack, len(encoded),
        encoded)
    return shape


def stream_bytes(value: object) -> bytes:
    """A stored stream id (UUID, 32-hex text, dashed text, 16 bytes) as 16 raw bytes.

    Anything else is not a stream id a ledger writes; it is hashed as its text so
    that the leaf no longer matches (a damaged row, reported as such).
    """
    if isinstance(value, uuid.UUID):
        return value.bytes
    if isinstance(value, str):
        try:
            return bytes.fromhex(value) if len(value) == 32 else uuid.UUID(value).bytes
        except ValueError:
            return value.encode()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


def state_bytes(value: object) -> bytes:
    """A stored state as the bytes written: SQLite gives back text for a state rewritten
    as text by SQL run around the ledger (it still decodes, so it is still an event)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    return str(value).encode()
