"""The read commands end to end: the real `ledger` program in a subprocess."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.store.eventstore import open_store
from tests.projections.builders import append
from tests.projections.test_materialised import scenario

pytestmark = pytest.mark.e2e

LEDGER = [sys.executable, "-m", "commands"]


def ledger(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LEDGER, "--db", db, *args], capture_output=True, text=True,
                          check=False, timeout=60, cwd=Path(__file__).parents[2])


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "ledger.db")
    store = open_store(path)
    append(store, scenario()[0].events)
    store.close()
    return path


def test_holders_as_json_and_csv_with_the_documented_fields(db: str) -> None:
    done = ledger(db, "holders", "--practice", "A81001", "--as-of", "2024-06-15",
                  "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    prescribing = next(r for r in rows if r["element"] == "prescribing")
    assert prescribing == {"practice": "A81001", "year": "2024-25", "element": "prescribing",
                           "holder": "consortium:16C", "since": "2024-06-01"}
    done = ledger(db, "position", "--practice", "A81001", "--format", "csv")
    assert done.returncode == 0, done.stderr
    acute = next(r for r in csv.DictReader(io.StringIO(done.stdout)) if r["element"] == "acute")
    assert acute["allocated_pence"] == "900000"
    assert acute["remaining_pence"] == "591000"
    assert acute["hard"] in ("true", "false")


def test_bad_input_is_one_line_and_an_exit_code(db: str) -> None:
    unknown = ledger(db, "trail", "A99999")
    assert unknown.returncode == 1
    assert unknown.stderr.strip().count("\n") == 0
    assert "no practice A99999" in unknown.stderr
    malformed = ledger(db, "holders", "--as-of", "2024-02-30")
    assert malformed.returncode == 2
    assert "Traceback" not in malformed.stderr
    status = ledger(db, "projections", "status", "--format", "json")
    assert status.returncode == 0
    assert {r["projection"] for r in json.loads(status.stdout)} >= {"holders", "trail"}
