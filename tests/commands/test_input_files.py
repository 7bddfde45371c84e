"""Files read whole or not at all: no CSV or JSON reader drops or reinterprets a value.

Every case runs on both stores: a refused file records nothing (the head is unchanged),
and the error is one line naming the file, the line and what is wrong.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from commands.errors import EXIT_USAGE
from tests.commands.conftest import Ledger, clean_env, head, ledger_executable, topics

ALLOCATOR = "allocator:Q71"


def register(invoke: Ledger, *codes: str) -> None:
    for code in codes:
        result = invoke("practice", "register", code, "--name", f"Surgery {code}",
                        "--list-size", "5000", "--on", "2024-04-01", actor=ALLOCATOR)
        assert result.code == 0, result.stderr


def import_allocations(invoke: Ledger, tmp_path: Path, text: str | bytes) -> tuple[int, str]:
    path = tmp_path / "alloc.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    result = invoke("budget", "import", str(path), "--year", "2024-25", "--on", "2024-04-01",
                    actor=ALLOCATOR)
    if result.code == 0:
        return 0, result.stdout
    return result.code, result.one_line_error()


# --- CSV: a row is read whole or refused ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        pytest.param("practice,element,amount\nA81001,acute,1,200,000\n",
                     ("alloc.csv line 2: 5 cells but the header has 3 columns",
                      'quote a value that holds a comma, as "1,200,000"',
                      "nothing was imported", "[rule: csv-row]"),
                     id="an unquoted thousands separator (once cut to £1.00)"),
        pytest.param("practice,element,amount\nA81001,acute,10\nA81001,maternity,5,extra\n",
                     ("alloc.csv line 3: 4 cells but the header has 3 columns",),
                     id="one cell too many on line 3"),
        pytest.param("practice,element,amount,note\nA81001,acute,10\n",
                     ("alloc.csv line 2: no note: 3 cells but the header has 4 columns",),
                     id="a cell too few, even of an ignored column"),
        pytest.param("practice,element,amount,Amount\nA81001,acute,10,20\n",
                     ("alloc.csv line 1: column amount appears twice (columns 3 and 4)",
                      "[rule: csv-header]"),
                     id="a column named twice (in any case)"),
        pytest.param("practice,element,amount,\nA81001,acute,10,20\n",
                     ("alloc.csv line 2: a value in column 4, which has no name",),
                     id="a value under a column with no name"),
        pytest.param('practice,element,amount\nA81001,acute,"1,200"000\n',
                     ("alloc.csv line 2:", "expected after", "nothing was imported"),
                     id="text after a closing quote"),
        pytest.param('practice,element,amount\nA81001,acute,"10\n',
                     ("alloc.csv line 2:", "unexpected end of data"),
                     id="a quote never closed"),
    ],
)
def test_a_csv_row_that_does_not_fit_its_header_is_refused(
    invoke: Ledger, db_url: str, tmp_path: Path, text: str, fragments: tuple[str, ...]
) -> None:
    register(invoke, "A81001")
    code, message = import_allocations(invoke, tmp_path, text)
    assert code == EXIT_USAGE
    for fragment in fragments:
        assert fragment in message, message
    assert head(db_url) == 1


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(b"\xef\xbb\xbfpractice,element,amount\r\nA81001,acute,10\r\n"
                     b"A81001,maternity,5\r\n", id="a byte-order mark and Windows line ends"),
        pytest.param("practice,element,amount\nA81001,acute,10\n,,\n\nA81001,maternity,5\n"
                     "\n\n,,\n", id="blank rows and a spreadsheet's trailing ,, rows"),
        pytest.param("practice,element,amount,\nA81001,acute,10,\nA81001,maternity,5,\n",
                     id="a trailing comma on every line: an empty, unnamed column"),
        pytest.param('practice,element,amount\nA81001,acute,"10"\n"A81001","maternity",5\n',
                     id="quoted cells"),
    ],
)
def test_harmless_csv_variations_import_every_row(
    invoke: Ledger, db_url: str, tmp_path: Path, text: str | bytes
) -> None:
    register(invoke, "A81001")
    code, out = import_allocations(invoke, tmp_path, text)
    assert code == 0, out
    assert "imported 2 allocation rows" in out
    assert topics(db_url)["BudgetAllocated"] == 2


def test_a_quoted_amount_with_separators_is_read_whole(
    invoke: Ledger, db_url: str, tmp_path: Path
) -> None:
    register(invoke, "A81001")
    code, out = import_allocations(
        invoke, tmp_path, 'practice,element,amount\nA81001,acute,"1,200,000"\n')
    assert code == 0, out
    position = json.loads(invoke("position", "--practice", "A81001", "--year", "2024-25",
                                 "--format", "json").stdout)
    assert [r["allocated_pence"] for r in position if r["element"] == "acute"] == [120_000_000]


def test_a_practices_row_with_a_cell_too_many_is_refused(
    invoke: Ledger, db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "practices.csv"
    path.write_text("practice,name,list_size\nA81001,Densham, The Surgery,4069\n",
                    encoding="utf-8")
    result = invoke("practice", "import", str(path), actor=ALLOCATOR)
    assert result.code == EXIT_USAGE
    result.one_line_error("practices.csv line 2: 4 cells but the header has 3 columns")
    assert head(db_url) == 0


@pytest.mark.parametrize(
    ("command", "header"),
    [
        pytest.param(("budget", "import", "--year", "2024-25"), "(practice,element,amount)",
                     id="columns read by name"),
        pytest.param(("practice", "import"), "(practice,name,list_size)",
                     id="columns read through a mapping"),
    ],
)
def test_an_empty_csv_file_is_refused_naming_the_header_it_needs(
    invoke: Ledger, db_url: str, tmp_path: Path, command: tuple[str, ...], header: str
) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("", encoding="utf-8")
    result = invoke(*command[:2], str(path), *command[2:], actor=ALLOCATOR)
    assert result.code == EXIT_USAGE
    result.one_line_error(f"empty.csv is empty: it needs a header row {header}")
    assert head(db_url) == 0


@pytest.mark.parametrize(
    ("command", "header"),
    [
        pytest.param(("budget", "import", "--year", "2024-25"), "practice,element,amount",
                     id="allocations"),
        pytest.param(("practice", "import"), "practice,name,list_size", id="practices"),
        pytest.param(("practice", "import", "--list-sizes"), "practice,list_size",
                     id="list sizes"),
    ],
)
def test_a_csv_file_with_a_header_and_only_blank_rows_is_refused(
    invoke: Ledger, db_url: str, tmp_path: Path, command: tuple[str, ...], header: str
) -> None:
    path = tmp_path / "blank.csv"
    path.write_text(f"{header}\n,,\n\n", encoding="utf-8")
    result = invoke(*command[:2], str(path), *command[2:], actor=ALLOCATOR)
    assert result.code == EXIT_USAGE
    result.one_line_error("blank.csv has a header but no rows: nothing to import", "[rule: csv]")
    assert head(db_url) == 0


# --- JSON lines of `ledger apply` ------------------------------------------------------


ARGS: dict[str, Any] = {"practice": "A81001", "name": "Densham", "list_size": 4069}
REGISTER: dict[str, Any] = {"command": "practice register", "command_id": "r-1",
                            "actor": ALLOCATOR, "args": ARGS}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param('{"command": "practice register", "command_id": "r-1", "command_id": '
                     '"r-2", "actor": "allocator:Q71", "args": {"practice": "A81001", '
                     '"name": "Densham", "list_size": 4069}}',
                     "the key 'command_id' appears twice", id="a key twice at the top"),
        pytest.param('{"command": "practice register", "command_id": "r-1", "actor": '
                     '"allocator:Q71", "args": {"practice": "A81001", "name": "Densham", '
                     '"name": "Other", "list_size": 4069}}',
                     "the key 'name' appears twice", id="a key twice in args"),
        pytest.param(json.dumps({**REGISTER, "on": "2024-04-01"}),
                     "unknown key 'on'", id="an argument outside args"),
        pytest.param(json.dumps({**REGISTER, "args": {**ARGS, "lst_size": 1}}),
                     "unknown argument lst_size", id="a misspelt argument"),
        pytest.param('{"command": "practice register", "command_id": "r-1", "actor": '
                     '"allocator:Q71", "args": {"practice": "A81001", "name": "Densham", '
                     '"list_size": NaN}}', "NaN is not a JSON number", id="NaN"),
    ],
)
def test_an_apply_line_that_could_be_read_two_ways_is_refused(
    invoke: Ledger, db_url: str, tmp_path: Path, text: str, fragment: str
) -> None:
    path = tmp_path / "commands.jsonl"
    path.write_text(text + "\n", encoding="utf-8")
    result = invoke("apply", str(path))
    assert result.code != 0
    assert "line 1: refused" in result.stdout
    assert fragment in result.stdout, result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert head(db_url) == 0


def test_an_apply_line_refused_for_its_arguments_names_its_command_once(
    invoke: Ledger, db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "commands.jsonl"
    path.write_text(json.dumps({**REGISTER, "args": {**ARGS, "lst_size": 1}}) + "\n",
                    encoding="utf-8")
    result = invoke("apply", str(path))
    assert result.code != 0
    assert ("line 1: refused r-1 practice register: unknown argument lst_size "
            "[rule: arguments]") in result.stdout, result.stdout
    assert head(db_url) == 0


@pytest.mark.parametrize("given", ["acute 5000", "acute:5000", " acute : 5000 "])
def test_an_apply_line_with_an_element_amount_not_joined_by_equals_says_how_to_join_it(
    invoke: Ledger, db_url: str, tmp_path: Path, given: str
) -> None:
    path = tmp_path / "commands.jsonl"
    path.write_text(json.dumps({
        "command": "budget allocate", "command_id": "a-1", "actor": ALLOCATOR,
        "args": {"practice": "A81001", "year": "2024-25", "element": given}}) + "\n",
        encoding="utf-8")
    result = invoke("apply", str(path))
    assert result.code == EXIT_USAGE
    assert ("line 1: refused a-1 budget allocate: write --element acute=5000 "
            "[rule: element]") in result.stdout, result.stdout
    assert head(db_url) == 0


def test_an_apply_line_gives_weighted_populations_as_an_object_or_as_name_value_strings(
    invoke: Ledger, db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "commands.jsonl"
    lines = [
        {**REGISTER, "command_id": "r-1", "args": {**ARGS, "weighted": {"acute": "5044.1"}}},
        {**REGISTER, "command_id": "r-2", "args": {**ARGS, "practice": "A81002",
                                                    "weighted": ["acute=5044.1",
                                                                 "prescribing=4617.6"]}},
        {**REGISTER, "command_id": "r-3", "args": {**ARGS, "practice": "A81003",
                                                    "weighted": ["acute 5044.1"]}},
        {**REGISTER, "command_id": "r-4", "args": {**ARGS, "practice": "A81004",
                                                    "weighted": ["acute=1", "ACUTE=2"]}},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    result = invoke("apply", str(path))
    assert result.code == EXIT_USAGE
    out = result.stdout
    assert "line 1: applied r-1" in out, out
    assert "line 2: applied r-2" in out, out
    assert ("line 3: refused r-3 practice register: write --weighted acute=5044.1 "
            "[rule: weighted]") in out, out
    assert "line 4: refused r-4 practice register: weighted acute is given twice" in out, out
    assert head(db_url) == 2
    trail = invoke("trail", "A81002", "--format", "json")
    assert "weighted population acute 5044.1, prescribing 4617.6" in trail.stdout, trail.stdout


def test_an_apply_file_with_a_byte_order_mark_and_blank_lines_applies(
    invoke: Ledger, db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "commands.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(REGISTER).encode() + b"\r\n\r\n\n")
    result = invoke("apply", str(path))
    assert result.code == 0, result.stdout + result.stderr
    assert "1 applied, 0 already applied, 0 refused" in result.stdout
    assert head(db_url) == 1



def test_apply_reads_standard_input_given_as_a_dash(db_url: str, tmp_path: Path) -> None:
    """`ledger apply -` reads its lines from standard input (a pipe, not a file), as many
    as a second process parses ahead when a core is free, to the outcomes of the same
    file."""
    lines = [json.dumps(REGISTER | {"args": ARGS | {"on": "2024-04-01"}}), json.dumps({
        "command": "budget allocate", "command_id": "a-1", "actor": ALLOCATOR,
        "args": {"practice": "A81001", "year": "2024-25", "element": {"acute": "900000"},
                 "on": "2024-04-01"}})]
    lines += [json.dumps({
        "command": "spend commit", "command_id": f"c-{n}", "actor": "practice:A81001",
        "args": {"practice": "A81001", "year": "2024-25", "element": "acute",
                 "ref": f"R-{n}", "amount": "1.00", "provider": "RTR", "service": "Hip",
                 "on": "2024-06-01"}}) for n in range(5_200)]
    lines[3_000] = "{not json"
    text = "\n".join(lines) + "\n"
    head_args = [*ledger_executable(), "--db", db_url, "apply"]
    done = subprocess.run([*head_args, "-"], input=text, capture_output=True, text=True,
                          cwd=tmp_path, env=clean_env(), timeout=120, check=False)
    assert done.returncode == EXIT_USAGE, done.stderr
    assert "Traceback" not in done.stderr
    assert "line 3001: refused (no command id): not valid JSON" in done.stdout
    assert "standard input: 5,201 applied, 0 already applied, 1 refused" in done.stdout
    assert head(db_url) == 5_201
    path = tmp_path / "commands.jsonl"
    path.write_text(text, encoding="utf-8")
    again = subprocess.run([*head_args, str(path)], capture_output=True, text=True,
                           cwd=tmp_path, env=clean_env(), timeout=120, check=False)
    assert again.stdout.count("already applied: 5,201 lines") == 1, again.stdout
    assert head(db_url) == 5_201



def test_a_file_named_dash_is_applied_when_written_as_a_path(db_url: str, tmp_path: Path
                                                            ) -> None:
    """Only `-` itself is standard input: `./-` is the file of that name, as for cat."""
    (tmp_path / "-").write_text(json.dumps(REGISTER) + "\n", encoding="utf-8")
    done = subprocess.run([*ledger_executable(), "--db", db_url, "apply", "./-"],
                          input="", capture_output=True, text=True, cwd=tmp_path,
                          env=clean_env(), timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "1 applied" in done.stdout, done.stdout
    assert head(db_url) == 1


def test_apply_names_standard_input_as_the_imports_do(db_url: str, tmp_path: Path) -> None:
    def run(stdin: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*ledger_executable(), "--db", db_url, "--actor", ALLOCATOR,
                               "apply", "-"], input=stdin, capture_output=True, text=True,
                              cwd=tmp_path, env=clean_env(), timeout=60, check=False)

    empty = run("\n")
    assert empty.returncode == 0, empty.stderr
    assert "standard input: no commands to apply" in empty.stdout, empty.stdout
    done = run(json.dumps(REGISTER) + "\n")
    assert done.returncode == 0, done.stderr
    assert "standard input: 1 applied, 0 already applied, 0 refused" in done.stdout, done.stdout
    assert "stdin" not in done.stdout + done.stderr


def test_standard_input_that_is_not_text_is_named_as_such(db_url: str, tmp_path: Path) -> None:
    done = subprocess.run([*ledger_executable(), "--db", db_url, "apply", "-"],
                          input=b'{"command": \x00}\n', capture_output=True, cwd=tmp_path,
                          env=clean_env(), timeout=60, check=False)
    assert done.returncode == EXIT_USAGE
    assert done.stderr.decode() == ("error: standard input holds a NUL byte at byte 12: it "
                                    "is not a text file [rule: file]\n")


def test_csv_imports_read_standard_input_given_as_a_dash(db_url: str, tmp_path: Path) -> None:
    """`practice import -` and `budget import -` read the CSV from standard input (a pipe),
    name it so in their report and their refusals, and derive the same command ids
    from its content as from the same file: importing the file again records nothing."""
    practices = "practice,name,list_size\nA81001,Densham,4069\nA81002,Queens Park,5120\n"
    allocations = "practice,element,amount\nA81001,acute,900000\nA81002,acute,800000\n"

    def run(*words: str, stdin: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*ledger_executable(), "--db", db_url, "--actor", ALLOCATOR,
                               *words], input=stdin, capture_output=True, text=True,
                              cwd=tmp_path, env=clean_env(), timeout=120, check=False)

    done = run("practice", "import", "-", "--on", "2024-04-01", stdin=practices)
    assert done.returncode == 0, done.stderr
    assert "imported 2 practices from standard input (2 commands applied" in done.stdout
    done = run("budget", "import", "-", "--year", "2024-25", "--on", "2024-04-01",
               stdin=allocations)
    assert done.returncode == 0, done.stderr
    assert "from standard input (2 commands applied" in done.stdout
    assert head(db_url) == 4

    (tmp_path / "alloc.csv").write_text(allocations, encoding="utf-8")
    again = run("budget", "import", "alloc.csv", "--year", "2024-25", "--on", "2024-04-01",
                stdin="")
    assert again.returncode == 0, again.stderr
    assert "(0 commands applied, 2 already applied)" in again.stdout
    refused = run("budget", "import", "-", "--year", "2024-25", stdin="practice,element\n")
    assert refused.returncode == EXIT_USAGE
    assert "standard input" in refused.stderr, refused.stderr
    assert "amount" in refused.stderr, refused.stderr
    assert head(db_url) == 4


def test_a_csv_file_named_dash_is_imported_when_written_as_a_path(db_url: str, tmp_path: Path
                                                                 ) -> None:
    """Only `-` itself is standard input: `./-` is the file of that name."""
    (tmp_path / "-").write_text("practice,name,list_size\nA81001,Densham,4069\n",
                                encoding="utf-8")
    done = subprocess.run([*ledger_executable(), "--db", db_url, "--actor", ALLOCATOR,
                           "practice", "import", "./-", "--on", "2024-04-01"],
                          input="", capture_output=True, text=True, cwd=tmp_path,
                          env=clean_env(), timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "imported 1 practice from -" in done.stdout, done.stdout
    assert head(db_url) == 1


# --- proof bundles ---------------------------------------------------------------------


def test_a_bundle_with_a_key_twice_is_refused(
    invoke: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_SIGNING_KEY", str(tmp_path / "signing-key"))
    register(invoke, "A81001")
    bundle = tmp_path / "bundle.json"
    assert invoke("prove", "A81001", "--out", str(bundle)).code == 0
    assert invoke("verify-bundle", str(bundle)).code == 0
    text = bundle.read_text(encoding="utf-8")
    # A second "practice" a reader sees first while a lax parser keeps the last.
    doubled = tmp_path / "doubled.json"
    doubled.write_text('{"practice": "B99999",' + text.lstrip()[1:], encoding="utf-8")
    result = invoke("verify-bundle", str(doubled))
    assert result.code == EXIT_USAGE
    result.one_line_error("the key 'practice' appears twice")
