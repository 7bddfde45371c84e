"""`verify` on worker processes finds what the single-process pass finds, at the same place.

The parallel path only starts on large stores; here the chunk size and the threshold
are lowered so that a store of a few thousand real rows spreads over several chunks
and both workers, and the rows are tampered with SQL as in test_tampering. On SQLite
the workers open the file; on PostgreSQL they read in the main snapshot, exported.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ledger.application.commands import build_command
from ledger.auditlog import verify
from ledger.auditlog.proofs import make_checkpoint, store_signer
from ledger.auditlog.seal import seal
from ledger.auditlog.verify import DELETED, EDITED, VerifyReport, verify_store
from ledger.bootstrap import Ledger, bootstrap
from tests.conftest import PG_BASE_URL

NOW = datetime(2024, 7, 15, 12, 0, tzinfo=UTC)
EVENTS = 6_000
CHUNK_LEVEL = 10  # 6 chunks of 1,024 leaves


def run_sql(ledger: Ledger, db_url: str, statement: str,
            rows: Iterable[tuple[Any, ...]] = ((),)) -> list[tuple[Any, ...]]:
    """Run `statement` (the store's dialect: `?`, `{events}`, `{position}`) straight on the
    database, around the ledger, once per row of parameters; the last one's rows."""
    query = ledger.store.recorder.dialect.sql(statement)
    found: list[tuple[Any, ...]] = []
    if ledger.store.target.kind == "sqlite":
        conn = sqlite3.connect(db_url)
        for params in rows:
            found = conn.execute(query, params).fetchall()
        conn.commit()
        conn.close()
        return found
    with psycopg.connect(PG_BASE_URL) as pg:
        for params in rows:
            cur = pg.execute(query, params)
            found = cur.fetchall() if cur.description else []
    return found


@pytest.fixture
def big(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    monkeypatch.setenv("LEDGER_SIGNING_KEY", str(tmp_path / "keys" / "signing-key"))
    monkeypatch.setattr(verify, "CHUNK", 1 << CHUNK_LEVEL)
    ledger = bootstrap(db_url)
    run = ledger.service.execute
    run(build_command("practice register",
                      {"practice": "A81001", "name": "Densham", "list_size": 4069,
                       "on": "2024-04-01"}),
        "allocator:Q71")
    run(build_command("budget allocate", {"practice": "A81001", "year": "2024-25",
                                          "element": {"acute": "1200000"}}), "allocator:Q71")
    run(build_command("spend commit", {
        "practice": "A81001", "year": "2024-25", "element": "acute", "ref": "R-0001",
        "amount": "10.00", "provider": "RTR", "service": "Hip replacement"}), "practice:A81001")
    template = ledger.store.notifications(0, 10)[-1]
    state = bytes(template.state)
    assert b'"amount_pence":1000,' in state
    postgres = ledger.store.target.kind == "postgres"
    run_sql(ledger, db_url,
            "INSERT INTO {events} (originator_id, originator_version, topic, state, {position}) "
            "VALUES (?, ?, ?, ?, ?)",
            ((uuid.uuid4() if postgres else uuid.uuid4().hex, 1, template.topic,
              state.replace(b"R-0001", b"R-%04d" % i), i + 1) for i in range(3, EVENTS)))
    seal(ledger.store)
    make_checkpoint(ledger.store, NOW)
    yield ledger
    ledger.close()


def check(ledger: Ledger, monkeypatch: pytest.MonkeyPatch, *, parallel: bool,
          ) -> tuple[VerifyReport, list[tuple[int, int]], bool]:
    monkeypatch.setattr(verify, "PARALLEL_MIN_LEAVES", 1 << 12 if parallel else 1 << 40)
    started: list[bool] = []
    start = verify._Workers.start.__func__  # type: ignore[attr-defined]

    def spy(cls: type[verify._Workers], *args: object) -> verify._Workers:
        workers: verify._Workers = start(cls, *args)
        started.append(workers.pool is not None)
        return workers

    monkeypatch.setattr(verify._Workers, "start", classmethod(spy))
    calls: list[tuple[int, int]] = []
    report = verify_store(ledger.store, store_signer(ledger.store, create=False).verifier,
                          progress=lambda done, total: calls.append((done, total)))
    return report, calls, started == [True]


def same(parallel: VerifyReport, serial: VerifyReport) -> None:
    assert parallel.damage == serial.damage
    assert parallel.first == serial.first
    assert (parallel.root, parallel.sealed, parallel.events_checked, parallel.damage_count) == (
        serial.root, serial.sealed, serial.events_checked, serial.damage_count)


def test_a_sound_store_verifies_the_same_on_workers(
    big: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = big
    serial, serial_calls, used = check(ledger, monkeypatch, parallel=False)
    assert not used
    parallel, calls, used = check(ledger, monkeypatch, parallel=True)
    assert used
    assert parallel.ok, parallel.damage
    same(parallel, serial)
    assert parallel.sealed == parallel.events_checked == EVENTS
    assert parallel.checkpoints_checked == 1
    assert calls == serial_calls
    assert calls[-1] == (EVENTS, EVENTS)
    assert len(calls) == -(-EVENTS // (1 << CHUNK_LEVEL))


@pytest.mark.parametrize("position", [3_000, 5_999])
def test_an_edited_row_is_found_at_the_same_position_on_workers(
    big: Ledger, db_url: str, monkeypatch: pytest.MonkeyPatch, position: int
) -> None:
    ledger = big
    state = run_sql(ledger, db_url, "SELECT state FROM {events} WHERE {position} = ?",
                    [(position,)])[0][0]
    run_sql(ledger, db_url, "UPDATE {events} SET state = ? WHERE {position} = ?",
            [(bytes(state).replace(b'"amount_pence":1000,', b'"amount_pence":9000,'), position)])
    serial, _, _ = check(ledger, monkeypatch, parallel=False)
    parallel, _, used = check(ledger, monkeypatch, parallel=True)
    assert used
    assert parallel.first is not None
    assert (parallel.first.kind, parallel.first.position) == (EDITED, position)
    same(parallel, serial)


def test_a_deleted_row_is_found_at_the_same_position_on_workers(
    big: Ledger, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = big
    run_sql(ledger, db_url, "DELETE FROM {events} WHERE {position} = 2500")
    serial, _, _ = check(ledger, monkeypatch, parallel=False)
    parallel, _, used = check(ledger, monkeypatch, parallel=True)
    assert used
    assert parallel.first is not None
    assert (parallel.first.kind, parallel.first.position) == (DELETED, 2500)
    same(parallel, serial)
