"""Real tampering, row by row, on SQLite and PostgreSQL: `verify` finds each one.

Each test writes a small ledger through the service, seals it and signs a
checkpoint, then edits the stored rows with SQL as someone with write access to
the database would, and checks the kind of damage and the first bad position.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent

from ledger.application.commands import build_command
from ledger.audit.bundle import BundleInvalid, load_bundle, verify_bundle
from ledger.auditlog.proofs import AuditFailed, make_checkpoint, prove_practice, store_signer
from ledger.auditlog.reader import snapshot
from ledger.auditlog.seal import SealError, seal, seal_rows
from ledger.auditlog.tables import ensure_tables, fetch, transaction
from ledger.auditlog.verify import (
    BAD_SIGNATURE,
    CHECKPOINT_ALTERED,
    DELETED,
    EDITED,
    INSERTED,
    REORDERED,
    TRUNCATED,
    VerifyReport,
    verify_store,
)
from ledger.bootstrap import Ledger
from ledger.domain.events import SpendCommitted, budget_stream
from ledger.store.mapper import encode_event

NOW = datetime(2024, 7, 15, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def signing_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keys" / "signing-key"
    monkeypatch.setenv("LEDGER_SIGNING_KEY", str(path))
    return path


def write_history(ledger: Ledger, commitments: int = 8) -> None:
    run = ledger.service.execute
    run(build_command("practice register",
                      {"practice": "A81001", "name": "Densham", "list_size": 4069,
                       "on": "2024-04-01"}),
        "allocator:Q71")
    run(build_command("practice register",
                      {"practice": "A81002", "name": "Other", "list_size": 5000,
                       "on": "2024-04-01"}), "allocator:Q71")
    run(build_command("budget allocate", {"practice": "A81001", "year": "2024-25",
                                          "element": {"acute": "1200000"}}), "allocator:Q71")
    for i in range(commitments):
        run(build_command("spend commit", {
            "practice": "A81001", "year": "2024-25", "element": "acute", "ref": f"R-{i:04d}",
            "amount": "10.00", "provider": "RTR", "service": "Hip replacement"}),
            "practice:A81001")


class Db:
    """Raw SQL on the ledger's database, as a tamperer would."""

    def __init__(self, db_url: str) -> None:
        self.url = db_url
        self.postgres = db_url.startswith("postgresql://")
        if self.postgres:
            self.schema = parse_qs(urlsplit(db_url).query)["schema"][0]
            self.events = f'"{self.schema}".ledger_events'
            self.pos = "notification_id"
        else:
            self.events = "stored_events"
            self.pos = "rowid"

    def table(self, name: str) -> str:
        return f'"{self.schema}".{name}' if self.postgres else name

    @contextmanager
    def cursor(self) -> Iterator[Any]:
        if self.postgres:
            base = self.url.split("?")[0]
            with psycopg.connect(base) as conn, conn.cursor() as curs:
                yield curs
            return
        lite = sqlite3.connect(self.url)
        try:
            yield lite.cursor()
            lite.commit()
        finally:
            lite.close()

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.postgres:
            sql = sql.replace("?", "%s")
        with self.cursor() as curs:
            curs.execute(sql, params)
            return list(curs.fetchall()) if curs.description else []

    def state(self, position: int) -> bytes:
        return bytes(self.run(f"SELECT state FROM {self.events} WHERE {self.pos} = ?",
                              (position,))[0][0])

    def set_state(self, position: int, state: bytes) -> None:
        self.run(f"UPDATE {self.events} SET state = ? WHERE {self.pos} = ?", (state, position))

    def move(self, old: int, new: int) -> None:
        self.run(f"UPDATE {self.events} SET {self.pos} = ? WHERE {self.pos} = ?", (new, old))

    def positions(self) -> list[int]:
        return [r[0] for r in self.run(f"SELECT {self.pos} FROM {self.events} ORDER BY 1")]


@pytest.fixture
def sealed(ledger: Ledger, db_url: str) -> tuple[Ledger, Db]:
    write_history(ledger)
    make_checkpoint(ledger.store, NOW)
    return ledger, Db(db_url)


def check(ledger: Ledger) -> VerifyReport:
    return verify_store(ledger.store, store_signer(ledger.store, create=False).verifier)


def assert_first(report: VerifyReport, kind: str, position: int | None) -> None:
    assert not report.ok
    first = report.first
    assert first is not None
    assert (first.kind, first.position) == (kind, position), report.damage


def test_an_untouched_store_verifies(sealed: tuple[Ledger, Db]) -> None:
    ledger, _ = sealed
    report = check(ledger)
    assert report.ok, report.damage
    assert report.sealed == 11
    assert report.checkpoints_checked == 1
    assert report.signatures_checked
    assert report.unsealed == 0


def test_an_edited_amount_is_found_at_its_position(sealed: tuple[Ledger, Db]) -> None:
    ledger, db = sealed
    state = db.state(6)
    assert b'"amount_pence":1000,' in state
    db.set_state(6, state.replace(b'"amount_pence":1000,', b'"amount_pence":9000,'))
    assert_first(check(ledger), EDITED, 6)


def test_an_edited_actor_is_found_at_its_position(sealed: tuple[Ledger, Db]) -> None:
    ledger, db = sealed
    state = db.state(4)
    db.set_state(4, state.replace(b'"actor":"practice:A81001"', b'"actor":"practice:A81002"'))
    assert state != db.state(4)
    assert_first(check(ledger), EDITED, 4)


def test_a_deleted_event_is_found(sealed: tuple[Ledger, Db]) -> None:
    ledger, db = sealed
    db.run(f"DELETE FROM {db.events} WHERE {db.pos} = ?", (5,))
    assert_first(check(ledger), DELETED, 5)


def test_the_events_between_two_positions_are_those_in_the_range_gaps_or_not(
        sealed: tuple[Ledger, Db]) -> None:
    ledger, db = sealed
    db.run(f"DELETE FROM {db.events} WHERE {db.pos} IN (?, ?)", (5, 7))
    with snapshot(ledger.store) as reader:
        for after, upto in [(0, 11), (3, 6), (4, 5), (5, 7), (6, 8), (2, 2), (9, 40)]:
            found = [row[0] for row in reader.events_between(after, upto)]
            assert found == [p for p in db.positions() if after < p <= upto], (after, upto)


def test_an_inserted_event_is_found(sealed: tuple[Ledger, Db]) -> None:
    ledger, db = sealed
    # Make room at position 5 by moving the later events up, then slip a forged
    # commitment in: a copy of event 5 under a new stream version.
    row = db.run(f"SELECT originator_id, originator_version, topic, state FROM {db.events} "
                 f"WHERE {db.pos} = 5")[0]
    for position in reversed(db.positions()):
        if position >= 5:
            db.move(position, position + 1)
    db.run(f"INSERT INTO {db.events} (originator_id, originator_version, topic, state, "
           f"{db.pos}) VALUES (?, ?, ?, ?, ?)", (row[0], 999, row[2], row[3], 5))
    assert_first(check(ledger), INSERTED, 5)


def test_two_swapped_events_are_found(sealed: tuple[Ledger, Db]) -> None:
    ledger, db = sealed
    db.move(7, 1000)
    db.move(8, 7)
    db.move(1000, 8)
    report = check(ledger)
    assert_first(report, REORDERED, 7)
    assert {(d.kind, d.position) for d in report.damage} >= {(REORDERED, 7), (REORDERED, 8)}


def test_a_truncated_tail_is_found(sealed: tuple[Ledger, Db]) -> None:
    ledger, db = sealed
    db.run(f"DELETE FROM {db.events} WHERE {db.pos} >= ?", (9,))
    assert_first(check(ledger), TRUNCATED, 9)


def test_a_truncated_tail_is_one_problem_however_many_events_it_cut(
        sealed: tuple[Ledger, Db]) -> None:
    ledger, db = sealed
    db.run(f"DELETE FROM {db.events} WHERE {db.pos} >= ?", (5,))
    report = check(ledger)
    assert [(d.kind, d.position, d.detail) for d in report.damage] == [
        (TRUNCATED, 5, "the log ends at position 4: the sealed events from position 5 on "
                       "are gone")]
    assert report.damage_count == 1


def test_a_tail_cut_from_events_and_audit_tables_is_caught_by_the_checkpoint(
    sealed: tuple[Ledger, Db],
) -> None:
    ledger, db = sealed
    db.run(f"DELETE FROM {db.events} WHERE {db.pos} >= ?", (10,))
    db.run(f"DELETE FROM {db.table('ledger_leaves')} WHERE position >= ?", (10,))
    report = check(ledger)
    assert not report.ok
    assert TRUNCATED in {d.kind for d in report.damage}


def test_an_edited_checkpoint_fails_its_signature(sealed: tuple[Ledger, Db]) -> None:
    ledger, db = sealed
    table = db.table("ledger_checkpoints")
    (note,) = db.run(f"SELECT note FROM {table}")[0]
    db.run(f"UPDATE {table} SET note = ?", (note.replace("\n11\n", "\n10\n"),))
    assert_first(check(ledger), BAD_SIGNATURE, None)


def test_an_edited_checkpoint_row_is_found(sealed: tuple[Ledger, Db]) -> None:
    ledger, db = sealed
    db.run(f"UPDATE {db.table('ledger_checkpoints')} SET size = 10")
    assert_first(check(ledger), CHECKPOINT_ALTERED, None)


def test_a_rewritten_log_is_refused_a_new_checkpoint(sealed: tuple[Ledger, Db]) -> None:
    ledger, db = sealed
    # Rewrite leaf 0 and the tree head consistently: only the signed checkpoint knows.
    db.run(f"UPDATE {db.table('ledger_leaves')} SET leaf_hash = ? WHERE leaf_index = 0",
           (bytes(32),))
    head = db.table("ledger_tree")
    db.run(f"UPDATE {head} SET root = ?", (bytes(32),))
    write_history_more(ledger)
    with pytest.raises(AuditFailed, match="not consistent"):
        make_checkpoint(ledger.store, NOW)


def test_a_tree_head_edited_back_is_refused_before_anything_is_sealed_twice(
        sealed: tuple[Ledger, Db]) -> None:
    ledger, db = sealed
    events = db.positions()
    leaves = db.table("ledger_leaves")
    db.run(f"UPDATE {db.table('ledger_tree')} SET last_position = last_position - 3")
    with pytest.raises(SealError, match="its head says leaf 10 seals position 8, but that "
                                        "leaf seals position 11"):
        write_history_more(ledger)
    assert db.positions() == events
    sealed_positions = [int(r[0]) for r in db.run(f"SELECT position FROM {leaves}")]
    assert sorted(sealed_positions) == events


def write_history_more(ledger: Ledger) -> None:
    ledger.service.execute(build_command("spend commit", {
        "practice": "A81001", "year": "2024-25", "element": "acute", "ref": "R-X",
        "amount": "1.00", "provider": "RTR", "service": "Hip"}), "practice:A81001")


def write_unsealed(ledger: Ledger, refs: tuple[str, ...]) -> None:
    """Events as a ledger from before the write-path hook stored them: with no leaf.

    They go through eventsourcing's own recorder (not the ledger's, which seals
    in the write transaction), on the same tables.
    """
    env = dict(ledger.store.target.env)
    env["PERSISTENCE_MODULE"] = (
        "eventsourcing.sqlite" if ledger.store.target.kind == "sqlite" else "eventsourcing.postgres"
    )
    legacy = LegacyLedger(env=env)
    stream = ledger.store.stream(budget_stream("A81001", "2024-25"))
    last = stream[-1]
    assert isinstance(last, SpendCommitted)
    made = [
        last.model_copy(update={"originator_version": last.originator_version + n,
                                "ref": ref, "command_id": f"legacy-{ref}"})
        for n, ref in enumerate(refs, start=1)
    ]
    legacy.recorder.insert_events([
        StoredEvent(e.originator_id, e.originator_version, e.topic, encode_event(e))
        for e in made
    ])
    legacy.close()


def test_unsealed_events_are_reported_not_failed(
    ledger: Ledger, open_ledger: Callable[[], Ledger]
) -> None:
    write_history(ledger, commitments=2)
    write_unsealed(ledger, ("R-L1",))
    report = verify_store(ledger.store)
    assert report.ok
    assert report.unsealed == 1
    assert report.oldest_unsealed_at is not None
    other = open_ledger()
    assert seal(other.store).sealed == 1
    assert seal(ledger.store).sealed == 0
    assert verify_store(ledger.store).unsealed == 0


def test_the_write_path_hook_seals_new_rows_and_any_backlog(ledger: Ledger) -> None:
    write_history(ledger, commitments=3)
    write_unsealed(ledger, ("R-L1", "R-L2"))
    assert verify_store(ledger.store).unsealed == 2
    # The next write through the ledger seals the backlog, then its own event.
    ledger.service.execute(build_command("spend commit", {
        "practice": "A81001", "year": "2024-25", "element": "acute", "ref": "R-Y",
        "amount": "1.00", "provider": "RTR", "service": "Hip"}), "practice:A81001")
    report = verify_store(ledger.store)
    assert report.ok, report.damage
    assert report.unsealed == 0
    assert report.sealed == 9
    dialect = ensure_tables(ledger.store)
    with transaction(ledger.store, commit=True) as curs:
        last = fetch(curs, dialect.sql(
            "SELECT {position}, originator_id, originator_version, topic, state FROM {events} "
            "ORDER BY {position} DESC LIMIT 1"))
    with transaction(ledger.store, commit=True) as curs, pytest.raises(SealError):
        seal_rows(curs, dialect, last)  # never two leaves for one position


class LegacyLedger(Application[Any]):
    name = "ledger"  # the same tables as the ledger's own application


def test_sealing_in_chunks_matches_sealing_at_once(ledger: Ledger) -> None:
    write_history(ledger, commitments=1)
    write_unsealed(ledger, tuple(f"R-L{n}" for n in range(39)))
    assert seal(ledger.store, chunk=7).sealed == 39
    report = verify_store(ledger.store)
    assert report.ok, report.damage
    assert report.sealed == 43


def test_bundles_verify_offline_and_fail_when_edited(
    sealed: tuple[Ledger, Db], tmp_path: Path
) -> None:
    ledger, _ = sealed
    verifier = store_signer(ledger.store, create=False).verifier
    bundle = prove_practice(ledger.store, "A81001", NOW)
    ledger.close()  # no database from here on
    import orjson  # noqa: PLC0415

    raw = orjson.dumps(bundle)
    result = verify_bundle(load_bundle(raw), verifier)
    assert len(result.events) == 10  # registration, allocation, 8 commitments
    assert result.checkpoint.size == 11
    edited = raw.replace(b'"amount_pence":1000,', b'"amount_pence":9000,', 1)
    assert edited != raw
    with pytest.raises(BundleInvalid):
        verify_bundle(load_bundle(edited), verifier)
    data = load_bundle(raw)
    data["events"][0]["position"] += 1
    with pytest.raises(BundleInvalid, match="not in the signed log"):
        verify_bundle(data, verifier)
