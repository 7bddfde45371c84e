"""Budget charts of any financial year the ledger accepts, 1900-01 to 9998-99."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.commands.conftest import Ledger

pytestmark = pytest.mark.usefixtures("signing_key")

ALLOCATOR = "allocator:Q71"


def consortium_with_a_budget(invoke: Ledger, year: str, on: str) -> None:
    writes = [
        ("consortium", "form", "16C", "--name", "Tees Valley", "--officer", "Dr Jane Smith",
         "--on", "1900-04-01"),
        ("practice", "register", "A81001", "--name", "Densham", "--list-size", "4069",
         "--on", "1900-04-01"),
        ("consortium", "join", "16C", "A81001", "--on", "1900-04-01"),
        ("budget", "allocate", "A81001", "--year", year, "--element", "acute=1200000",
         "--on", on),
    ]
    for args in writes:
        done = invoke(*args, actor=ALLOCATOR if args[0] != "consortium" or args[1] == "form"
                      else "consortium:16C")
        assert done.code == 0, (args, done.stderr)


@pytest.mark.parametrize(("year", "on"), [("9998-99", "9998-04-01"), ("1900-01", "1900-04-01")])
def test_the_budget_chart_and_report_of_the_first_and_last_years_are_drawn(
        invoke: Ledger, tmp_path: Path, year: str, on: str) -> None:
    consortium_with_a_budget(invoke, year, on)
    for suffix in ("svg", "png"):
        plot = tmp_path / f"budget.{suffix}"
        done = invoke("position", "--consortium", "16C", "--year", year, "--plot", str(plot))
        assert done.code == 0, done.stderr
        assert plot.stat().st_size > 0
    report = tmp_path / "report.html"
    done = invoke("report", "--consortium", "16C", "--year", year, "--out", str(report))
    assert done.code == 0, done.stderr
    assert "<svg" in report.read_text()
