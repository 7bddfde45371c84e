"""Loading aggregates for a batch of commands, and collecting what they record."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, TypeVar

from eventsourcing.persistence import StoredEvent

from ledger.domain.access import AccessRegister
from ledger.domain.aggregate import Aggregate
from ledger.domain.budget import Budget
from ledger.domain.events import (
    ACCESS_STREAM,
    LedgerEvent,
    budget_stream,
    consortium_stream,
    pool_stream,
    practice_stream,
)
from ledger.domain.organisations import Consortium, Practice
from ledger.domain.pool import RiskPool
from ledger.domain.values import FinancialYear
from ledger.store.recorders import Indexes, Receipt, RefEntry, StreamRewritten

A = TypeVar("A", bound=Aggregate)


class AggregateCache:
    """Aggregates kept between commands, fast-forwarded from the store on each load.

    Fast-forwarding (one indexed query for events after the cached version) keeps
    loads cheap however long a stream grows, and still sees other writers' events.
    Each aggregate is kept with the stored state of the event at its version (its
    seal), under its stream id's 128-bit integer (`uuid.UUID.int`: a UUID is hashed by
    Python code, an int by C). When the query reads the store, it also reads the cached
    version's event: unless that is the very event the aggregate has (its seal, byte
    for byte), the log was rewritten under the process (a backup restored, with fewer
    events or with others in their place), and the aggregate is loaded again from the
    log.
    """

    def __init__(self, maxsize: int = 20_000) -> None:
        self._items: OrderedDict[int, tuple[Aggregate, bytes | None]] = OrderedDict()
        self._maxsize = maxsize

    def get(self, stream_id: uuid.UUID) -> tuple[Aggregate, bytes | None] | None:
        """The aggregate kept for the stream and its seal (None before its first save)."""
        key = stream_id.int
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, aggregate: Aggregate, seal: bytes | None) -> None:
        key = aggregate.id.int
        self._items[key] = (aggregate, seal)
        self._items.move_to_end(key)
        while len(self._items) > self._maxsize:
            self._items.popitem(last=False)

    def written(self, stored: Sequence[StoredEvent]) -> None:
        """Events just written, as stored: the last of each stream is the seal of the
        aggregate kept for it (the one that recorded them)."""
        last: dict[int, bytes] = {}
        for s in stored:
            key = s.originator_id
            last[key.int if isinstance(key, uuid.UUID) else uuid.UUID(key).int] = s.state
        for stream_id, state in last.items():
            item = self._items.get(stream_id)
            if item is not None:
                self._items[stream_id] = (item[0], state)

    def evict(self, stream_ids: Iterable[uuid.UUID]) -> None:
        self.evict_keys(stream_id.int for stream_id in stream_ids)

    def evict_keys(self, keys: Iterable[int]) -> None:
        """`evict` of the streams whose ids' integers (`uuid.UUID.int`) are `keys`."""
        for key in keys:
            self._items.pop(key, None)

    def clear(self) -> None:
        """Forget every aggregate kept (what was kept may never have been written)."""
        self._items.clear()


class StoreReads(Protocol):
    """What a unit of work reads from the store (EventStore; ledger apply's pipeline
    answers some of it from batches written but not yet committed)."""

    def follow(self, stream_id: uuid.UUID, version: int, held: bytes | None
               ) -> tuple[list[LedgerEvent], bytes | None]: ...

    def receipts(self, command_ids: Sequence[str]) -> dict[str, Receipt]: ...

    def ref(self, ref: str) -> RefEntry | None: ...

    def refs(self, refs: Sequence[str]) -> dict[str, RefEntry]: ...

    def budget_years(self, practice: str) -> list[str]: ...

    def affiliations(self, practices: Sequence[str]) -> dict[str, list[str]]: ...


class UnitOfWork:
    """One transaction's worth of commands: the aggregates they touch and their events."""

    def __init__(self, store: StoreReads, cache: AggregateCache) -> None:
        self.store = store
        self.cache = cache
        # By stream id's integer, as AggregateCache keeps them.
        self.touched: dict[int, Aggregate] = {}
        self.events: list[LedgerEvent] = []
        self.receipts: list[Receipt] = []
        self.new_refs: dict[str, RefEntry] = {}
        self.known_refs: dict[str, RefEntry | None] = {}
        self.affiliations: dict[str, set[str]] = {}
        self.new_affiliations: set[tuple[str, str]] = set()
        self.new_budget_years: set[tuple[str, str]] = set()
        # The touched aggregates by natural key (a practice's code, (consortium, code),
        # (practice, year)): found without hashing a stream id.
        self._by_key: dict[object, Aggregate] = {}

    def _load(self, stream_id: uuid.UUID, empty: Callable[[], A], kind: type[A]) -> A:
        key = stream_id.int
        aggregate = self.touched.get(key)
        if aggregate is None:
            cached = self.cache.get(stream_id)
            seal = None
            if cached is not None and isinstance(cached[0], kind) and cached[1] is not None:
                aggregate, seal = cached
            else:
                aggregate = empty()
            try:
                events, seal = self.store.follow(stream_id, aggregate.version, seal)
            except StreamRewritten:  # the cache is not the log's: start from the log
                aggregate = empty()
                events, seal = self.store.follow(stream_id, 0, None)
            for event in events:
                aggregate.apply(event)
            self.touched[key] = aggregate
            if cached is None or aggregate is not cached[0] or seal is not cached[1]:
                self.cache.put(aggregate, seal)  # else kept as it is, `get` made it recent
        assert isinstance(aggregate, kind)
        return aggregate

    def practice(self, code: str) -> Practice:
        found = self._by_key.get(code)
        if type(found) is Practice:
            return found
        stream_id = practice_stream(code)
        practice = self._load(stream_id, lambda: Practice(stream_id), Practice)
        self._by_key[code] = practice
        return practice

    def consortium(self, code: str) -> Consortium:
        found = self._by_key.get(("consortium", code))
        if type(found) is Consortium:
            return found
        stream_id = consortium_stream(code)
        consortium = self._load(stream_id, lambda: Consortium(stream_id), Consortium)
        self._by_key["consortium", code] = consortium
        return consortium

    def budget(self, practice: str, year: FinancialYear) -> Budget:
        found = self._by_key.get((practice, year.start_year))
        if type(found) is Budget:
            return found
        budget = self._load(budget_stream(practice, year.text),
                            lambda: Budget.empty(practice, year), Budget)
        self._by_key[practice, year.start_year] = budget
        return budget

    def adopt(self, aggregate: Aggregate) -> None:
        """Hold `aggregate` (one just created by a command) in place of what its stream
        held: later commands of this unit, and of later units, see it."""
        self.touched[aggregate.id.int] = aggregate
        self.cache.put(aggregate, None)
        self._by_key.clear()

    def pool(self, consortium: str, year: str) -> RiskPool:
        return self._load(
            pool_stream(consortium, year), lambda: RiskPool.empty(consortium, year), RiskPool
        )

    def access(self) -> AccessRegister:
        return self._load(ACCESS_STREAM, AccessRegister, AccessRegister)

    def prefetch_affiliations(self, practices: Iterable[str]) -> None:
        wanted = sorted({p for p in practices if p not in self.affiliations})
        if wanted:
            found = self.store.affiliations(wanted)
            for practice in wanted:
                self.affiliations[practice] = set(found.get(practice, ()))

    def consortia_of(self, practice: str) -> list[str]:
        known = self.affiliations.get(practice)
        if known is None:
            self.prefetch_affiliations([practice])
            known = self.affiliations[practice]
        return sorted(known)

    def affiliate(self, practice: str, consortium: str) -> None:
        self.prefetch_affiliations([practice])
        if consortium not in self.affiliations[practice]:
            self.affiliations[practice].add(consortium)
            self.new_affiliations.add((practice, consortium))

    def budget_years(self, practice: str) -> list[str]:
        known = set(self.store.budget_years(practice))
        return sorted(known | {y for p, y in self.new_budget_years if p == practice})

    def opened_budget(self, practice: str, year: str) -> None:
        self.new_budget_years.add((practice, year))

    def prefetch_refs(self, refs: Iterable[str]) -> None:
        wanted = [r for r in refs if r not in self.known_refs and r not in self.new_refs]
        if wanted:
            found = self.store.refs(wanted)
            for ref in wanted:
                self.known_refs[ref] = found.get(ref)

    def ref(self, ref: str) -> RefEntry | None:
        if ref in self.new_refs:
            return self.new_refs[ref]
        if ref not in self.known_refs:
            self.known_refs[ref] = self.store.ref(ref)
        return self.known_refs[ref]

    def record(self, journal: list[LedgerEvent], receipt: Receipt,
               refs: Iterable[RefEntry] = ()) -> None:
        self.events.extend(journal)
        self.receipts.append(receipt)
        for entry in refs:
            self.new_refs[entry.ref] = entry

    def indexes(self) -> Indexes:
        # Most commands join nothing and open no budget: nothing to sort (sorted() of an
        # empty set costs as much as the rest of this).
        affiliations, budget_years = self.new_affiliations, self.new_budget_years
        # Receipts, refs, affiliations and budget years by position: a class called with
        # keywords has them made into a dict first.
        return Indexes(self.receipts, list(self.new_refs.values()),
                       sorted(affiliations) if affiliations else (),
                       sorted(budget_years) if budget_years else ())

    def discard(self) -> None:
        """Forget every aggregate this unit touched: their unsaved state is void."""
        self.cache.evict_keys(self.touched)
        self.touched.clear()
        self._by_key.clear()

    def committed(self) -> None:
        for aggregate in self.touched.values():
            aggregate.collect_events()
