"""Shared fixtures: a fresh ledger on each store, over real connections.

PostgreSQL tests never skip: if the server is down the run fails (`.ci/run`
starts it first). Each test gets its own schema, dropped afterwards, so runs
(and xdist workers) never collide.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ledger.bootstrap import Ledger, bootstrap

PG_BASE_URL = os.environ.get("LEDGER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


class FakeClock:
    """A clock tests can set; `recorded_at` comes from it."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2024, 7, 15, 9, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


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
