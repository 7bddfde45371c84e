"""Store faults: only a held lock is retried; everything else is named by its cause."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest
from eventsourcing.persistence import OperationalError

from ledger.store.faults import fault, retryable


def sqlite_error(code: int, text: str) -> OperationalError:
    inner = sqlite3.OperationalError(text)
    inner.sqlite_errorcode = code
    try:
        raise OperationalError(text) from inner
    except OperationalError as wrapped:
        return wrapped


@pytest.mark.parametrize(("code", "retry"), [(5, True), (6, True), (8, False), (13, False),
                                             (10, False), (14, False), (261, True)])
def test_only_busy_and_locked_sqlite_errors_are_retried(code: int, retry: bool) -> None:
    assert retryable(sqlite_error(code, "x")) is retry


def test_sqlite_faults_name_their_cause(tmp_path: Path) -> None:
    where = str(tmp_path / "ledger.db")
    read_only = fault(sqlite_error(8, "attempt to write a readonly database"), where)
    assert read_only is not None
    assert read_only.rule == "store-read-only"
    assert "read-only" in str(read_only)
    full = fault(sqlite_error(13, "database or disk is full"), where)
    assert full is not None
    assert "is full" in str(full)
    assert fault(ValueError("not a store error"), where) is None


@pytest.mark.parametrize(("error", "rule", "retry"), [
    (psycopg.errors.ReadOnlySqlTransaction("read-only transaction"), "store-read-only", False),
    (psycopg.errors.InsufficientPrivilege("permission denied"), "store-read-only", False),
    (psycopg.errors.DiskFull("could not extend file"), "store-full", False),
    (psycopg.errors.LockNotAvailable("lock timeout"), "store-busy", True),
    (psycopg.errors.DeadlockDetected("deadlock"), "store-busy", True),
])
def test_postgresql_faults_name_their_cause(error: Exception, rule: str, retry: bool) -> None:
    found = fault(error, "postgresql://u:***@h/db")
    assert found is not None
    assert found.rule == rule
    assert retryable(error) is retry
