"""Driving the `ledger` command: in a subprocess (e2e) or in-process (CliRunner)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from commands.app import app
from ledger.store.eventstore import open_store

REPO = Path(__file__).resolve().parents[2]


def ledger_executable() -> list[str]:
    """The installed `ledger` entry point, or `python -m commands` when not installed."""
    script = Path(sys.executable).parent / "ledger"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "commands"]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["PYTHONPATH"] = str(REPO)
    return env


@pytest.fixture
def signing_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the log's signing key is made for the test (not yet made): in its own
    directory, as on PostgreSQL the default is one file in the home directory that
    every test and every run would share."""
    path = tmp_path / "signing-key"
    monkeypatch.setenv("LEDGER_SIGNING_KEY", str(path))
    return path


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    def one_line_error(self, *fragments: str) -> str:
        """The single stderr line of a user error, holding every fragment; no traceback."""
        assert "Traceback" not in self.stderr + self.stdout, self.stderr
        lines = self.error_lines
        assert len(lines) == 1, self.stderr
        line = lines[0]
        assert line.startswith("error: "), line
        for fragment in fragments:
            assert fragment in line, line
        return line


def head(db: str) -> int:
    store = open_store(db)
    try:
        return store.head()
    finally:
        store.close()


def topics(db: str) -> Counter[str]:
    store = open_store(db)
    try:
        return Counter(event.topic for _, event in store.iter_events())
    finally:
        store.close()


Ledger = Callable[..., Run]


def run_command(db: str, cwd: Path, *args: str, actor: str | None = None,
                timeout: float = 60) -> Run:
    """Runs the real `ledger` command on the ledger `db`, in `cwd`."""
    head_args = ["--db", db] + (["--actor", actor] if actor else [])
    done = subprocess.run(
        [*ledger_executable(), *head_args, *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def run_ledger(db_url: str, tmp_path: Path) -> Ledger:
    """Runs the real `ledger` command on the test's store, in tmp_path."""

    def run(*args: str, actor: str | None = None, timeout: float = 60) -> Run:
        return run_command(db_url, tmp_path, *args, actor=actor, timeout=timeout)

    return run


def invoke_app(db: str, *args: str, actor: str | None = None) -> Run:
    """Runs the `ledger` app in-process on the ledger `db` (fast): same code, no new
    interpreter."""
    head_args = ["--db", db] + (["--actor", actor] if actor else [])
    result = CliRunner().invoke(
        app, [*head_args, *args], env={"LEDGER_DB": None, "LEDGER_ACTOR": None}
    )
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def invoke(db_url: str) -> Ledger:
    """Runs the `ledger` app in-process (fast) on the test's store."""

    def run(*args: str, actor: str | None = None, db: str = db_url) -> Run:
        return invoke_app(db, *args, actor=actor)

    return run
