"""The catalogue's kinds checked from the JSON read with the log's head (no database)."""

from __future__ import annotations

import orjson
import pytest

from ledger.domain.errors import UnreadableEvent
from ledger.domain.events import EVENTS_BY_TOPIC
from ledger.store import catalogue

KNOWN = "PracticeRegistered"
CURRENT = EVENTS_BY_TOPIC[KNOWN].schema_version


def kinds(*rows: tuple[str, int, int]) -> str:
    return orjson.dumps([list(r) for r in rows]).decode()


def test_kinds_this_code_reads_pass() -> None:
    catalogue.check_kinds(kinds((KNOWN, CURRENT, 1), ("PracticeJoined", 1, 2)))
    catalogue.check_kinds(None)  # an empty catalogue
    catalogue.check_kinds("[]")


@pytest.mark.parametrize(("topic", "version"), [
    ("BudgetFrozen", 1),  # a kind this code does not know
    (KNOWN, CURRENT + 1),  # a newer schema version of one it does
    (KNOWN, 0),  # a malformed version
])
def test_a_catalogued_kind_this_code_cannot_read_is_refused_at_its_first_position(
        topic: str, version: int) -> None:
    with pytest.raises(UnreadableEvent) as refused:
        catalogue.check_kinds(kinds((KNOWN, CURRENT, 1), (topic, version, 17)))
    assert refused.value.position == 17
    assert refused.value.topic == topic
