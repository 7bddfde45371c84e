"""Store faults named by their real cause, in one line (exit 3).

A write that fails because the ledger file or its directory is read-only, the
disk is full, or the PostgreSQL user may not write, is not "busy": retrying
cannot help, and the message says what is wrong. Only a lock held by another
writer (SQLite BUSY/LOCKED; PostgreSQL lock timeouts, serialization failures and
deadlocks) is worth another attempt.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from eventsourcing.persistence import PersistenceError

from ledger.domain.errors import StoreUnavailable

# SQLite primary result codes (https://sqlite.org/rescode.html).
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 26
# PostgreSQL SQLSTATEs worth another attempt: serialization, deadlock, lock timeout.
_PG_RETRY = {"40001", "40P01", "55P03"}


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _sqlite_error(error: BaseException) -> sqlite3.Error | None:
    return next((e for e in _chain(error) if isinstance(e, sqlite3.Error)), None)


def _pg_error(error: BaseException) -> BaseException | None:
    return next((e for e in _chain(error) if type(e).__module__.startswith("psycopg")), None)


def retryable(error: BaseException) -> bool:
    """Whether another attempt may succeed: only when another writer holds a lock."""
    found = _sqlite_error(error)
    if found is not None:
        return (getattr(found, "sqlite_errorcode", 0) & 0xFF) in (_BUSY, _LOCKED)
    pg = _pg_error(error)
    if pg is not None:
        return getattr(pg, "sqlstate", None) in _PG_RETRY
    return False


def why_read_only(path: Path) -> str:
    """Why the SQLite ledger at `path` cannot be written, in a few words."""
    if path.exists() and not os.access(path, os.W_OK):
        return "the file cannot be written"
    if not os.access(path.parent, os.W_OK):
        return f"its directory {path.parent} cannot be written (SQLite keeps its journal there)"
    return "the database refuses writes"


FULL_BELOW = 64 * 1024  # bytes free under which a failed write is put down to a full disk


def _disk_full(path: Path) -> bool:
    try:
        stats = os.statvfs(path.parent if str(path.parent) else ".")
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < FULL_BELOW


def fault(error: BaseException, where: str) -> StoreUnavailable | None:
    """The store fault behind `error`, named in one line; None if it is no store fault.

    `where` is the ledger's path or its URL with the password masked.
    """
    found = _sqlite_error(error)
    if found is not None:
        rule, message = _sqlite_fault(found, where)
        return StoreUnavailable(rule, message)
    pg = _pg_error(error)
    if pg is not None:
        rule, message = _postgres_fault(pg, where)
        return StoreUnavailable(rule, message)
    if isinstance(error, PersistenceError):
        return StoreUnavailable("store", f"the ledger at {where} failed: {_first_line(error)}")
    return None


def _sqlite_fault(error: sqlite3.Error, where: str) -> tuple[str, str]:
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF
    detail = _first_line(error)
    path = Path(where)
    if code in (_IOERR, _CANTOPEN) and _disk_full(path):
        code = _FULL  # SQLite reports a full disk as an I/O error when the WAL cannot grow
    named = {
        _READONLY: ("store-read-only",
                    f"the ledger at {where} is read-only: {why_read_only(path)} ({detail})"),
        _FULL: ("store-full",
                f"the disk holding the ledger at {where} is full ({detail}); nothing was "
                "recorded"),
        _BUSY: ("store-busy",
                f"the ledger at {where} is locked by another process ({detail}); try again"),
        _CANTOPEN: ("store",
                    f"cannot open the ledger at {where}: "
                    f"{why_read_only(path) if path.exists() else 'the file cannot be opened'}"
                    f" ({detail})"),
        _CORRUPT: ("store-damaged", f"the file at {where} is not a readable ledger ({detail})"),
        _IOERR: ("store-io", f"I/O error on the ledger at {where} ({detail})"),
    }
    named[_LOCKED] = named[_BUSY]
    named[_NOTADB] = named[_CORRUPT]
    return named.get(code, ("store", f"the ledger at {where} failed: {detail}"))


def _postgres_fault(error: BaseException, where: str) -> tuple[str, str]:
    state = str(getattr(error, "sqlstate", "") or "")
    detail = _first_line(error)
    named = {
        "25006": ("store-read-only",
                  f"the ledger at {where} is read-only for this session ({detail})"),
        "42501": ("store-read-only",
                  f"the PostgreSQL user may not write the ledger at {where} ({detail})"),
        "53100": ("store-full",
                  f"the PostgreSQL server's disk is full ({detail}); nothing was recorded"),
    }
    if state in named:
        return named[state]
    if state.startswith("53"):
        return "store-full", f"PostgreSQL is out of resources ({detail})"
    if state.startswith("08") or not state:
        return "store", f"cannot reach PostgreSQL at {where} ({detail})"
    if state in _PG_RETRY:
        return "store-busy", f"the ledger at {where} is locked by another writer ({detail})"
    return "store", f"the ledger at {where} failed: {detail} [SQLSTATE {state}]"
