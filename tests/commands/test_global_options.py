"""--db, --actor and --command-id before or after the command words, with one meaning."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from commands.app import app
from commands.errors import EXIT_USAGE
from commands.global_options import hoist
from tests.commands.conftest import Run, clean_env, head, ledger_executable

ALLOCATOR = "allocator:Q71"
PRACTICE = "practice:A81001"


@cache
def _group() -> typer.core.TyperGroup:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    return group


def hoisted(*args: str) -> list[str]:
    group = _group()
    with group.make_context("ledger", ["--help"], resilient_parsing=True) as ctx:
        return hoist(group, ctx, list(args))


def ledger(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    done = subprocess.run([*ledger_executable(), *args], cwd=tmp_path,
                          env=clean_env() | (env or {}), capture_output=True, text=True,
                          timeout=60, check=False)
    return Run(done.returncode, done.stdout, done.stderr)


# --- the argument list, as the parser will see it -------------------------------------


def test_options_after_the_command_words_move_to_the_front() -> None:
    assert hoisted("spend", "cancel", "R-1", "--command-id", "c-1", "--actor", PRACTICE,
                   "--db=x.db") == ["--command-id", "c-1", "--actor", PRACTICE, "--db", "x.db",
                                    "spend", "cancel", "R-1"]


def test_a_value_that_looks_like_a_global_option_stays_a_value() -> None:
    args = ["budget", "adjust", "A81001", "--year", "2024-25", "--element", "acute",
            "--by", "-5000", "--reason", "--db"]
    assert hoisted(*args) == args


def test_nothing_after_a_double_dash_moves() -> None:
    args = ["trail", "A81001", "--", "--db", "x.db"]
    assert hoisted(*args) == args


def test_help_stays_with_its_command() -> None:
    assert hoisted("spend", "commit", "--help", "--db", "x.db") == [
        "--db", "x.db", "spend", "commit", "--help"]


def test_the_same_value_twice_is_given_once() -> None:
    assert hoisted("--db", "a.db", "holders", "--db", "a.db") == ["--db", "a.db", "holders"]


@settings(deadline=None)  # a machine shared with other work: never a timed test
@given(st.permutations(range(4)), st.integers(min_value=0, max_value=9))
def test_wherever_the_global_options_go_the_parser_sees_one_line(
        order: list[int], where: int) -> None:
    """Any placement between the command's own options gives the same argument list."""
    own = [["--year", "2024-25"], ["--element", "acute"], ["--by", "-5000"],
           ["--reason", "list cleansing"]]
    words = ["budget", "adjust", "A81001"]
    globals_ = [["--actor", ALLOCATOR], ["--db", "x.db"], ["--command-id", "c-9"]]
    tail = [own[i] for i in order]
    cut = min(where, len(tail))
    slots = [*tail[:cut], *globals_[:2], *tail[cut:]]
    args = [*globals_[2], *words, *[t for pair in slots for t in pair]]
    expected_tail = [t for pair in tail for t in pair]
    assert hoisted(*args) == ["--command-id", "c-9", "--actor", ALLOCATOR, "--db", "x.db",
                              *words, *expected_tail]


# --- in-process: the app itself -----------------------------------------------------


def invoke(*args: str, env: dict[str, str | None] | None = None) -> Run:
    result = CliRunner().invoke(app, list(args),
                                env={"LEDGER_DB": None, "LEDGER_ACTOR": None} | (env or {}))
    return Run(result.exit_code, result.stdout, result.stderr)


def test_different_values_for_one_global_option_are_a_usage_error(tmp_path: Path) -> None:
    db = str(tmp_path / "a.db")
    run = invoke("--db", db, "holders", "--db", str(tmp_path / "b.db"))
    assert run.code == EXIT_USAGE
    assert "--db given twice with different values" in run.stderr
    assert not (tmp_path / "a.db").exists()
    assert not (tmp_path / "b.db").exists()


def test_a_global_option_without_its_value_is_a_usage_error(tmp_path: Path) -> None:
    run = invoke("holders", "--db")
    assert run.code == EXIT_USAGE
    assert "requires an argument" in run.stderr


def test_global_options_after_a_write_work_in_process(tmp_path: Path) -> None:
    db = str(tmp_path / "l.db")
    run = invoke("practice", "register", "A81001", "--name", "The Densham Surgery",
                 "--list-size", "4069", "--on", "2024-04-01", "--actor", ALLOCATOR, "--db", db)
    assert run.code == 0, run.stderr
    assert head(db) == 1


def test_environment_variables_still_give_the_defaults(tmp_path: Path) -> None:
    db = str(tmp_path / "env.db")
    run = invoke("practice", "register", "A81001", "--name", "X", "--list-size", "10",
                 "--on", "2024-04-01", env={"LEDGER_DB": db, "LEDGER_ACTOR": ALLOCATOR})
    assert run.code == 0, run.stderr
    assert head(db) == 1


# --- end to end: the real command on both stores ------------------------------------


@pytest.mark.e2e
def test_appended_global_options_mean_what_they_mean_in_front(db_url: str,
                                                               tmp_path: Path) -> None:
    setup = [
        ("--actor", ALLOCATOR, "practice", "register", "A81001", "--name", "The Densham Surgery",
         "--list-size", "4069", "--on", "2024-04-01"),
        ("budget", "allocate", "A81001", "--year", "2024-25", "--element", "acute=1200000",
         "--on", "2024-04-01", "--actor", ALLOCATOR),
    ]
    for args in setup:
        done = ledger(tmp_path, *args, env={"LEDGER_DB": db_url})
        assert done.code == 0, done.stderr
    commit = ["spend", "commit", "A81001", "--year", "2024-25", "--element", "acute",
              "--ref", "R-0001", "--amount", "12500", "--provider", "RTR", "--service", "Hip",
              "--on", "2024-05-01"]
    first = ledger(tmp_path, *commit, "--command-id", "c-1", "--db", db_url,
                   "--actor", PRACTICE)
    assert first.code == 0, first.stderr
    assert "command id c-1" in first.stdout
    events = head(db_url)
    again = ledger(tmp_path, "--command-id", "c-1", "--db", db_url, "--actor", PRACTICE, *commit)
    assert again.code == 0, again.stderr
    assert again.stdout.startswith("already applied")
    assert head(db_url) == events
    clash = ledger(tmp_path, "--db", db_url, *commit, "--actor", PRACTICE, "--command-id", "c-1",
                   "--command-id", "c-2")
    assert clash.code == EXIT_USAGE
    assert "--command-id given twice with different values: 'c-1' and 'c-2'" in clash.stderr
    assert head(db_url) == events
    read = ledger(tmp_path, "position", "--practice", "A81001", "--format", "csv", "--db", db_url)
    assert read.code == 0, read.stderr
    assert "A81001,2024-25,acute,120000000,120000000,1250000," in read.stdout


@pytest.mark.parametrize(("args", "written"), [
    (["--actor", "practice", "A81001", "spend", "cancel", "R-1"], "practice:A81001"),
    (["--actor=practice", "A81001", "spend", "cancel", "R-1"], "practice:A81001"),
    (["spend", "cancel", "R-1", "--actor", "Practice", "A81001"], "Practice:A81001"),
    (["--actor", "consortium", "spend", "cancel", "R-1"], "practice:A81001"),
], ids=["before", "with =", "after the command words", "no code given"])
def test_an_actor_written_with_a_space_says_to_join_role_and_code_with_a_colon(
        tmp_path: Path, args: list[str], written: str) -> None:
    result = CliRunner().invoke(app, ["--db", str(tmp_path / "ledger.db"), *args])
    assert result.exit_code == EXIT_USAGE, result.output
    assert (f"--actor takes ROLE:CODE, joined by a colon: write --actor {written}"
            in result.stderr), result.stderr
    assert "No such command" not in result.stderr
    assert not (tmp_path / "ledger.db").exists()
