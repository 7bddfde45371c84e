"""A SQLite `--db` that is another program's database (the feed consumer's store, named by
mistake) is refused by writes (exit 3, nothing written), as reads refuse it: the ledger
never adds its tables to a database that holds no ledger."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests.commands.conftest import Ledger

pytestmark = [pytest.mark.usefixtures("signing_key"),
              pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]
ALLOCATOR = "allocator:Q71"
FORM = ("consortium", "form", "16C", "--name", "Tees Valley", "--officer", "Dr Smith")


def _tables(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as db:
        return {str(r[0]) for r in db.execute("SELECT name FROM sqlite_master WHERE type = "
                                              "'table'")}


def test_a_write_to_another_programs_database_is_refused_and_adds_nothing(
        invoke: Ledger, tmp_path: Path) -> None:
    consumer = tmp_path / "consumer.db"
    with closing(sqlite3.connect(consumer)) as db:  # as examples/feed_consumer.py makes it
        db.executescript("CREATE TABLE checkpoint (one INTEGER PRIMARY KEY, position INTEGER "
                         "NOT NULL, ledger_id TEXT); CREATE TABLE handled (position INTEGER "
                         "PRIMARY KEY, event TEXT NOT NULL, body TEXT NOT NULL);")
    before = _tables(consumer)
    done = invoke(*FORM, actor=ALLOCATOR, db=str(consumer))
    assert done.code == 3, done.stdout
    done.one_line_error(f"{consumer} is a SQLite database that holds no ledger (its tables: "
                        "checkpoint, handled)", "nothing was written", "[rule: store]")
    assert _tables(consumer) == before
    read = invoke("holders", db=str(consumer))
    assert read.code == 3
    read.one_line_error(f"no ledger at {consumer}")


def test_a_ledger_an_empty_file_and_a_new_path_are_written(invoke: Ledger, db_url: str,
                                                           tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    for db in (db_url, db_url, str(empty), str(tmp_path / "new.db")):
        done = invoke(*FORM, "--command-id", "form-16C", actor=ALLOCATOR, db=db)
        assert done.code == 0, done.stderr
    assert "stored_events" in _tables(empty)


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_a_refused_write_leaves_the_other_programs_folder_as_it_was(
        invoke: Ledger, tmp_path: Path, journal: str) -> None:
    """Its -wal and -shm files are not made beside it (they would be the ledger's user's,
    perhaps not the program's)."""
    folder = tmp_path / "consumer"
    folder.mkdir()
    consumer = folder / "consumer.db"
    with closing(sqlite3.connect(consumer)) as db:
        db.execute(f"PRAGMA journal_mode = {journal}")
        db.execute("CREATE TABLE handled (position INTEGER PRIMARY KEY)")
        db.commit()
    before = sorted(p.name for p in folder.iterdir())
    assert before == ["consumer.db"]
    done = invoke(*FORM, actor=ALLOCATOR, db=str(consumer))
    assert done.code == 3, done.stdout
    done.one_line_error("holds no ledger (its tables: handled)", "nothing was written")
    assert sorted(p.name for p in folder.iterdir()) == before
