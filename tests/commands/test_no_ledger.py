"""Reads and verification never create a ledger; `prove` refuses an unknown practice."""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from commands.errors import EXIT_STORE_UNAVAILABLE
from tests.commands.conftest import Ledger, clean_env, ledger_executable
from tests.conftest import PG_BASE_URL

pytestmark = pytest.mark.usefixtures("signing_key")
ALLOCATOR = "allocator:Q71"

READS = [
    ("holders",),
    ("holders", "--practice", "A81001"),
    ("trail", "A81001"),
    ("position",),
    ("position", "--consortium", "16C", "--plot", "chart.svg"),
    ("pools",),
    ("replay", "A81001", "--year", "2024-25"),
    ("events",),
    ("projections", "status"),
    ("projections", "rebuild"),
    ("quality",),
    ("variation",),
    ("verify",),
    ("checkpoint",),
    ("prove", "A81001", "--out", "bundle.json"),
]


def _pg_tables(url: str) -> int:
    schema = parse_qs(urlsplit(url).query)["schema"][0]
    with psycopg.connect(PG_BASE_URL) as conn:
        row = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def _nothing_created(db_url: str, tmp_path: Path) -> None:
    if db_url.startswith("postgresql://"):
        assert _pg_tables(db_url) == 0
    else:
        assert sorted(p.name for p in tmp_path.iterdir()) == [], list(tmp_path.iterdir())


@pytest.mark.parametrize("args", READS, ids=" ".join)
def test_a_read_where_there_is_no_ledger_refuses_and_creates_nothing(
    invoke: Ledger, db_url: str, tmp_path: Path, args: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LEDGER_SIGNING_KEY", str(tmp_path / "elsewhere" / "key"))
    done = invoke(*args)
    assert done.code == 3, (done.stdout, done.stderr)
    done.one_line_error("no ledger at")
    _nothing_created(db_url, tmp_path)


def test_a_mistyped_db_path_is_refused_not_created(invoke: Ledger, tmp_path: Path) -> None:
    assert invoke("practice", "register", "A81001", "--name", "Densham", "--list-size", "4069",
                  actor=ALLOCATOR).code == 0
    typo = tmp_path / "ledgr.db"
    for args in (("holders",), ("verify",), ("trail", "A81001")):
        done = invoke(*args, db=str(typo))
        assert done.code == 3
        done.one_line_error(f"no ledger at {typo}")
        assert not typo.exists()


def test_prove_of_an_unknown_practice_refuses_like_trail(invoke: Ledger, tmp_path: Path) -> None:
    assert invoke("practice", "register", "A81001", "--name", "Densham", "--list-size", "4069",
                  actor=ALLOCATOR).code == 0
    trail = invoke("trail", "B99999")
    assert trail.code == 1
    bundle = tmp_path / "bundle.json"
    proved = invoke("prove", "B99999", "--out", str(bundle))
    assert proved.code == 1, proved.stdout
    proved.one_line_error("no practice B99999")
    assert not bundle.exists()


def test_a_refused_write_where_there_is_no_ledger_leaves_no_file(
    invoke: Ledger, tmp_path: Path
) -> None:
    ledger = tmp_path / "empty" / "e.db"
    ledger.parent.mkdir()
    done = invoke("spend", "settle", "R-0001", "--amount", "5", actor="practice:A81001",
                  db=str(ledger))
    assert done.code == 1, (done.stdout, done.stderr)
    done.one_line_error("no commitment")
    assert list(ledger.parent.iterdir()) == []
    read = invoke("position", db=str(ledger))
    assert read.code == 3
    read.one_line_error(f"no ledger at {ledger}")
    # A write that records something still creates the ledger.
    assert invoke("practice", "register", "A81001", "--name", "Densham", "--list-size", "4069",
                  actor=ALLOCATOR, db=str(ledger)).code == 0
    assert invoke("position", db=str(ledger)).code == 0


def _pg_schema_exists(url: str) -> bool:
    schema = parse_qs(urlsplit(url).query)["schema"][0]
    with psycopg.connect(PG_BASE_URL) as conn:
        row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return row is not None


def test_a_refused_write_in_a_new_postgres_schema_leaves_no_schema(
    invoke: Ledger, pg_url: str
) -> None:
    done = invoke("spend", "settle", "R-0001", "--amount", "5", actor="practice:A81001",
                  db=pg_url)
    assert done.code == 1, (done.stdout, done.stderr)
    done.one_line_error("no commitment")
    assert not _pg_schema_exists(pg_url)
    read = invoke("position", db=pg_url)
    assert read.code == 3
    read.one_line_error("no ledger at")
    assert invoke("practice", "register", "A81001", "--name", "Densham", "--list-size", "4069",
                  actor=ALLOCATOR, db=pg_url).code == 0
    # Once it holds events, a later refused write leaves the ledger as it was.
    assert invoke("spend", "settle", "R-0001", "--amount", "5", actor="practice:A81001",
                  db=pg_url).code == 1
    assert _pg_tables(pg_url) > 0
    assert invoke("position", db=pg_url).code == 0


def test_a_refused_write_in_an_existing_empty_schema_keeps_the_schema(
    invoke: Ledger, pg_url: str
) -> None:
    schema = parse_qs(urlsplit(pg_url).query)["schema"][0]
    with psycopg.connect(PG_BASE_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    done = invoke("spend", "settle", "R-0001", "--amount", "5", actor="practice:A81001",
                  db=pg_url)
    assert done.code == 1
    assert _pg_schema_exists(pg_url)


@pytest.mark.e2e
def test_a_read_with_no_db_named_says_the_default_was_used_and_how_to_name_one(
    tmp_path: Path,
) -> None:
    env = clean_env()  # no LEDGER_DB
    for args in (("holders",), ("trail", "A81001", "--year", "2024-25"), ("verify",)):
        done = subprocess.run([*ledger_executable(), *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == EXIT_STORE_UNAVAILABLE, done.stderr
        assert done.stderr == ("error: no ledger at ledger.db, the default: name the ledger "
                               "with --db PATH or LEDGER_DB [rule: store]\n"), args
        named = subprocess.run([*ledger_executable(), *args, "--db", "ledger.db"],
                               cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=120, check=False)
        assert named.returncode == EXIT_STORE_UNAVAILABLE
        assert named.stderr == "error: no ledger at ledger.db [rule: store]\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_db_is_a_usage_error_and_nothing_is_created(tmp_path: Path, blank: str) -> None:
    env = clean_env()
    for args in (("holders",), ("--actor", "allocator:Q71", "practice", "register", "A81001",
                                "--name", "Densham", "--list-size", "4069")):
        done = subprocess.run([*ledger_executable(), "--db", blank, *args], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120,
                              check=False)
        assert done.returncode == 2, done.stderr
        assert done.stderr == ("error: --db is blank: give the ledger's file path "
                               "(ledger.db) or a postgresql:// URL [rule: db]\n")
    assert list(tmp_path.iterdir()) == []


def test_version_prints_the_installed_version_and_touches_no_ledger(tmp_path: Path) -> None:
    from importlib.metadata import version  # noqa: PLC0415

    for args in (("--version",), ("--version", "holders")):
        done = subprocess.run([*ledger_executable(), *args], cwd=tmp_path, env=clean_env(),
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"ledger {version('commissioning-ledger')}\n"
    assert list(tmp_path.iterdir()) == []
