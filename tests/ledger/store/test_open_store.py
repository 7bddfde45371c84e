"""Opening stores: targets, errors with masked passwords, and schema isolation."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ledger.bootstrap import bootstrap
from ledger.domain.errors import InvalidInput, StoreUnavailable
from ledger.store.eventstore import mask_password, open_store, parse_target
from tests.conftest import PG_BASE_URL
from tests.ledger.application.scenario import commit, seed


def test_a_path_means_sqlite_and_a_url_means_postgresql(tmp_path: Path) -> None:
    assert parse_target(str(tmp_path / "x.db")).kind == "sqlite"
    target = parse_target("postgresql://u:secret@db.example:6543/ledger?schema=s1")
    assert target.kind == "postgres"
    assert target.env["POSTGRES_PORT"] == "6543"
    assert target.env["POSTGRES_SCHEMA"] == "s1"
    assert "secret" not in target.display


@pytest.mark.parametrize("target", ["mysql://x/y", "postgresql://h/db?schema=Bad-Name"])
def test_unsupported_targets_are_refused(target: str) -> None:
    with pytest.raises(InvalidInput):
        parse_target(target)


def test_passwords_are_masked() -> None:
    assert mask_password("postgresql://u:s3cr3t@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert mask_password("postgresql://u@h/d") == "postgresql://u@h/d"


@pytest.mark.parametrize("password", ["p@ss", "a@b@c", "se/cret", "p?ss", "p#ss", "s/e@c"])
def test_a_password_holding_url_delimiters_unencoded_is_masked_whole(password: str) -> None:
    assert mask_password(f"postgresql://u:{password}@h:5432/d?schema=s") == (
        "postgresql://u:***@h:5432/d?schema=s")
    assert mask_password(f"cannot reach postgresql://u:{password}@h/d: refused; "
                         f"'postgresql://v:{password}@h/d' too") == (
        "cannot reach postgresql://u:***@h/d: refused; 'postgresql://v:***@h/d' too")


def test_an_unreachable_postgresql_is_unavailable_with_its_password_masked() -> None:
    url = "postgresql://postgres:hunter2@127.0.0.1:1/test?connect_timeout=2"
    with pytest.raises(StoreUnavailable) as error:
        open_store(url)
    message = str(error.value)
    assert "hunter2" not in message
    assert "postgresql://postgres:***@127.0.0.1:1/test" in message


def test_a_sqlite_file_in_a_missing_directory_is_unavailable(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "ledger.db"
    with pytest.raises(StoreUnavailable) as error:
        open_store(str(missing))
    assert "no directory" in str(error.value)
    assert not missing.parent.exists()


def test_a_new_sqlite_file_is_created_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    store = open_store(str(path))
    try:
        assert store.head() == 0
    finally:
        store.close()
    assert path.exists()


@pytest.mark.postgres
def test_postgresql_schemas_isolate_ledgers_from_each_other() -> None:
    schemas = [f"t_iso_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    try:
        first, second = (bootstrap(f"{PG_BASE_URL}?schema={s}") for s in schemas)
        with first, second:
            seed(first, practices=("A81001",), consortium=None)
            commit(first, "R-1", "10")
            assert first.store.head() > 0
            assert second.store.head() == 0
            # The same reference is free in the other schema.
            seed(second, practices=("A81001",), consortium=None)
            commit(second, "R-1", "10")
            assert second.store.head() == first.store.head()
        with psycopg.connect(PG_BASE_URL) as conn:
            tables = {row[0] for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schemas[0],))}
        assert {"ledger_commands", "ledger_refs"} <= tables
    finally:
        with psycopg.connect(PG_BASE_URL, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {0} CASCADE").format(
                    sql.Identifier(schema)))
