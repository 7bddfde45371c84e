"""The aggregate base: state is a fold of events; new events are pending until saved."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar, Self, TypeVar

from ledger.domain.errors import NotAuthorised
from ledger.domain.events import LedgerEvent
from ledger.domain.trusted import construct
from ledger.domain.values import Actor, Role

E = TypeVar("E", bound=LedgerEvent)


@dataclass(slots=True)
class Context:
    """Who issues a command, under which id, effective when and recorded when."""

    actor: Actor
    command_id: str
    effective_on: date
    recorded_at: datetime
    reason: str | None = None
    # Every event the command triggers, across aggregates, in the order triggered;
    # the application saves them in this order, so positions follow cause.
    journal: list[LedgerEvent] = field(default_factory=list, compare=False)

    def event_fields(self) -> dict[str, Any]:
        return {
            "actor": str(self.actor),
            "command_id": self.command_id,
            "effective_on": self.effective_on,
            "recorded_at": self.recorded_at,
            "reason": self.reason,
        }

    def require_role(self, *roles: Role, what: str) -> None:
        if self.actor.role not in roles:
            allowed = " or ".join(str(r) for r in roles)
            raise NotAuthorised("authority", f"only {allowed} may {what}; {self.actor} may not")


Handler = Callable[[Any, Any], None]


class Aggregate:
    """A stream of events and the state they fold to.

    Subclasses register one `apply` function per event type with `@applies`.
    """

    _handlers: ClassVar[dict[type[LedgerEvent], Handler]]

    def __init__(self, aggregate_id: uuid.UUID) -> None:
        self.id = aggregate_id
        self.version = 0
        self._pending: list[LedgerEvent] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._handlers = {}
        for attr in vars(cls).values():
            event_type = getattr(attr, "_applies_to", None)
            if event_type is not None:
                cls._handlers[event_type] = attr

    @classmethod
    def from_events(cls, aggregate_id: uuid.UUID, events: list[LedgerEvent]) -> Self:
        aggregate = cls(aggregate_id)
        for event in events:
            aggregate.apply(event)
        return aggregate

    def apply(self, event: LedgerEvent) -> None:
        version = event.originator_version  # read once: through pydantic's __getattr__ hook
        if version != self.version + 1:
            msg = f"event version {version} does not follow {self.version}"
            raise ValueError(msg)
        self._handlers[type(event)](self, event)
        self.version = version

    def trigger(self, event_type: type[E], context: Context, **fields: Any) -> E:
        event = event_type(
            originator_id=self.id,
            originator_version=self.version + 1,
            **context.event_fields(),
            **fields,
        )
        return self._triggered(event, context)

    def trigger_validated(self, event_type: type[E], context: Context, **fields: Any) -> E:
        """`trigger` for fields that are already valid values of the event's types.

        Each value must already be what the event's validation would make of it (a
        parsed command's field, a rule-checked amount): the event is built without
        validating again, and its stored form is the one `trigger` would give
        (tests/ledger/domain/test_validated_events.py).
        """
        values = context.event_fields()
        values["originator_id"] = self.id
        values["originator_version"] = self.version + 1
        values.update(fields)
        if len(values) != len(fields) + 7:
            raise TypeError(f"{sorted(fields)} name a field of the context's")
        return self._triggered(construct(event_type, values), context)

    def _triggered(self, event: E, context: Context) -> E:
        self.apply(event)
        self._pending.append(event)
        context.journal.append(event)
        return event

    def collect_events(self) -> list[LedgerEvent]:
        events, self._pending = self._pending, []
        return events

    @property
    def pending_events(self) -> tuple[LedgerEvent, ...]:
        return tuple(self._pending)


def applies(event_type: type[E]) -> Callable[[Callable[[Any, E], None]], Callable[[Any, E], None]]:
    """Mark a method as the fold of one event type into the aggregate's state."""

    def mark(func: Callable[[Any, E], None]) -> Callable[[Any, E], None]:
        func._applies_to = event_type  # type: ignore[attr-defined]
        return func

    return mark
