"""Histories of events built by hand, for folds and stores alike.

Events are the contract the read side folds, so tests build them directly (with
the right stream versions and recorded instants) instead of going through the
write path; each builder method records one event, a minute after the last.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ledger.domain import events as ev
from ledger.domain.events import LedgerEvent, budget_stream, consortium_stream, practice_stream
from ledger.domain.values import ELEMENTS, Element
from ledger.store.eventstore import EventStore
from ledger.store.recorders import Indexes

YEAR = "2024-25"
START = datetime(2024, 7, 1, 9, 0, tzinfo=UTC)


class History:
    def __init__(self, start: datetime = START) -> None:
        self.events: list[LedgerEvent] = []
        self.versions: dict[uuid.UUID, int] = {}
        self.now = start

    def _add(self, cls: type[LedgerEvent], stream: uuid.UUID, on: date, actor: str,
             **fields: Any) -> LedgerEvent:
        version = self.versions.get(stream, 0) + 1
        self.versions[stream] = version
        self.now += timedelta(minutes=1)
        event = cls(originator_id=stream, originator_version=version, recorded_at=self.now,
                    effective_on=on, actor=actor, command_id=f"c-{len(self.events) + 1}",
                    **fields)
        self.events.append(event)
        return event

    def _budget(self, cls: type[LedgerEvent], practice: str, on: date, actor: str = "",
                year: str = YEAR, **fields: Any) -> LedgerEvent:
        return self._add(cls, budget_stream(practice, year), on,
                         actor or f"practice:{practice}", practice=practice, year=year, **fields)

    # --- organisations ---
    def register(self, practice: str, on: date = date(2024, 4, 1)) -> LedgerEvent:
        return self._add(ev.PracticeRegistered, practice_stream(practice), on, "allocator:Q71",
                         practice=practice, name=f"Surgery {practice}", list_size=4000,
                         allocator="Q71")

    def form(self, consortium: str, on: date = date(2024, 4, 1)) -> LedgerEvent:
        return self._add(ev.ConsortiumFormed, consortium_stream(consortium), on,
                         "allocator:Q71", consortium=consortium, name=f"C {consortium}",
                         accountable_officer="Dr A")

    def join(self, consortium: str, practice: str, on: date) -> LedgerEvent:
        return self._add(ev.PracticeJoined, consortium_stream(consortium), on,
                         f"consortium:{consortium}", consortium=consortium, practice=practice)

    def leave(self, consortium: str, practice: str, on: date) -> LedgerEvent:
        return self._add(ev.PracticeLeft, consortium_stream(consortium), on,
                         f"consortium:{consortium}", consortium=consortium, practice=practice)

    def pool(self, consortium: str, basis_points: int, on: date) -> LedgerEvent:
        return self._add(ev.RiskPoolAgreed, consortium_stream(consortium), on,
                         f"consortium:{consortium}", consortium=consortium, year=YEAR,
                         top_slice_basis_points=basis_points)

    # --- budgets ---
    def allocate(self, practice: str, on: date, **amounts: int) -> LedgerEvent:
        return self._budget(ev.BudgetAllocated, practice, on, "allocator:Q71", allocator="Q71",
                            amounts_pence={Element(k.replace("_", "-")): v
                                           for k, v in amounts.items()})

    def adjust(self, practice: str, element: str, delta: int, on: date) -> LedgerEvent:
        return self._budget(ev.AllocationAdjusted, practice, on, "allocator:Q71",
                            element=Element(element), delta_pence=delta, reason="recount")

    def delegate(self, practice: str, elements: list[str], holder: str, on: date
                 ) -> LedgerEvent:
        return self._budget(ev.HoldingDelegated, practice, on,
                            elements=tuple(Element(e) for e in elements), holder=holder)

    def revoke(self, practice: str, elements: list[str], on: date) -> LedgerEvent:
        return self._budget(ev.DelegationRevoked, practice, on,
                            elements=tuple(Element(e) for e in elements))

    def opt_out(self, practice: str, holder: str, on: date) -> LedgerEvent:
        return self._budget(ev.OptedOut, practice, on, holder=holder, reason="merger talks")

    def opt_in(self, practice: str, on: date) -> LedgerEvent:
        return self._budget(ev.OptedIn, practice, on)

    def harden(self, practice: str, on: date, reason: str | None = None) -> LedgerEvent:
        return self._budget(ev.MadeHard, practice, on, "allocator:Q71", reason=reason)

    def soften(self, practice: str, on: date) -> LedgerEvent:
        return self._budget(ev.MadeIndicative, practice, on, "allocator:Q71")

    def commit(self, practice: str, ref: str, element: str, amount: int, on: date,
               overspend: int = 0) -> LedgerEvent:
        return self._budget(ev.SpendCommitted, practice, on, ref=ref, element=Element(element),
                            amount_pence=amount, provider="RTR", service="Hip replacement",
                            qs_codes=("QS3",), overspend_pence=overspend)

    def vary(self, practice: str, ref: str, amount: int, on: date) -> LedgerEvent:
        return self._budget(ev.CommitmentVaried, practice, on, ref=ref, amount_pence=amount)

    def settle(self, practice: str, ref: str, amount: int, on: date, final: bool = False
               ) -> LedgerEvent:
        return self._budget(ev.CommitmentSettled, practice, on, ref=ref, amount_pence=amount,
                            final=final)

    def cancel(self, practice: str, ref: str, on: date) -> LedgerEvent:
        return self._budget(ev.CommitmentCancelled, practice, on, ref=ref)

    def draw(self, practice: str, ref: str, consortium: str, amount: int, on: date
             ) -> LedgerEvent:
        return self._budget(ev.RiskPoolDrawn, practice, on, ref=ref, consortium=consortium,
                            amount_pence=amount)

    def give_back(self, practice: str, ref: str, consortium: str, amount: int, on: date
                  ) -> LedgerEvent:
        return self._budget(ev.RiskPoolReturned, practice, on, ref=ref, consortium=consortium,
                            amount_pence=amount)


def append(store: EventStore, events: list[LedgerEvent]) -> None:
    if events:
        store.append(events, Indexes())


def random_history(seed: int, size: int) -> History:
    """A random but coherent history: commitments only against refs that exist."""
    rng = random.Random(seed)
    h = History()
    practices = ["A81001", "A81002", "A81003", "B82001"]
    for p in practices:
        h.register(p)
    h.form("16C")
    h.form("07L")
    days = [date(2024, 4, 1) + timedelta(days=rng.randrange(365)) for _ in range(40)]
    open_refs: dict[str, tuple[str, int, int]] = {}  # ref -> practice, amount, settled
    allocated: set[str] = set()
    n = 0
    while len(h.events) < size:
        p = rng.choice(practices)
        on = rng.choice(days)
        choice = rng.random()
        if p not in allocated:
            h.allocate(p, date(2024, 4, 1), acute=rng.randrange(0, 10**7),
                       prescribing=rng.randrange(0, 10**6))
            allocated.add(p)
        elif choice < 0.08:
            h.join(rng.choice(["16C", "07L"]), p, on)
        elif choice < 0.1:
            h.pool(rng.choice(["16C", "07L"]), rng.randrange(1, 1000), on)
        elif choice < 0.2:
            h.delegate(p, rng.sample([str(e) for e in ELEMENTS], rng.randrange(1, 3)),
                       rng.choice(["consortium:16C", "practice:A81002", "consortium:07L"]), on)
        elif choice < 0.25:
            h.revoke(p, [str(rng.choice(ELEMENTS))], on)
        elif choice < 0.28:
            h.opt_out(p, "practice:B82001", on)
        elif choice < 0.31:
            h.opt_in(p, on)
        elif choice < 0.34:
            (h.harden if rng.random() < 0.5 else h.soften)(p, on)
        elif choice < 0.38:
            h.adjust(p, "acute", rng.choice([-1, 1]) * rng.randrange(1, 10**4), on)
        elif choice < 0.6 or not open_refs:
            n += 1
            ref = f"R-{n}"
            amount = rng.randrange(1, 10**5)
            h.commit(p, ref, rng.choice(["acute", "prescribing"]), amount, on)
            open_refs[ref] = (p, amount, 0)
        else:
            ref = rng.choice(sorted(open_refs))
            owner, amount, paid = open_refs[ref]
            what = rng.random()
            if what < 0.3:
                new = paid + rng.randrange(1, 10**5)
                h.vary(owner, ref, new, on)
                open_refs[ref] = (owner, new, paid)
            elif what < 0.6 and amount > paid:
                part = rng.randrange(1, amount - paid + 1)
                final = rng.random() < 0.3
                h.settle(owner, ref, part, on, final=final)
                if final:
                    del open_refs[ref]
                else:
                    open_refs[ref] = (owner, amount, paid + part)
            elif what < 0.7:
                h.draw(owner, ref, "16C", rng.randrange(1, 1000), on)
            else:
                h.cancel(owner, ref, on)
                del open_refs[ref]
    return h
