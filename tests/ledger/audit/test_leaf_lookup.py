"""Finding the leaf that seals a position, on both stores, whatever gaps the positions have."""

from __future__ import annotations

import uuid

from ledger.auditlog.reader import snapshot
from ledger.auditlog.seal import seal_rows
from ledger.auditlog.tables import ensure_tables, transaction
from ledger.bootstrap import Ledger
from ledger.store.hooks import StoredRow

SEALED = (2, 3, 7, 8, 9, 20, 41)
"""Positions sealed, with gaps before, between and after them (events written around a
ledger, sequence values a PostgreSQL rollback used)."""


def rows(positions: tuple[int, ...]) -> list[StoredRow]:
    stream = uuid.uuid4()
    return [(p, stream, v, "ledger.domain.events:PracticeRegistered", b"{}")
            for v, p in enumerate(positions, start=1)]


def test_each_sealed_position_finds_its_leaf_and_no_other_position_finds_one(
        ledger: Ledger) -> None:
    dialect = ensure_tables(ledger.store)
    with transaction(ledger.store, commit=True) as curs:
        seal_rows(curs, dialect, rows(SEALED[:4]))
    with transaction(ledger.store, commit=True) as curs:
        seal_rows(curs, dialect, rows(SEALED[4:]))
    with snapshot(ledger.store) as reader:
        found = {p: reader.leaf_for_position(p) for p in range(-1, SEALED[-1] + 5)}
    assert {p: leaf[:2] for p, leaf in found.items() if leaf is not None} == {
        p: (i, p) for i, p in enumerate(SEALED)}


def test_no_position_finds_a_leaf_before_anything_is_sealed(ledger: Ledger) -> None:
    with snapshot(ledger.store) as reader:
        assert [reader.leaf_for_position(p) for p in (0, 1, 2)] == [None, None, None]
