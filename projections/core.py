"""What every projection is: a name, the event types it handles, a pure apply per type.

A fold never touches a database. It reads the state it needs through `State`
(rows of its own tables, by key) and answers with row changes:

- `Put(table, key, values)`: the row at `key` becomes `values`;
- `Add(table, key, deltas)`: integer columns of the row at `key` grow by
  `deltas` (a missing row counts as zeros), so totals need no read;
- `Delete(table, key)`.

`MemoryState` applies changes to dictionaries: the unit tests and `replay` fold
with it, and the materialiser (projections/materialise.py) uses it as the
write-back cache in front of the SQL tables.

A projection may also give a bulk fold (`Projection.bulk`) for rebuilding from
zero: the same rules, written over each event's stored fields (the decoded JSON,
shared by every projection and never changed) into plain dictionaries of rows
already in their SQL form (dates and instants as ISO text, flags as 0/1), with
its state in memory. `Rows` is where it writes; the materialiser writes the
rows out after each batch. A rebuild with bulk folds gives the same rows as
catching up event by event (tests/projections/test_materialised.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple, Protocol

import orjson

from ledger.domain.events import EVENTS_BY_TOPIC, LedgerEvent
from ledger.store.mapper import decode_event

Key = tuple[Any, ...]
Values = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # "text" | "int" | "date" | "instant" | "bool"


def text(name: str) -> Column:
    return Column(name, "text")


def integer(name: str) -> Column:
    return Column(name, "int")


def day(name: str) -> Column:
    return Column(name, "date")


def instant(name: str) -> Column:
    return Column(name, "instant")


def flag(name: str) -> Column:
    return Column(name, "bool")


@dataclass(frozen=True, slots=True)
class Table:
    """A table of a projection: key columns, value columns, secondary indexes."""

    name: str
    key: tuple[Column, ...]
    values: tuple[Column, ...]
    indexes: tuple[tuple[str, ...], ...] = ()

    @property
    def columns(self) -> tuple[Column, ...]:
        return self.key + self.values


class Put(NamedTuple):
    table: Table
    key: Key
    values: Values


class Add(NamedTuple):
    table: Table
    key: Key
    deltas: tuple[int, ...]


class Delete(NamedTuple):
    table: Table
    key: Key


Change = Put | Add | Delete


class State(Protocol):
    """Read access to a projection's own rows, by key."""

    def get(self, table: Table, key: Key) -> Values | None: ...


@dataclass(frozen=True, slots=True)
class Positioned:
    """An event with its global position in the log."""

    position: int
    event: LedgerEvent


Apply = Callable[[State, Positioned], list[Change]]

# A bulk fold's handler: (position, stream version, the event's stored fields).
BulkApply = Callable[[int, int, dict[str, Any]], None]


class Rows(Protocol):
    """Where a bulk fold writes rows in their SQL form, one dictionary per table.

    `puts(table)[key] = values` sets a row (None deletes it); `adds(table)[key]`
    is a list of integer totals added to the row's (a missing row counts as zeros).
    The dictionaries are emptied in place each time they are written out.
    """

    def puts(self, table: Table) -> dict[Key, Values | None]: ...

    def adds(self, table: Table) -> dict[Key, list[int]]: ...

    def derives(self, table: Table) -> bool:
        """Whether the materialiser computes `table` itself after the fold, from the
        projection's other tables (`Projection.derived`): the fold then leaves it alone."""


class Bulk(Protocol):
    """A projection's fold for a rebuild from zero, over stored fields (see the module)."""

    @property
    def handlers(self) -> Mapping[str, BulkApply]:
        """The fold's handler per event topic."""

    def end_batch(self) -> None:
        """Write out what is kept back until a batch ends (every row is written by then)."""


@dataclass(frozen=True)
class Projection:
    """A read model: its name, its tables, and one pure apply per event topic.

    `bulk`, when given, makes the same rows as `applies` from an empty start, faster.
    `derived` names tables whose every row is an aggregate of the projection's other
    tables, each with the SELECT (SQLite) giving them, the tables it reads named in
    braces: a rebuild that holds all of those rows at once may run it instead.
    """

    name: str
    tables: tuple[Table, ...]
    applies: Mapping[str, Apply]
    description: str = ""
    bulk: Callable[[Rows], Bulk] | None = None
    derived: tuple[tuple[Table, str], ...] = ()

    @property
    def topics(self) -> frozenset[str]:
        return frozenset(self.applies)

    def apply(self, state: State, item: Positioned) -> list[Change]:
        handler = self.applies.get(item.event.topic)
        return handler(state, item) if handler else []


@dataclass
class MemoryState:
    """Tables as dictionaries. `complete` means a missing row does not exist."""

    rows: dict[str, dict[Key, Values]] = field(default_factory=dict)

    def get(self, table: Table, key: Key) -> Values | None:
        return self.rows.get(table.name, {}).get(key)

    def table(self, table: Table) -> dict[Key, Values]:
        return self.rows.setdefault(table.name, {})

    def apply(self, changes: Iterable[Change]) -> None:
        for change in changes:
            rows = self.table(change.table)
            if isinstance(change, Put):
                rows[change.key] = change.values
            elif isinstance(change, Add):
                old = rows.get(change.key)
                if old is None:
                    rows[change.key] = change.deltas
                else:
                    rows[change.key] = tuple(a + b for a, b in zip(old, change.deltas, strict=True))
            else:
                rows.pop(change.key, None)


def fold(projection: Projection, events: Iterable[Positioned],
         state: MemoryState | None = None) -> MemoryState:
    """Run a projection over events in memory (tests, replay)."""
    state = state if state is not None else MemoryState()
    for item in events:
        state.apply(projection.apply(state, item))
    return state


# --- decoding stored events fast -----------------------------------------------------

_object_setattr = object.__setattr__
_DAYS: dict[str, date] = {}  # business dates repeat: each is parsed once


def trusted_event(topic: str, originator_id: Any, version: int, stored: bytes,
                  position: int | None = None) -> LedgerEvent:
    """An event read back from the store, without validating it again.

    Every stored event was validated when it was recorded, so reading it back
    needs only JSON parsing and the two temporal fields; this is what lets a
    rebuild run at the speed of the log. Older schema versions go through the
    store's own decoder, which upcasts them.
    """
    data: dict[str, Any] = orjson.loads(stored)
    cls = EVENTS_BY_TOPIC[topic]
    if data.pop("schema_version", 1) != cls.schema_version:
        return decode_event(topic, originator_id, version, stored, position)
    data["originator_id"] = originator_id
    data["originator_version"] = version
    data["recorded_at"] = datetime.fromisoformat(data["recorded_at"])
    on = data["effective_on"]
    day = _DAYS.get(on)
    if day is None:
        if len(_DAYS) > 100_000:
            _DAYS.clear()
        day = _DAYS[on] = date.fromisoformat(on)
    data["effective_on"] = day
    event = cls.__new__(cls)
    _object_setattr(event, "__dict__", data)
    _object_setattr(event, "__pydantic_fields_set__", set(data))
    _object_setattr(event, "__pydantic_extra__", None)
    _object_setattr(event, "__pydantic_private__", None)
    return event


def add_to(totals: dict[Key, list[int]], key: Key, deltas: tuple[int, ...]) -> None:
    """Add integer deltas to a bulk fold's row of totals (a missing row counts as zeros)."""
    old = totals.get(key)
    if old is None:
        totals[key] = list(deltas)
    else:
        for i, delta in enumerate(deltas):
            old[i] += delta


class Fields:
    """Attribute access to an event's stored fields (a bulk fold's words and rules)."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.__dict__ = fields


def sql_instant(text: str) -> str:
    """A stored instant (`2024-04-01T08:00:00.020000Z`) as the tables hold it
    (`2024-04-01T08:00:00.020000+00:00`, microseconds always shown)."""
    if len(text) == 27 and text[26] == "Z" and text[19] == "." and text[10] == "T":
        return text[:26] + "+00:00"
    if len(text) == 20 and text[19] == "Z" and text[10] == "T":
        return text[:19] + ".000000+00:00"
    return datetime.fromisoformat(text).isoformat(timespec="microseconds")


def positioned(events: Sequence[LedgerEvent], start: int = 1) -> list[Positioned]:
    """Number events as the log would (tests)."""
    return [Positioned(start + i, e) for i, e in enumerate(events)]
