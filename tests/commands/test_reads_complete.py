"""Every read complete in every format: drawn in the position, `ledger pools`, whole money cells."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from commands.app import app
from tests.commands.conftest import Ledger, Run, clean_env, ledger_executable

ALLOCATOR = "allocator:Q71"
POOL_FIELDS = ["consortium", "year", "as_of", "top_slice_percent", "members", "capacity_pence",
               "drawn_pence", "draws", "headroom_pence"]
BIG = "£22,179,577.00"


@pytest.fixture
def pooled(invoke: Ledger) -> Ledger:
    """Two members of 16C with a 1% pool; A81002's hard budget overspends by £7,500 in 2025."""
    steps: list[tuple[str, tuple[str, ...]]] = [
        (ALLOCATOR, ("practice", "register", "A81001", "--name", "The Densham Surgery",
                     "--list-size", "4069", "--on", "2024-04-01")),
        (ALLOCATOR, ("practice", "register", "A81002", "--name", "Queens Park Medical Centre",
                     "--list-size", "15321", "--on", "2024-04-01")),
        (ALLOCATOR, ("consortium", "form", "16C", "--name", "Tees Valley", "--officer",
                     "Dr Jane Smith", "--on", "2024-04-01")),
        ("consortium:16C", ("consortium", "join", "16C", "A81001", "--on", "2024-04-01")),
        ("consortium:16C", ("consortium", "join", "16C", "A81002", "--on", "2024-04-01")),
        ("consortium:16C", ("consortium", "risk-pool", "16C", "--year", "2024-25",
                            "--top-slice", "1%", "--on", "2024-04-01")),
        (ALLOCATOR, ("budget", "allocate", "A81001", "--year", "2024-25", "--element",
                     "acute=22179577", "--element", "prescribing=1000", "--on", "2024-04-01")),
        (ALLOCATOR, ("budget", "allocate", "A81002", "--year", "2024-25", "--element",
                     "acute=1000000", "--on", "2024-04-01")),
        (ALLOCATOR, ("budget", "harden", "A81002", "--year", "2024-25", "--on", "2024-04-02")),
        # Available after the 1% top-slice: £990,000; £997,500 overspends by £7,500.
        ("practice:A81002", ("spend", "commit", "A81002", "--year", "2024-25", "--element",
                             "acute", "--ref", "R-0001", "--amount", "997500", "--provider",
                             "RTR", "--service", "Elective orthopaedics", "--on",
                             "2025-01-15")),
    ]
    for actor, args in steps:
        done = invoke(*args, actor=actor)
        assert done.code == 0, (args, done.stderr)
    return invoke


def read(pooled: Ledger, *args: str) -> list[dict[str, object]]:
    done = pooled(*args, "--format", "json")
    assert done.code == 0, done.stderr
    found = json.loads(done.stdout)
    assert isinstance(found, list)
    return found


def test_each_position_row_adds_up_with_what_the_pool_drew(pooled: Ledger) -> None:
    rows = read(pooled, "position", "--year", "2024-25")
    for row in rows:
        assert set(row) >= {"available_pence", "drawn_pence", "committed_pence"}
        assert row["remaining_pence"] == (row["available_pence"] + row["drawn_pence"]  # type: ignore[operator]
                                          - row["committed_pence"] - row["settled_pence"])
    [drew] = [r for r in rows if r["practice"] == "A81002"]
    assert (drew["available_pence"], drew["drawn_pence"], drew["committed_pence"],
            drew["remaining_pence"], drew["overspent"]) == (99_000_000, 750_000, 99_750_000, 0,
                                                            False)
    table = pooled("position", "--practice", "A81002", "--year", "2024-25")
    assert "drawn" in table.stdout
    assert "£7,500.00" in table.stdout


def test_position_json_and_csv_carry_rows_only(pooled: Ledger) -> None:
    rows = read(pooled, "position", "--by", "consortium", "--year", "2024-25")
    assert {r["consortium"] for r in rows} == {"16C"}
    assert all("capacity_pence" not in r for r in rows)
    table = pooled("position", "--by", "consortium", "--year", "2024-25")
    assert "Risk pools" in table.stdout


def test_pools_gives_the_pool_figures_to_programs(pooled: Ledger) -> None:
    [now] = read(pooled, "pools", "--year", "2024-25")
    assert list(now) == POOL_FIELDS
    # 1% of £22,179,577 + £1,000 + £1,000,000, rounded down per practice and element.
    assert (now["capacity_pence"], now["drawn_pence"], now["draws"], now["headroom_pence"]) == (
        23_180_577, 750_000, 1, 22_430_577)
    done = pooled("pools", "--consortium", "16C", "--year", "2024-25", "--format", "csv")
    assert done.code == 0, done.stderr
    [row] = list(csv.DictReader(io.StringIO(done.stdout)))
    assert list(row) == POOL_FIELDS
    assert row["drawn_pence"] == "750000"


def test_pools_as_of_a_date_before_a_draw_leave_it_out(pooled: Ledger) -> None:
    [before] = read(pooled, "pools", "--as-of", "2024-12-31")
    [after] = read(pooled, "pools", "--as-of", "2025-01-15")
    assert (before["as_of"], before["drawn_pence"], before["draws"]) == ("2024-12-31", 0, 0)
    assert (after["drawn_pence"], after["draws"]) == (750_000, 1)
    assert before["headroom_pence"] == before["capacity_pence"]


def test_pools_of_an_unknown_consortium_is_refused(pooled: Ledger) -> None:
    done = pooled("pools", "--consortium", "99X")
    assert done.code == 1
    done.one_line_error("99X")


# --- widths: money never cut off ------------------------------------------------------


def shown(db: str, *args: str, env: dict[str, str]) -> Run:
    cleared: dict[str, str | None] = {"LEDGER_DB": None, "LEDGER_ACTOR": None}
    result = CliRunner().invoke(app, ["--db", db, *args], env=cleared | env)
    return Run(result.exit_code, result.stdout, result.stderr)


def test_piped_tables_are_printed_whole_whatever_the_width(pooled: Ledger, db_url: str) -> None:
    for args in (("position", "--by", "consortium", "--year", "2024-25"),
                 ("pools",), ("holders",), ("trail", "A81002")):
        done = shown(db_url, *args, env={"COLUMNS": "40"})
        assert done.code == 0, done.stderr
        assert "…" not in done.stdout, args
    done = shown(db_url, "position", "--year", "2024-25", env={"COLUMNS": "40"})
    assert BIG in done.stdout
    assert "not shown" not in done.stdout


def test_a_narrow_terminal_drops_the_less_important_columns(pooled: Ledger,
                                                            db_url: str) -> None:
    terminal = {"TTY_COMPATIBLE": "1", "TERM": "xterm", "NO_COLOR": "1", "COLUMNS": "110"}
    done = shown(db_url, "position", "--year", "2024-25", env=terminal)
    assert done.code == 0, done.stderr
    assert "…" not in done.stdout
    assert "£21,957,781.23" in done.stdout  # available after the 1% top-slice
    assert "£7,500.00" in done.stdout
    visible = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout)  # a terminal gets styles
    assert max(len(line) for line in visible.splitlines()) <= 110, visible
    assert "not shown, to fit the terminal: year" in done.stdout
    wide = shown(db_url, "position", "--year", "2024-25",
                 env=terminal | {"COLUMNS": "200"})
    assert "not shown" not in wide.stdout
    assert "used %" in wide.stdout


@pytest.mark.e2e
def test_the_real_command_piped_never_cuts_money(pooled: Ledger, db_url: str,
                                                 tmp_path: Path) -> None:
    done = subprocess.run(
        [*ledger_executable(), "position", "--by", "consortium", "--year", "2024-25",
         "--db", db_url],
        cwd=tmp_path, env=clean_env() | {"COLUMNS": "50"}, capture_output=True, text=True,
        timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "£23,179,577.00" in done.stdout  # acute of both members, allocated
    assert "…" not in done.stdout
