"""The catalogue's check from the values read with the log's head (no database)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ledger.domain.errors import UnreadableEvent
from ledger.domain.events import EVENTS_BY_TOPIC
from ledger.store import catalogue
from ledger.store.dialect import Dialect

DIALECT = Dialect("sqlite", "", "stored_events")
KNOWN = "PracticeRegistered"


class Select:
    """A `select` that answers the kinds and the tail as given, and records what it ran."""

    def __init__(self, kinds: list[tuple[Any, ...]], tail: list[tuple[Any, ...]]) -> None:
        self.answers = [kinds, tail]
        self.asked: list[str] = []

    def __call__(self, statement: str, params: Any) -> list[tuple[Any, ...]]:
        self.asked.append(statement)
        return self.answers[len(self.asked) - 1]


def kinds(*rows: tuple[str, int, int]) -> str:
    return orjson.dumps([list(r) for r in rows]).decode()


def test_nothing_more_is_read_when_the_head_is_at_the_checked_position() -> None:
    select = Select([], [])
    version = EVENTS_BY_TOPIC[KNOWN].schema_version
    catalogue.check_probed(select, DIALECT, 40, 40, kinds((KNOWN, version, 1)))
    catalogue.check_probed(select, DIALECT, 0, 0, None)  # an empty log
    assert select.asked == []


@pytest.mark.parametrize(("topic", "version"), [
    ("BudgetFrozen", 1),  # a kind this code does not know
    (KNOWN, 99),  # a newer schema version of one it does
])
def test_a_catalogued_kind_this_code_cannot_read_is_refused_at_its_first_position(
        topic: str, version: int) -> None:
    select = Select([], [])
    known = EVENTS_BY_TOPIC[KNOWN].schema_version
    with pytest.raises(UnreadableEvent) as refused:
        catalogue.check_probed(select, DIALECT, 40, 40,
                               kinds((KNOWN, known, 1), (topic, version, 17)))
    assert refused.value.position == 17
    assert select.asked == []


def test_events_past_the_checked_position_are_read_and_checked() -> None:
    tail = [(41, "BudgetFrozen", b'{"schema_version":1}', "0" * 32, 1)]
    select = Select([], tail)
    with pytest.raises(UnreadableEvent) as refused:
        catalogue.check_probed(select, DIALECT, 41, 40, kinds())
    assert refused.value.position == 41
    assert len(select.asked) == 2  # the kinds, then the tail
