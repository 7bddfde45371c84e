"""`prove --out`, `checkpoint --out` and `report --out` never write over the ledger's own
files (its database and SQLite's files beside it, its signing key) nor over a file
holding another SQLite database or a private key: exit 2, nothing written, nothing signed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.commands.conftest import Ledger

pytestmark = pytest.mark.usefixtures("signing_key")
ALLOCATOR = "allocator:Q71"


def populate(invoke: Ledger) -> None:
    assert invoke("practice", "register", "A81001", "--name", "Densham", "--list-size", "4069",
                  "--on", "2024-04-01", actor=ALLOCATOR).code == 0
    assert invoke("budget", "allocate", "A81001", "--year", "2024-25", "--on", "2024-04-01",
                  "--element", "acute=1200000", actor=ALLOCATOR).code == 0


def checkpoints(invoke: Ledger) -> int:
    exported = invoke("checkpoint", "--export")
    assert exported.code == 0, exported.stderr
    return exported.stdout.count("# checkpoint ")


WRITERS = {
    "prove": ("prove", "A81001", "--out"),
    "checkpoint": ("checkpoint", "--out"),
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_an_output_file_that_is_the_signing_key_is_refused_and_the_key_kept(
    invoke: Ledger, signing_key: Path, writer: str
) -> None:
    populate(invoke)
    assert invoke("checkpoint").code == 0
    key = signing_key.read_bytes()
    signed = checkpoints(invoke)
    done = invoke(*WRITERS[writer], str(signing_key))
    assert done.code == 2, (done.stdout, done.stderr)
    done.one_line_error(str(signing_key), "the ledger's signing key", "nothing was written")
    assert signing_key.read_bytes() == key
    assert checkpoints(invoke) == signed
    assert invoke("checkpoint").code == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", "-journal"])
@pytest.mark.parametrize("writer", list(WRITERS))
def test_an_output_file_that_is_the_database_or_beside_it_is_refused(
    invoke: Ledger, db_url: str, writer: str, suffix: str
) -> None:
    populate(invoke)
    target = Path(db_url + suffix)
    before = target.read_bytes() if target.exists() else None
    done = invoke(*WRITERS[writer], str(target))
    assert done.code == 2, (done.stdout, done.stderr)
    done.one_line_error("the ledger's database", "nothing was written")
    assert (target.read_bytes() if target.exists() else None) == before
    assert invoke("verify").code == 0
    assert checkpoints(invoke) == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_database_named_another_way_is_still_refused(
    invoke: Ledger, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(invoke)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    done = invoke("prove", "A81001", "--out", "sub/../" + Path(db_url).name)
    assert done.code == 2, (done.stdout, done.stderr)
    done.one_line_error("the ledger's database")
    assert invoke("verify").code == 0


def test_an_output_file_holding_another_ledger_or_a_private_key_is_refused(
    invoke: Ledger, tmp_path: Path, signing_key: Path
) -> None:
    populate(invoke)
    other = tmp_path / "other" / "ledger.db"
    other.parent.mkdir()
    invoke("practice", "register", "A81002", "--name", "Other", "--list-size", "10",
           actor=ALLOCATOR, db=str(other))
    assert invoke("checkpoint").code == 0
    old_key = tmp_path / "signing-key.5c1fd273.old"
    shutil.copy(signing_key, old_key)
    witness_key = tmp_path / "witness.key"
    assert invoke("witness", "keygen", "--name", "w.example.org/w1", "--key",
                  str(witness_key)).code == 0
    for target, what in ((other, "holds a SQLite database"), (old_key, "holds a private key"),
                         (witness_key, "holds a private key")):
        before = target.read_bytes()
        for writer in WRITERS.values():
            done = invoke(*writer, str(target))
            assert done.code == 2, (writer, done.stdout, done.stderr)
            done.one_line_error(what, "nothing was written")
            assert target.read_bytes() == before


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_report_over_another_ledger_is_refused(invoke: Ledger, tmp_path: Path,
                                                 db_url: str) -> None:
    populate(invoke)
    copy = tmp_path / "ledger-copy.html"
    shutil.copy(db_url, copy)
    before = copy.read_bytes()
    done = invoke("report", "--allocator", "Q71", "--year", "2024-25", "--out", str(copy))
    assert done.code == 2, (done.stdout, done.stderr)
    done.one_line_error("holds a SQLite database")
    assert copy.read_bytes() == before
    assert checkpoints(invoke) == 0


def test_an_ordinary_output_file_is_written_over(invoke: Ledger, tmp_path: Path) -> None:
    populate(invoke)
    bundle = tmp_path / "bundle.json"
    bundle.write_text("an older bundle\n")
    done = invoke("prove", "A81001", "--out", str(bundle))
    assert done.code == 0, done.stderr
    assert bundle.read_bytes().startswith(b"{")


@pytest.mark.parametrize("writer", list(WRITERS))
def test_an_output_file_in_no_folder_is_refused_before_anything_is_signed(
    invoke: Ledger, tmp_path: Path, writer: str
) -> None:
    populate(invoke)
    target = tmp_path / "no-such-folder" / "out.txt"
    done = invoke(*WRITERS[writer], str(target))
    assert done.code == 2, (done.stdout, done.stderr)
    done.one_line_error("no folder", "nothing was written", "[rule: out]")
    assert not target.parent.exists()
    assert checkpoints(invoke) == 0
