"""A command whose standard output cannot be written (a full disk) says so in one line on
stderr and exits 74 (EX_IOERR), never a traceback; a write has recorded what it answers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from commands.errors import EXIT_OUTPUT_FAILED
from tests.commands.conftest import Ledger, Run, clean_env, head, ledger_executable

pytestmark = [pytest.mark.usefixtures("signing_key"),
              pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")]
ALLOCATOR = "allocator:Q71"


def into_a_full_disk(db_url: str, cwd: Path, *args: str, actor: str | None = None) -> Run:
    """The real `ledger`, its standard output a device on which every write fails ENOSPC."""
    actor_args = ["--actor", actor] if actor else []
    with Path("/dev/full").open("w") as full:
        done = subprocess.run([*ledger_executable(), "--db", db_url, *actor_args, *args],
                              cwd=cwd, env=clean_env(), stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=60, check=False)
    return Run(done.returncode, "", done.stderr)


def populate(invoke: Ledger) -> None:
    assert invoke("practice", "register", "A81001", "--name", "Densham", "--list-size", "4069",
                  "--on", "2024-04-01", actor=ALLOCATOR).code == 0
    assert invoke("budget", "allocate", "A81001", "--year", "2024-25", "--on", "2024-04-01",
                  "--element", "acute=1200000", actor=ALLOCATOR).code == 0


@pytest.mark.parametrize("read", [
    ("holders",), ("holders", "--format", "json"), ("position", "--format", "csv"),
    ("events",), ("verify",), ("token", "list"), ("checkpoint", "--public-key"),
])
def test_a_read_into_a_full_disk_is_one_line_and_exit_74(
        invoke: Ledger, db_url: str, tmp_path: Path, read: tuple[str, ...]) -> None:
    populate(invoke)
    done = into_a_full_disk(db_url, tmp_path, *read)
    assert done.code == EXIT_OUTPUT_FAILED, done.stderr
    done.one_line_error("cannot write the output: No space left on device", "[rule: output]")


def test_a_write_into_a_full_disk_is_recorded_and_says_so(
        invoke: Ledger, db_url: str, tmp_path: Path) -> None:
    populate(invoke)
    before = head(db_url)
    done = into_a_full_disk(db_url, tmp_path, "--command-id", "h-1", "budget", "harden",
                            "A81001", "--year", "2024-25", "--on", "2024-06-01",
                            actor=ALLOCATOR)
    assert done.code == EXIT_OUTPUT_FAILED, done.stderr
    done.one_line_error("cannot write the output", "stays recorded")
    assert head(db_url) == before + 1
    again = invoke("--command-id", "h-1", "budget", "harden", "A81001", "--year", "2024-25",
                   "--on", "2024-06-01", actor=ALLOCATOR)
    assert again.code == 0, again.stderr
    assert "already applied" in again.stdout
    assert head(db_url) == before + 1
