"""An event's leaf hash is SHA-256(0x00 || its leaf input), as ledger/audit/leaf.py
describes the input: fixed vectors (worked out by building the input field by field),
and the hash of `leaf_input` for any event."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from ledger.audit import leaf
from ledger.audit.leaf import event_leaf_hash, leaf_input
from ledger.audit.merkle import leaf_hash

STREAM = uuid.UUID("9b52fc86-0849-5357-b8e4-21bd14b8d463").bytes


def test_leaf_hashes_of_known_events() -> None:
    assert event_leaf_hash(12345, STREAM, 7, "SpendCommitted", b'{"schema_version":1}') == (
        bytes.fromhex("c4849dd46e73a9c2269239746ddbea014790d6909a8bae24b66cde1628b1ca13"))
    assert event_leaf_hash(1, STREAM, 1, "Café", b"") == bytes.fromhex(
        "599ff99e67723a75af188384cdbdc194cfe986d2cc50f61a47a026fb9a416d77")


def test_a_leaf_input_is_laid_out_field_by_field() -> None:
    state = b'{"a":1}'
    assert leaf_input(2**40 + 3, STREAM, 9, "Café", state) == (
        b"\x01" + (2**40 + 3).to_bytes(8, "big") + STREAM + (9).to_bytes(8, "big")
        + (5).to_bytes(2, "big") + "Café".encode() + (7).to_bytes(4, "big") + state)


@given(position=st.integers(0, 2**63 - 1), stream=st.binary(min_size=16, max_size=16),
       version=st.integers(0, 2**63 - 1), topic=st.text(max_size=40),
       state=st.binary(max_size=600))
def test_the_leaf_hash_is_the_hash_of_the_leaf_input(
    position: int, stream: bytes, version: int, topic: str, state: bytes
) -> None:
    expected = leaf_hash(leaf_input(position, stream, version, topic, state))
    assert event_leaf_hash(position, stream, version, topic, state) == expected
    assert event_leaf_hash(position, stream, version, topic, state) == expected  # remembered


def test_topics_past_the_limit_are_still_hashed_alike() -> None:
    for n in range(leaf._SHAPES_LIMIT + 5):
        topic = f"Topic{n}"
        assert event_leaf_hash(n, STREAM, n, topic, b"{}") == leaf_hash(
            leaf_input(n, STREAM, n, topic, b"{}"))
    assert len(leaf._SHAPES) <= leaf._SHAPES_LIMIT
