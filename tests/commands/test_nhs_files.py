"""Published NHS files import as downloaded, with the mappings the README documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commands.errors import EXIT_REFUSED, EXIT_USAGE
from tests.commands.conftest import REPO, Ledger, head, topics

ALLOCATOR = "allocator:Q71"
NHS = REPO / "examples" / "nhs"
WEIGHTED = NHS / "gp-practice-weighted-populations-2025-26.csv"
WEIGHTED_MAP = NHS / "nhse-weighted-populations.toml"
REGISTERED = NHS / "gp-reg-pat-prac-all.csv"
REGISTERED_MAP = NHS / "nhsd-registered-patients.toml"


# A published file of one practice, its columns named as its publisher names them, and a
# mapping that reads every one of them.
PUBLISHED = "Code,Name,Pop,WP\nA81001,Surgery One,4069,5000.5\n"
EVERY_COLUMN_MAPPED = '[map]\npractice = "Code"\nname = "Name"\nlist_size = "Pop"\nacute = "WP"\n'


def written(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def events(invoke: Ledger) -> list[dict[str, object]]:
    return [json.loads(line) for line in invoke("events").stdout.splitlines()]


def test_the_national_weighted_population_file_imports_as_downloaded(
    invoke: Ledger, db_url: str
) -> None:
    header = WEIGHTED.read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("Practice_Code,GP_Practice_Name,Practice_Postcode,")
    assert header.endswith("Population,G&A WP,CS WP,MH WP,Mat WP,Health Ineq WP,Prescr WP,"
                           "Final WP,Primary Medical Care WP,Final PMC WP")
    done = invoke("practice", "import", str(WEIGHTED), "--mapping", str(WEIGHTED_MAP),
                  "--on", "2025-04-01", actor=ALLOCATOR)
    assert done.code == 0, done.stderr
    assert "imported 30 practices" in done.stdout
    first = events(invoke)[0]
    assert first["practice"] == "A81001"
    assert first["name"] == "THE DENSHAM SURGERY"
    assert first["list_size"] == 4069  # round(4068.906409), half up
    assert first["effective_on"] == "2025-04-01"
    assert first["weighted_population"] == {
        "acute": "5044.162762", "community": "4430.237941", "mental-health": "3811.110088",
        "maternity": "3459.480667", "health-inequalities": "5438.687528",
        "prescribing": "4617.616349", "primary-care": "3546.766838"}
    again = invoke("practice", "import", str(WEIGHTED), "--mapping", str(WEIGHTED_MAP),
                   "--on", "2025-04-01", actor=ALLOCATOR)
    assert again.code == 0
    assert "(0 commands applied, 30 already applied)" in again.stdout

    # Next month's registered patients: new list sizes for the same practices.
    sizes = invoke("practice", "import", str(REGISTERED), "--list-sizes", "--mapping",
                   str(REGISTERED_MAP), "--on", "2025-10-01", actor=ALLOCATOR)
    assert sizes.code == 0, sizes.stderr
    assert "imported 30 list sizes" in sizes.stdout
    assert topics(db_url) == {"PracticeRegistered": 30, "ListSizeRecorded": 30}
    recorded = [e for e in events(invoke) if e["event"] == "ListSizeRecorded"]
    assert (recorded[0]["practice"], recorded[0]["list_size"]) == ("A81001", 4044)
    # The weighted populations stay in force: only the list size changed.
    assert recorded[0]["weighted_population"] == first["weighted_population"]


def test_the_published_file_without_its_mapping_is_refused_naming_the_columns(
    invoke: Ledger, db_url: str
) -> None:
    done = invoke("practice", "import", str(WEIGHTED), "--on", "2025-04-01", actor=ALLOCATOR)
    assert done.code == EXIT_USAGE
    line = done.one_line_error("gp-practice-weighted-populations-2025-26.csv line 1:")
    assert "'Patients', 'Population', 'G&A WP', 'CS WP', 'MH WP', 'Mat WP'" in line
    assert "look like fields but are not: map them" in line
    assert head(db_url) == 0
    # Half a mapping: the unmapped published columns are named, nothing is recorded.
    partial = invoke("practice", "import", str(WEIGHTED), "--map", "practice=Practice_Code",
                     "--map", "name=GP_Practice_Name", "--map", "list_size=round(Population)",
                     "--map", "acute=G&A WP", "--on", "2025-04-01", actor=ALLOCATOR)
    assert partial.code == EXIT_USAGE
    partial.one_line_error("'Practice_Postcode'", "'CS WP'", "are not mapped", "--ignore COLUMN")
    assert head(db_url) == 0


def test_list_sizes_with_separators_and_for_unknown_practices(
    invoke: Ledger, db_url: str, tmp_path: Path
) -> None:
    practices = tmp_path / "practices.csv"
    practices.write_text('practice,name,List Size,Acute Weighted\n'
                         'A81001,The Densham Surgery,"4,069","5,044.162762"\n',
                         encoding="utf-8")
    done = invoke("practice", "import", str(practices), "--on", "2024-04-01", actor=ALLOCATOR)
    assert done.code == 0, done.stderr
    first = events(invoke)[0]
    assert (first["list_size"], first["weighted_population"]) == (4069, {"acute": "5044.162762"})

    sizes = tmp_path / "sizes.csv"
    sizes.write_text('practice,list_size\nA81001,"4,105"\nA81099,100\n', encoding="utf-8")
    refused = invoke("practice", "import", str(sizes), "--list-sizes", "--on", "2024-10-01",
                     actor=ALLOCATOR)
    assert refused.code == EXIT_REFUSED
    refused.one_line_error("sizes.csv line 3: no practice A81099", "nothing was imported")
    assert head(db_url) == 1
    # Registering an already registered practice names the list-size mode.
    practices.write_text("practice,name,list_size\nA81001,The Densham Surgery,4105\n",
                         encoding="utf-8")
    twice = invoke("practice", "import", str(practices), "--on", "2024-05-01", actor=ALLOCATOR)
    assert twice.code == EXIT_REFUSED
    twice.one_line_error("practice A81001 is already registered", "--list-sizes")
    sizes.write_text('practice,list_size\nA81001,"4,105"\n', encoding="utf-8")
    done = invoke("practice", "import", str(sizes), "--list-sizes", "--on", "2024-10-01",
                  actor=ALLOCATOR)
    assert done.code == 0, done.stderr
    assert events(invoke)[-1]["list_size"] == 4105


@pytest.mark.parametrize("second", ["A81001,4105", "a81001 ,4105", "A81001,4069"])
def test_a_file_of_list_sizes_naming_a_practice_twice_is_refused_naming_both_lines(
    invoke: Ledger, db_url: str, tmp_path: Path, second: str
) -> None:
    assert invoke("practice", "register", "A81001", "--name", "The Densham Surgery",
                  "--list-size", "4069", "--on", "2024-04-01", actor=ALLOCATOR).code == 0
    assert invoke("practice", "register", "A81002", "--name", "Queens Park",
                  "--list-size", "3412", "--on", "2024-04-01", actor=ALLOCATOR).code == 0
    sizes = written(tmp_path / "sizes.csv",
                    f"practice,list_size\nA81001,4100\nA81002,3500\n{second}\n")
    done = invoke("practice", "import", str(sizes), "--list-sizes", "--on", "2024-10-01",
                  actor=ALLOCATOR)
    assert done.code == EXIT_USAGE, done.stderr
    done.one_line_error("sizes.csv line 4: practice A81001 is also on line 2",
                        "nothing was imported", "[rule: csv-row]")
    assert head(db_url) == 2


def test_a_published_file_by_sex_and_age_is_refused_as_list_sizes(
    invoke: Ledger, db_url: str, tmp_path: Path
) -> None:
    """NHS Digital's files of patients by sex and age band have the totals file's columns,
    and a row per band: read with the totals' mapping, each band would be a list size."""
    assert invoke("practice", "register", "A81001", "--name", "The Densham Surgery",
                  "--list-size", "4069", "--on", "2024-04-01", actor=ALLOCATOR).code == 0
    header = REGISTERED.read_text(encoding="utf-8").splitlines()[0]
    rows = [f"GP_PRAC_PAT_LIST,01OCT2025,GP,16C,E38000247,A81001,TS18 1HU,{sex},{age},{n}"
            for sex, age, n in (("MALE", "0_4", "112"), ("MALE", "5_9", "131"),
                                ("FEMALE", "0_4", "98"))]
    published = written(tmp_path / "gp-reg-pat-prac-quin-age.csv",
                        "\n".join([header, *rows]) + "\n")
    done = invoke("practice", "import", str(published), "--list-sizes", "--mapping",
                  str(REGISTERED_MAP), "--on", "2025-10-01", actor=ALLOCATOR)
    assert done.code == EXIT_USAGE, done.stderr
    done.one_line_error("line 3: practice A81001 is also on line 2")
    assert head(db_url) == 1


def test_a_malformed_mapping_file_is_a_usage_error(invoke: Ledger, tmp_path: Path) -> None:
    mapping = tmp_path / "m.toml"
    mapping.write_text("[map]\npractice = 1\n", encoding="utf-8")
    done = invoke("practice", "import", str(WEIGHTED), "--mapping", str(mapping),
                  actor=ALLOCATOR)
    assert done.code == EXIT_USAGE
    done.one_line_error("m.toml: map.practice must name a column")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("nested", [
    "ignore = " + "[" * 5000 + "]" * 5000,
    "[map]\npractice = " + "{a = " * 5000 + '"Code"' + "}" * 5000,
    "x = " + "[{y = " * 3000 + "1" + "}]" * 3000,
])
def test_a_mapping_file_nested_too_deeply_is_a_usage_error(
        run_ledger: Ledger, db_url: str, tmp_path: Path, nested: str) -> None:
    mapping = written(tmp_path / "deep.toml", nested + "\n")
    done = run_ledger("practice", "import", str(WEIGHTED), "--mapping", str(mapping),
                      actor=ALLOCATOR)
    assert done.code == EXIT_USAGE, done.stderr
    done.one_line_error("deep.toml is not a TOML mapping file", "nested too deeply",
                        "[rule: mapping]")
    assert not Path(db_url).exists() or head(db_url) == 0


def test_a_column_mapped_to_two_fields_is_refused_not_read_as_one_of_them(
    run_ledger: Ledger, db_url: str, tmp_path: Path
) -> None:
    published = written(tmp_path / "wp.csv", PUBLISHED)
    mapping = written(tmp_path / "m.toml", EVERY_COLUMN_MAPPED)
    for given in (["--map", "prescribing=wp"], ["--map", "community= WP "]):
        done = run_ledger("practice", "import", str(published), "--mapping", str(mapping),
                          *given, "--on", "2025-04-01", actor=ALLOCATOR)
        assert done.code == EXIT_USAGE, done.stdout
        done.one_line_error("column 'WP' is mapped to acute_weighted and ", "[rule: mapping]")
    assert head(db_url) == 0


def test_a_column_both_mapped_and_ignored_is_refused_where_one_place_says_both(
    run_ledger: Ledger, db_url: str, tmp_path: Path
) -> None:
    published = written(tmp_path / "wp.csv", PUBLISHED)
    names = ["--map", "practice=Code", "--map", "name=Name", "--map", "list_size=Pop"]
    done = run_ledger("practice", "import", str(published), *names, "--map", "acute=WP",
                      "--ignore", " wp ", "--on", "2025-04-01", actor=ALLOCATOR)
    assert done.code == EXIT_USAGE, done.stdout
    done.one_line_error("--map and --ignore: column 'WP' both mapped and ignored",
                        "[rule: mapping]")
    rounded = ["--map", "practice=Code", "--map", "name=Name", "--map", "acute=WP"]
    done = run_ledger("practice", "import", str(published), *rounded,
                      "--map", "list_size=round(Pop)", "--ignore", "Pop",
                      "--on", "2025-04-01", actor=ALLOCATOR)
    assert done.code == EXIT_USAGE, done.stdout
    done.one_line_error("--map and --ignore: column 'Pop' both mapped and ignored")
    contradictory = tmp_path / "both.toml"
    contradictory.write_text('ignore = ["WP"]\n[map]\nacute = "WP"\n', encoding="utf-8")
    done = run_ledger("practice", "import", str(published), *names, "--mapping",
                      str(contradictory), "--on", "2025-04-01", actor=ALLOCATOR)
    assert done.code == EXIT_USAGE, done.stdout
    done.one_line_error("both.toml: column 'WP' both mapped and ignored")
    assert head(db_url) == 0


def test_an_option_overrides_what_the_mapping_file_says_of_a_column(
    run_ledger: Ledger, db_url: str, tmp_path: Path
) -> None:
    published = written(tmp_path / "wp.csv", PUBLISHED)
    ignoring = written(tmp_path / "ignoring.toml", 'ignore = ["WP"]\n[map]\npractice = "Code"\n'
                       'name = "Name"\nlist_size = "Pop"\n')
    done = run_ledger("practice", "import", str(published), "--mapping", str(ignoring),
                      "--map", "acute=WP", "--on", "2025-04-01", actor=ALLOCATOR)
    assert done.code == 0, done.stderr
    mapping = written(tmp_path / "mapping.toml", EVERY_COLUMN_MAPPED)
    published.write_text("Code,Name,Pop,WP\nA81002,Surgery Two,3000,9.5\n", encoding="utf-8")
    done = run_ledger("practice", "import", str(published), "--mapping", str(mapping),
                      "--ignore", "WP", "--on", "2025-04-01", actor=ALLOCATOR)
    assert done.code == 0, done.stderr
    recorded = [json.loads(line) for line in run_ledger("events").stdout.splitlines()]
    assert [e["weighted_population"] for e in recorded] == [{"acute": "5000.5"}, {}]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_registered_patients_file_imported_as_practices_says_to_give_list_sizes(
        run_ledger: Ledger, db_url: str) -> None:
    done = run_ledger("practice", "import", str(REGISTERED), "--mapping", str(REGISTERED_MAP),
                      "--on", "2025-10-01", actor=ALLOCATOR)
    assert done.code == EXIT_USAGE, done.stderr
    done.one_line_error("gp-reg-pat-prac-all.csv line 1: missing column name",
                        "map a column with --map FIELD=COLUMN, or give --list-sizes to record "
                        "the list sizes of practices already registered", "[rule: csv-header]")
    assert not Path(db_url).exists() or head(db_url) == 0


@pytest.mark.parametrize("columns", [("name",), ("consortium",), ("Name", "Consortium")])
def test_a_file_of_list_sizes_with_names_or_consortia_is_refused_not_read_in_part(
    invoke: Ledger, db_url: str, tmp_path: Path, columns: tuple[str, ...]
) -> None:
    for args in (("consortium", "form", "16C", "--name", "Tees Valley", "--officer", "Dr A",
                  "--on", "2024-04-01"),
                 ("practice", "register", "A81001", "--name", "The Densham Surgery",
                  "--list-size", "4069", "--on", "2024-04-01")):
        assert invoke(*args, actor=ALLOCATOR).code == 0
    values = {"name": "Renamed Surgery", "consortium": "16C"}
    sizes = written(tmp_path / "sizes.csv",
                    f"practice,list_size,{','.join(columns)}\n"
                    f"A81001,4105,{','.join(values[c.lower()] for c in columns)}\n")
    before = head(db_url)
    done = invoke("practice", "import", str(sizes), "--list-sizes", "--on", "2024-10-01",
                  actor=ALLOCATOR)
    assert done.code == EXIT_USAGE, done.stderr
    done.one_line_error("sizes.csv line 1:", *(repr(c) for c in columns),
                        "renames and joins nobody", "--ignore COLUMN", "[rule: csv-header]")
    assert head(db_url) == before
    ignoring = [f"--ignore={c}" for c in columns]
    done = invoke("practice", "import", str(sizes), "--list-sizes", *ignoring, "--on",
                  "2024-10-01", actor=ALLOCATOR)
    assert done.code == 0, done.stderr
    assert events(invoke)[-1]["list_size"] == 4105
