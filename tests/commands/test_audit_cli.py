"""`ledger verify / checkpoint / prove / verify-bundle`: exit codes and one-line errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from tests.commands.conftest import Ledger

ALLOCATOR = "allocator:Q71"


@pytest.fixture(autouse=True)
def signing_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "signing-key"
    monkeypatch.setenv("LEDGER_SIGNING_KEY", str(path))
    return path


def populate(invoke: Ledger) -> None:
    assert invoke("practice", "register", "A81001", "--name", "Densham", "--list-size", "4069",
                  actor=ALLOCATOR).code == 0
    assert invoke("budget", "allocate", "A81001", "--year", "2024-25", "--element",
                  "acute=1200000", actor=ALLOCATOR).code == 0


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
    assert invoke("budget", "adjust", "A81001", "--year", "2024-25", "--element", "acute",
                  "--by", "-5000", "--reason", "recount", actor=ALLOCATOR).code == 0
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


def test_verify_exits_4_on_tampering(invoke: Ledger, db_url: str) -> None:
    if db_url.startswith("postgresql://"):
        pytest.skip("the edit below is SQLite's; tests/ledger/audit tamper with both stores")
    populate(invoke)
    assert invoke("checkpoint").code == 0
    with sqlite3.connect(db_url) as conn:
        conn.execute("UPDATE stored_events SET state = replace(state, 'Densham', 'Dansham') "
                     "WHERE rowid = 1")
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
