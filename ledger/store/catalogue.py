"""Which kinds of event the log holds, so every read and write can refuse a log it cannot read.

    ledger_event_kinds     topic, schema version, first position: one row per kind stored
    ledger_kinds_checked   one row: every event up to this position is in the catalogue

The write path adds the kinds it stores in its own transaction, and first looks at
any event after the checked position (rows a writer put there some other way) the
same way. Reads look at the catalogue and at the events after the checked position.
A kind this code does not understand (an unknown topic, a newer schema version),
and an event after the checked position that does not decode exactly (a field
missing, unknown or malformed, a number past the stores' 64-bit integers), raises
UnreadableEvent naming the first position that holds it: the ledger fails
closed, whether the event is in the part of the log a command reads or not, and
whether or not a newer version of the ledger has already folded it into the
projections.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

from ledger.store.dialect import Cursor, Dialect
from ledger.store.mapper import decodes_exactly, readable, stored_version

Select = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
Kind = tuple[str, int | None]  # topic, stored schema version


def create_statements(dialect: Dialect) -> list[str]:
    big = "bigint" if dialect.kind == "postgres" else "INTEGER"
    return [
        dialect.sql(
            "CREATE TABLE IF NOT EXISTS {event_kinds} (topic TEXT NOT NULL, "
            f"version {big} NOT NULL, first_position {big} NOT NULL, "
            f"PRIMARY KEY (topic, version)){dialect.keyed}"
        ),
        dialect.sql(
            "CREATE TABLE IF NOT EXISTS {kinds_checked} (id integer PRIMARY KEY "
            f"CHECK (id = 1), position {big} NOT NULL){dialect.rewritten}"
        ),
    ]


def exists(select: Select, dialect: Dialect) -> bool:
    if dialect.kind == "postgres":
        found = select(dialect.sql("SELECT to_regclass(?)"),
                       (dialect.table("ledger_kinds_checked"),))
        return bool(found) and found[0][0] is not None
    found = select("SELECT 1 FROM sqlite_master WHERE name = 'ledger_kinds_checked'", ())
    return bool(found)


def check_statements(dialect: Dialect) -> list[tuple[str, tuple[Any, ...]]]:
    """The reads `check` makes on a catalogued ledger, (statement, parameters) each,
    so a write path can fetch them ahead with its lock."""
    return [
        (dialect.sql("SELECT topic, version, first_position FROM {event_kinds} "
                     "ORDER BY first_position"), ()),
        (dialect.sql("SELECT {position}, topic, state, originator_id, originator_version "
                     "FROM {events} WHERE {position} > "
                     "COALESCE((SELECT position FROM {kinds_checked} WHERE id = 1), 0) "
                     "ORDER BY {position}"), ()),
    ]


def check(select: Select, dialect: Dialect, *, catalogued: bool = True
          ) -> list[tuple[int, str, int]]:
    """Raise UnreadableEvent for the first kind this code cannot read; else the unchecked tail.

    Returns (position, topic, version) of the events after the checked position,
    for the write path to add to the catalogue. Without `catalogued` (an older
    ledger, read before any write made its catalogue) the whole log is the tail.
    """
    if catalogued:
        (kinds, no_params), (after_checked, none) = check_statements(dialect)
        for topic, version, first in select(kinds, no_params):
            problem = readable(str(topic), int(version))
            if problem is not None:
                raise problem.at(int(first))
        rows = select(after_checked, none)
    else:
        rows = select(dialect.sql("SELECT {position}, topic, state, originator_id, "
                                  "originator_version FROM {events} ORDER BY {position}"), ())
    return _checked_tail(rows, catalogued=catalogued)


def check_tail(select: Select, dialect: Dialect) -> None:
    """`check`'s read of the events after the checked position, alone (the kinds
    checked already, by `check_kinds`): UnreadableEvent for the first it cannot read."""
    after_checked, none = check_statements(dialect)[1]
    _checked_tail(select(after_checked, none), catalogued=True)


def _checked_tail(rows: Iterable[Sequence[Any]], *, catalogued: bool
                  ) -> list[tuple[int, str, int]]:
    tail: list[tuple[int, str, int]] = []
    for position, topic, state, stream, stream_version in rows:
        version = stored_version(state)
        problem = readable(str(topic), version)
        if problem is not None:
            raise problem.at(int(position))
        assert version is not None
        if catalogued:
            # Not written through this code's write path (which catalogues its own
            # events as it stores them): read it as strictly as `events` would, so a
            # row that does not decode stops every read and write, not one of them.
            decodes_exactly(str(topic), stream, int(stream_version), bytes(state),
                            int(position))
        tail.append((int(position), str(topic), version))
    return tail


def probe_columns(dialect: Dialect) -> str:
    """What `check` reads, as three scalar subqueries for one SELECT list (named
    `ledger_head`, `ledger_checked`, `ledger_kinds`).

    In order: the log's head (its highest position, 0 when empty), the checked
    position (0 before any), and the catalogue as JSON text, an array of
    [topic, version, first position] in first-position order (NULL when empty).
    `check_kinds` checks the catalogue; a head past the checked position means
    events to read and check as `check` does. A read that finds nothing unchecked
    makes one round trip for all of it.
    """
    if dialect.kind == "postgres":
        kinds = ("(SELECT json_agg(json_build_array(topic, version, first_position) "
                 "ORDER BY first_position)::text FROM {event_kinds})")
    else:
        kinds = ("(SELECT json_group_array(json_array(topic, version, first_position)) "
                 "FROM (SELECT topic, version, first_position FROM {event_kinds} "
                 "ORDER BY first_position))")
    return dialect.sql("(SELECT COALESCE(MAX({position}), 0) FROM {events}) AS ledger_head, "  # noqa: S608
                       "COALESCE((SELECT position FROM {kinds_checked} WHERE id = 1), 0) "
                       f"AS ledger_checked, {kinds} AS ledger_kinds")


def check_kinds(kinds: str | None) -> None:
    """Raise UnreadableEvent, at its first position, for the first kind in `kinds` (the
    catalogue as `probe_columns` reads it) this code cannot read."""
    for topic, version, first in orjson.loads(kinds or "[]"):
        problem = readable(str(topic), int(version))
        if problem is not None:
            raise problem.at(int(first))


def all_readable(kinds: Iterable[Sequence[Any]]) -> bool:
    """Whether this code reads every kind in `kinds`, (topic, version) pairs in any order
    (the version as an int or its text)."""
    return all(readable(str(topic), int(version)) is None for topic, version in kinds)


def record(cursor: Cursor, dialect: Dialect, rows: Iterable[tuple[int, str, int]],
           known: set[Kind]) -> set[Kind]:
    """Add the kinds of `rows` (position, topic, version) and move the checked position.

    `known` holds kinds already in the catalogue (skipped); returns the kinds added.
    """
    first: dict[Kind, int] = {}
    last = 0
    for position, topic, version in rows:
        kind = (topic, version)
        if kind not in known and kind not in first:
            first[kind] = position
        last = max(last, position)
    if first:
        cursor.executemany(
            dialect.sql("INSERT INTO {event_kinds} (topic, version, first_position) "
                        "VALUES (?, ?, ?) ON CONFLICT (topic, version) DO NOTHING"),
            [(topic, version, position) for (topic, version), position in first.items()],
        )
    if last:
        # Queued to go with the COMMIT where the cursor queues writes (PostgreSQL's
        # write transaction, ledger/store/postgres.py WriteCursor).
        # sqlite3's own cursor where eventsourcing's wraps it (one call less).
        write = (getattr(cursor, "write", None)
                 or getattr(cursor, "sqlite_cursor", cursor).execute)
        write(dialect.sql("INSERT INTO {kinds_checked} (id, position) VALUES (1, ?) "
                          "ON CONFLICT (id) DO UPDATE SET position = excluded.position"),
              (last,))
    return set(first)
