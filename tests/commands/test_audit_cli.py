"""`ledger verify / checkpoint / prove / verify-bundle`: exit codes and one-line errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import parse_qs

import orjson
import psycopg
import pytest
from psycopg import sql

from ledger.auditlog.seal import seal
from ledger.domain.events import budget_stream
from ledger.store.eventstore import open_store
from tests.commands.conftest import Ledger, Run

pytestmark = pytest.mark.usefixtures("signing_key")
ALLOCATOR = "allocator:Q71"


def populate(invoke: Ledger) -> None:
    assert invoke("practice", "register", "A81001", "--name", "Densham", "--list-size", "4069",
                  "--on", "2024-04-01", actor=ALLOCATOR).code == 0
    assert invoke("budget", "allocate", "A81001", "--year", "2024-25", "--element",
                  "acute=1200000", actor=ALLOCATOR).code == 0


def adjust(invoke: Ledger, by: str = "-5000") -> Run:
    """The allocator's `budget adjust` of A81001's acute element in 2024-25 by `by` pounds:
    one more event to seal."""
    return invoke("budget", "adjust", "A81001", "--year", "2024-25", "--element", "acute",
                  "--by", by, "--reason", "recount", actor=ALLOCATOR)


def test_the_audit_round_trip(invoke: Ledger, tmp_path: Path, signing_key: Path) -> None:
    populate(invoke)
    first = invoke("checkpoint", "--out", str(tmp_path / "cp.txt"))
    assert first.code == 0, first.stderr
    assert first.stdout.splitlines()[1] == "2"
    assert signing_key.stat().st_mode & 0o777 == 0o600
    key = invoke("checkpoint", "--public-key").stdout.strip()
    assert key.startswith("commissioning-ledger/")
    ok = invoke("verify")
    assert ok.code == 0, ok.stdout
    assert "sound: 2 sealed events" in ok.stdout
    assert adjust(invoke).code == 0
    bundle = tmp_path / "bundle.json"
    proved = invoke("prove", "A81001", "--out", str(bundle))
    assert proved.code == 0, proved.stderr
    checked = invoke("verify-bundle", str(bundle), "--public-key", key, "--against",
                     str(tmp_path / "cp.txt"))
    assert checked.code == 0, checked.stderr
    assert "3 event(s) of A81001" in checked.stdout
    assert "size 2 is a prefix of the log at size 3" in checked.stdout
    data = orjson.loads(bundle.read_bytes())
    data["events"][1]["state"] = data["events"][0]["state"]
    bundle.write_bytes(orjson.dumps(data))
    bad = invoke("verify-bundle", str(bundle), "--public-key", key)
    assert bad.code == 4
    bad.one_line_error("verification failed", "position 2")


def edit_first_event(db_url: str, old: str, new: str) -> None:
    """What someone with write access to the database could do to the first event."""
    if not db_url.startswith("postgresql://"):
        with sqlite3.connect(db_url) as conn:
            conn.execute("UPDATE stored_events SET state = replace(state, ?, ?) WHERE rowid = 1",
                         (old, new))
        return
    base, _, query = db_url.partition("?")
    schema = parse_qs(query)["schema"][0]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "UPDATE {0}.ledger_events SET state = convert_to(replace("
                "convert_from(state, 'UTF8'), %s, %s), 'UTF8') WHERE notification_id = 1"
            ).format(sql.Identifier(schema)),
            (old, new),
        )


def test_verify_exits_4_on_tampering(invoke: Ledger, db_url: str) -> None:
    populate(invoke)
    assert invoke("checkpoint").code == 0
    edit_first_event(db_url, "Densham", "Dansham")
    result = invoke("verify")
    assert result.code == 4
    assert "first bad position 1: edited" in result.stdout
    as_json = orjson.loads(invoke("verify", "--format", "json").stdout)
    assert (as_json["ok"], as_json["first_bad_position"], as_json["first_damage"]) == (
        False, 1, "edited")


def test_bad_bundles_and_keys_are_one_line_errors(invoke: Ledger, tmp_path: Path) -> None:
    populate(invoke)
    bundle = tmp_path / "bundle.json"
    assert invoke("prove", "A81001", "--out", str(bundle)).code == 0
    foreign_key = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    wrong = invoke("verify-bundle", str(bundle), "--public-key", foreign_key)
    assert wrong.code == 4
    wrong.one_line_error("is from log", "PeterNeumann")
    missing = invoke("verify-bundle", str(bundle), "--public-key", str(tmp_path / "no" / "key"))
    assert missing.code == 2
    missing.one_line_error("no key file")
    (tmp_path / "junk.json").write_text("{not json")
    junk = invoke("verify-bundle", str(tmp_path / "junk.json"))
    assert junk.code == 2
    junk.one_line_error("not JSON")
    (tmp_path / "other.json").write_text('{"format": "something-else"}')
    other = invoke("verify-bundle", str(tmp_path / "other.json"))
    assert other.code == 2
    other.one_line_error("not a commissioning-ledger/proof-bundle file")
    absent = invoke("verify-bundle", str(tmp_path / "absent.json"))
    assert absent.code == 2
    absent.one_line_error("cannot read")


def test_key_rotation_and_retirement(invoke: Ledger, tmp_path: Path) -> None:
    populate(invoke)
    assert invoke("checkpoint").code == 0
    old = invoke("checkpoint", "--public-key").stdout.strip()
    rotated = invoke("key", "rotate")
    assert rotated.code == 0, rotated.stderr
    new = rotated.stdout.strip()
    assert new != old
    assert new == invoke("checkpoint", "--public-key").stdout.strip()
    listed = invoke("key", "list").stdout.splitlines()
    assert [line.split()[0] for line in listed] == [old.split("+")[1], new.split("+")[1]]
    assert adjust(invoke).code == 0
    assert invoke("checkpoint").code == 0
    verified = invoke("verify")
    assert verified.code == 0, verified.stdout
    assert "2 checkpoint(s) consistent" in verified.stdout
    current = invoke("key", "retire", new.split("+")[1])
    assert current.code == 2
    current.one_line_error("current signing key", "rotate")
    unknown = invoke("key", "retire", "abcdef01")
    assert unknown.code == 1
    retired = invoke("key", "retire", old.split("+")[1])
    assert retired.code == 0, retired.stderr
    assert "RETIRED" in invoke("key", "list").stdout
    assert invoke("verify").code == 0  # what it signed before retirement still holds
    bundle = tmp_path / "b.json"
    assert invoke("prove", "A81001", "--out", str(bundle)).code == 0
    checked = invoke("verify-bundle", str(bundle), "--public-key", new)
    assert f"by key {new.split('+')[1]}" in checked.stdout


def test_verify_after_a_rotation_checks_each_checkpoint_with_the_key_that_signed_it(
    invoke: Ledger, db_url: str,
) -> None:
    populate(invoke)
    assert invoke("checkpoint").code == 0
    old = invoke("checkpoint", "--public-key").stdout.strip()
    rotated = invoke("key", "rotate")
    assert rotated.code == 0, rotated.stderr
    new = rotated.stdout.strip()
    assert adjust(invoke).code == 0
    assert invoke("checkpoint").code == 0
    both = invoke("verify", "--public-key", old, "--public-key", new)
    assert both.code == 0, both.stdout
    assert "2 checkpoint(s) consistent (signatures checked)" in both.stdout
    for given, other in ((new, old), (old, new)):
        one = invoke("verify", "--public-key", given)
        assert one.code == 4, one.stdout
        assert "TAMPERED: in the audit tables: bad-checkpoint-signature: checkpoint #" in (
            one.stdout)
        assert "not signed by any of the given keys" in one.stdout
        assert "1 problem(s) in all" in one.stdout
        assert other.split("+")[1] not in one.stdout


def run_sql(db_url: str, statement: str, params: tuple[object, ...] = ()
            ) -> list[tuple[object, ...]]:
    """`statement` in the store's dialect (`?`, `{events}`, `{position}`, audit tables)."""
    store = open_store(db_url)
    try:
        query = store.recorder.dialect.sql(statement)
    finally:
        store.close()
    if not db_url.startswith("postgresql://"):
        conn = sqlite3.connect(db_url)
        try:
            found = conn.execute(query, params).fetchall()
            conn.commit()
            return found
        finally:
            conn.close()
    with psycopg.connect(db_url.partition("?")[0], autocommit=True) as pg:
        cur = pg.execute(query, params)
        return cur.fetchall() if cur.description else []


def test_verify_exits_4_on_a_stream_with_a_version_missing_sealed_over(
    invoke: Ledger, db_url: str
) -> None:
    populate(invoke)
    for ref in ("R-1", "R-2", "R-3"):
        assert invoke("spend", "commit", "A81001", "--year", "2024-25", "--element", "acute",
                      "--ref", ref, "--amount", "10", "--provider", "RTR", "--service", "Hip",
                      actor="practice:A81001").code == 0
    stream = budget_stream("A81001", "2024-25")
    key = str(stream) if db_url.startswith("postgresql://") else stream.hex
    rows = run_sql(db_url, "SELECT {position}, originator_version FROM {events} "
                           "WHERE originator_id = ? ORDER BY {position}", (key,))
    assert [row[1] for row in rows] == [1, 2, 3, 4]
    run_sql(db_url, "DELETE FROM {events} WHERE {position} = ?", (rows[1][0],))
    for table in ("leaves", "nodes", "tree", "checkpoints"):
        run_sql(db_url, f"DELETE FROM {{{table}}}")
    store = open_store(db_url)
    try:
        seal(store)
    finally:
        store.close()
    result = invoke("verify")
    assert result.code == 4
    assert (f"TAMPERED: first bad position {rows[2][0]}: stream-version-gap: stream {stream} "
            "has version 3 after version 1") in result.stdout
    as_json = orjson.loads(invoke("verify", "--format", "json").stdout)
    assert (as_json["ok"], as_json["first_bad_position"], as_json["first_damage"]) == (
        False, rows[2][0], "stream-version-gap")


def test_verify_lists_every_problem_once_the_first_by_position_at_the_top(
    invoke: Ledger, db_url: str
) -> None:
    populate(invoke)
    for ref in ("R-1", "R-2"):
        assert invoke("spend", "commit", "A81001", "--year", "2024-25", "--element", "acute",
                      "--ref", ref, "--amount", "10", "--provider", "RTR", "--service", "Hip",
                      actor="practice:A81001").code == 0
    assert invoke("checkpoint").code == 0
    run_sql(db_url, "DELETE FROM {events} WHERE {position} >= ?", (3,))
    run_sql(db_url, "DELETE FROM {leaves} WHERE leaf_index >= ?", (2,))
    as_json = orjson.loads(invoke("verify", "--format", "json").stdout)
    details = {d["detail"] for d in as_json["damage"]}
    assert details == {"the tree head says 4 leaves up to position 4; the leaf table holds 2 "
                       "up to 2", "checkpoint #1 signed 4 events; the log now has 2"}
    result = invoke("verify")
    assert result.code == 4
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        "TAMPERED: first bad position 3: truncated: checkpoint #1 signed 4 events; the log "
        "now has 2",
        "  also: tree-damaged: the tree head says 4 leaves up to position 4; the leaf table "
        "holds 2 up to 2",
        "2 problem(s) in all"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_bundle_or_checkpoint_that_never_ends_is_refused_not_read_forever(
    invoke: Ledger, run_ledger: Ledger, tmp_path: Path, device: str
) -> None:
    if not Path(device).exists():
        pytest.skip(f"no {device}")
    populate(invoke)
    bundle = tmp_path / "bundle.json"
    assert invoke("prove", "A81001", "--out", str(bundle)).code == 0
    for args in (("verify-bundle", device), ("verify-bundle", str(bundle), "--against", device)):
        done = run_ledger(*args, timeout=60)
        assert done.code == 2, (args, done.stderr)
        done.one_line_error(device, "NUL byte", "[rule: bundle]")


def populate_then_edit(invoke: Ledger, db_url: str, edit: str) -> None:
    """A sealed ledger, then `edit` run on its tree head around the ledger (a `?` in it
    binds empty bytes: a compact range emptied)."""
    populate(invoke)
    run_sql(db_url, edit, (b"",) if "?" in edit else ())


@pytest.mark.parametrize("edit", [
    "UPDATE {tree} SET size = size + 1",
    "UPDATE {tree} SET frontier = ?",
], ids=["size one more", "compact range emptied"])
def test_a_tree_head_that_does_not_fit_its_compact_range_is_damage_verify_reports(
        invoke: Ledger, db_url: str, edit: str) -> None:
    populate_then_edit(invoke, db_url, edit)
    result = invoke("verify")
    assert result.code == 4, result.stderr
    assert "tree-damaged" in result.stdout
    assert "Traceback" not in result.stderr
    as_json = orjson.loads(invoke("verify", "--format", "json").stdout)
    assert (as_json["ok"], as_json["first_damage"]) == (False, "tree-damaged")
    write = adjust(invoke, by="5")
    assert write.code != 0
    assert "Traceback" not in write.stderr
    assert "[rule: merkle-log]" in write.stderr


@pytest.mark.parametrize("edit", [
    "DELETE FROM {tree}",
    "UPDATE {tree} SET size = 0, last_position = 0, frontier = ?",
], ids=["deleted", "emptied"])
def test_a_write_after_the_tree_head_was_deleted_or_emptied_is_refused_as_a_damaged_log(
        invoke: Ledger, db_url: str, edit: str) -> None:
    populate_then_edit(invoke, db_url, edit)
    write = adjust(invoke, by="5")
    assert write.code == 4, write.stderr
    assert "its tree head holds no leaves, but leaf 0 is stored" in write.stderr
    assert "[rule: merkle-log]" in write.stderr
    assert run_sql(db_url, "SELECT COUNT(*) FROM {leaves}") == [(2,)]
    result = invoke("verify")
    assert result.code == 4
    assert "tree-damaged" in result.stdout
