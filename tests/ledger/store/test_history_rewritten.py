"""A process whose aggregates are cached goes by the log when history is rewritten under it.

A backup restored over a running ledger (or its newest events deleted around it) leaves
the process's cached budget ahead of the log. The next command must be decided on what
the log holds and append the stream's next version, not one after what was cached.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from ledger.application.commands import build_command
from ledger.auditlog.verify import verify_store
from ledger.bootstrap import Ledger, bootstrap
from ledger.domain.events import budget_stream
from ledger.store.recorders import StreamRewritten, check_held
from tests.ledger.audit.test_verify_parallel import run_sql


@pytest.fixture(autouse=True)
def signing_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keys" / "signing-key"
    monkeypatch.setenv("LEDGER_SIGNING_KEY", str(path))
    return path


def allocate(ledger: Ledger) -> None:
    run = ledger.service.execute
    run(build_command("practice register", {"practice": "A81001", "name": "Densham",
                                            "list_size": 4069, "on": "2024-04-01"}),
        "allocator:Q71")
    run(build_command("budget allocate", {"practice": "A81001", "year": "2024-25",
                                          "element": {"acute": "1000"}}), "allocator:Q71")


def commit(ledger: Ledger, ref: str, amount: str = "300") -> int:
    """Commit `amount` pounds as `ref`; the budget stream's version it was recorded at."""
    answer = ledger.service.execute(build_command("spend commit", {
        "practice": "A81001", "year": "2024-25", "element": "acute", "ref": ref,
        "amount": amount, "provider": "RTR", "service": "Hip replacement"}), "practice:A81001")
    return int(answer.events[-1]["version"])


def budget_versions(ledger: Ledger, db_url: str) -> list[int]:
    stream = budget_stream("A81001", "2024-25")
    key: object = stream if ledger.store.target.kind == "postgres" else stream.hex
    rows = run_sql(ledger, db_url, "SELECT originator_version FROM {events} "
                                   "WHERE originator_id = ? ORDER BY {position}", [(key,)])
    return [int(row[0]) for row in rows]


def test_a_command_after_the_newest_events_are_deleted_follows_the_log_not_the_cache(
    ledger: Ledger, db_url: str
) -> None:
    allocate(ledger)
    assert [commit(ledger, ref) for ref in ("R-1", "R-2", "R-3")] == [2, 3, 4]
    last = run_sql(ledger, db_url, "SELECT MAX({position}) FROM {events}")[0][0]
    run_sql(ledger, db_url, "DELETE FROM {events} WHERE {position} > ?", [(int(last) - 2,)])
    for table in ("leaves", "nodes", "tree", "checkpoints"):  # sealed again from scratch
        run_sql(ledger, db_url, f"DELETE FROM {{{table}}}")
    assert budget_versions(ledger, db_url) == [1, 2]
    # 300 + 700 fits the 1,000 allocated only if, gone, are not counted.
    assert commit(ledger, "R-4", "700") == 3
    assert budget_versions(ledger, db_url) == [1, 2, 3]


def test_a_backup_restored_under_a_running_process_is_written_on_from_its_own_history(
    sqlite_path: str, tmp_path: Path
) -> None:
    ledger = bootstrap(sqlite_path)
    try:
        allocate(ledger)
        assert commit(ledger, "R-1") == 2
        backup = tmp_path / "backup.db"
        checkpoint_wal(sqlite_path)
        shutil.copyfile(sqlite_path, backup)
        assert [commit(ledger, "R-2"), commit(ledger, "R-3")] == [3, 4]
        checkpoint_wal(sqlite_path)
        shutil.copyfile(backup, sqlite_path)
        assert commit(ledger, "R-4", "700") == 3
        assert budget_versions(ledger, sqlite_path) == [1, 2, 3]
        report = verify_store(ledger.store)
        assert report.ok, report.damage
    finally:
        ledger.close()


def checkpoint_wal(path: str) -> None:
    """Fold the WAL into the database file, so that the file alone is the ledger."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def test_a_command_after_the_event_at_the_cached_version_is_replaced_follows_the_log(
    ledger: Ledger, open_ledger: Callable[[], Ledger], db_url: str
) -> None:
    """A backup restored under the process, and written on by another (as a second writer
    of the restored ledger would): the stream again has the cached version, but another
    event is at it. The cached budget's commitments are not the log's."""
    allocate(ledger)
    assert [commit(ledger, "R-1"), commit(ledger, "R-2")] == [2, 3]
    last = run_sql(ledger, db_url, "SELECT MAX({position}) FROM {events}")[0][0]
    run_sql(ledger, db_url, "DELETE FROM {events} WHERE {position} > ?", [(int(last) - 1,)])
    for table in ("leaves", "nodes", "tree", "checkpoints"):  # sealed again from scratch
        run_sql(ledger, db_url, f"DELETE FROM {{{table}}}")
    assert commit(open_ledger(), "R-9", "700") == 3  # the restored ledger's own version 3
    assert budget_versions(ledger, db_url) == [1, 2, 3]
    # In the log, R-1 and R-9 commit all 1,000 allocated: 300 more is 300 over. By the
    # cache (R-1 and R-2, 600) it would fit.
    answer = ledger.service.execute(build_command("spend commit", {
        "practice": "A81001", "year": "2024-25", "element": "acute", "ref": "R-4",
        "amount": "300", "provider": "RTR", "service": "Hip replacement"}), "practice:A81001")
    assert "OVERSPEND FLAGGED: £300.00 over" in answer.summary
    assert budget_versions(ledger, db_url) == [1, 2, 3, 4]


def test_a_held_version_is_proven_by_its_event_not_its_number() -> None:
    check_held((3, b'{"command_id":"a"}'), 3, b'{"command_id":"a"}')
    check_held((3, '{"command_id":"a"}'), 3, b'{"command_id":"a"}')  # SQLite's text
    with pytest.raises(StreamRewritten, match="another event at version 3"):
        check_held((3, b'{"command_id":"b"}'), 3, b'{"command_id":"a"}')
    with pytest.raises(StreamRewritten, match="no longer holds version 3"):
        check_held((4, b'{"command_id":"a"}'), 3, b'{"command_id":"a"}')
    with pytest.raises(StreamRewritten, match="no longer holds version 3"):
        check_held(None, 3, b'{"command_id":"a"}')
