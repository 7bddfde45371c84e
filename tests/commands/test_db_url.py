"""A PostgreSQL `--db` URL the ledger cannot use exactly as written is refused in one line
(exit 2, rule db) before anything is opened or created: never a traceback, never a write
to the default schema because a parameter was misspelt, left blank or given twice."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest

from tests.commands.conftest import Run, clean_env, ledger_executable
from tests.conftest import PG_BASE_URL

BASE = "postgresql://postgres:hunter2@127.0.0.1:5432/test"
LONG_SCHEMA = "h" + "x" * 49  # 50 characters: its NOTIFY channel would pass 63 bytes

BAD_URLS = {
    "port past 65535": ("postgresql://postgres:hunter2@127.0.0.1:99999/test?schema=h_port",
                        "the port must be a whole number from 1 to 65535"),
    "port 0": ("postgresql://postgres:hunter2@127.0.0.1:0/test?schema=h_port",
               "the port must be a whole number from 1 to 65535"),
    "port not a number": ("postgresql://postgres:hunter2@127.0.0.1:abc/test?schema=h_port",
                          "malformed PostgreSQL URL"),
    # A password holding `/`, `?` or `#` unencoded ends the host part early: what is left
    # of it reads as a port, and is not echoed.
    "password holding a slash": ("postgresql://postgres:hunter2/x@127.0.0.1/test?schema=h_port",
                                 "the port must be a whole number from 1 to 65535"),
    "password holding a question mark": (
        "postgresql://postgres:hunter2?x@127.0.0.1/test?schema=h_port",
        "percent-encoded"),
    "password holding a hash": ("postgresql://postgres:12#hunter2@127.0.0.1/test?schema=h_port",
                                "percent-encoded"),
    "a fragment": (f"{BASE}?schema=h_port#x", "a # part"),
    "password holding @ and a bad port": (
        "postgresql://postgres:x@hunter2@127.0.0.1:99999/test?schema=h_port",
        "the port must be a whole number from 1 to 65535"),
    "bracket left open": ("postgresql://postgres:hunter2@[::1/test?schema=h_v6",
                          "malformed PostgreSQL URL"),
    # connect_timeout is read as every whole number is (parse_whole_number), as rule db
    "timeout not a number": (f"{BASE}?schema=h_timeout&connect_timeout=abc",
                             "connect_timeout (seconds) in the PostgreSQL URL "
                             f"'{BASE.replace('hunter2', '***')}?schema=h_timeout&"
                             "connect_timeout=abc' must be a whole number written in the "
                             "digits 0-9 alone"),
    "timeout with a sign": (f"{BASE}?schema=h_timeout&connect_timeout=%2B5",
                            "must be a whole number written in the digits 0-9 alone (no sign"),
    "timeout blank": (f"{BASE}?schema=h_timeout&connect_timeout=",
                      "must be a whole number written in the digits 0-9 alone"),
    "timeout 0": (f"{BASE}?schema=h_timeout&connect_timeout=0",
                  "connect_timeout (seconds) in the PostgreSQL URL"),
    "timeout past an hour": (f"{BASE}?schema=h_timeout&connect_timeout=3601",
                             "must be 1 to 3600, not '3601'"),
    "misspelt schema": (f"{BASE}?shema=h_misspelt", "unknown parameter 'shema'"),
    "blank schema": (f"{BASE}?schema=", "malformed schema name ''"),
    "schema twice": (f"{BASE}?schema=h_one&schema=h_two", "parameter schema is given twice"),
    "schema too long for its channel": (f"{BASE}?schema={LONG_SCHEMA}",
                                        f"malformed schema name '{LONG_SCHEMA}': 1 to 49"),
}


def ledger(tmp_path: Path, *args: str) -> Run:
    done = subprocess.run([*ledger_executable(), *args], cwd=tmp_path, env=clean_env(),
                          capture_output=True, text=True, timeout=60, check=False)
    return Run(done.returncode, done.stdout, done.stderr)


def public_tables() -> int:
    with psycopg.connect(PG_BASE_URL) as conn:
        row = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                           ).fetchone()
        assert row is not None
        return int(row[0])


def schemas_named(*names: str) -> list[str]:
    with psycopg.connect(PG_BASE_URL) as conn:
        return [r[0] for r in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", [list(names)])]


@pytest.mark.postgres
@pytest.mark.parametrize("case", list(BAD_URLS))
def test_a_postgresql_url_the_ledger_cannot_use_as_written_is_refused_before_opening(
        tmp_path: Path, case: str) -> None:
    url, fragment = BAD_URLS[case]
    tables = public_tables()
    for args in (("holders",),
                 ("--actor", "allocator:Q71", "practice", "register", "A81001", "--name",
                  "Densham", "--list-size", "4069", "--on", "2024-04-01")):
        done = ledger(tmp_path, "--db", url, *args)
        assert done.code == 2, (args, done.stdout, done.stderr)
        done.one_line_error(fragment, "[rule: db]")
        assert "hunter2" not in done.stderr
    assert public_tables() == tables
    assert schemas_named("h_port", "h_v6", "h_timeout", "h_misspelt", "h_one", "h_two",
                         LONG_SCHEMA) == []
