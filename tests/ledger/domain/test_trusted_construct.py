"""`construct` makes models without validating them, as `object.__new__` makes them."""

from __future__ import annotations

from ledger.application.commands import COMMANDS
from ledger.domain.events import EVENTS_BY_TOPIC


def test_no_event_or_command_makes_its_instances_other_than_object_does() -> None:
    own = [cls.__name__ for cls in [*EVENTS_BY_TOPIC.values(), *COMMANDS.values()]
           if cls.__new__ is not object.__new__]
    assert own == []
