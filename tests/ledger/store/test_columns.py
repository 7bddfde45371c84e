"""A batch appended as columns (`EventStore.append_encoded`, the appending process of
`ledger apply`) stores what ordinary writes store: the same events at the same
positions, the same side-table rows, catalogue and Merkle log (leaves, nodes, head).

The log of one ledger, written command by command, is appended again to a new ledger
as columns, in one batch or two, and the two are compared table by table.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from ledger.auditlog.seal import MerkleSealing
from ledger.auditlog.verify import verify_store
from ledger.bootstrap import Ledger
from ledger.store.dialect import VALUES_ROWS, insert_values
from ledger.store.eventstore import EventStore, open_store
from ledger.store.mapper import stored_version
from ledger.store.recorders import BULK_ROWS, Columns
from tests.conftest import PG_BASE_URL, _drop_schema
from tests.ledger.application.scenario import A1, A2, commit, seed

TABLES = {
    "events": "SELECT {position}, originator_id, originator_version, topic, state "
              "FROM {events} ORDER BY {position}",
    "receipts": "SELECT command_id, fingerprint, answer FROM {commands} ORDER BY command_id",
    "refs": "SELECT ref, practice, year FROM {refs} ORDER BY ref",
    "affiliations": "SELECT practice, consortium FROM {affiliations} "
                    "ORDER BY practice, consortium",
    "budget years": "SELECT practice, year FROM {budget_years} ORDER BY practice, year",
    "kinds": "SELECT topic, version, first_position FROM {event_kinds} ORDER BY topic",
    "checked": "SELECT position FROM {kinds_checked}",
    "leaves": "SELECT leaf_index, position, stream_id, version, leaf_hash FROM {leaves} "
              "ORDER BY leaf_index",
    "nodes": "SELECT level, node_index, hash FROM {nodes} ORDER BY level, node_index",
    "head": "SELECT size, last_position, frontier, root FROM {tree}",
}


def rows(store: EventStore, table: str) -> list[tuple[Any, ...]]:
    dialect = store.recorder.dialect
    return [tuple(bytes(v) if isinstance(v, memoryview | bytearray) else
                  v.hex if isinstance(v, uuid.UUID) else v for v in row)
            for row in store.recorder.select_rows(dialect.sql(TABLES[table]), ())]


def columns_of(store: EventStore, start: int, end: int) -> Columns:
    """The events of `store` at positions start+1 to end, with every side-table row when
    `start` is 0, as columns."""
    events = [row for row in rows(store, "events") if start < row[0] <= end]
    side = {table: rows(store, table) if start == 0 else []
            for table in ("receipts", "refs", "affiliations", "budget years")}
    return Columns(
        [str(row[1]) for row in events], [row[2] for row in events],
        [row[3] for row in events], [bytes(row[4]) for row in events],
        [stored_version(row[4]) or 0 for row in events],
        [r[0] for r in side["receipts"]], [r[1] for r in side["receipts"]],
        [r[2].encode() for r in side["receipts"]], [r[0] for r in side["refs"]],
        [r[1] for r in side["refs"]], [r[2] for r in side["refs"]],
        [(r[0], r[1]) for r in side["affiliations"]],
        [(r[0], r[1]) for r in side["budget years"]])


@pytest.fixture
def other_db(ledger: Ledger, tmp_path: Path) -> Iterator[str]:
    """A new ledger's `--db` on the same store as `ledger`'s."""
    if ledger.store.target.kind == "sqlite":
        yield str(tmp_path / "again.db")
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield f"{PG_BASE_URL}?schema={schema}"
    _drop_schema(schema)


def written(ledger: Ledger) -> EventStore:
    """`ledger` with events of several kinds, one stream's many in a row, and budget years,
    affiliations, receipts and refs."""
    seed(ledger, practices=(A1, A2))
    for n in range(3 * BULK_ROWS):
        commit(ledger, f"R-{n:03d}", "1.00", practice=A1 if n % 5 else A2)
    return ledger.store


@pytest.mark.parametrize("split", [0, 3, BULK_ROWS + 2], ids=["one batch", "few first",
                                                               "many first"])
def test_a_log_appended_again_as_columns_is_the_same_log(
    ledger: Ledger, other_db: str, split: int
) -> None:
    store = written(ledger)
    end = store.head()
    again = open_store(other_db, hooks=(MerkleSealing(),))
    try:
        head = 0
        for start, stop in ((0, split), (split, end)) if split else ((0, end),):
            head = again.append_encoded(columns_of(store, start, stop), after=head)
            assert head == stop
        for table in TABLES:
            assert rows(again, table) == rows(store, table), table
        assert len(rows(again, "nodes")) >= 1  # the log reached level 4
        assert {row[0] for row in rows(again, "kinds")} >= {
            "PracticeRegistered", "BudgetAllocated", "SpendCommitted"}
        assert any("£" in answer for _, _, answer in rows(again, "receipts"))
        if again.target.kind == "sqlite":  # each answer is stored as TEXT, as written one by one
            assert again.recorder.select_rows(
                "SELECT DISTINCT typeof(answer) FROM ledger_commands", ()) == [("text",)]
        report = verify_store(again)
        assert report.ok, report.first
        assert report.sealed == end
    finally:
        again.close()


def test_columns_of_unequal_lengths_are_refused_and_nothing_is_written(
    ledger: Ledger
) -> None:
    store = written(ledger)
    head = store.head()
    good = columns_of(store, 0, head)
    bad = [replace(good, versions=good.versions[1:]), replace(good, answers=good.answers[1:]),
           replace(good, years=good.years[1:])]
    for columns in bad:
        with pytest.raises(ValueError, match="differ in length"):
            store.append_encoded(columns, after=head)
        assert store.head() == head
        assert rows(store, "leaves")[-1][1] == head


@pytest.mark.parametrize("columns", [
    Columns(topics=["ledger.domain.events:PracticeRegistered"], schema_versions=[2]),
    Columns(fingerprints=["f"], answers=[b"{}"]),
    Columns(refs=["R-1"], years=["2024-25"]),
], ids=["events without streams", "receipts without command ids", "refs without practices"])
def test_columns_of_unequal_lengths_with_no_event_or_receipt_are_refused_too(
    ledger: Ledger, columns: Columns
) -> None:
    store = written(ledger)
    head = store.head()
    before = {table: rows(store, table) for table in TABLES}
    with pytest.raises(ValueError, match="differ in length"):
        store.append_encoded(columns, after=head)
    assert {table: rows(store, table) for table in TABLES} == before


def test_columns_give_back_the_stored_events_and_indexes() -> None:
    columns = Columns(["0" * 32, "1" * 32], [1, 2], ["A", "B"], [b"{}", b"[]"], [1, 1],
                      ["c-1"], ["f"], [b"a"], ["R-1"], ["P"], ["2024-25"], [("P", "C")],
                      [("P", "2024-25")])
    assert [(s.originator_id, s.originator_version, s.topic, s.state)
            for s in columns.stored()] == [("0" * 32, 1, "A", b"{}"), ("1" * 32, 2, "B", b"[]")]
    indexes = columns.indexes()
    assert [(r.command_id, r.fingerprint, r.answer) for r in indexes.receipts] == [
        ("c-1", "f", "a")]
    assert [(r.ref, r.practice, r.year) for r in indexes.refs] == [("R-1", "P", "2024-25")]
    assert list(indexes.affiliations) == [("P", "C")]
    assert list(indexes.budget_years) == [("P", "2024-25")]


@pytest.mark.parametrize("count", [0, 1, 2, 5, 127, 128, 129, 300, 1000])
def test_rows_given_as_columns_are_inserted_in_order_by_statements_of_a_few_sizes(
    count: int
) -> None:
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.execute("CREATE TABLE t (a INTEGER, b TEXT, c BLOB)")
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        cursor = conn.cursor()
        assert insert_values(cursor, "t", (range(count), map(str, range(count)),
                                           [bytearray([i % 256]) for i in range(count)])) == count
        conn.set_trace_callback(None)
        assert conn.execute("SELECT rowid, a, b, c FROM t ORDER BY rowid").fetchall() == [
            (i + 1, i, str(i), bytes([i % 256])) for i in range(count)]
        assert conn.execute("SELECT count(*) FROM t WHERE typeof(c) = 'blob'").fetchone() == (
            count,)
    sizes = [statement.count("(") for statement in statements
             if statement.startswith("INSERT")]
    assert sum(sizes) == count
    assert set(sizes) <= {VALUES_ROWS, *(2**k for k in range(VALUES_ROWS.bit_length()))}
    assert len(sizes) <= count // VALUES_ROWS + VALUES_ROWS.bit_length()


def test_columns_of_another_length_insert_no_row() -> None:
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.execute("CREATE TABLE t (a, b)")
        with pytest.raises(ValueError, match="size"):
            insert_values(conn.cursor(), "t", ([1, 2, 3], [1, 2]))
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_a_batch_breaking_a_key_rolls_its_whole_write_back(ledger: Ledger) -> None:
    """A command id already stored, in the middle of a batch: the write is refused
    (IntegrityError) and leaves nothing; the same batch without it is then appended."""
    store = written(ledger)
    head = store.head()
    before = {table: rows(store, table) for table in TABLES}
    n = VALUES_ROWS + 3
    stream = uuid.uuid4().hex
    taken = rows(store, "receipts")[0][0]
    ids = [f"new-{i}" for i in range(n)]

    def batch(command_ids: list[str]) -> Columns:
        return Columns([stream] * n, list(range(1, n + 1)), ["PracticeRegistered"] * n,
                       [b'{"schema_version":1}'] * n, [1] * n, command_ids, ["f"] * n,
                       [b"a"] * n, [f"N-{i}" for i in range(n)], ["P"] * n, ["2024-25"] * n)

    with pytest.raises(IntegrityError):
        store.append_encoded(batch([*ids[:n // 2], taken, *ids[n // 2 + 1:]]), after=head)
    assert {table: rows(store, table) for table in TABLES} == before
    assert store.append_encoded(batch(ids), after=head) == head + n
    assert [r[0] for r in rows(store, "receipts") if r[0].startswith("new-")] == sorted(ids)
    report = verify_store(store)
    assert report.ok, report.first
    assert report.sealed == head + n
