"""Bad input in shapes beyond the obvious, through the `ledger` command, on both stores.

Each is refused as malformed (exit 2) in one line that names what is wrong without
echoing megabytes of it or Python's own words, and records nothing: codes written
with letters that only upper-case to ASCII, a figure named twice, numbers of
thousands of digits, instants past the calendar in UTC, a JSON fraction or boolean
where money belongs, and mapped CSV columns named by punctuation alone.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ledger.application.commands import build_command
from ledger.bootstrap import bootstrap
from tests.commands.conftest import Ledger, Run, clean_env, head, ledger_executable

ALLOCATOR = "allocator:Q71"
# Reads a published file's columns Code, N and Pop, rounding Pop to a whole list size.
ROUNDING_MAPPING = '[map]\npractice = "Code"\nname = "N"\nlist_size = "round(Pop)"\n'


def seed(db: str) -> None:
    """A81001 registered with a weighted population, and 16C formed (through the service)."""
    ledger = bootstrap(db)
    try:
        seeded: list[tuple[str, dict[str, Any]]] = [
            ("practice register", {"practice": "A81001", "name": "Densham", "list_size": 4069,
                                   "weighted": {"acute": "5044.162762"}, "on": "2024-04-01"}),
            ("consortium form", {"consortium": "16C", "name": "Tees", "officer": "Dr A",
                                 "on": "2024-04-01"}),
        ]
        for name, args in seeded:
            ledger.service.execute(build_command(name, args), ALLOCATOR)
    finally:
        ledger.close()


def malformed(done: Run, *fragments: str) -> str:
    assert done.code == 2, (done.code, done.stdout, done.stderr)
    return done.one_line_error(*fragments)


def apply_lines(tmp_path: Path, invoke: Ledger, *lines: dict[str, Any]) -> Run:
    path = tmp_path / "lines.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return invoke("apply", str(path), actor=ALLOCATOR)


def test_a_code_with_a_letter_that_only_upper_cases_to_ascii_is_refused(
        invoke: Ledger, db_url: str) -> None:
    seed(db_url)
    before = head(db_url)
    # U+0131 dotless i upper-cases to I, U+017F long s to S: never recorded as I81002 or 1SC.
    malformed(invoke("practice", "register", "\u013181002", "--name", "X", "--list-size", "3",
                     actor=ALLOCATOR), "malformed practice code", "\u0131")
    malformed(invoke("consortium", "form", "1\u017fC", "--name", "X", "--officer", "Y",
                     actor=ALLOCATOR), "malformed consortium code")
    malformed(invoke("consortium", "adopt", "16C", "q\u017f1", "--year", "2024-25",
                     actor="consortium:16C"), "malformed quality standard")
    malformed(invoke("holders", "--practice", "\u013181001"), "malformed practice code")
    malformed(invoke("practice", "register", "A81002", "--name", "X", "--list-size", "3",
                     actor="allocator:Q7\u0131"), "malformed allocator code")
    assert head(db_url) == before


def test_a_weighted_population_or_rate_given_twice_for_one_element_is_refused(
        invoke: Ledger, db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    before = head(db_url)
    register = ["practice", "register", "A81002", "--name", "X", "--list-size", "3"]
    malformed(invoke(*register, "--weighted", "acute=1", "--weighted", "acute=2",
                     actor=ALLOCATOR), "--weighted 'acute' is given twice")
    malformed(invoke(*register, "--weighted", "acute=1", "--weighted", "ACUTE=2",
                     actor=ALLOCATOR), "weighted acute is given twice")
    malformed(invoke("practice", "list-size", "A81001", "--list-size", "3", "--weighted",
                     "acute=1", "--weighted", " Acute =2", actor=ALLOCATOR), "given twice")
    done = apply_lines(tmp_path, invoke, {
        "command": "practice register", "command_id": "w-1",
        "args": {"practice": "A81002", "name": "X", "list_size": 3,
                 "weighted": {"acute": "1", "ACUTE": "2"}}})
    assert done.code == 2
    assert "weighted acute is given twice" in done.stdout
    formula = ["budget", "allocate-formula", "--year", "2024-25", "--on", "2024-04-01"]
    malformed(invoke(*formula, "--rate", "acute=780", "--rate", "acute=100", actor=ALLOCATOR),
              "the rate for acute is given twice")
    malformed(invoke(*formula, "--rate", "acute=780", "--rate", "Acute=780", actor=ALLOCATOR),
              "the rate for acute is given twice")
    assert head(db_url) == before


def test_a_rate_written_as_a_json_fraction_or_boolean_is_refused_as_json_wrote_it(
        invoke: Ledger, db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    before = head(db_url)
    def formula(rate: object) -> dict[str, Any]:
        return {"command": "budget allocate-formula", "command_id": "f-1",
                "args": {"practice": "A81001", "year": "2024-25", "on": "2024-04-01",
                         "rate": {"acute": rate}}}

    for rate, written in [(780.5, "780.5"), (1e2, "100.0"), (True, "true"), (None, "null")]:
        done = apply_lines(tmp_path, invoke, formula(rate))
        assert done.code == 2, done.stdout
        assert f"rate for acute: amount {written} must be written as text" in done.stdout
        assert "True" not in done.stdout
        assert "None" not in done.stdout
    done = apply_lines(tmp_path, invoke, formula(780))
    assert done.code == 0, done.stdout
    assert head(db_url) == before + 1


def test_numbers_of_thousands_of_digits_are_out_of_range_not_a_fault(
        invoke: Ledger, db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    before = head(db_url)
    digits = "9" * 5000
    done = apply_lines(tmp_path, invoke, {
        "command": "practice register", "command_id": "n-1",
        "args": {"practice": "A81002", "name": "X", "list_size": digits}})
    assert done.code == 2
    assert "is out of range: at most 1,000,000 patients" in done.stdout
    assert "set_int_max_str_digits" not in done.stdout
    malformed(invoke("practice", "list-size", "A81001", "--list-size", digits,
                     actor=ALLOCATOR), "out of range")
    malformed(invoke("practice", "list-size", "A81001", "--list-size", "3", "--weighted",
                     f"acute={digits}.5", actor=ALLOCATOR), "out of range")
    assert head(db_url) == before


def test_a_refusal_quotes_long_input_cut_short(invoke: Ledger, db_url: str,
                                               tmp_path: Path) -> None:
    seed(db_url)
    before = head(db_url)
    long = "A" * 100_000
    for args in [("practice", "register", long, "--name", "X", "--list-size", "3"),
                 ("consortium", "form", long, "--name", "X", "--officer", "Y"),
                 ("budget", "allocate", "A81001", "--year", "2024-25", "--element",
                  f"{long}=5"),
                 ("practice", "register", "A81002", "--name", "X", "--list-size", long),
                 ("practice", "register", "A81002", "--name", "X", "--list-size", "3",
                  "--weighted", f"acute={long}")]:
        line = malformed(invoke(*args, actor=ALLOCATOR), "100,000 characters")
        assert len(line) < 400, line
    done = apply_lines(tmp_path, invoke,
                       {"command": long, "command_id": "l-1", "args": {}},
                       {"command": "practice register", "command_id": "l-2",
                        "args": {"practice": "A81002", "name": "X", "list_size": 3,
                                 long: 1}})
    assert done.code == 2
    assert all(len(out) < 400 for out in done.stdout.splitlines()), done.stdout
    assert head(db_url) == before


def test_an_instant_past_the_calendar_in_utc_is_refused_not_a_fault(
        invoke: Ledger, db_url: str) -> None:
    seed(db_url)
    before = head(db_url)
    for instant in ("9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"):
        malformed(invoke("holders", "--known-at", instant), "out of range")
        malformed(invoke("token", "create", "--actor", ALLOCATOR, "--bootstrap", "--expires",
                         instant), "expiry", "out of range")
    assert head(db_url) == before


def test_a_mapped_column_named_by_punctuation_alone_is_refused_not_skipped(
        invoke: Ledger, db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    before = head(db_url)
    mapping = tmp_path / "map.toml"
    mapping.write_text(ROUNDING_MAPPING, encoding="utf-8")
    published = tmp_path / "published.csv"
    for column in ("-", "_", "- _"):
        published.write_text(f"Code,N,Pop,{column}\nA81002,X,10.5,999\n", encoding="utf-8")
        malformed(invoke("practice", "import", str(published), "--mapping", str(mapping),
                         actor=ALLOCATOR), f"column {column!r} is not mapped")
    # Ignored by name, it is skipped like any other ignored column.
    done = invoke("practice", "import", str(published), "--mapping", str(mapping),
                  "--ignore", "- _", "--on", "2024-04-01", actor=ALLOCATOR)
    assert done.code == 0, done.stderr
    assert head(db_url) == before + 1


def test_a_list_size_to_round_that_is_not_a_number_is_named_as_a_list_size(
        invoke: Ledger, db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    before = head(db_url)
    mapping = tmp_path / "map.toml"
    mapping.write_text(ROUNDING_MAPPING, encoding="utf-8")
    published = tmp_path / "published.csv"
    for population in ("-0.4", "1e3", "4,06.5", "NaN"):
        published.write_text(f'Code,N,Pop\nA81002,X,"{population}"\n', encoding="utf-8")
        line = malformed(invoke("practice", "import", str(published), "--mapping",
                                str(mapping), actor=ALLOCATOR),
                         "line 2", "malformed list size", "to round", "nothing was imported")
        assert "weighted" not in line
    published.write_text('Code,N,Pop\nA81002,X,"1,000,000.4999999"\n', encoding="utf-8")
    done = invoke("practice", "import", str(published), "--mapping", str(mapping),
                  "--on", "2024-04-01", actor=ALLOCATOR)
    assert done.code == 0, done.stderr
    published.write_text('Code,N,Pop\nA81003,X,1000000.5\n', encoding="utf-8")
    malformed(invoke("practice", "import", str(published), "--mapping", str(mapping),
                     actor=ALLOCATOR), "list size", "out of range")
    assert head(db_url) == before + 1


def test_a_mapping_file_saved_with_a_byte_order_mark_reads_as_without_one(
        invoke: Ledger, db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    mapping = tmp_path / "map.toml"
    mapping.write_bytes(b'\xef\xbb\xbf[map]\r\npractice = "Code"\r\nname = "N"\r\n'
                        b'list_size = "round(Pop)"\r\n')
    published = tmp_path / "published.csv"
    published.write_text("Code,N,Pop\nA81002,X,10.5\n", encoding="utf-8")
    done = invoke("practice", "import", str(published), "--mapping", str(mapping),
                  "--on", "2024-04-01", actor=ALLOCATOR)
    assert done.code == 0, done.stderr
    assert "imported 1 practice from" in done.stdout


def test_a_field_mapped_twice_by_one_source_is_refused_naming_both_columns(
        invoke: Ledger, db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    before = head(db_url)
    published = tmp_path / "published.csv"
    published.write_text("Code,N,N2,Pop\nA81002,X,Y,10\n", encoding="utf-8")
    mapping = tmp_path / "map.toml"
    mapping.write_text('ignore = ["N2"]\n[map]\npractice = "Code"\nname = "N"\n'
                       'list_size = "Pop"\nName = "N2"\n', encoding="utf-8")
    malformed(invoke("practice", "import", str(published), "--mapping", str(mapping),
                     actor=ALLOCATOR), "map.toml: field name is mapped twice", "'N'", "'N2'")
    malformed(invoke("practice", "import", str(published), "--map", "practice=Code",
                     "--map", "name=N", "--map", "list size=Pop", "--map", "NAME=N2",
                     actor=ALLOCATOR), "--map: field name is mapped twice")
    malformed(invoke("practice", "import", str(published), "--map", "practice=Code",
                     "--map", "name=N", "--map", "list_size=Pop", "--map", "acute=N2",
                     "--map", "acute_weighted=N2", actor=ALLOCATOR),
              "field acute_weighted is mapped twice")
    # The options still win over the file for a field both name.
    mapping.write_text('ignore = ["N"]\n[map]\npractice = "Code"\nname = "N2"\n'
                       'list_size = "Pop"\n', encoding="utf-8")
    done = invoke("practice", "import", str(published), "--mapping", str(mapping),
                  "--map", "name=N", "--ignore", "N2", "--on", "2024-04-01", actor=ALLOCATOR)
    assert done.code == 0, done.stderr
    assert head(db_url) == before + 1


def test_a_terminal_width_that_is_not_ascii_digits_is_not_a_fault(
        db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    for columns in ("\u00b2", "\u0661\u0660\u0660", "0", "-5", "99999999999"):
        done = subprocess.run(
            [*ledger_executable(), "--db", db_url, "holders"], cwd=tmp_path,
            env={**clean_env(), "COLUMNS": columns}, capture_output=True, text=True,
            timeout=60, check=False)
        assert done.returncode == 0, (columns, done.stderr)
        assert "Traceback" not in done.stderr


def test_an_actor_with_a_slash_and_no_person_is_refused_not_read_without_one(
        invoke: Ledger, db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    before = head(db_url)
    for actor in ("allocator:Q71/", "allocator:Q71/ ", "allocator:Q71/\u3000"):
        malformed(invoke("practice", "register", "A81002", "--name", "X", "--list-size", "3",
                         actor=actor), "actor's person is blank")
    done = apply_lines(tmp_path, invoke, {
        "command": "practice register", "command_id": "p-1", "actor": "allocator:Q71/",
        "args": {"practice": "A81002", "name": "X", "list_size": 3}})
    assert done.code == 2
    assert "actor's person is blank" in done.stdout
    assert head(db_url) == before
    done = invoke("practice", "register", "A81002", "--name", "X", "--list-size", "3",
                  actor="allocator:Q71/Dr A")
    assert done.code == 0, done.stderr


def test_a_formula_rerun_with_a_rate_spelled_otherwise_is_already_applied(
        invoke: Ledger, db_url: str) -> None:
    seed(db_url)
    formula = ["budget", "allocate-formula", "--year", "2024-25", "--on", "2024-04-01"]
    done = invoke(*formula, "--rate", "acute=780", actor=ALLOCATOR)
    assert done.code == 0, done.stderr
    after = head(db_url)
    for rate in ("acute=780.00", "ACUTE=£780", " acute = 780.0 "):
        again = invoke(*formula, "--rate", rate, actor=ALLOCATOR)
        assert again.code == 0, (rate, again.stderr)
        assert "already applied: allocated 1 practice" in again.stdout
    other = invoke(*formula, "--rate", "acute=780.01", actor=ALLOCATOR)  # another run
    assert other.code == 1
    other.one_line_error("acute already allocated", "[rule: allocation]")
    assert head(db_url) == after


def test_a_malformed_server_url_or_token_is_refused_and_the_token_never_echoed(
        tmp_path: Path) -> None:
    def client(server: str, token: str) -> Run:
        done = subprocess.run([*ledger_executable(), "--server", server, "--token", token,
                               "holders"], cwd=tmp_path, env=clean_env(),
                              capture_output=True, text=True, timeout=60, check=False)
        return Run(done.returncode, done.stdout, done.stderr)

    for server in ("http://[::1", "http://127.0.0.1:99999", "ftp://127.0.0.1",
                   "127.0.0.1:8000", "http://u:secret@[x", "http://a b"):
        line = malformed(client(server, "t0ken"), "malformed --server")
        assert "secret" not in line
    for token in ("s3cret\r\nX-Injected: 1", "s3cret\u200b", "s3 cret"):
        line = malformed(client("http://127.0.0.1:9", token), "malformed --token")
        assert "s3" not in line


def test_a_known_at_date_means_the_end_of_that_day_however_iso_writes_it(
        invoke: Ledger, db_url: str) -> None:
    seed(db_url)
    assert invoke("budget", "allocate", "A81001", "--year", "2024-25", "--element", "acute=5",
                  "--on", "2024-04-01", actor=ALLOCATOR).code == 0
    today = datetime.now(UTC).date()
    answers = {spelling: invoke("holders", "--as-of", "2024-06-01", "--known-at", spelling,
                                "--format", "json")
               for spelling in (today.isoformat(), today.strftime("%Y%m%d"),
                                today.strftime("%G-W%V-%u"))}
    assert all(done.code == 0 for done in answers.values()), answers
    rows = {spelling: json.loads(done.stdout) for spelling, done in answers.items()}
    assert rows[today.isoformat()], "recorded today, so known by the end of today"
    assert all(found == rows[today.isoformat()] for found in rows.values()), rows


def test_holders_known_at_before_anything_was_recorded_says_it_counts_recorded_instants(
        invoke: Ledger, db_url: str) -> None:
    seed(db_url)
    assert invoke("budget", "allocate", "A81001", "--year", "2024-25", "--element", "acute=5",
                  "--on", "2024-04-01", actor=ALLOCATOR).code == 0
    done = invoke("holders", "--practice", "A81001", "--known-at", "2024-07-15T09:30:00Z")
    assert done.code == 0, done.stderr
    assert ("no budgets in scope as known at 2024-07-15T09:30:00Z: it counts when each command "
            "was recorded (UTC), not its --on date") in " ".join(done.stdout.split())
    later = invoke("holders", "--practice", "A81001", "--year", "2030-31")
    assert later.code == 1, later.stderr
    later.one_line_error("no budgets in 2030-31 (years with budgets: 2024-25) [rule: year]")


BUNDLE_CHANGES: dict[str, Any] = {
    "a version written true": lambda b: b.update(version=True),
    "a version written 2.0": lambda b: b.update(version=2.0),
    "another hash": lambda b: b.update(hash="md5"),
    "another leaf encoding": lambda b: b.update(leaf_encoding="ledger-event-v9"),
    "witnesses that are not keys": lambda b: b.update(witnesses=[{"x": 1}, 5]),
    "consistency entries that are not proofs": lambda b: b.update(consistency=[1, None]),
    "a position past 64 bits": lambda b: b["events"][0].update(position=10**30),
    "a version past 64 bits": lambda b: b["events"][0].update(version=2**64),
    "a leaf index past 64 bits": lambda b: b["events"][0].update(leaf_index=2**64),
    "a negative leaf index": lambda b: b["events"][0].update(leaf_index=-1),
    "a topic longer than a leaf holds": lambda b: b["events"][0].update(topic="T" * 70_000),
    "a checkpoint size of thousands of digits": lambda b: b.update(checkpoint="\n".join(
        "9" * 5000 if n == 1 else line for n, line in enumerate(b["checkpoint"].split("\n")))),
}


def test_a_bundle_with_fields_read_loosely_or_out_of_range_is_malformed_not_sound(
        invoke: Ledger, db_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("LEDGER_SIGNING_KEY", str(tmp_path / "signing-key"))
    seed(db_url)
    bundle = tmp_path / "bundle.json"
    assert invoke("prove", "A81001", "--out", str(bundle)).code == 0
    assert invoke("verify-bundle", str(bundle)).code == 0
    for name, change in BUNDLE_CHANGES.items():
        altered = json.loads(bundle.read_text(encoding="utf-8"))
        change(altered)
        path = tmp_path / "altered.json"
        path.write_text(json.dumps(altered), encoding="utf-8")
        done = invoke("verify-bundle", str(path))
        assert done.code == 2, (name, done.code, done.stdout, done.stderr)
        line = done.one_line_error()
        assert len(line) < 300, line
    # The same checkpoint as a file to check against.
    checkpoint = json.loads(bundle.read_text(encoding="utf-8"))["checkpoint"].split("\n")
    against = tmp_path / "checkpoint.txt"
    against.write_text("\n".join("9" * 5000 if n == 1 else line
                                 for n, line in enumerate(checkpoint)), encoding="utf-8")
    done = invoke("verify-bundle", str(bundle), "--against", str(against))
    assert done.code == 2, (done.stdout, done.stderr)
    assert "out of range" in done.one_line_error()


def test_a_code_number_or_date_ending_in_a_control_character_is_refused_not_trimmed(
        invoke: Ledger, db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    before = head(db_url)
    for tail in ("\x1f", "\t", "\n", "\x0b", "\u2028", "\x85"):
        malformed(invoke("practice", "register", f"A81002{tail}", "--name", "X",
                         "--list-size", "3", actor=ALLOCATOR), "malformed practice code")
        malformed(invoke("practice", "register", "A81002", "--name", "X",
                         "--list-size", f"3{tail}", actor=ALLOCATOR), "malformed list size")
        malformed(invoke("practice", "register", "A81002", "--name", "X", "--list-size", "3",
                         "--on", f"2024-04-01{tail}", actor=ALLOCATOR), "date")
        malformed(invoke("budget", "allocate", "A81001", "--year", f"2024-25{tail}",
                         "--element", "acute=100", actor=ALLOCATOR), "year")
        malformed(invoke("budget", "allocate", "A81001", "--year", "2024-25",
                         "--element", f"acute=100{tail}", actor=ALLOCATOR), "amount")
        done = apply_lines(tmp_path, invoke, {
            "command": "budget allocate", "args": {"practice": f"A81001{tail}",
                                                   "year": "2024-25",
                                                   "element": {"acute": "100"}}})
        assert done.code == 2, (done.stdout, done.stderr)
    assert head(db_url) == before


def test_spaces_around_a_code_or_number_are_trimmed_whatever_their_width(
        invoke: Ledger, db_url: str) -> None:
    seed(db_url)
    done = invoke("practice", "register", "\u00a0A81002\u3000", "--name", "X",
                  "--list-size", " 3\u2009", "--on", "\u20022024-04-01 ", actor=ALLOCATOR)
    assert done.code == 0, (done.stdout, done.stderr)
    assert "registered A81002" in done.stdout


def test_a_cell_spanning_lines_is_refused_naming_the_line_its_row_starts_on(
        invoke: Ledger, db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    before = head(db_url)
    allocations = tmp_path / "allocations.csv"
    allocations.write_text('practice,element,amount\n\nA81001,acute,"1\n200"\n'
                           'A81001,prescribing,5,6\n', encoding="utf-8")
    malformed(invoke("budget", "import", str(allocations), "--year", "2024-25",
                     actor=ALLOCATOR), "line 3", "amount")
    allocations.write_text('practice,element,amount\nA81001,"acute\n",1\n'
                           'A81001,prescribing,5,6\n', encoding="utf-8")
    malformed(invoke("budget", "import", str(allocations), "--year", "2024-25",
                     actor=ALLOCATOR), "line 2")
    allocations.write_text('practice,element,amount\nA81001,acute,1\n"A81001\n",acute,2,3\n',
                           encoding="utf-8")
    malformed(invoke("budget", "import", str(allocations), "--year", "2024-25",
                     actor=ALLOCATOR), "line 3")
    assert head(db_url) == before


def test_a_device_that_never_ends_is_refused_early(
        invoke: Ledger, db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    before = head(db_url)
    for device in ("/dev/zero", "/dev/urandom"):
        malformed(invoke("apply", device, actor=ALLOCATOR), device)
        malformed(invoke("budget", "import", device, "--year", "2024-25", actor=ALLOCATOR),
                  device)
        malformed(invoke("practice", "import", device, actor=ALLOCATOR), device)
        published = tmp_path / "published.csv"
        published.write_text("Code,N,Pop\nA81002,Queens,9000\n", encoding="utf-8")
        malformed(invoke("practice", "import", str(published), "--mapping", device,
                         actor=ALLOCATOR), device, "[rule: mapping]")
    holed = tmp_path / "holed.csv"
    holed.write_bytes(b"practice,element,amount\nA81001,acute,1\x0000\n")
    # In a regular file, the parser names the NUL's line and column.
    malformed(invoke("budget", "import", str(holed), "--year", "2024-25", actor=ALLOCATOR),
              "line 2", "amount", "U+0000")
    split = tmp_path / "split.jsonl"
    # A character cut across the reader's chunks still reads as itself.
    split.write_bytes(b" " * (1024**2 - 2) + '"\u00e9"\n'.encode())
    done = invoke("apply", str(split), actor=ALLOCATOR)
    assert done.code == 2, done.stderr
    assert "not UTF-8" not in done.stderr, done.stderr
    assert head(db_url) == before


def test_an_apply_command_name_not_written_exactly_is_refused_naming_the_command_meant(
        run_ledger: Ledger, db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    before = head(db_url)
    args = {"practice": "A81001", "on": "2024-05-01"}
    written = ["practice\tclose", "practice  close", " practice close", "practice close\n",
               "practice\u00a0close", "practice\x00close", "Practice Close", "practice_close"]
    path = tmp_path / "lines.jsonl"
    path.write_text("".join(json.dumps({"command": name, "command_id": f"c-{n}",
                                        "args": args}) + "\n"
                            for n, name in enumerate(written)), encoding="utf-8")
    done = run_ledger("apply", str(path), actor=ALLOCATOR)
    assert done.code == 2, (done.stdout, done.stderr)
    lines = done.stdout.splitlines()
    for n, name in enumerate(written, start=1):
        assert lines[n - 1].startswith(f"line {n}: refused c-{n - 1} "), lines
        assert (f": unknown command {name!r} (did you mean 'practice close'? command names "
                "are written exactly") in lines[n - 1], lines
    assert f"0 applied, 0 already applied, {len(written)} refused" in done.stdout
    assert head(db_url) == before


# Integers int() reads that are not plain numbers: a sign, a space, an underscore,
# Arabic-Indic or superscript digits, hexadecimal, an exponent, nothing.
NOT_PLAIN_NUMBERS = ["5_0", "+5", " 5", "5 ", "\u0665", "0x5", "\u00b2", "", "1e3",
                     "\uff15"]


NOT_A_POSITION = ("--after must be a whole number written in the digits 0-9 alone",
                  "[rule: after]")


@pytest.mark.parametrize("given", NOT_PLAIN_NUMBERS)
def test_a_position_not_written_in_the_digits_0_to_9_alone_is_refused(
        invoke: Ledger, db_url: str, given: str) -> None:
    seed(db_url)
    done = invoke("events", "--after", given)
    assert done.stdout == ""
    malformed(done, *NOT_A_POSITION)


@pytest.mark.e2e
def test_the_real_command_reads_a_position_in_the_digits_0_to_9_alone(
        run_ledger: Ledger, db_url: str) -> None:
    seed(db_url)
    done = run_ledger("events", "--after", "\u0665")
    assert done.stdout == ""
    malformed(done, *NOT_A_POSITION)
    assert run_ledger("events", "--after", "01").code == 0
    malformed(run_ledger("events", "--after=-1"), "--after must be 0 or more, not '-1'")


@pytest.mark.parametrize("given", ["1_0", "+2", "\u0662", " 2"])
def test_a_count_or_port_not_written_in_the_digits_0_to_9_alone_is_refused(
        run_ledger: Ledger, invoke: Ledger, db_url: str, tmp_path: Path, given: str) -> None:
    seed(db_url)
    before = head(db_url)
    lines = tmp_path / "lines.jsonl"
    lines.write_text(json.dumps({"command": "practice close", "command_id": "c-1",
                                 "args": {"practice": "A81001"}}) + "\n", encoding="utf-8")
    malformed(run_ledger("apply", str(lines), "--batch-size", given, actor=ALLOCATOR),
              "--batch-size must be a whole number", "1 to 100000: not")
    assert head(db_url) == before
    for args in (["serve", "--port", given], ["serve", "--workers", given],
                 ["witness", "serve", "--state", str(tmp_path / "w"), "--log", "o=k",
                  "--port", given],
                 ["verify-bundle", str(tmp_path / "none.json"), "--quorum", given]):
        option = args[-2]
        malformed(invoke(*args), f"{option} must be a whole number written in the digits "
                  "0-9 alone", f"[rule: {option.lstrip('-')}]")
    assert not (tmp_path / "w").exists()


def seconds_options(given: str) -> list[list[str]]:
    """Each command's option of seconds, given `given`."""
    return [["events", "--follow", "--poll", given], ["project", "--follow", "--poll", given],
            ["verify", "--max-unsealed-age", given]]


def refused_as_seconds(done: Run, option: str) -> None:
    assert done.stdout == ""
    malformed(done, f"{option} must be seconds written in the digits 0-9 with an optional "
              "decimal point", f"[rule: {option.lstrip('-')}]")


@pytest.mark.parametrize("given", ["1_0", "+2", " 2", "2e1", "nan", "inf", "\u0662", "2.",
                                   ".5", ""])
def test_seconds_not_written_in_the_digits_0_to_9_and_a_point_are_refused(
        invoke: Ledger, db_url: str, given: str) -> None:
    seed(db_url)
    for args in seconds_options(given):
        refused_as_seconds(invoke(*args), args[-2])


@pytest.mark.e2e
def test_the_real_command_reads_seconds_in_the_digits_0_to_9_and_a_point(
        run_ledger: Ledger, db_url: str) -> None:
    seed(db_url)
    for args in seconds_options("2e1"):
        refused_as_seconds(run_ledger(*args, timeout=20), args[-2])
    malformed(run_ledger("events", "--poll", "0.01"), "--poll must be 0.05 to 3600 seconds")
    assert run_ledger("verify", "--max-unsealed-age", "86400.5").code == 0


def test_an_argument_named_but_for_its_spacing_or_case_is_refused_naming_the_one_meant(
        run_ledger: Ledger, db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    before = head(db_url)
    keys = {"Practice": "practice", "practice\t": "practice", " practice": "practice",
            "list-size": "list_size"}
    path = tmp_path / "lines.jsonl"
    path.write_text("".join(json.dumps({
        "command": "practice register", "command_id": f"r-{n}",
        "args": {"practice": "A81002", "name": "X", "list_size": 3} | {key: "A81002"}
        if meant == "practice" else {"practice": "A81002", "name": "X", key: "3"}}) + "\n"
        for n, (key, meant) in enumerate(keys.items())), encoding="utf-8")
    done = run_ledger("apply", str(path), actor=ALLOCATOR)
    assert done.code == 2, (done.stdout, done.stderr)
    for key, meant in keys.items():
        assert (f"unknown argument {key!r} (did you mean {meant!r}? argument names are "
                "written exactly)") in done.stdout, done.stdout
    assert head(db_url) == before


def test_a_known_at_finer_than_a_microsecond_answers_as_the_microsecond_it_falls_in(
        run_ledger: Ledger, db_url: str) -> None:
    seed(db_url)
    assert run_ledger("budget", "allocate", "A81001", "--year", "2024-25", "--element",
                      "acute=5", "--on", "2024-04-01", actor=ALLOCATOR).code == 0
    events = [json.loads(line) for line in run_ledger("events").stdout.splitlines()]
    recorded = events[-1]["recorded_at"]
    assert recorded.endswith("Z"), recorded
    exact = recorded[:-1] if "." in recorded else f"{recorded[:-1]}.000000"  # to the µs
    answers = {}
    for known_at in (recorded, f"{exact}999Z", f"{exact}000000001Z"):
        done = run_ledger("holders", "--as-of", "2024-06-01", "--known-at", known_at,
                          "--format", "json")
        assert done.code == 0, done.stderr
        answers[known_at] = json.loads(done.stdout)
    assert answers[recorded], "the allocation is known at the instant it was recorded"
    assert all(found == answers[recorded] for found in answers.values()), answers
    assert "recorded to the microsecond" in " ".join(
        run_ledger("holders", "--help").stdout.split())


def test_an_instant_without_a_zone_is_refused_alike_by_known_at_and_expires(
        invoke: Ledger, db_url: str) -> None:
    seed(db_url)
    before = head(db_url)
    for instant in ("2024-07-15T09:30:00", "2099-03-31 17:00"):
        malformed(invoke("holders", "--known-at", instant), "has no zone", "Z for UTC")
        malformed(invoke("token", "create", "--actor", ALLOCATOR, "--bootstrap", "--expires",
                         instant), "expiry", "has no zone", "Z for UTC")
    assert head(db_url) == before
    for flag in ("--known-at", "--expires"):
        shown = " ".join(invoke(*(("holders",) if flag == "--known-at" else ("token", "create")),
                                "--help").stdout.split())
        assert "a time without a zone is refused" in shown, (flag, shown)


def test_an_expiry_date_is_read_however_iso_writes_it_as_known_at_reads_it(
        invoke: Ledger, db_url: str) -> None:
    seed(db_url)
    done = invoke("token", "create", "--actor", ALLOCATOR, "--bootstrap", "--expires",
                  "20990331")
    assert done.code == 0, (done.stdout, done.stderr)
    assert "works through 2099-03-31 UTC" in " ".join(done.stdout.split())
