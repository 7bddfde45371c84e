"""Shared fixtures: a fresh ledger on each store, over real connections.

PostgreSQL tests never skip: if the server is down the run fails (`.ci/run`
starts it first). Each test gets its own schema, dropped afterwards, so runs
(and xdist workers) never collide.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ledger.bootstrap import Ledger, bootstrap

PG_BASE_URL = os.environ.get("LEDGER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

# A memory-backed directory for the run's temporary files, where the system has one.
MEMORY_TMP = Path("/dev/shm")
MEMORY_TMP_ROOM = 1 << 30
"""Bytes MEMORY_TMP must have free for a run to put its temporary files there (1 GiB). A
run keeps every test's files until it ends: a few hundred MB for the whole suite (136 MB
for 433 tests on one worker, 113 MB of them the service's 16 MiB request files), beside
what PostgreSQL (its dynamic shared memory) and Python's multiprocessing semaphores need
from the same filesystem. Docker gives a container 64 MB there by default: a run that
filled it would fail on ENOSPC, and keep failing while earlier runs' files stay."""

# The user's own config directory, as the run found it (xdist workers inherit the value the
# controller saved): on PostgreSQL the ledger's default signing key lives under it.
REAL_CONFIG_HOME_VAR = "TESTS_REAL_XDG_CONFIG_HOME"
RUN_CONFIG_HOME_VAR = "TESTS_RUN_XDG_CONFIG_HOME"


def pytest_configure(config: pytest.Config) -> None:
    """Point XDG_CONFIG_HOME at a directory of this run's before any test or fixture runs,
    so nothing the tests start (in process or as a `ledger` subprocess) makes or reads a
    signing key in the user's ~/.config/ledger; each test then gets its own (`config_home`).

    Temporary files (every test's tmp_path, and so its SQLite ledgers) go to memory
    (MEMORY_TMP) unless TMPDIR names a directory or it lacks room (`memory_has_room`):
    each SQLite commit waits for fsync, about 8 ms on a virtual disk and nothing in
    memory, and a test of a few dozen commands would otherwise spend most of its time
    waiting for the disk. No test can observe the difference: fsync matters only when
    the machine itself stops.

    Bytecode is cached (in the git-ignored `__pycache__` directories, or under
    PYTHONPYCACHEPREFIX if that is set) even where PYTHONDONTWRITEBYTECODE is, as in many
    container images: the suite starts the `ledger` command in a few thousand processes and
    each xdist worker imports every test module, and without a cache every one of them
    compiles the project's sources (and pytest rewrites the test modules' asserts) again.
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False
    if "TMPDIR" not in os.environ and memory_has_room(MEMORY_TMP):
        os.environ["TMPDIR"] = str(MEMORY_TMP)
        tempfile.tempdir = None  # gettempdir() reads TMPDIR again
    real = os.environ.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    os.environ.setdefault(REAL_CONFIG_HOME_VAR, real)
    if RUN_CONFIG_HOME_VAR not in os.environ or not hasattr(config, "workerinput"):
        os.environ[RUN_CONFIG_HOME_VAR] = tempfile.mkdtemp(prefix="ledger-tests-config-")
    os.environ["XDG_CONFIG_HOME"] = os.environ[RUN_CONFIG_HOME_VAR]


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged process may still write to `directory`'s filesystem
    (statvfs: f_bavail blocks of f_frsize bytes). OSError when it cannot be asked."""
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize


def memory_has_room(directory: Path, free: Callable[[Path], int] = free_bytes) -> bool:
    """Whether a run may put its temporary files in `directory`: one this process may
    create files in, with at least MEMORY_TMP_ROOM bytes `free` (a directory that cannot
    be asked has none)."""
    if not os.access(directory, os.W_OK | os.X_OK):
        return False
    try:
        return free(directory) >= MEMORY_TMP_ROOM
    except OSError:
        return False


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        shutil.rmtree(os.environ.get(RUN_CONFIG_HOME_VAR, ""), ignore_errors=True)


def real_config_home() -> Path:
    """The user's config directory the run started with (not the tests' stand-in)."""
    return Path(os.environ[REAL_CONFIG_HOME_VAR])


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """XDG_CONFIG_HOME for the test: a directory in its tmp_path, so a PostgreSQL ledger's
    default signing key (`$XDG_CONFIG_HOME/ledger/signing-key`) is the test's own."""
    path = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(path))
    return path


class FakeClock:
    """A clock tests can set; `recorded_at` comes from it."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2024, 7, 15, 9, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(autouse=True)
def ctrl_c_raises() -> None:
    """Every test starts with Ctrl-C (SIGINT) raising KeyboardInterrupt, as at a terminal.

    A run started in the background by a shell without job control inherits SIGINT
    ignored, and so would every `ledger` process a test starts: Ctrl-C would then stop
    nothing, and the tests of what Ctrl-C does would wait in vain."""
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _drop_schema(schema: str) -> None:
    with psycopg.connect(PG_BASE_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {0} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL with a schema of its own."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield f"{PG_BASE_URL}?schema={schema}"
    _drop_schema(schema)


@contextmanager
def written_once(store: str, home: Path, write: Callable[[Ledger], None]) -> Iterator[str]:
    """The `--db` of a ledger on `store` that `write` records once (at FakeClock's time),
    for tests that only read it or are refused (a fixture of module scope holds it open).
    Its files (and its PostgreSQL signing key) are in `home`; its schema is dropped after."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    db = str(home / "ledger.db") if store == "sqlite" else f"{PG_BASE_URL}?schema={schema}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("XDG_CONFIG_HOME", str(home / "config"))
        ledger = bootstrap(db, clock=FakeClock())
        try:
            write(ledger)
        finally:
            ledger.close()
    yield db
    if store != "sqlite":
        _drop_schema(schema)


@pytest.fixture
def sqlite_path(tmp_path: Path) -> str:
    return str(tmp_path / "ledger.db")


@pytest.fixture(params=STORES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The `--db` value for a fresh ledger on each store."""
    if request.param == "sqlite":
        yield str(tmp_path / "ledger.db")
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield f"{PG_BASE_URL}?schema={schema}"
    _drop_schema(schema)


@pytest.fixture
def open_ledger(db_url: str, clock: FakeClock) -> Iterator[Callable[[], Ledger]]:
    """Opens ledgers on the test's store (several may be open at once)."""
    opened: list[Ledger] = []

    def make() -> Ledger:
        ledger = bootstrap(db_url, clock=clock)
        opened.append(ledger)
        return ledger

    yield make
    for ledger in opened:
        ledger.close()


@pytest.fixture
def ledger(open_ledger: Callable[[], Ledger]) -> Ledger:
    return open_ledger()
