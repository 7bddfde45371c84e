"""The application service: commands in, events out, one transaction per unit of work.

Every write goes through `execute` (one command) or `execute_batch` (many, one
transaction). Both check the command id first (idempotency), run the domain with
the aggregates it needs, and append the events together with the command's
receipt. A version conflict from a concurrent writer voids the unit of work and
the commands are run again against fresh state (optimistic concurrency).
"""

from __future__ import annotations

import functools
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson
from eventsourcing.persistence import IntegrityError, OperationalError

from ledger.application import handlers
from ledger.application.commands import Command
from ledger.application.unit_of_work import AggregateCache, UnitOfWork
from ledger.domain.aggregate import Context
from ledger.domain.characters import parse_command_id
from ledger.domain.errors import (
    IdempotencyConflict,
    LedgerError,
    NotAuthorised,
    StoreUnavailable,
    UnreadableEvent,
)
from ledger.domain.events import LedgerEvent, stream_text
from ledger.domain.values import READ_ONLY_ROLES, Actor
from ledger.store.eventstore import EventStore
from ledger.store.recorders import Indexes, Reads, Receipt

Clock = Callable[[], datetime]

MAX_ATTEMPTS = 25


def system_clock() -> datetime:
    return datetime.now(tz=UTC)


@dataclass(slots=True)
class Answer:
    """What a command did; the same command id always gets the same answer."""

    command: str
    command_id: str
    summary: str
    effective_on: date | None
    events: tuple[dict[str, Any], ...]
    already_applied: bool = False

    def to_json(self) -> str:
        return orjson.dumps(
            {
                "command": self.command,
                "command_id": self.command_id,
                "summary": self.summary,
                "effective_on": self.effective_on,
                "events": self.events,
            }
        ).decode()

    @classmethod
    def from_json(cls, text: str) -> Answer:
        data = orjson.loads(text)
        on = data.get("effective_on")
        return cls(
            command=data["command"],
            command_id=data["command_id"],
            summary=data["summary"],
            effective_on=date.fromisoformat(on) if on else None,
            events=tuple(data["events"]),
            already_applied=True,
        )


@dataclass(slots=True)
class Request:
    """One command with who issues it and under which id."""

    command: Command
    actor: str
    command_id: str
    fingerprint: tuple[str, str] | None = None
    """(actor as parsed, the command's fingerprint for it), when taken beforehand (`ledger
    apply`'s parse process); used only for that actor."""


@dataclass(slots=True)
class Outcome:
    request: Request
    answer: Answer | None = None
    error: LedgerError | None = None

    @property
    def status(self) -> str:
        if self.error is not None:
            return "refused"
        assert self.answer is not None
        return "already applied" if self.answer.already_applied else "applied"


def reads_of(requests: Sequence[Request]) -> Reads:
    """What deciding `requests` reads first: their command ids, refs and practices."""
    if len(requests) == 1:  # `execute`'s one command: one practice at most, nothing to sort
        (request,) = requests
        values = request.command.__dict__  # as refs_named and practices_named read it
        ref, practice = values.get("ref"), values.get("practice")
        # Command ids, refs and practices by position: a class called with keywords has
        # them made into a dict first.
        return Reads([request.command_id], [ref] if isinstance(ref, str) else [],
                     [practice] if isinstance(practice, str) else [])
    commands = [r.command for r in requests]
    return Reads(
        command_ids=[r.command_id for r in requests],
        refs=list(handlers.refs_named(commands)),
        practices=sorted(set(handlers.practices_named(commands))),
    )


@dataclass
class LedgerService:
    store: EventStore
    clock: Clock = system_clock
    cache: AggregateCache = field(default_factory=AggregateCache)

    # --- one command -------------------------------------------------------------------

    def execute(self, command: Command, actor: str, command_id: str | None = None) -> Answer:
        """Run one command under `command_id` (a fresh random id when None).

        Raises InvalidInput for an empty, blank or malformed command id
        (ledger/domain/characters.py `parse_command_id`), before anything is read.
        """
        chosen = str(uuid.uuid4()) if command_id is None else parse_command_id(command_id)
        request = Request(command, actor, chosen)
        outcome = self.execute_batch([request])[0]
        if outcome.error is not None:
            raise outcome.error
        assert outcome.answer is not None
        return outcome.answer

    # --- many commands, one transaction ------------------------------------------------

    def execute_batch(
        self,
        requests: Sequence[Request],
        *,
        atomic: bool = False,
        stop_at_first_refusal: bool = False,
        decide_only: bool = False,
    ) -> list[Outcome]:
        """Run each request in order; refused ones record nothing, the rest commit together.

        With `atomic`, one refusal records nothing at all (file imports). With
        `stop_at_first_refusal`, requests after a refused one are not run. With
        `decide_only`, each request is decided against the log, under its write lock, as
        it would be, and nothing is recorded (a dry run): the outcomes say what a run
        would answer, refusals included.
        """
        reads = reads_of(requests)  # fetched with the store's lock
        for attempt in range(MAX_ATTEMPTS):
            units: list[UnitOfWork] = []
            try:
                outcomes = self.store.write(
                    functools.partial(self._work, units, requests, reads, atomic,
                                      stop_at_first_refusal, decide_only=decide_only),
                    reads,
                    written=self.cache.written,
                )
            except (IntegrityError, OperationalError) as error:
                # Another writer got there first (a stream version, a command id or a
                # ref is taken) or holds the lock: void everything and run again.
                # Anything else (a read-only ledger, a full disk) will not pass by
                # waiting: say what it is.
                for uow in units:
                    uow.discard()
                if not isinstance(error, IntegrityError) and not self.store.retryable(error):
                    raise self.store.fault(error) or StoreUnavailable(
                        "store", f"the ledger failed: {error}") from error
                time.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # noqa: S311 - jitter only
                continue
            except BaseException:
                for uow in units:
                    uow.discard()
                raise
            for uow in units:
                uow.committed()
            return outcomes
        raise StoreUnavailable(
            "concurrency", f"gave up after {MAX_ATTEMPTS} attempts: the ledger is too busy"
        )

    def _work(
        self,
        units: list[UnitOfWork],
        requests: Sequence[Request],
        reads: Reads,
        atomic: bool,
        stop_at_first_refusal: bool,
        *,
        decide_only: bool = False,
    ) -> tuple[list[LedgerEvent], Indexes, list[Outcome]]:
        """Reads and decisions of one attempt: (events to append, their indexes, outcomes).

        `reads` names the requests' command ids, refs and practices (`execute_batch`).
        """
        uow = UnitOfWork(self.store, self.cache)
        units.append(uow)
        outcomes = self.decide(uow, requests, reads,
                               stop_at_first_refusal=stop_at_first_refusal)
        if decide_only or (atomic and any(o.error for o in outcomes)):
            uow.discard()
            return [], Indexes(), outcomes
        return uow.events, uow.indexes(), outcomes

    def decide(
        self, uow: UnitOfWork, requests: Sequence[Request], reads: Reads, *,
        stop_at_first_refusal: bool,
    ) -> list[Outcome]:
        """Run each request against what `uow` reads, recording into `uow` the events
        and receipts of those that pass; their outcomes, in order. Nothing is written:
        the caller appends what `uow` holds (`execute_batch`, or ledger apply's
        pipeline). `reads` is `reads_of(requests)`."""
        receipts = uow.store.receipts(reads.command_ids)
        uow.prefetch_refs(reads.refs)
        uow.prefetch_affiliations(reads.practices)
        recorded_at = self.clock()
        outcomes: list[Outcome] = []
        for request in requests:
            try:  # the fingerprint names the actor as parsed: practice:a81001 is practice:A81001
                actor = Actor.parse(request.actor)
                named = str(actor)
                taken = request.fingerprint
                fingerprint = (taken[1] if taken is not None and taken[0] == named
                               else request.command.fingerprint(named))
            except LedgerError as error:
                outcomes.append(Outcome(request, error=error))
                if stop_at_first_refusal:
                    break
                continue
            earlier = receipts.get(request.command_id)
            if earlier is not None:
                outcomes.append(self._replayed(request, earlier, named))
                if stop_at_first_refusal and outcomes[-1].error:
                    break
                continue
            try:
                answer = self._apply(uow, request, actor, recorded_at, fingerprint)
            except UnreadableEvent:
                raise  # the whole log is unreadable here, not this one command
            except LedgerError as error:
                outcomes.append(Outcome(request, error=error))
                if stop_at_first_refusal:
                    break
                continue
            receipts[request.command_id] = uow.receipts[-1]
            outcomes.append(Outcome(request, answer))  # by position: no dict of keywords
        return outcomes

    def _replayed(self, request: Request, earlier: Receipt, actor: str) -> Outcome:
        if not request.command.matches(earlier.fingerprint, actor, request.actor):
            return Outcome(
                request,
                error=IdempotencyConflict(
                    "idempotency",
                    f"command id {request.command_id} was already used for a different command",
                ),
            )
        return Outcome(request, answer=Answer.from_json(earlier.answer))

    def _apply(
        self, uow: UnitOfWork, request: Request, actor: Actor, recorded_at: datetime,
        fingerprint: str,
    ) -> Answer:
        if actor.role in READ_ONLY_ROLES:
            raise NotAuthorised("authority", f"{actor} may not write: {actor.role}s only read")
        command = request.command
        handler = handlers.HANDLERS[type(command)]
        effective_on = command.on
        if effective_on is None:
            effective_on = handlers.effective_date(command, recorded_at.date(), uow)
        context = Context(actor, request.command_id, effective_on, recorded_at,
                          command.__dict__.get("reason"))
        try:
            handlers.require_in_existence(command, context, uow)
            result = handler(command, context, uow)
        except LedgerError:
            if context.journal:
                # Domain methods check every rule before triggering; a refusal after
                # an event would leave an aggregate half-changed. Never expected.
                uow.discard()
                raise RuntimeError("a refused command left events behind") from None
            raise
        answer = Answer(
            command.name,
            request.command_id,
            result.summary,
            effective_on,
            tuple([{"topic": e.topic, "stream": stream_text(e.originator_id),
                    "version": e.originator_version} for e in context.journal]),
        )
        receipt = Receipt(request.command_id, fingerprint, answer.to_json())
        uow.record(context.journal, receipt, result.refs)
        return answer
