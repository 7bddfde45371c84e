"""A unit of work loads aggregates through the process's cache, most recently used last."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from ledger.application.unit_of_work import AggregateCache, UnitOfWork
from ledger.domain.events import LedgerEvent, practice_stream
from ledger.domain.organisations import Practice
from ledger.store.recorders import Receipt, RefEntry


class NothingNew:
    """A store whose streams hold nothing after what the caller holds."""

    def follow(self, stream_id: uuid.UUID, version: int, held: bytes | None
               ) -> tuple[list[LedgerEvent], bytes | None]:
        return [], held

    def receipts(self, command_ids: Sequence[str]) -> dict[str, Receipt]:
        return {}

    def ref(self, ref: str) -> RefEntry | None:
        return None

    def refs(self, refs: Sequence[str]) -> dict[str, RefEntry]:
        return {}

    def budget_years(self, practice: str) -> list[str]:
        return []

    def affiliations(self, practices: Sequence[str]) -> dict[str, list[str]]:
        return {}


def kept(code: str, version: int = 3) -> Practice:
    practice = Practice(practice_stream(code))
    practice.version = version
    return practice


def test_an_aggregate_loaded_with_nothing_new_is_the_one_kept_with_its_seal() -> None:
    cache = AggregateCache()
    practice = kept("A81001")
    cache.put(practice, b"seal")
    loaded = UnitOfWork(NothingNew(), cache).practice("A81001")
    assert loaded is practice
    assert cache.get(practice.id) == (practice, b"seal")


def test_an_aggregate_loaded_with_nothing_new_is_the_last_the_cache_evicts() -> None:
    cache = AggregateCache(maxsize=2)
    first, second = kept("A81001"), kept("A81002")
    cache.put(first, b"first")
    cache.put(second, b"second")
    UnitOfWork(NothingNew(), cache).practice("A81001")  # used: now the most recent
    cache.put(kept("A81003"), b"third")
    assert cache.get(first.id) == (first, b"first")
    assert cache.get(second.id) is None
