"""A projection's bulk fold (the rebuild's) makes exactly the rows its applies make, in
their SQL form, for every event type, however the log is cut into batches."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ledger.domain.events import LedgerEvent
from ledger.store.mapper import encode_event
from projections.core import Key, MemoryState, Positioned, Table, Values, fold, positioned
from projections.materialise import _current_form, to_sql
from projections.registry import PROJECTIONS
from tests.ledger.domain.test_events import one_of_each
from tests.projections.builders import random_history


class Tables:
    """Rows a bulk fold writes (projections.core.Rows), written out like a flush."""

    def __init__(self) -> None:
        self.put: dict[str, dict[Key, Values | None]] = {}
        self.add: dict[str, dict[Key, list[int]]] = {}
        self.rows: dict[str, dict[Key, Values]] = {}

    def puts(self, table: Table) -> dict[Key, Values | None]:
        return self.put.setdefault(table.name, {})

    def adds(self, table: Table) -> dict[Key, list[int]]:
        return self.add.setdefault(table.name, {})

    def derives(self, _table: Table) -> bool:
        return False

    def write(self) -> None:
        for name, written in self.put.items():
            rows = self.rows.setdefault(name, {})
            for key, values in written.items():
                if values is None:
                    rows.pop(key, None)
                else:
                    rows[key] = values
            written.clear()
        for name, totals in self.add.items():
            rows = self.rows.setdefault(name, {})
            for key, deltas in totals.items():
                old = rows.get(key)
                rows[key] = tuple(deltas) if old is None else tuple(
                    a + b for a, b in zip(old, deltas, strict=True))
            totals.clear()


def as_sql(table: Table, rows: dict[Key, Values]) -> dict[Key, Values]:
    return {tuple(to_sql(c, v) for c, v in zip(table.key, key, strict=True)):
            tuple(to_sql(c, v) for c, v in zip(table.values, values, strict=True))
            for key, values in rows.items()}


def stored_fields(item: Positioned) -> dict[str, Any]:
    fields: dict[str, Any] = orjson.loads(encode_event(item.event))
    return fields


def bulk_rows(events: list[Positioned], cuts: int) -> dict[str, dict[Key, Values]]:
    tables = Tables()
    folds = [p.bulk(tables) for p in PROJECTIONS if p.bulk is not None]
    size = max(1, len(events) // cuts)
    for start in range(0, len(events), size):
        for item in events[start:start + size]:
            fields = stored_fields(item)
            for bulk in folds:
                handler = bulk.handlers.get(item.event.topic)
                if handler is not None:
                    handler(item.position, item.event.originator_version, fields)
        for bulk in folds:
            bulk.end_batch()
        tables.write()
    return tables.rows


def assert_same_rows(events: list[LedgerEvent], cuts: int) -> None:
    items = positioned(events)
    bulk = bulk_rows(items, cuts)
    assert all(p.bulk is not None for p in PROJECTIONS)
    for projection in PROJECTIONS:
        memory = fold(projection, items, MemoryState())
        for table in projection.tables:
            assert bulk.get(table.name, {}) == as_sql(table, memory.table(table)), table.name


@pytest.mark.parametrize("cuts", [1, 3])
def test_bulk_folds_make_the_rows_of_the_applies_for_every_event_type(cuts: int) -> None:
    assert_same_rows(one_of_each(), cuts)


@pytest.mark.parametrize(("seed", "cuts"), [(1, 1), (2, 7), (3, 40)])
def test_bulk_folds_make_the_rows_of_the_applies_on_random_histories(seed: int, cuts: int
                                                                     ) -> None:
    assert_same_rows(random_history(seed, 400).events, cuts)


def test_an_event_stored_in_an_older_schema_version_is_folded_as_this_version_stores_it(
) -> None:
    v1 = (b'{"schema_version":1,"recorded_at":"2024-03-01T09:00:00Z","effective_on":'
          b'"2024-03-01","actor":"allocator:Q71","command_id":"c-1","reason":null,'
          b'"practice":"A81001","name":"The Densham Surgery","list_size":4069,'
          b'"weighted_population":{"acute":4310},"allocator":"Q71"}')
    fields = _current_form("PracticeRegistered", "4ff89e4fada65648a445b40f0d87ffb9", 1, v1, 9)
    assert fields["schema_version"] == 2
    assert fields["weighted_population"] == {"acute": "4310"}
