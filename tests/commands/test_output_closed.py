"""A reader piped into a command that stops reading early (`ledger events | head -1`)."""

from __future__ import annotations

import os
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


def _run_into_a_closed_pipe(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run the real `ledger` with its output a pipe nobody reads any more."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([*ledger_executable(), *args], cwd=cwd, env=clean_env(),
                              stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=60, check=False)
    finally:
        os.close(write_end)
    return done.returncode, done.stderr


def test_a_write_whose_output_is_closed_is_recorded_and_ends_as_sigpipe_would(
        db_url: str, tmp_path: Path) -> None:
    form = ["--db", db_url, "--actor", "allocator:Q71", "--command-id", "c-1",
            "consortium", "form", "16C", "--name", "Tees Valley", "--officer", "Dr Jane Smith"]
    code, errors = _run_into_a_closed_pipe(form, tmp_path)
    assert errors == ""
    assert code == EXIT_OUTPUT_CLOSED
    again = subprocess.run([*ledger_executable(), *form], cwd=tmp_path, env=clean_env(),
                           capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("already applied: formed consortium 16C")
