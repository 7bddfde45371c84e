"""Text that cannot deceive and idempotency that compares meaning, through the real `ledger`.

Names, refs and file cells holding control, bidi or zero-width characters are refused
(exit 2, one line naming the field, the character and the rule; nothing recorded); the
same command spelled differently under one command id records once; an empty or blank
command id is refused, never replaced by a random one; and text that older versions
stored with such characters prints escaped, never raw, while JSON stays exact.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from commands.reads_render import Format, rows
from ledger.application.commands import PracticeRegister, SpendCommit, build_command
from ledger.bootstrap import bootstrap
from ledger.domain.values import Element
from tests.commands.conftest import Ledger, head, topics

ALLOCATOR = "allocator:Q71"
PRACTICE = "practice:A81001"


def seed(db: str, *, register: bool = True) -> None:
    """16C formed, A81001 registered in it with a 2024-25 budget (through the service)."""
    ledger = bootstrap(db)
    commands: list[tuple[str, str, dict[str, Any]]] = [
        (ALLOCATOR, "consortium form", {"consortium": "16C", "name": "Tees",
                                        "officer": "Dr A", "on": "2024-04-01"}),
    ]
    if register:
        commands += [
            (ALLOCATOR, "practice register", {"practice": "A81001", "name": "Densham",
                                              "list_size": 4069, "on": "2024-04-01"}),
            (ALLOCATOR, "budget allocate", {"practice": "A81001", "year": "2024-25",
                                            "element": {"acute": "1200000"},
                                            "on": "2024-04-01"}),
        ]
    try:
        for actor, name, args in commands:
            ledger.service.execute(build_command(name, args), actor)
    finally:
        ledger.close()


COMMIT = ["spend", "commit", "A81001", "--year", "2024-25", "--element", "acute",
          "--provider", "RTR", "--service", "Hips", "--on", "2024-06-01"]


def test_a_ref_with_a_zero_width_space_is_refused_not_a_second_commitment(
        run_ledger: Ledger, db_url: str) -> None:
    seed(db_url)
    assert run_ledger(*COMMIT, "--ref", "R-0001", "--amount", "100", actor=PRACTICE).code == 0
    before = head(db_url)
    lookalike = run_ledger(*COMMIT, "--ref", "R-0001\u200b", "--amount", "100", actor=PRACTICE)
    assert lookalike.code == 2
    lookalike.one_line_error("commitment reference holds U+200B ZERO WIDTH SPACE at character 7",
                             "[rule: identifier]")
    assert head(db_url) == before
    assert topics(db_url)["SpendCommitted"] == 1


def test_a_bidi_override_in_a_practice_name_is_refused(run_ledger: Ledger, db_url: str) -> None:
    seed(db_url, register=False)
    before = head(db_url)
    refused = run_ledger("practice", "register", "A81001", "--name", "Surgery\u202egnp.exe",
                         "--list-size", "4069", actor=ALLOCATOR)
    assert refused.code == 2
    line = refused.one_line_error(
        "practice name holds an invisible format character (U+202E RIGHT-TO-LEFT OVERRIDE) "
        "at character 8", "[rule: text-characters]")
    assert "\u202e" not in line
    assert head(db_url) == before


@pytest.mark.parametrize(("name", "hidden", "what"), [
    ("\ufe0f", "\ufe0f",
     "holds an invisible mark (U+FE0F VARIATION SELECTOR-16) at character 1"),
    ("Tees Valley\ufe0e", "\ufe0e",
     "holds an invisible mark (U+FE0E VARIATION SELECTOR-15) at character 12"),
    ("Tees\u034f Valley", "\u034f",
     "holds an invisible mark (U+034F COMBINING GRAPHEME JOINER) at character 5"),
    ("\u0301", "\u0301", "begins with a combining mark (U+0301 COMBINING ACUTE ACCENT)"),
])
def test_a_name_that_prints_as_nothing_or_as_another_name_is_refused(
        run_ledger: Ledger, db_url: str, name: str, hidden: str, what: str) -> None:
    seed(db_url)
    before = head(db_url)
    refused = run_ledger("consortium", "form", "17D", "--name", name, "--officer", "Dr B",
                         "--on", "2024-04-01", actor=ALLOCATOR)
    assert refused.code == 2
    line = refused.one_line_error(f"consortium name {what}", "[rule: text-characters]")
    assert hidden not in line
    assert head(db_url) == before


def test_an_escape_sequence_in_a_reason_is_refused_and_not_echoed_raw(
        run_ledger: Ledger, db_url: str) -> None:
    seed(db_url)
    before = head(db_url)
    refused = run_ledger("budget", "adjust", "A81001", "--year", "2024-25", "--element",
                         "acute", "--by", "5", "--reason", "\x1b[2Jcleared", actor=ALLOCATOR)
    assert refused.code == 2
    refused.one_line_error("reason holds a control character (U+001B)", "[rule: text-characters]")
    assert "\x1b" not in refused.stderr + refused.stdout
    assert head(db_url) == before


def test_a_name_is_recorded_in_nfc_and_trimmed(run_ledger: Ledger, db_url: str) -> None:
    seed(db_url, register=False)
    done = run_ledger("practice", "register", "A81001", "--name", "  Cafe\u0301 Surgery ",
                      "--list-size", "4069", "--on", "2024-04-01", actor=ALLOCATOR)
    assert done.code == 0, done.stderr
    events = [json.loads(line) for line in run_ledger("events").stdout.splitlines()]
    registered = [e for e in events if e["event"] == "PracticeRegistered"]
    assert [e["name"] for e in registered] == ["Caf\u00e9 Surgery"]


def test_a_nul_in_a_csv_cell_is_refused_naming_its_line(
        run_ledger: Ledger, db_url: str, tmp_path: Path) -> None:
    seed(db_url, register=False)
    before = head(db_url)
    (tmp_path / "practices.csv").write_text(
        "practice,name,list_size\nA81001,Densham,4069\nA81002,Queens\x00Park,9000\n")
    refused = run_ledger("practice", "import", "practices.csv", actor=ALLOCATOR)
    assert refused.code == 2
    refused.one_line_error(
        "practices.csv line 3: name holds a control character (U+0000) at character 7",
        "nothing was imported", "[rule: text-characters]")
    assert head(db_url) == before


def test_a_control_character_in_an_ignored_csv_column_is_refused_too(
        run_ledger: Ledger, db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    before = head(db_url)
    (tmp_path / "allocations.csv").write_text(
        "practice,element,amount,\nA81001,acute,100,\x1b]0;title\x07\n")
    refused = run_ledger("budget", "import", "allocations.csv", "--year", "2024-25",
                         actor=ALLOCATOR)
    assert refused.code == 2
    refused.one_line_error("allocations.csv line 2: column 4 holds a control character")
    assert head(db_url) == before


def test_the_same_amount_spelled_differently_under_one_command_id_records_once(
        run_ledger: Ledger, db_url: str) -> None:
    seed(db_url)
    first = run_ledger(*COMMIT, "--ref", "R-0001", "--amount", "100", "--command-id", "c-1",
                       actor=PRACTICE)
    assert first.code == 0, first.stderr
    again = run_ledger(*COMMIT, "--ref", "R-0001", "--amount", "100.00", "--service",
                       " Hips ", "--command-id", "c-1", actor=PRACTICE)
    assert again.code == 0, again.stderr
    assert again.stdout.startswith("already applied: ")
    assert topics(db_url)["SpendCommitted"] == 1
    other = run_ledger(*COMMIT, "--ref", "R-0001", "--amount", "100.01", "--command-id", "c-1",
                       actor=PRACTICE)
    assert other.code == 1
    other.one_line_error("command id c-1 was already used for a different command",
                         "[rule: idempotency]")
    assert topics(db_url)["SpendCommitted"] == 1


def test_an_empty_or_blank_command_id_is_refused_with_nothing_recorded(
        run_ledger: Ledger, db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    before = head(db_url)
    for command_id in ("", " ", "c 1", "c-\u200b1"):
        refused = run_ledger(*COMMIT, "--ref", "R-0001", "--amount", "100", "--command-id",
                             command_id, actor=PRACTICE)
        assert refused.code == 2, command_id
        refused.one_line_error("command id ", "[rule: identifier]")
    (tmp_path / "allocations.csv").write_text("practice,element,amount\nA81001,acute,100\n")
    imported = run_ledger("budget", "import", "allocations.csv", "--year", "2024-25",
                          "--command-id", "  ", actor=ALLOCATOR)
    assert imported.code == 2
    imported.one_line_error("command id is empty or blank", "[rule: identifier]")
    assert head(db_url) == before


def test_an_apply_line_with_a_blank_command_id_is_refused(
        run_ledger: Ledger, db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    before = head(db_url)
    args = {"practice": "A81001", "year": "2024-25", "element": "acute", "ref": "R-0001",
            "amount": "100", "provider": "RTR", "service": "Hips", "on": "2024-06-01"}
    lines = [{"command": "spend commit", "command_id": blank, "actor": PRACTICE, "args": args}
             for blank in ("", "   ")]
    (tmp_path / "lines.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    applied = run_ledger("apply", "lines.jsonl")
    assert applied.code == 2, applied.stdout + applied.stderr
    assert applied.stdout.count("refused") >= 2
    assert applied.stdout.count("command id is empty or blank: give one [rule: identifier]") == 2
    assert head(db_url) == before


def test_text_older_versions_stored_with_control_characters_prints_escaped(
        run_ledger: Ledger, db_url: str) -> None:
    """Events are never rewritten: what an older version accepted must still print safely."""
    seed(db_url, register=False)
    name = "\x1b[31mDensham\x00\u202eCorp"
    service = "Hips\x1b]0;pwned\x07"
    ledger = bootstrap(db_url)
    try:  # recorded as an older version would have: no text rules
        ledger.service.execute(PracticeRegister.model_construct(
            practice="A81001", practice_name=name, list_size=4069, weighted={},
            on=date(2024, 4, 1)), ALLOCATOR)
        ledger.service.execute(build_command("budget allocate", {
            "practice": "A81001", "year": "2024-25", "element": {"acute": "1200000"},
            "on": "2024-04-01"}), ALLOCATOR)
        ledger.service.execute(SpendCommit.model_construct(
            practice="A81001", year="2024-25", element=Element.ACUTE, ref="R-0001", amount=10000,
            provider="RTR", service=service, qs=(), on=date(2024, 6, 1)),
            PRACTICE)
    finally:
        ledger.close()
    table = run_ledger("trail", "A81001")
    assert table.code == 0, table.stderr
    assert not any(c in table.stdout for c in "\x1b\x00\x07\u202e")
    assert "\\x1b[31mDensham\\x00\\u202eCorp" in table.stdout
    assert "Hips\\x1b]0;pwned\\x07" in table.stdout
    as_json = run_ledger("trail", "A81001", "--format", "json")
    assert not any(c in as_json.stdout for c in "\x1b\x00\x07\u202e")
    summaries = " ".join(row["summary"] for row in json.loads(as_json.stdout))
    # Read from the event itself on either store (a PostgreSQL text column could not
    # hold the NUL): the name as it was recorded.
    assert name in summaries
    assert service in summaries
    feed = run_ledger("events")
    assert not any(c in feed.stdout for c in "\x1b\x00\x07\u202e")
    data = [json.loads(line) for line in feed.stdout.splitlines()]
    assert {d.get("name") for d in data} >= {name}
    assert {d.get("service") for d in data} >= {service}
    assert run_ledger("verify").code == 0


def test_csv_cells_are_written_exactly_to_a_file_and_escaped_on_a_terminal(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    stored = [{"practice": "A81001", "name": "\x1b[2JDensham\u202e"}]
    rows(stored, Format.csv)
    assert capsys.readouterr().out == "practice,name\nA81001,\x1b[2JDensham\u202e\n"
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    rows(stored, Format.csv)
    assert capsys.readouterr().out == "practice,name\nA81001,\\x1b[2JDensham\\u202e\n"


def test_a_csv_text_cell_that_begins_as_a_formula_is_written_for_a_spreadsheet_to_show(
        capsys: pytest.CaptureFixture[str]) -> None:
    stored = [{"name": '=HYPERLINK("http://x.example","pay")', "ref": "+SUM(A1)",
               "phone": "+441234", "at": "@SUM(A1)", "sum": "-2+3", "tab": "\t=1",
               "minus": "-12.50", "plain": "Hips", "owed_pence": -1250}]
    rows(stored, Format.csv)
    header, written = csv.reader(io.StringIO(capsys.readouterr().out))
    assert dict(zip(header, written, strict=True)) == {
        "name": '\'=HYPERLINK("http://x.example","pay")', "ref": "\'+SUM(A1)",
        "phone": "+441234", "at": "\'@SUM(A1)", "sum": "\'-2+3", "tab": "\'\t=1", "minus": "-12.50",
        "plain": "Hips", "owed_pence": "-1250"}


@pytest.mark.parametrize("words", [
    ["position", "--format", "a\u034fb"],
    ["position", "--fo\u034frmat", "json"],
    ["posi\u034ftion"],
    ["practice", "reg\ufe0fister"],
])
def test_a_usage_error_shows_what_was_typed_with_invisible_marks_escaped(
        invoke: Ledger, run_ledger: Ledger, words: list[str]) -> None:
    for done in (invoke(*words), run_ledger(*words)):
        assert done.code == 2, done.stderr
        assert "Usage:" in done.stderr
        shown = done.stderr.splitlines()[-1]
        assert "\u034f" not in done.stderr, shown
        assert "\ufe0f" not in done.stderr, shown
        assert "\\u034f" in shown or "\\ufe0f" in shown, shown
