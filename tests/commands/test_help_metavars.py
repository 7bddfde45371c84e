"""Every sub-command's help says what each option takes (--practice ODS_CODE, --year
YYYY-YY, --amount AMOUNT, --format <table|json|csv>), never only a Python or click type
(<str>, <int range>, <list[str]>, TEXT, INTEGER); and names each argument without one."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
from typer.core import TyperGroup

from commands.app import app
from commands.lazy import command
from tests.commands.conftest import clean_env, ledger_executable
from tests.commands.test_startup import command_paths, help_of

LAZY = command(app)  # what the `ledger` entry point runs
assert isinstance(LAZY, TyperGroup)
TYPE_NAMES = re.compile(
    r"<(str|int|float|bool|bytes|list|tuple|file|dir|path|uuid|datetime|date)\b[^>]*>")
"""What says only the type of a value, as Typer writes it (`<str>`, `<int range>`)."""
BARE = {"TEXT", "STR", "STRING", "INTEGER", "INT", "FLOAT", "BOOLEAN", "BOOL", "FILENAME",
        "PATH", "VALUE", "ARG", "OPTION", "INTEGER RANGE", "FLOAT RANGE"}
"""Click's names for a type, as it writes them when an option has no metavar."""


def _command(path: tuple[str, ...]) -> tuple[Any, Any]:
    ctx = LAZY.make_context("ledger", [], resilient_parsing=True)
    current: Any = LAZY
    for word in path:
        current = current.get_command(ctx, word)
        ctx = current.make_context(word, [], parent=ctx, resilient_parsing=True)
    return current, ctx


COMMANDS = [path for path in command_paths(LAZY)
            if path and not isinstance(_command(path)[0], TyperGroup)]


def test_the_walk_covers_the_commands_of_every_sub_app() -> None:
    assert {("spend", "commit"), ("token", "create"), ("holders",), ("witness", "serve"),
            ("practice", "import"), ("apply",), ("serve",)} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_option_shows_what_it_takes_not_its_type(path: tuple[str, ...]) -> None:
    found, ctx = _command(path)
    for param in found.params:
        record = param.get_help_record(ctx)
        if record is None:
            continue
        shown = record[0]
        if param.param_type_name == "argument" or param.is_flag:
            continue  # an argument is shown by name alone: checked in the whole help below
        metavar = shown.rpartition(max(param.opts, key=len))[2].strip()
        assert metavar, f"{' '.join(path)} {shown}: no metavar"
        assert not TYPE_NAMES.search(metavar), f"{' '.join(path)}: {shown}"
        assert metavar.removesuffix("...") not in BARE, f"{' '.join(path)}: {shown}"
        if metavar.startswith("<"):
            assert "|" in metavar, f"{' '.join(path)}: {shown}"  # the choices, spelled out
    arguments = help_of(LAZY, path).partition("Arguments:")[2].partition("Options:")[0]
    assert not TYPE_NAMES.search(arguments), arguments


@pytest.mark.e2e
def test_the_help_of_a_write_names_codes_amounts_and_dates() -> None:
    done = subprocess.run([*ledger_executable(), "spend", "commit", "--help"], env={
        **clean_env(), "COLUMNS": "200"}, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    for shown in ("--year YYYY-YY", "--element ELEMENT", "--ref REF", "--amount AMOUNT",
                  "--qs QS", "--on DATE", "  practice  ODS code"):
        assert shown in done.stdout, done.stdout
    assert "<str>" not in done.stdout
    assert "<list[str]>" not in done.stdout
