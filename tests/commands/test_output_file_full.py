"""A file a command writes (--plot, --out) on a full disk: one line on stderr naming that
file, exit 74 (EX_IOERR), never a message blaming standard output, which still works."""

from __future__ import annotations

from pathlib import Path

import pytest

from commands.errors import EXIT_OUTPUT_FAILED
from tests.commands.conftest import Ledger, Run
from tests.commands.test_funnel_nothing_committed import populate

pytestmark = [pytest.mark.usefixtures("signing_key"),
              pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")]


def full(tmp_path: Path, name: str) -> Path:
    """`name` in tmp_path: a link to a device on which every write fails ENOSPC."""
    path = tmp_path / name
    path.symlink_to("/dev/full")
    return path


def blames_the_file(done: Run, name: str) -> None:
    assert done.code == EXIT_OUTPUT_FAILED, done.stderr
    line = done.one_line_error(f"cannot write {name}: No space left on device",
                               "[rule: output]")
    assert "cannot write the output" not in line


@pytest.mark.parametrize("read", [
    ("variation", "--consortium", "16C", "--element", "acute", "--plot", "funnel.svg"),
    ("position", "--consortium", "16C", "--plot", "funnel.svg"),
], ids=["variation", "position"])
def test_a_plot_on_a_full_disk_names_the_plot_file(
        invoke: Ledger, run_ledger: Ledger, tmp_path: Path, read: tuple[str, ...]) -> None:
    populate(invoke)
    full(tmp_path, "funnel.svg")
    done = run_ledger(*read, "--year", "2024-25")
    blames_the_file(done, "funnel.svg")


def test_a_report_on_a_full_disk_names_the_report_file(
        invoke: Ledger, run_ledger: Ledger, tmp_path: Path) -> None:
    populate(invoke)
    full(tmp_path, "report.html")
    done = run_ledger("report", "--consortium", "16C", "--year", "2024-25", "--out",
                      "report.html")
    blames_the_file(done, "report.html")


def test_a_checkpoint_or_schemas_on_a_full_disk_name_the_file(
        invoke: Ledger, run_ledger: Ledger, tmp_path: Path) -> None:
    populate(invoke)
    full(tmp_path, "checkpoint.txt")
    blames_the_file(run_ledger("checkpoint", "--out", "checkpoint.txt"), "checkpoint.txt")
    (tmp_path / "schemas").mkdir()
    full(tmp_path / "schemas", "AccessGranted.v1.json")
    done = run_ledger("schema", "--out", "schemas")
    blames_the_file(done, "schemas/AccessGranted.v1.json")
