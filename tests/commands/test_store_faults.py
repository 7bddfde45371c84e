"""Store faults named by their cause (exit 3, one line), and reads of a read-only ledger.

As root, file modes do not stop writes: a read-only file or directory is made with
`chattr +i` (immutable, which binds root too), a full disk with a small tmpfs, and
a read-only PostgreSQL ledger with a role that may only SELECT.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from commands.app import app
from tests.commands.conftest import Ledger, Run, head
from tests.conftest import PG_BASE_URL

ALLOCATOR = "allocator:Q71"
READS = [("holders", "--practice", "A81001"), ("trail", "A81001"), ("position",),
         ("events",), ("verify",), ("replay", "A81001", "--year", "2024-25")]


@pytest.fixture
def invoke() -> Ledger:
    """The `ledger` app in-process, on the store each test names with `db=`."""
    runner = CliRunner()

    def run(*args: str, actor: str | None = None, db: str = "") -> Run:
        head_args = ["--db", db] + (["--actor", actor] if actor else [])
        result = runner.invoke(app, [*head_args, *args],
                               env={"LEDGER_DB": None, "LEDGER_ACTOR": None})
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Run(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture(autouse=True)
def signing_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keys" / "signing-key"
    path.parent.mkdir()
    monkeypatch.setenv("LEDGER_SIGNING_KEY", str(path))
    return path


def populate(invoke: Ledger, db: str) -> None:
    assert invoke("practice", "register", "A81001", "--name", "Densham", "--list-size", "4069",
                  "--on", "2024-04-01", actor=ALLOCATOR, db=db).code == 0
    assert invoke("budget", "allocate", "A81001", "--year", "2024-25", "--on", "2024-04-01",
                  "--element", "acute=1200000", actor=ALLOCATOR, db=db).code == 0


def register(invoke: Ledger, db: str, code: str = "B82002") -> tuple[int, str, str]:
    done = invoke("practice", "register", code, "--name", "Another", "--list-size", "10",
                  actor=ALLOCATOR, db=db)
    return done.code, done.stdout, done.stderr


@contextmanager
def immutable(path: Path) -> Iterator[None]:
    """`chattr +i`: neither the owner nor root may change it until `chattr -i`."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True,
                          check=False)
    if made.returncode != 0:
        pytest.skip(f"this filesystem cannot make files immutable: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_read_only_ledger_file_refuses_writes_by_name_and_still_reads(
    invoke: Ledger, tmp_path: Path
) -> None:
    db = tmp_path / "ro" / "ledger.db"
    db.parent.mkdir()
    populate(invoke, str(db))
    before = digest(db)
    with immutable(db):
        code, _, stderr = register(invoke, str(db))
        assert code == 3
        assert "read-only" in stderr
        assert "the file cannot be written" in stderr
        assert "busy" not in stderr
        assert "attempts" not in stderr
        for args in READS:
            done = invoke(*args, db=str(db))
            assert done.code == 0, (args, done.stderr)
        assert "A81001" in invoke("holders", "--practice", "A81001", db=str(db)).stdout
        assert digest(db) == before
    assert head(str(db)) == 2


def test_a_read_only_directory_refuses_writes_by_name_and_still_reads(
    invoke: Ledger, tmp_path: Path
) -> None:
    db = tmp_path / "ro" / "ledger.db"
    db.parent.mkdir()
    populate(invoke, str(db))
    with immutable(db.parent):
        code, _, stderr = register(invoke, str(db))
        assert code == 3
        assert "directory" in stderr
        assert "cannot be written" in stderr
        assert "busy" not in stderr
        for args in READS:
            done = invoke(*args, db=str(db))
            assert done.code == 0, (args, done.stderr)
        assert sorted(p.name for p in db.parent.iterdir()) == ["ledger.db"]
    assert head(str(db)) == 2


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        # Lazy: the in-process ledger may still hold the file open; the mount goes
        # once the last handle closes.
        subprocess.run(["umount", "--lazy", str(mount)], check=True)


def fill(disk: Path) -> None:
    out = (disk / "filler").open("wb", buffering=0)
    try:
        while True:
            out.write(b"\0" * 4096)
    except OSError:
        pass
    finally:
        out.close()


def test_a_full_disk_is_named_and_nothing_is_recorded(
    invoke: Ledger, small_disk: Path
) -> None:
    db = small_disk / "ledger.db"
    populate(invoke, str(db))
    fill(small_disk)
    code, _, stderr = register(invoke, str(db))
    assert code == 3
    assert "is full" in stderr
    assert "busy" not in stderr
    assert "Traceback" not in stderr
    (small_disk / "filler").unlink()
    assert head(str(db)) == 2
    assert register(invoke, str(db))[0] == 0


@pytest.fixture
def pg_reader(pg_url: str) -> Iterator[str]:
    """The URL of `pg_url`'s ledger as a role that may only read it."""
    role = f"reader_{uuid.uuid4().hex[:12]}"
    schema = parse_qs(urlsplit(pg_url).query)["schema"][0]
    yield pg_url.replace("postgres@", f"{role}@").replace("//postgres", f"//{role}")
    with psycopg.connect(PG_BASE_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {0}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {0}").format(sql.Identifier(role)))
    del schema


def grant_read(pg_url: str, reader_url: str) -> None:
    role = urlsplit(reader_url).username
    schema = parse_qs(urlsplit(pg_url).query)["schema"][0]
    with psycopg.connect(PG_BASE_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {0} LOGIN").format(sql.Identifier(str(role))))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {0} TO {1}").format(
            sql.Identifier(schema), sql.Identifier(str(role))))
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {0} TO {1}").format(
            sql.Identifier(schema), sql.Identifier(str(role))))


@pytest.mark.postgres
def test_a_postgresql_user_that_may_only_read_is_named_and_can_verify(
    invoke: Ledger, pg_url: str, pg_reader: str
) -> None:
    populate(invoke, pg_url)
    # The projections a holders read needs are brought up to date by a writer.
    assert invoke("holders", db=pg_url).code == 0
    grant_read(pg_url, pg_reader)
    code, _, stderr = register(invoke, pg_reader)
    assert code == 3
    assert "may not write" in stderr
    assert "busy" not in stderr
    assert invoke("verify", db=pg_reader).code == 0
    held = invoke("holders", "--practice", "A81001", db=pg_reader)
    assert held.code == 0, held.stderr
    assert "A81001" in held.stdout
    assert invoke("practice", "register", "C83003", "--name", "Third", "--list-size", "5",
                  actor=ALLOCATOR, db=pg_url).code == 0
    behind = invoke("holders", db=pg_reader)
    assert behind.code == 3
    behind.one_line_error("1 event(s) behind", "may not write")


def test_a_file_that_is_not_a_database_is_named_not_overwritten(
    invoke: Ledger, tmp_path: Path
) -> None:
    db = tmp_path / "notes.txt"
    db.write_text("not a database\n" * 100)
    before = digest(db)
    for done in (invoke("holders", db=str(db)),
                 invoke("practice", "register", "A81001", "--name", "X", "--list-size", "1",
                        actor=ALLOCATOR, db=str(db))):
        assert done.code == 3
        done.one_line_error("is not a readable ledger")
    assert digest(db) == before


def key_files(signing_key: Path) -> dict[str, str]:
    return {p.name: digest(p) for p in signing_key.parent.iterdir()}


def test_rotating_the_key_of_a_read_only_ledger_file_changes_nothing(
    invoke: Ledger, tmp_path: Path, signing_key: Path
) -> None:
    db = tmp_path / "ro" / "ledger.db"
    db.parent.mkdir()
    populate(invoke, str(db))
    assert invoke("checkpoint", db=str(db)).code == 0
    keys_before = key_files(signing_key)
    with immutable(db):
        rotated = invoke("key", "rotate", db=str(db))
        assert rotated.code == 3, rotated.stdout
        rotated.one_line_error("read-only", "the file cannot be written")
        assert rotated.stdout == ""
        retired = invoke("key", "retire", "abcdef01", db=str(db))
        assert retired.code == 3
        retired.one_line_error("read-only")
    assert key_files(signing_key) == keys_before
    listed = invoke("key", "list", db=str(db)).stdout.splitlines()
    assert len(listed) == 1
    assert "now" in listed[0]


@pytest.mark.postgres
def test_rotating_the_key_as_a_user_that_may_only_read_changes_nothing(
    invoke: Ledger, pg_url: str, pg_reader: str, signing_key: Path
) -> None:
    populate(invoke, pg_url)
    assert invoke("checkpoint", db=pg_url).code == 0
    assert invoke("key", "list", db=pg_url).code == 0
    keys_before = key_files(signing_key)
    grant_read(pg_url, pg_reader)
    rotated = invoke("key", "rotate", db=pg_reader)
    assert rotated.code == 3, rotated.stdout
    rotated.one_line_error("may not write")
    assert key_files(signing_key) == keys_before
    assert len(invoke("key", "list", db=pg_url).stdout.splitlines()) == 1
