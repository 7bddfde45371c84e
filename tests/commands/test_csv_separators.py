"""A CSV file separated by semicolons (as Excel writes CSV where a comma is the decimal
symbol) or by tabs is refused by every import, saying it looks so and how to save it
comma-separated; exit 2, nothing recorded. A comma-separated file whose column names or
values hold a semicolon is read as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from commands.errors import EXIT_USAGE
from tests.commands.conftest import Ledger, Run, head

ALLOCATOR = "allocator:Q71"

# Each import, as given on the command line, with its file's columns.
IMPORTS = {
    "practices": (("practice", "import"), ("practice", "name", "list_size")),
    "practices by --map": (
        ("practice", "import", "--map", "practice=Code", "--map", "name=Practice name",
         "--map", "list_size=Patients"), ("Code", "Practice name", "Patients")),
    "list sizes": (("practice", "import", "--list-sizes"), ("practice", "list_size")),
    "allocations": (("budget", "import", "--year", "2024-25"),
                    ("practice", "element", "amount")),
}
ROWS = {"practice": "A81002", "name": "Surgery B", "list_size": "4069", "element": "acute",
        "amount": "1200000,50", "Code": "A81002", "Practice name": "Surgery B",
        "Patients": "4069"}
HOW = {
    ";": ('looks semicolon-separated (line 1: ', 'save it as "CSV UTF-8 (Comma delimited)"',
          "with a comma as the list separator and a full stop as the decimal symbol"),
    "\t": ("looks tab-separated (line 1: ", 'save it as "CSV UTF-8 (Comma delimited)"',
           'not as "Text (Tab delimited)"'),
}


@pytest.fixture
def registered(invoke: Ledger, db_url: str) -> str:
    done = invoke("practice", "register", "A81001", "--name", "Surgery A", "--list-size",
                  "5000", "--on", "2024-04-01", actor=ALLOCATOR)
    assert done.code == 0, done.stderr
    return db_url


def write_export(tmp_path: Path, columns: tuple[str, ...], separator: str, quoted: bool
                 ) -> Path:
    """A header and one row of `columns`, separated by `separator`, the cells `quoted`."""
    cell = (lambda text: f'"{text}"') if quoted else (lambda text: text)
    path = tmp_path / "export.csv"
    path.write_text(separator.join(cell(c) for c in columns) + "\r\n"
                    + separator.join(cell(ROWS[c]) for c in columns) + "\r\n",
                    encoding="utf-8", newline="")
    return path


def says_how_to_save_it(result: Run, columns: tuple[str, ...], separator: str) -> None:
    assert result.code == EXIT_USAGE, result.stdout + result.stderr
    line = result.one_line_error("export.csv", *HOW[separator], "nothing was imported",
                                 "[rule: csv-separator]")
    assert columns[0] in line
    assert result.stdout == ""


@pytest.mark.parametrize("quoted", [False, True], ids=["bare", "quoted"])
@pytest.mark.parametrize("separator", [";", "\t"], ids=["semicolons", "tabs"])
@pytest.mark.parametrize("kind", list(IMPORTS))
def test_an_import_of_a_file_not_separated_by_commas_says_how_to_save_it(
        kind: str, separator: str, quoted: bool, registered: str, invoke: Ledger,
        tmp_path: Path) -> None:
    words, columns = IMPORTS[kind]
    path = write_export(tmp_path, columns, separator, quoted)
    before = head(registered)
    says_how_to_save_it(invoke(*words, str(path), actor=ALLOCATOR), columns, separator)
    assert head(registered) == before


@pytest.mark.e2e
def test_the_real_command_says_how_to_save_a_file_not_separated_by_commas(
        registered: str, run_ledger: Ledger, tmp_path: Path) -> None:
    words, columns = IMPORTS["allocations"]
    before = head(registered)
    for separator in HOW:
        path = write_export(tmp_path, columns, separator, quoted=False)
        says_how_to_save_it(run_ledger(*words, str(path), actor=ALLOCATOR), columns, separator)
    assert head(registered) == before


def test_a_comma_separated_file_whose_column_names_hold_semicolons_imports(
        registered: str, invoke: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "practices.csv"
    path.write_text("practice,name,list_size,note; see below\nA81002,Surgery B,4069,x;y\n",
                    encoding="utf-8")
    before = head(registered)
    result = invoke("practice", "import", str(path), "--on", "2024-04-01", actor=ALLOCATOR)
    assert result.code == 0, result.stderr
    assert head(registered) == before + 1


def test_a_one_column_file_without_semicolons_or_tabs_is_refused_for_its_columns(
        registered: str, invoke: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "practices.csv"
    path.write_text("practice\nA81002\n", encoding="utf-8")
    result = invoke("practice", "import", str(path), actor=ALLOCATOR)
    assert result.code == EXIT_USAGE
    line = result.one_line_error("missing columns name, list_size")
    assert "separated" not in line
