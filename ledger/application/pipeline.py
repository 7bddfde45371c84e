"""`ledger apply`'s batches, decided here while a second process appends the ones before.

Deciding a batch (reading what its commands need, running the rules, encoding the
events) and appending it (inserting the rows, sealing them into the Merkle log,
committing) each take about half of a batch's time: with the appending done by a
process of its own (ledger/store/appender.py), the two halves of consecutive batches
run on two cores at once.

A batch is decided against the log as it will be once the batches before it are
appended. What those batches record is kept here until they are committed, and the
reads of a batch are answered from it first (`follow`, `receipts`, `refs`, ...): a
command id or ref recorded by a batch still being appended is known; an aggregate it
changed is the one kept in the service's cache. A read that cannot be answered that
way waits for the appending to catch up and reads the store.

Each batch is appended only if the log's head is still the one it was decided
against: if another writer appended anything meanwhile, that batch and every later
one are void. They, and every batch after them, are then run the ordinary way
(`LedgerService.execute_batch`, reading and writing in one transaction), as are all
of them should the appending process fail or end. A batch's outcomes are told
(`on_settled`) only once it is committed, in order, so every line keeps its own
idempotency and atomicity exactly as when it is run the ordinary way.
"""

from __future__ import annotations

import collections
import contextlib
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent

from ledger.application.service import LedgerService, Outcome, Request, reads_of
from ledger.application.unit_of_work import UnitOfWork
from ledger.domain.events import LedgerEvent
from ledger.interrupts import ctrl_c_held
from ledger.store.appender import Appender, AppendFailed, Plain, plain
from ledger.store.mapper import encode_event
from ledger.store.recorders import Receipt, RefEntry

T = TypeVar("T")
V = TypeVar("V")

DEPTH = 2
"""Batches handed to the appending process and not yet known to be committed, at most,
while the next is decided: enough to keep it busy when batches take uneven times."""


class _Void(Exception):  # noqa: N818 - a condition
    """What is being decided rests on batches that were not appended."""


@dataclass(slots=True)
class _Appending(Generic[T]):
    """A batch handed to the appending process: what it records, until committed."""

    tag: T
    requests: Sequence[Request]
    outcomes: list[Outcome]
    receipts: dict[str, Receipt]
    refs: dict[str, RefEntry]
    affiliations: set[tuple[str, str]]
    budget_years: set[tuple[str, str]]
    streams: dict[uuid.UUID, tuple[int, bytes]] = field(default_factory=dict)
    """Each stream's last version in the batch, and the stored state of its event."""


class Pipeline(Generic[T]):
    """Runs batches of requests, telling `on_settled(tag, outcomes)` as each is committed,
    in the order given. Use `pipelined` to make one."""

    def __init__(self, service: LedgerService, appender: Appender,
                 on_settled: Callable[[T, list[Outcome]], None]) -> None:
        self.service = service
        self.store = service.store
        self._appender: Appender | None = appender
        self._on_settled = on_settled
        self._appending: collections.deque[_Appending[T]] = collections.deque()

    # --- running batches --------------------------------------------------------------

    def submit(self, tag: T, requests: Sequence[Request]) -> None:
        """Decide `requests` and hand them over to be appended (or, once the appending
        has stopped, run them the ordinary way). Raises what `execute_batch` raises."""
        if self._appender is None:
            self._on_settled(tag, self.service.execute_batch(requests))
            return
        try:
            appending, batch = self._decided(tag, requests)
        except (_Void, IntegrityError, OperationalError):  # the ordinary way retries these
            self._run_void()
            self._on_settled(tag, self.service.execute_batch(requests))
            return
        try:
            with ctrl_c_held():  # a batch sent is a batch tracked, and never sent in part
                self._appending.append(appending)
                self._appender.send_plain(batch)
        except AppendFailed:
            self._run_void()
            return
        while len(self._appending) > DEPTH:
            self._settle_oldest()

    def finish(self) -> None:
        """Wait until every batch submitted is settled."""
        while self._appending:
            self._settle_oldest()

    def _decided(self, tag: T, requests: Sequence[Request]) -> tuple[_Appending[T], Plain]:
        """The batch decided, as tracked here and as handed over. Its events are encoded
        once, into the columns the appending process inserts: each one's stored state is
        the one the store's mapper, `PydanticMapper`, gives: `encode_event`'s bytes."""
        uow = UnitOfWork(self, self.service.cache)
        try:
            outcomes = self.service.decide(uow, requests, reads_of(requests),
                                           stop_at_first_refusal=False)
        except BaseException:
            uow.discard()
            raise
        events = uow.events
        states = [encode_event(e) for e in events]
        indexes = uow.indexes()
        last: dict[uuid.UUID, tuple[LedgerEvent, bytes]] = {}
        for event, state in zip(events, states, strict=True):
            last[event.originator_id] = (event, state)
        self.service.cache.written([
            StoredEvent(e.originator_id, e.originator_version, e.topic, state)
            for e, state in last.values()])
        uow.committed()
        appending = _Appending(
            tag, requests, outcomes,
            {r.command_id: r for r in indexes.receipts},
            {r.ref: r for r in indexes.refs},
            set(indexes.affiliations), set(indexes.budget_years),
            {stream: (e.originator_version, state) for stream, (e, state) in last.items()})
        texts = {stream: stream.hex for stream in last}  # as the store keeps a stream id
        batch = plain([texts[e.originator_id] for e in events],
                      [e.originator_version for e in events], [e.topic for e in events],
                      states, [e.schema_version for e in events], indexes=indexes)
        return appending, batch

    def _settle_oldest(self) -> None:
        assert self._appender is not None
        try:
            _settle_next(self._appender, self._appending, self._on_settled)
        except AppendFailed:
            self._run_void()

    def _run_void(self) -> None:
        """The appending stopped: the batches it committed are settled with the outcomes
        they were decided with (`_stop_appending`), and the rest run the ordinary way,
        against the store as it is (the cache may hold what was never written)."""
        self._stop_appending(settle=True, quiet=False)
        self.service.cache.clear()
        while self._appending:
            void = self._appending.popleft()
            self._on_settled(void.tag, self.service.execute_batch(void.requests))

    def _stop_appending(self, *, settle: bool, quiet: bool) -> None:
        """End the appending process, telling the outcomes of every batch it committed:
        with `settle`, those it says it committed, as it says so (Ctrl-C stops that
        wait); then, Ctrl-C held, once it has ended (it commits what it was sent, unless
        it failed or was killed), those it committed without saying so (`_settle_held`).
        The batches it did not commit stay in `_appending`. With `quiet`, a store that
        cannot be read then tells nothing more (the run is stopping on an error of its
        own, the one raised); without, its error is raised."""
        appender, self._appender = self._appender, None
        if appender is None:
            return
        try:
            while settle and self._appending:
                _settle_next(appender, self._appending, self._on_settled)
        except AppendFailed:
            pass
        finally:
            with ctrl_c_held():
                appender.close()
                try:
                    self._settle_held()
                except Exception:
                    if not quiet:
                        raise

    def _settle_held(self) -> None:
        """Once the appending process has ended: tell the outcomes of the batches handed
        over that it committed without saying so (it died, or the run stopped listening,
        just after). They are committed in order, each whole or not at all, so those are
        the batches up to the last one whose events the store holds (the very events,
        `EventStore.holds`); a batch that records no event is told only when a later one
        is held."""
        held = 0
        for number, appending in enumerate(self._appending, start=1):
            first = next(iter(appending.streams.items()), None)
            if first is not None and self.store.holds(first[0], *first[1]):
                held = number
        for _ in range(held):
            done = self._appending.popleft()
            self._on_settled(done.tag, done.outcomes)

    def _catch_up(self) -> None:
        """Wait until every batch handed over is committed; _Void if one was not."""
        assert self._appender is not None
        while self._appending:
            try:
                _settle_next(self._appender, self._appending, self._on_settled)
            except AppendFailed:
                raise _Void from None

    def close(self, *, settle: bool) -> None:
        """Stop the appending process, telling the outcomes of the batches it committed;
        with `settle`, after waiting for those it still commits (a run stopped part way,
        by Ctrl-C or a failure, still says how far it got: every batch committed, and no
        other). What it did not commit is dropped."""
        try:
            self._stop_appending(settle=settle, quiet=True)
        finally:
            if self._appending:
                self._appending.clear()
                self.service.cache.clear()  # what was decided and not appended

    # --- reads of a batch being decided (unit_of_work.StoreReads) ---------------------

    def follow(self, stream_id: uuid.UUID, version: int, held: bytes | None
               ) -> tuple[list[LedgerEvent], bytes | None]:
        for appending in reversed(self._appending):
            last = appending.streams.get(stream_id)
            if last is None:
                continue
            if last == (version, held):  # the cache holds the aggregate as appended
                return [], held
            self._catch_up()
            break
        return self.store.follow(stream_id, version, held)

    def receipts(self, command_ids: Sequence[str]) -> dict[str, Receipt]:
        return self._pending_first(command_ids, lambda a: a.receipts, self.store.receipts)

    def ref(self, ref: str) -> RefEntry | None:
        for appending in self._appending:
            if ref in appending.refs:
                return appending.refs[ref]
        return self.store.ref(ref)

    def refs(self, refs: Sequence[str]) -> dict[str, RefEntry]:
        return self._pending_first(refs, lambda a: a.refs, self.store.refs)

    def _pending_first(self, keys: Sequence[str],
                       recorded: Callable[[_Appending[T]], dict[str, V]],
                       read: Callable[[Sequence[str]], dict[str, V]]) -> dict[str, V]:
        """What the batches being appended `recorded` under `keys`, and the store holds
        (`read`) under the others: the keys are unique (command ids, refs), so a key one
        of them recorded is in the store only once it is committed, the same."""
        pending: dict[str, V] = {}
        for appending in self._appending:
            pending.update(recorded(appending))
        found = read([k for k in keys if k not in pending])
        found.update((k, pending[k]) for k in keys if k in pending)
        return found

    def budget_years(self, practice: str) -> list[str]:
        years = set(self.store.budget_years(practice))
        for appending in self._appending:
            years.update(y for p, y in appending.budget_years if p == practice)
        return sorted(years)

    def affiliations(self, practices: Sequence[str]) -> dict[str, list[str]]:
        found = {p: set(c) for p, c in self.store.affiliations(practices).items()}
        wanted = set(practices)
        for appending in self._appending:
            for practice, consortium in appending.affiliations:
                if practice in wanted:
                    found.setdefault(practice, set()).add(consortium)
        return {p: sorted(c) for p, c in found.items()}


def _settle_next(appender: Appender, appending: collections.deque[_Appending[T]],
                 on_settled: Callable[[T, list[Outcome]], None]) -> None:
    """Wait for the oldest batch handed over to be committed, then tell its outcomes;
    AppendFailed if it was not appended. Ctrl-C stops the wait, but not the reading of
    the answer and the telling: an answer read and not told would leave the batches
    and their answers out of step, and the run waiting for an answer that never comes."""
    appender.wait()
    with ctrl_c_held():
        appender.receive()
        done = appending.popleft()
        on_settled(done.tag, done.outcomes)


@contextlib.contextmanager
def pipelined(service: LedgerService, on_settled: Callable[[T, list[Outcome]], None]
              ) -> Iterator[Pipeline[T] | None]:
    """A pipeline for `service`'s ledger, or None where batches cannot be appended by a
    second process (see appender.Appender.start). On leaving, every batch submitted is
    settled; on leaving by an exception, those already being committed are, and the
    rest are dropped (they were never committed)."""
    appender = (Appender.start(service.store, service.store.readable_head()[0])
                if Appender.possible(service.store) else None)
    if appender is None:
        yield None
        return
    pipeline: Pipeline[T] = Pipeline(service, appender, on_settled)
    try:
        yield pipeline
        pipeline.finish()
    except BaseException:
        try:
            pipeline.close(settle=True)
        finally:
            # What was decided may never have been handed over (an interrupt between the
            # two): none of it is kept.
            service.cache.clear()
        raise
    pipeline.close(settle=False)
