"""`ledger budget import` reads a published allocations file as it is, naming its columns
with --map, --mapping and --ignore as `practice import` does (one reader of mappings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commands.errors import EXIT_USAGE
from tests.commands.conftest import Ledger, head

pytestmark = pytest.mark.usefixtures("signing_key")
ALLOCATOR = "allocator:Q71"
PUBLISHED = (
    "ICB,Practice Code,Element,Allocation (GBP)\n"
    'QHM,A81001,prescribing,"1,000.50"\n'
    "QHM,A81002,acute,200\n"
)
MAPS = ("--map", "practice=Practice Code", "--map", "element=Element",
        "--map", "amount=Allocation (GBP)")


def register(invoke: Ledger) -> None:
    """A81001 and A81002, registered through the command line in-process (what the tests
    import runs the real `ledger`)."""
    for code in ("A81001", "A81002"):
        done = invoke("practice", "register", code, "--name", code, "--list-size", "4069",
                          "--on", "2024-04-01", actor=ALLOCATOR)
        assert done.code == 0, done.stderr


def allocated(run_ledger: Ledger) -> dict[tuple[str, str], int]:
    done = run_ledger("position", "--year", "2024-25", "--format", "json")
    assert done.code == 0, done.stderr
    return {(r["practice"], r["element"]): r["allocated_pence"]
            for r in json.loads(done.stdout) if r["allocated_pence"]}


def test_budget_import_reads_a_published_file_by_its_mapped_columns(
        invoke: Ledger, run_ledger: Ledger, tmp_path: Path) -> None:
    register(invoke)
    (tmp_path / "published.csv").write_text(PUBLISHED, encoding="utf-8")
    done = run_ledger("budget", "import", "published.csv", "--year", "2024-25",
                      "--on", "2024-04-01", *MAPS, "--ignore", "ICB", actor=ALLOCATOR)
    assert done.code == 0, done.stderr
    assert "imported 2 allocation rows from published.csv" in done.stdout
    assert allocated(run_ledger) == {("A81001", "prescribing"): 100_050,
                                     ("A81002", "acute"): 20_000}


def test_budget_import_takes_a_mapping_file(invoke: Ledger, run_ledger: Ledger,
                                            tmp_path: Path) -> None:
    register(invoke)
    (tmp_path / "published.csv").write_text(PUBLISHED, encoding="utf-8")
    (tmp_path / "allocations.toml").write_text(
        'ignore = ["ICB"]\n[map]\npractice = "Practice Code"\nelement = "Element"\n'
        'amount = "Allocation (GBP)"\n', encoding="utf-8")
    done = run_ledger("budget", "import", "published.csv", "--year", "2024-25",
                      "--on", "2024-04-01", "--mapping", "allocations.toml", actor=ALLOCATOR)
    assert done.code == 0, done.stderr
    assert allocated(run_ledger) == {("A81001", "prescribing"): 100_050,
                                     ("A81002", "acute"): 20_000}


@pytest.mark.parametrize(("options", "fragments"), [
    pytest.param(MAPS, ("published.csv line 1: column 'ICB' is not mapped",
                        "--ignore COLUMN", "[rule: csv-header]"), id="unmapped column"),
    pytest.param(("--map", "acute=Allocation (GBP)"),
                 ("this import has no field acute_weighted",
                  "its fields: practice, element, amount", "[rule: mapping]"),
                 id="no such field"),
    pytest.param(("--map", "amount"), ("--map takes FIELD=COLUMN",), id="no column named"),
    pytest.param((), ("missing columns practice, amount",
                      "map a column with --map FIELD=COLUMN"), id="no mapping"),
])
def test_budget_import_refuses_a_mapping_it_cannot_follow_and_records_nothing(
        invoke: Ledger, run_ledger: Ledger, db_url: str, tmp_path: Path,
        options: tuple[str, ...], fragments: tuple[str, ...]) -> None:
    register(invoke)
    before = head(db_url)
    (tmp_path / "published.csv").write_text(PUBLISHED, encoding="utf-8")
    done = run_ledger("budget", "import", "published.csv", "--year", "2024-25", *options,
                      actor=ALLOCATOR)
    assert done.code == EXIT_USAGE, done.stderr
    done.one_line_error(*fragments)
    assert head(db_url) == before


def test_budget_import_without_a_mapping_still_skips_other_columns(
        invoke: Ledger, run_ledger: Ledger, tmp_path: Path) -> None:
    """Extra columns are ignored, even ones named like population figures: an allocations
    file holds its element as a value, so no column of it is taken for one."""
    register(invoke)
    (tmp_path / "alloc.csv").write_text(
        "Practice,Element,Amount,acute_weighted,List Size\nA81001,acute,10,4310,4069\n",
        encoding="utf-8")
    done = run_ledger("budget", "import", "alloc.csv", "--year", "2024-25", "--on",
                      "2024-04-01", actor=ALLOCATOR)
    assert done.code == 0, done.stderr
    assert allocated(run_ledger) == {("A81001", "acute"): 1_000}


def test_budget_import_help_shows_the_mapping_options_with_examples(
        run_ledger: Ledger) -> None:
    done = run_ledger("budget", "import", "--help")
    assert done.code == 0, done.stderr
    text = " ".join(done.stdout.split())
    for option in ("--map FIELD=COLUMN", "--mapping FILE", "--ignore COLUMN"):
        assert option in text, text
    assert '--map practice="Practice Code"' in text, text
