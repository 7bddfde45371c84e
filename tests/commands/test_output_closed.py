"""A reader piped into a command that stops reading early (`ledger events | head -1`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from commands.demo_ledger import build_demo
from commands.errors import EXIT_OUTPUT_CLOSED
from ledger.bootstrap import bootstrap
from tests.commands.conftest import clean_env, ledger_executable
from tests.conftest import FakeClock


def _first_line_then_close(args: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run the real `ledger` with its output a pipe that is closed after one line."""
    process = subprocess.Popen(
        [*ledger_executable(), *args], cwd=cwd, env=clean_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()
    errors = process.stderr.read()
    return process.wait(timeout=60), first, errors


def test_a_pipe_closed_early_ends_the_command_as_sigpipe_would_with_no_message(
        db_url: str, tmp_path: Path) -> None:
    with bootstrap(db_url, clock=FakeClock()) as ledger:
        build_demo(ledger.service)  # its feed is far larger than a pipe's buffer
    code, first, errors = _first_line_then_close(["--db", db_url, "events"], tmp_path)
    assert '"position":1' in first
    assert errors == ""
    assert code == EXIT_OUTPUT_CLOSED


def test_a_pipe_read_to_the_end_ends_the_command_as_done(db_url: str, tmp_path: Path) -> None:
    with bootstrap(db_url, clock=FakeClock()) as ledger:
        build_demo(ledger.service)
    done = subprocess.run([*ledger_executable(), "--db", db_url, "events"],
                          cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") > 1000
