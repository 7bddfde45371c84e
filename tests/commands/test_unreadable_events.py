"""Events this version cannot read stop every read and write, on both stores (exit 5).

The rows are put into the events table with SQL, as a newer version of the
ledger (or a writer that bypasses this one) would leave them.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from ledger.domain.events import practice_stream
from projections.api import create_app
from tests.commands.conftest import Ledger, Run, clean_env, ledger_executable
from tests.conftest import PG_BASE_URL

ALLOCATOR = "allocator:Q71"

COMMANDS = [
    ("position",),
    ("position", "--by", "consortium"),
    ("holders",),
    ("holders", "--practice", "A81001"),
    ("trail", "A81001"),
    ("events",),
    ("replay", "A81001", "--year", "2024-25"),
    ("projections", "status"),
    ("projections", "rebuild"),
    ("quality",),
    ("variation",),
    ("prove", "A81001", "--out", "bundle.json"),
    ("checkpoint",),
    ("token", "list"),
    ("pools",),
]
WRITES = [
    ("practice", "register", "B82002", "--name", "Another", "--list-size", "3000"),
    ("budget", "adjust", "A81001", "--year", "2024-25", "--element", "acute", "--by", "-5",
     "--reason", "recount"),
]


@pytest.fixture(autouse=True)
def signing_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "signing-key"
    monkeypatch.setenv("LEDGER_SIGNING_KEY", str(path))
    monkeypatch.chdir(tmp_path)
    return path


def populate(invoke: Ledger) -> None:
    assert invoke("practice", "register", "A81001", "--name", "Densham", "--list-size", "4069",
                  "--on", "2024-04-01", actor=ALLOCATOR).code == 0
    assert invoke("budget", "allocate", "A81001", "--year", "2024-25", "--on", "2024-04-01",
                  "--element", "acute=1200000", actor=ALLOCATOR).code == 0
    # The projections are up to date before the foreign row arrives, as they would
    # be after a newer version folded it: the reads must still refuse.
    assert invoke("position").code == 0


def insert_row(db_url: str, stream: uuid.UUID, version: int, topic: str, state: bytes) -> int:
    """Append a row to the events table with SQL; returns its position."""
    if db_url.startswith("postgresql://"):
        schema = parse_qs(urlsplit(db_url).query)["schema"][0]
        with psycopg.connect(PG_BASE_URL, autocommit=True) as conn:
            row = conn.execute(
                sql.SQL("INSERT INTO {0}.ledger_events (originator_id, originator_version, "
                        "topic, state) VALUES (%s, %s, %s, %s) RETURNING notification_id"
                        ).format(sql.Identifier(schema)),
                (stream, version, topic, state),
            ).fetchone()
            assert row is not None
            return int(row[0])
    with sqlite3.connect(db_url) as conn:
        cursor = conn.execute(
            "INSERT INTO stored_events (originator_id, originator_version, topic, state) "
            "VALUES (?, ?, ?, ?)", (stream.hex, version, topic, state))
        assert cursor.lastrowid is not None
        return cursor.lastrowid


def count_rows(db_url: str) -> int:
    if db_url.startswith("postgresql://"):
        schema = parse_qs(urlsplit(db_url).query)["schema"][0]
        with psycopg.connect(PG_BASE_URL) as conn:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {0}.ledger_events").format(
                sql.Identifier(schema))).fetchone()
            assert row is not None
            return int(row[0])
    with sqlite3.connect(db_url) as conn:
        return int(conn.execute("SELECT count(*) FROM stored_events").fetchone()[0])


def newer_list_size(invoke: Ledger) -> tuple[uuid.UUID, int, str, bytes]:
    """A `ListSizeRecorded` at schema version 3 that adds a field, next in the practice stream."""
    events = [orjson.loads(line) for line in invoke("events").stdout.splitlines()]
    registered = next(e for e in events if e["event"] == "PracticeRegistered")
    state = {"schema_version": 3, "recorded_at": registered["recorded_at"],
             "effective_on": registered["effective_on"], "actor": ALLOCATOR,
             "command_id": "from-a-newer-version", "reason": None, "practice": "A81001",
             "list_size": 4100, "weighted_population": {}, "list_source": "NHS Digital quarterly"}
    return practice_stream("A81001"), 2, "ListSizeRecorded", orjson.dumps(state)


Row = tuple[uuid.UUID, int, str, bytes]


def unknown_topic(_invoke: Ledger | None = None) -> Row:
    state = {"schema_version": 1, "practice": "A81001", "frozen": True}
    return uuid.uuid4(), 1, "BudgetFrozen", orjson.dumps(state)


def list_size_row(**changes: Any) -> Callable[[Ledger], Row]:
    """A `ListSizeRecorded` of the version this code writes, next in A81001's stream,
    with `changes` made to its state (a key given None is left out)."""

    def make(invoke: Ledger) -> Row:
        stream, version, topic, state = newer_list_size(invoke)
        data = {**orjson.loads(state), "schema_version": 2, **changes}
        data.pop("list_source")
        return stream, version, topic, orjson.dumps(
            {k: v for k, v in data.items() if v is not None})

    return make


DOES_NOT_DECODE = ("ListSizeRecorded", "schema version 2", "does not decode")

CASES: dict[str, tuple[Callable[[Ledger], Row], tuple[str, ...]]] = {
    "unknown topic": (unknown_topic,
                      ("'BudgetFrozen'", "does not know", "upgrade the ledger")),
    "newer schema version": (newer_list_size,
                             ("ListSizeRecorded", "schema version 3", "understands up to 2",
                              "upgrade the ledger")),
    "known kind without a field": (list_size_row(list_size=None), DOES_NOT_DECODE),
    "known kind with a field it does not have": (list_size_row(colour="blue"),
                                                  DOES_NOT_DECODE),
    "known kind with a date that is not one": (list_size_row(effective_on="2024-02-30"),
                                               DOES_NOT_DECODE),
    "known kind with a negative count": (list_size_row(list_size=-10), DOES_NOT_DECODE),
    "known kind with a number past 64 bits": (
        list_size_row(list_size=10**19),
        ("ListSizeRecorded", "a number past the 64-bit integers")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_unreadable_event_stops_every_read_and_write(
    invoke: Ledger, db_url: str, case: str
) -> None:
    populate(invoke)
    made = invoke("token", "create", "--actor", ALLOCATOR, "--bootstrap")
    token = re.search(r"token [a-z0-9]{12}: (\S+)", made.stdout)
    assert token is not None, made.stdout
    make, fragments = CASES[case]
    position = insert_row(db_url, *make(invoke))
    for args in COMMANDS:
        done = invoke(*args)
        assert done.code == 5, (args, done.stdout, done.stderr)
        done.one_line_error(f"position {position}", *fragments)
    for args in WRITES:
        done = invoke(*args, actor=ALLOCATOR)
        assert done.code == 5, (args, done.stdout, done.stderr)
        done.one_line_error(f"position {position}", *fragments)
    assert not Path("bundle.json").exists()
    with TestClient(create_app(db_url),
                    headers={"Authorization": f"Bearer {token[1]}"}) as client:
        for path in ("/position", "/holders", "/trail/A81001", "/events", "/projections",
                     "/ready", "/pools", "/quality", "/variation",
                     "/replay/A81001?year=2024-25"):
            answer = client.get(path)
            assert answer.status_code == 503, (path, answer.text)
            assert answer.json()["rule"] == "unreadable-event", (path, answer.text)
            assert f"position {position}" in answer.json()["error"]
        written = client.post("/budget/adjust", json={
            "practice": "A81001", "year": "2024-25", "element": "acute", "by": "-5",
            "reason": "recount"})
        assert written.status_code == 503, written.text
        assert written.json()["rule"] == "unreadable-event"
        # The live feed too, before its stream starts (not a 200 that breaks off).
        with client.stream("GET", "/events/live") as live:
            assert live.status_code == 503
            assert orjson.loads(live.read())["rule"] == "unreadable-event"


def test_apply_stops_at_an_unreadable_event_and_records_nothing(
    invoke: Ledger, db_url: str, tmp_path: Path
) -> None:
    populate(invoke)
    position = insert_row(db_url, *unknown_topic())
    rows = count_rows(db_url)
    line = {"command": "practice register", "command_id": "c-1", "actor": ALLOCATOR,
            "args": {"practice": "B82002", "name": "Another", "list_size": 3000}}
    (tmp_path / "commands.jsonl").write_bytes(orjson.dumps(line) + b"\n")
    done = invoke("apply", str(tmp_path / "commands.jsonl"), actor=ALLOCATOR)
    assert done.code == 5, (done.stdout, done.stderr)
    assert f"position {position}" in done.stderr
    assert "Traceback" not in done.stderr
    assert count_rows(db_url) == rows


def delete_last_row(db_url: str) -> int:
    """Remove the newest event with SQL, after it was sealed; returns its position."""
    if db_url.startswith("postgresql://"):
        schema = parse_qs(urlsplit(db_url).query)["schema"][0]
        with psycopg.connect(PG_BASE_URL, autocommit=True) as conn:
            row = conn.execute(
                sql.SQL("DELETE FROM {0}.ledger_events WHERE notification_id = "
                        "(SELECT max(notification_id) FROM {0}.ledger_events) "
                        "RETURNING notification_id").format(sql.Identifier(schema))
            ).fetchone()
            assert row is not None
            return int(row[0])
    with sqlite3.connect(db_url) as conn:
        last = int(conn.execute("SELECT max(rowid) FROM stored_events").fetchone()[0])
        conn.execute("DELETE FROM stored_events WHERE rowid = ?", (last,))
        return last


def test_a_write_after_the_log_was_truncated_fails_verification_and_records_nothing(
    invoke: Ledger, db_url: str
) -> None:
    populate(invoke)
    delete_last_row(db_url)
    rows = count_rows(db_url)
    done = invoke(*WRITES[0], actor=ALLOCATOR)
    assert done.code == 4, (done.stdout, done.stderr)
    done.one_line_error("no longer matches its Merkle log")
    assert count_rows(db_url) == rows
    assert invoke("verify").code == 4


# SQLite only: its column types are affinities, so a blob column can hold text. A
# PostgreSQL bytea column cannot hold text at all, so there is no such event to read.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_event_stored_as_text_stops_every_read_and_write(
    invoke: Ledger, db_url: str
) -> None:
    """SQLite keeps a text value in the blob column when SQL inserts it without a cast."""
    populate(invoke)
    stream, version, topic, state = newer_list_size(invoke)
    text = state.decode().replace('"schema_version":3', '"schema_version":2')
    with sqlite3.connect(db_url) as conn:
        position = conn.execute(
            "INSERT INTO stored_events (originator_id, originator_version, topic, state) "
            "VALUES (?, ?, ?, ?)", (stream.hex, version, topic, text)).lastrowid
        assert conn.execute("SELECT typeof(state) FROM stored_events WHERE rowid = ?",
                            (position,)).fetchone()[0] == "text"
    rows = count_rows(db_url)
    for args in COMMANDS:
        done = invoke(*args)
        assert done.code == 5, (args, done.stdout, done.stderr)
        done.one_line_error(f"position {position}", "ListSizeRecorded")
    for args in WRITES:
        done = invoke(*args, actor=ALLOCATOR)
        assert done.code == 5, (args, done.stdout, done.stderr)
        done.one_line_error(f"position {position}", "ListSizeRecorded")
    assert count_rows(db_url) == rows


def test_verify_still_reads_the_bytes_of_a_log_with_an_unreadable_event(
    invoke: Ledger, db_url: str
) -> None:
    populate(invoke)
    insert_row(db_url, *unknown_topic())
    assert invoke("checkpoint").code == 5
    done = invoke("verify")
    assert done.code == 0, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr


def test_key_commands_refuse_a_log_with_an_unreadable_event_and_change_nothing(
    invoke: Ledger, db_url: str, signing_key: Path
) -> None:
    populate(invoke)
    listed = invoke("key", "list")
    assert listed.code == 0, listed.stderr
    key_id = listed.stdout.split()[0]
    position = insert_row(db_url, *unknown_topic())
    key_file = signing_key.read_bytes()
    env = clean_env() | {"LEDGER_SIGNING_KEY": str(signing_key)}
    for args in (("key", "rotate"), ("key", "retire", key_id), ("key", "list")):
        done = subprocess.run([*ledger_executable(), "--db", db_url, *args], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 5, (args, done.stdout, done.stderr)
        Run(done.returncode, done.stdout, done.stderr).one_line_error(
            f"position {position}", "[rule: unreadable-event]")
    assert signing_key.read_bytes() == key_file
    assert sorted(p.name for p in signing_key.parent.glob(f"{signing_key.name}*")) == [
        signing_key.name]


def test_checkpoint_export_and_public_key_refuse_a_log_with_an_unreadable_event(
    invoke: Ledger, db_url: str, signing_key: Path
) -> None:
    populate(invoke)
    assert invoke("checkpoint").code == 0
    position = insert_row(db_url, *unknown_topic())
    key_file = signing_key.read_bytes()
    env = clean_env() | {"LEDGER_SIGNING_KEY": str(signing_key)}
    for args in (("checkpoint", "--export"), ("checkpoint", "--public-key")):
        done = subprocess.run([*ledger_executable(), "--db", db_url, *args], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 5, (args, done.stdout, done.stderr)
        assert done.stdout == "", (args, done.stdout)
        Run(done.returncode, done.stdout, done.stderr).one_line_error(
            f"position {position}", "'BudgetFrozen'", "upgrade the ledger",
            "[rule: unreadable-event]")
    assert signing_key.read_bytes() == key_file
