"""An element's figure written without `=` is refused with how to write it, and the
command line and an `ledger apply` line suggest the same: `acute:5000` and `acute 5000`
as `acute=5000`, a lone figure as `ELEMENT=5000`, a lone element as `acute=AMOUNT`.
Exit 2, nothing recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commands.errors import EXIT_USAGE
from ledger.application.commands import name_value_written
from tests.commands.conftest import Ledger, head

ALLOCATOR = "allocator:Q71"

SHAPES = [
    pytest.param("acute", "acute=AMOUNT", id="a lone element"),
    pytest.param("acute:5000", "acute=5000", id="joined by a colon"),
    pytest.param(" acute : 5000 ", "acute=5000", id="a colon between spaces"),
    pytest.param("acute 5000", "acute=5000", id="joined by a space in one value"),
    pytest.param("£5,000", "ELEMENT=£5,000", id="a lone figure in pounds"),
    pytest.param("5000", "ELEMENT=5000", id="a lone figure"),
]


@pytest.mark.parametrize(("given", "written"), SHAPES)
def test_an_element_figure_without_equals_is_written_as_element_equals_figure(
        given: str, written: str) -> None:
    assert name_value_written(given, "ELEMENT=AMOUNT") == written


@pytest.mark.parametrize(("given", "written"), [
    ("http://127.0.0.1:7380", "http://127.0.0.1:7380=WITNESS_KEY"),
    ("list_size", "list_size=COLUMN"),
    ("5000", "5000=COLUMN"),
])
def test_a_value_of_another_name_value_option_keeps_its_colons_and_figures(
        given: str, written: str) -> None:
    metavar = "URL=WITNESS_KEY" if given.startswith("http") else "FIELD=COLUMN"
    assert name_value_written(given, metavar) == written


def test_unprintable_input_is_suggested_escaped_and_cut_short() -> None:
    assert name_value_written("acute\x1b[2J", "ELEMENT=AMOUNT") == "acute\\x1b[2J=AMOUNT"
    assert name_value_written("a" * 100, "ELEMENT=N") == "a" * 40 + "=N"


def suggests_the_same_element_figure(run: Ledger, db_url: str, tmp_path: Path, given: str,
                                    written: str) -> None:
    """`run` (the app in-process, or the real `ledger`) refuses `given` as an element's
    figure on the command line and on an apply line alike, saying to write `written`."""
    cli = run("budget", "allocate", "A81001", "--year", "2024-25", "--element", given,
              actor=ALLOCATOR)
    assert cli.code == EXIT_USAGE, cli.stderr
    assert cli.one_line_error() == (
        "error: --element takes ELEMENT=AMOUNT, e.g. --element acute=5000: "
        f"write --element {written} [rule: element]")
    assert cli.stdout == ""

    lines = tmp_path / "commands.jsonl"
    lines.write_text(json.dumps({
        "command": "budget allocate", "command_id": "a-1", "actor": ALLOCATOR,
        "args": {"practice": "A81001", "year": "2024-25", "element": [given]}}) + "\n",
        encoding="utf-8")
    applied = run("apply", str(lines))
    assert applied.code == EXIT_USAGE, applied.stdout + applied.stderr
    assert (f"line 1: refused a-1 budget allocate: write --element {written} "
            "[rule: element]") in applied.stdout, applied.stdout
    assert head(db_url) == 0


@pytest.mark.parametrize(("given", "written"), SHAPES)
def test_the_command_line_and_an_apply_line_suggest_the_same_element_figure(
        given: str, written: str, invoke: Ledger, db_url: str, tmp_path: Path) -> None:
    suggests_the_same_element_figure(invoke, db_url, tmp_path, given, written)


@pytest.mark.e2e
def test_the_real_command_and_an_apply_line_suggest_the_same_element_figure(
        run_ledger: Ledger, db_url: str, tmp_path: Path) -> None:
    suggests_the_same_element_figure(run_ledger, db_url, tmp_path, "acute:5000", "acute=5000")


@pytest.mark.parametrize(("given", "written"), [
    pytest.param("780", "ELEMENT=780", id="a lone rate"),
    pytest.param("acute 780", "acute=780", id="a rate joined by a space"),
    pytest.param("acute", "acute=POUNDS", id="a lone element"),
])
def test_an_apply_line_suggests_how_to_write_a_rate_as_the_command_line_does(
        given: str, written: str, invoke: Ledger, db_url: str, tmp_path: Path) -> None:
    lines = tmp_path / "commands.jsonl"
    lines.write_text(json.dumps({
        "command": "budget allocate-formula", "command_id": "f-1", "actor": ALLOCATOR,
        "args": {"year": "2024-25", "rate": [given]}}) + "\n", encoding="utf-8")
    applied = invoke("apply", str(lines))
    assert applied.code == EXIT_USAGE, applied.stdout + applied.stderr
    assert (f"refused f-1 budget allocate-formula: write --rate {written} (pounds per "
            "weighted head) [rule: rate]") in applied.stdout, applied.stdout
    cli = invoke("budget", "allocate-formula", "--year", "2024-25", "--rate", given,
                 actor=ALLOCATOR)
    assert cli.code == EXIT_USAGE, cli.stderr
    cli.one_line_error(f"write --rate {written} ")
    assert head(db_url) == 0
