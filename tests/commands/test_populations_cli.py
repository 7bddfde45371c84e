"""Weighted populations and list sizes through the real command line and `ledger apply`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commands.errors import EXIT_USAGE
from tests.commands.conftest import Ledger, head

ALLOCATOR = "allocator:Q71"


def test_a_six_decimal_weighted_population_is_stored_and_shown_as_published(
    invoke: Ledger, db_url: str
) -> None:
    done = invoke("practice", "register", "A81001", "--name", "The Densham Surgery",
                  "--list-size", "4,069", "--weighted", "acute=5044.162762",
                  "--weighted", "prescribing=3980.100000", "--on", "2024-04-01",
                  actor=ALLOCATOR)
    assert done.code == 0, done.stderr
    assert "list size 4,069" in done.stdout
    feed = [json.loads(line) for line in invoke("events").stdout.splitlines()]
    assert feed[0]["schema_version"] == 2
    assert feed[0]["list_size"] == 4069
    assert feed[0]["weighted_population"] == {"acute": "5044.162762",
                                              "prescribing": "3980.100000"}
    trail = json.loads(invoke("trail", "A81001", "--format", "json").stdout)
    assert trail[0]["summary"].endswith(
        "list size 4,069; weighted population acute 5044.162762, prescribing 3980.100000")


@pytest.mark.parametrize(("option", "value", "fragment"), [
    ("--weighted", "acute=-5", "weighted acute: malformed weighted population '-5'"),
    ("--weighted", "acute=5044.1627621", "more than 6 decimals"),
    ("--weighted", "acute=1e400", "no sign or exponent"),
    ("--weighted", "acute=NaN", "malformed weighted population 'NaN'"),
    ("--weighted", "acute=10000000.5", "out of range: at most 10,000,000"),
    ("--list-size", "9223372036854775808", "out of range: at most 1,000,000 patients"),
    ("--list-size", "1" + "0" * 30, "out of range"),
    ("--list-size", "-1", "malformed list size '-1'"),
])
def test_out_of_range_populations_are_refused_and_nothing_is_recorded(
    sqlite_path: str, option: str, value: str, fragment: str
) -> None:
    from typer.testing import CliRunner  # noqa: PLC0415

    from commands.app import app  # noqa: PLC0415

    args = ["practice", "register", "A81001", "--name", "X", "--list-size", "100"]
    if option == "--list-size":
        args[-1] = value
    else:
        args += [option, value]
    result = CliRunner().invoke(app, ["--db", sqlite_path, "--actor", ALLOCATOR, *args],
                                env={"LEDGER_DB": None, "LEDGER_ACTOR": None})
    assert result.exit_code == EXIT_USAGE, result.stderr
    assert "Traceback" not in result.stderr
    assert fragment in result.stderr
    assert head(sqlite_path) == 0


def test_apply_reads_weighted_populations_exactly_and_refuses_booleans(
    invoke: Ledger, db_url: str, tmp_path: Path
) -> None:
    lines = [
        {"command": "practice register", "command_id": "r-1", "actor": ALLOCATOR,
         "args": {"practice": "A81001", "name": "Densham", "list_size": "4,069",
                  "weighted": {"acute": 5044.162762, "community": "812.5"},
                  "on": "2024-04-01"}},
        {"command": "practice register", "command_id": "r-2", "actor": ALLOCATOR,
         "args": {"practice": "A81002", "name": "Queens Park", "list_size": True}},
        {"command": "practice register", "command_id": "r-3", "actor": ALLOCATOR,
         "args": {"practice": "A81003", "name": "Elm", "list_size": 10,
                  "weighted": {"acute": -5}}},
    ]
    file = tmp_path / "commands.jsonl"
    file.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    done = invoke("apply", str(file))
    assert done.code == EXIT_USAGE  # malformed lines; the good one is applied
    assert "list size true is not a number" in done.stdout + done.stderr
    assert "weighted acute: malformed weighted population '-5'" in done.stdout + done.stderr
    assert head(db_url) == 1
    feed = [json.loads(line) for line in invoke("events").stdout.splitlines()]
    assert feed[0]["weighted_population"] == {"acute": "5044.162762", "community": "812.5"}
    assert feed[0]["list_size"] == 4069
