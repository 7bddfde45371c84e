"""The usage errors a newcomer meets first say how to write the option: a value that is not
one of an option's choices (--format xlsx) lists the choices, in typer's words only; a
NAME=VALUE option written with a space (--element acute 5000) says to join them with `=`,
in one line as other input errors are. Exit 2, nothing recorded; for every command that
has such an option."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from commands.app import app
from commands.errors import EXIT_USAGE
from ledger.application.commands import build_command
from ledger.bootstrap import Ledger
from tests.commands.conftest import Ledger as RunLedger
from tests.commands.conftest import Run, head

# Takes ORIGIN=VERIFIER_KEY or the bare key (whose name is the origin): a value without
# `=` is one of its forms.
BARE_ALLOWED = {("witness", "serve", "--log")}


def _options() -> Iterator[tuple[tuple[str, ...], Any]]:
    def walk(group: TyperGroup, words: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
        for name, command in group.commands.items():
            if isinstance(command, TyperGroup):
                yield from walk(command, (*words, name))
            else:
                for param in command.params:
                    if param.param_type_name == "option":
                        yield (*words, name), param

    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    yield from walk(group, ())


def choice_options() -> list[tuple[tuple[str, ...], str, tuple[str, ...]]]:
    found = []
    for words, param in _options():
        choices = getattr(getattr(param, "type_descriptor", None), "choices", None)
        if choices:
            found.append((words, max(param.opts, key=len),
                          tuple(str(getattr(c, "value", c)) for c in choices)))
    return found


def name_value_options() -> list[tuple[tuple[str, ...], str, str]]:
    return [(words, max(param.opts, key=len), str(param.metavar))
            for words, param in _options()
            if param.multiple and "=" in str(param.metavar or "")
            and (*words, max(param.opts, key=len)) not in BARE_ALLOWED]


def test_the_options_checked_include_every_format_and_every_name_value_option() -> None:
    formats = {words for words, option, _ in choice_options() if option == "--format"}
    assert {("holders",), ("trail",), ("variation",), ("verify",), ("projections", "status"),
            ("token", "list")} <= formats
    assert {(words, option) for words, option, _ in name_value_options()} >= {
        (("budget", "allocate"), "--element"), (("budget", "allocate-formula"), "--rate"),
        (("practice", "register"), "--weighted"), (("practice", "list-size"), "--weighted"),
        (("practice", "import"), "--map"), (("checkpoint",), "--witness")}


def usage_error(stderr: str) -> str:
    """The message of a usage error, joined from however the terminal wrapped it."""
    assert "Traceback" not in stderr, stderr
    return " ".join(stderr.partition("Error:")[2].split())


@pytest.mark.parametrize(("words", "option", "choices"), choice_options(),
                         ids=lambda v: " ".join(v) if isinstance(v, tuple) else str(v))
def test_a_value_not_among_the_choices_is_refused_with_the_choices_listed(
        words: tuple[str, ...], option: str, choices: tuple[str, ...], tmp_path: Any) -> None:
    result = CliRunner().invoke(app, ["--db", str(tmp_path / "ledger.db"), *words,
                                      option, "xlsx"], env={"COLUMNS": "200"})
    assert result.exit_code == EXIT_USAGE, result.output
    listed = ", ".join(repr(c) for c in choices)
    assert usage_error(result.stderr) == (
        f"Invalid value for '{option}': 'xlsx' is not one of {listed}.")
    assert not (tmp_path / "ledger.db").exists()


@pytest.mark.parametrize(("words", "option", "metavar"), name_value_options(),
                         ids=lambda v: " ".join(v) if isinstance(v, tuple) else str(v))
def test_a_name_value_option_written_with_a_space_says_how_to_write_it(
        words: tuple[str, ...], option: str, metavar: str, tmp_path: Any) -> None:
    result = CliRunner().invoke(app, ["--db", str(tmp_path / "ledger.db"), *words,
                                      option, "acute", "5000"], env={"COLUMNS": "200"})
    assert result.exit_code == EXIT_USAGE, result.output
    line = Run(result.exit_code, result.stdout, result.stderr).one_line_error(
        f"error: {option} takes {metavar}", f"write {option} acute={metavar.partition('=')[2]}",
        f"[rule: {option.lstrip('-')}]")
    assert "extra argument" not in line
    assert result.stdout == ""
    assert not (tmp_path / "ledger.db").exists()


ALLOCATOR = "allocator:Q71"


@pytest.fixture
def registered(ledger: Ledger, db_url: str) -> str:
    ledger.service.execute(build_command("practice register", {
        "practice": "A81001", "name": "The Densham Surgery", "list_size": 4069,
        "on": "2024-04-01"}), ALLOCATOR)
    ledger.close()
    return db_url


@pytest.mark.e2e
def test_an_element_written_with_a_space_records_nothing_and_says_how_to_write_it(
        registered: str, run_ledger: RunLedger) -> None:
    before = head(registered)
    result = run_ledger("budget", "allocate", "A81001", "--year", "2024-25",
                        "--element", "acute", "5000", actor=ALLOCATOR)
    assert result.code == EXIT_USAGE, result.stderr
    assert result.one_line_error() == (
        "error: --element takes ELEMENT=AMOUNT, e.g. --element acute=5000: "
        "write --element acute=AMOUNT [rule: element]")
    assert result.stdout == ""
    assert head(registered) == before
    written = run_ledger("budget", "allocate", "A81001", "--year", "2024-25",
                         "--element", "acute=5000", actor=ALLOCATOR)
    assert written.code == 0, written.stderr
    assert head(registered) == before + 1


@pytest.mark.e2e
def test_an_unknown_format_lists_the_formats_in_the_real_command(
        registered: str, run_ledger: RunLedger) -> None:
    result = run_ledger("holders", "--format", "xlsx")
    assert result.code == EXIT_USAGE, result.stderr
    assert usage_error(result.stderr) == (
        "Invalid value for '--format': 'xlsx' is not one of 'table', 'json', 'csv'.")
    assert "Value error" not in result.stderr


@pytest.mark.parametrize(("words", "option", "metavar"),
                         [o for o in name_value_options() if o[2].startswith("ELEMENT=")],
                         ids=lambda v: " ".join(v) if isinstance(v, tuple) else str(v))
def test_an_element_figure_written_with_a_colon_says_to_write_it_with_an_equals_sign(
        words: tuple[str, ...], option: str, metavar: str, tmp_path: Any) -> None:
    result = CliRunner().invoke(app, ["--db", str(tmp_path / "ledger.db"), *words,
                                      option, "acute:5044.16"], env={"COLUMNS": "200"})
    assert result.exit_code == EXIT_USAGE, result.output
    line = Run(result.exit_code, result.stdout, result.stderr).one_line_error(
        f"error: {option} takes {metavar}", f"write {option} acute=5044.16 ",
        f"[rule: {option.lstrip('-')}]")
    assert "acute:5044.16=" not in line
    assert not (tmp_path / "ledger.db").exists()


@pytest.mark.parametrize(("words", "option", "metavar"),
                         [o for o in name_value_options() if o[2].startswith("ELEMENT=")],
                         ids=lambda v: " ".join(v) if isinstance(v, tuple) else str(v))
def test_an_element_figure_given_without_its_element_says_to_name_the_element(
        words: tuple[str, ...], option: str, metavar: str, tmp_path: Any) -> None:
    result = CliRunner().invoke(app, ["--db", str(tmp_path / "ledger.db"), *words,
                                      option, "£5,000"], env={"COLUMNS": "200"})
    assert result.exit_code == EXIT_USAGE, result.output
    Run(result.exit_code, result.stdout, result.stderr).one_line_error(
        f"error: {option} takes {metavar}", f"write {option} ELEMENT=£5,000 ",
        f"[rule: {option.lstrip('-')}]")
    assert not (tmp_path / "ledger.db").exists()


def test_a_witness_url_without_its_key_is_shown_whole_before_the_equals_sign(
        tmp_path: Any) -> None:
    result = CliRunner().invoke(app, ["--db", str(tmp_path / "ledger.db"), "checkpoint",
                                      "--witness", "http://127.0.0.1:7380"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == EXIT_USAGE, result.output
    Run(result.exit_code, result.stdout, result.stderr).one_line_error(
        "write --witness http://127.0.0.1:7380=WITNESS_KEY")


def test_the_global_options_in_help_say_what_each_takes() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    options = result.stdout.partition("Options:")[2].partition("Commands:")[0]
    for shown in ("--db PATH|URL", "--actor ROLE:CODE", "--command-id ID", "--server URL",
                  "--token TOKEN", "service:NAME"):
        assert shown in options, options
    assert "<str>" not in options


@pytest.mark.parametrize("words", [("holders",), ("position",), ("pools",), ("verify",),
                                   ("projections", "status"), ("token", "list")],
                         ids=" ".join)
def test_a_format_is_taken_in_any_case(words: tuple[str, ...], tmp_path: Any) -> None:
    result = CliRunner().invoke(app, ["--db", str(tmp_path / "ledger.db"), *words,
                                      "--format", "JSON"], env={"COLUMNS": "200"})
    assert "Invalid value for '--format'" not in result.stderr, result.stderr
    assert result.exit_code == 3, result.output  # parsed; then no ledger to read
    assert not (tmp_path / "ledger.db").exists()


def test_token_list_where_there_is_no_ledger_says_so_as_every_read_does(tmp_path: Any) -> None:
    result = CliRunner().invoke(app, ["--db", str(tmp_path / "ledgr.db"), "token", "list"])
    assert result.exit_code == 3, result.output
    assert f"no ledger at {tmp_path / 'ledgr.db'}" in result.stderr
    assert not (tmp_path / "ledgr.db").exists()
