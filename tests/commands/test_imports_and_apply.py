"""File commands: CSV imports (all or nothing) and `ledger apply` (line by line)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from commands.errors import EXIT_REFUSED, EXIT_USAGE
from tests.commands.conftest import Ledger, clean_env, head, ledger_executable, topics

ALLOCATOR = "allocator:Q71"


def setup_consortium(invoke: Ledger) -> None:
    result = invoke("consortium", "form", "16C", "--name", "Tees Valley", "--officer", "Dr A",
                    "--on", "2024-04-01", actor=ALLOCATOR)
    assert result.code == 0, result.stderr


PRACTICES = (
    "Practice,Name,List_Size,Consortium,acute_weighted,prescribing_weighted,note\n"
    "A81001,The Densham Surgery,4069,16C,4310,4400,first\n"
    "A81002,Queens Park Medical Centre,11000,,,,\n"
)


# --- practices CSV -------------------------------------------------------------------


def test_practice_import_registers_joins_and_is_idempotent(
    invoke: Ledger, db_url: str, tmp_path: Path
) -> None:
    setup_consortium(invoke)
    (tmp_path / "practices.csv").write_text(PRACTICES, encoding="utf-8")
    first = invoke("practice", "import", str(tmp_path / "practices.csv"), "--on", "2024-04-01",
                   actor=ALLOCATOR)
    assert first.code == 0, first.stderr
    assert "imported 2 practices from practices.csv (3 commands applied" in first.stdout
    assert topics(db_url) == {"ConsortiumFormed": 1, "PracticeRegistered": 2,
                              "PracticeJoined": 1}
    again = invoke("practice", "import", str(tmp_path / "practices.csv"), "--on", "2024-04-01",
                   actor=ALLOCATOR)
    assert again.code == 0
    assert again.stdout.startswith("already applied:")
    assert "(0 commands applied, 3 already applied)" in again.stdout
    assert head(db_url) == 4


@pytest.mark.parametrize(
    ("text", "code", "fragments"),
    [
        pytest.param("practice,name\nA81001,X\n", EXIT_USAGE,
                     ("practices.csv line 1: missing column list_size", "[rule: csv-header]"),
                     id="missing column"),
        pytest.param("", EXIT_USAGE, ("practices.csv is empty",), id="empty file"),
        pytest.param(PRACTICES + "A8100X,Bad Code Surgery,100,,,,\n", EXIT_USAGE,
                     ("practices.csv line 4: malformed practice code 'A8100X'",
                      "nothing was imported"), id="malformed code in row 4"),
        pytest.param(PRACTICES + "A81003,Surgery,-5,,,,\n", EXIT_USAGE,
                     ("practices.csv line 4: malformed list size '-5'",), id="negative list size"),
        pytest.param(PRACTICES + "A81003,,100,,,,\n", EXIT_USAGE,
                     ("practices.csv line 4: no name",), id="blank name"),
        pytest.param(PRACTICES + "A81003,Surgery for 943 476 5919,100,,,,\n", EXIT_USAGE,
                     ("practices.csv line 4:", "NHS number"), id="NHS number"),
        pytest.param(PRACTICES + "A81003,Surgery,100,99Z,,,\n", EXIT_REFUSED,
                     ("practices.csv line 4: no consortium 99Z", "nothing was imported"),
                     id="unknown consortium (a rule, exit 1)"),
        pytest.param(PRACTICES + "A81001,Again Surgery,100,,,,\n", EXIT_REFUSED,
                     ("practices.csv line 4: practice A81001 is already registered",),
                     id="the same practice twice"),
    ],
)
def test_a_bad_practices_file_records_nothing_and_names_the_line(
    invoke: Ledger, db_url: str, tmp_path: Path, text: str, code: int,
    fragments: tuple[str, ...],
) -> None:
    setup_consortium(invoke)
    (tmp_path / "practices.csv").write_text(text, encoding="utf-8")
    result = invoke("practice", "import", str(tmp_path / "practices.csv"), actor=ALLOCATOR)
    assert result.code == code, result.stderr
    result.one_line_error(*fragments)
    assert head(db_url) == 1


# --- allocations CSV -----------------------------------------------------------------


def register(invoke: Ledger, *codes: str) -> None:
    for code in codes:
        result = invoke("practice", "register", code, "--name", f"Surgery {code}",
                        "--list-size", "5000", "--on", "2024-04-01", actor=ALLOCATOR)
        assert result.code == 0, result.stderr


@pytest.mark.parametrize(("kind", "header", "rows", "suffix"), [
    ("practices", "practice,name,list_size,consortium",
     [f"A8100{n},Surgery {n},3412,16C" for n in range(2, 10)] + ["A81010,Last,10,16C"],
     ":line10:join"),
    ("allocations", "practice,element,amount", [f"A81001,{e},100" for e in (
        "acute", "community", "mental-health", "maternity", "prescribing",
        "health-inequalities", "primary-care")], ":line8"),
])
def test_an_import_id_too_long_for_its_rows_ids_is_refused_and_one_that_fits_is_kept(
        invoke: Ledger, db_url: str, tmp_path: Path, kind: str, header: str,
        rows: list[str], suffix: str) -> None:
    assert invoke("consortium", "form", "16C", "--name", "Tees Valley", "--officer", "Dr A",
                  "--on", "2024-04-01", actor=ALLOCATOR).code == 0
    assert invoke("practice", "register", "A81001", "--name", "Densham", "--list-size",
                  "4069", "--on", "2024-04-01", actor=ALLOCATOR).code == 0
    file = tmp_path / f"{kind}.csv"
    file.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    command = (("practice", "import", str(file)) if kind == "practices" else
               ("budget", "import", str(file), "--year", "2024-25"))
    room = 128 - len(suffix)
    before = head(db_url)
    long = invoke("--command-id", "i" * (room + 1), *command, "--on", "2024-04-01",
                  actor=ALLOCATOR)
    assert long.code == 2, long.stderr
    long.one_line_error(f"command id is {room + 1} characters long", "<id>:line<N>",
                        f"at most {room}", "nothing was imported")
    assert head(db_url) == before
    fits = invoke("--command-id", "i" * room, *command, "--on", "2024-04-01",
                  actor=ALLOCATOR)
    assert fits.code == 0, fits.stderr
    ids = [json.loads(line)["command_id"] for line in invoke("events").stdout.splitlines()]
    assert max(len(i) for i in ids) == 128


def test_the_room_an_import_id_is_given_is_the_room_its_longest_row_leaves(
        invoke: Ledger, db_url: str, tmp_path: Path) -> None:
    """The first rows' ids are the shortest (`:line2`), the last the longest
    (`:line100`, `:line101`): the id named as fitting fits every row."""
    practices = tmp_path / "practices.csv"
    practices.write_text("\n".join(["practice,name,list_size",
                                    *[f"A81{n:03},Surgery {n},4000" for n in range(1, 101)]])
                         + "\n", encoding="utf-8")
    assert invoke("practice", "import", str(practices), "--on", "2024-04-01",
                  actor=ALLOCATOR).code == 0
    file = tmp_path / "sizes.csv"
    file.write_text("\n".join(["practice,list_size",
                               *[f"A81{n:03},{4000 + n}" for n in range(1, 101)]]) + "\n",
                    encoding="utf-8")
    room = 128 - len(":line101")
    before = head(db_url)
    long = invoke("--command-id", "i" * 126, "practice", "import", str(file), "--list-sizes",
                  "--on", "2024-10-01", actor=ALLOCATOR)
    assert long.code == 2, long.stderr
    long.one_line_error("line 100: the import's command id is 126 characters long",
                        f"at most {room};", "nothing was imported")
    assert head(db_url) == before
    fits = invoke("--command-id", "i" * room, "practice", "import", str(file), "--list-sizes",
                  "--on", "2024-10-01", actor=ALLOCATOR)
    assert fits.code == 0, fits.stderr
    assert head(db_url) == before + 100


def test_allocation_import_allocates_each_row(
    invoke: Ledger, db_url: str, tmp_path: Path
) -> None:
    register(invoke, "A81001", "A81002")
    (tmp_path / "alloc.csv").write_text(
        'practice,element,amount,comment\nA81001,acute,"£1,200,000.00",x\n'
        "A81001,prescribing,310000.50,\nA81002,maternity,0,zero is allowed\n",
        encoding="utf-8",
    )
    result = invoke("budget", "import", str(tmp_path / "alloc.csv"), "--year", "2024-25",
                    "--on", "2024-04-01", actor=ALLOCATOR)
    assert result.code == 0, result.stderr
    assert "imported 3 allocation rows" in result.stdout
    assert topics(db_url)["BudgetAllocated"] == 3
    again = invoke("budget", "import", str(tmp_path / "alloc.csv"), "--year", "2024-25",
                   "--on", "2024-04-01", actor=ALLOCATOR)
    assert again.code == 0
    assert "3 already applied" in again.stdout
    assert head(db_url) == 5


@pytest.mark.parametrize(
    ("rows", "code", "fragments"),
    [
        pytest.param("practice,amount\nA81001,10\n", EXIT_USAGE,
                     ("missing column element",), id="missing column"),
        pytest.param("practice,element,amount\nA81001,acute,10\nA81001,prescribing,abc\n",
                     EXIT_USAGE, ("alloc.csv line 3: malformed amount 'abc'",),
                     id="bad amount on line 3"),
        pytest.param("practice,element,amount\nA81001,acute,10\nA81001,optics,10\n",
                     EXIT_USAGE, ("alloc.csv line 3: unknown element 'optics'",),
                     id="unknown element"),
        pytest.param("practice,element,amount\nA81001,acute,10\nA81001,maternity,-5\n",
                     EXIT_USAGE, ("alloc.csv line 3:", "must not carry a sign"),
                     id="negative amount"),
        pytest.param("practice,element,amount\nA81001,acute,10\n\nA99999,acute,10\n",
                     EXIT_REFUSED, ("alloc.csv line 4: no practice A99999",),
                     id="unknown practice after a blank line"),
        pytest.param("practice,element,amount\nA81001,acute,10\nA81001,acute,20\n",
                     EXIT_REFUSED, ("alloc.csv line 3: acute already allocated",),
                     id="the same element twice"),
        pytest.param("practice,element,amount\nA81001,acute,10\nA81001,maternity\n",
                     EXIT_USAGE, ("alloc.csv line 3: no amount",), id="truncated row"),
    ],
)
def test_a_bad_allocations_file_records_nothing_and_names_the_line(
    invoke: Ledger, db_url: str, tmp_path: Path, rows: str, code: int,
    fragments: tuple[str, ...],
) -> None:
    register(invoke, "A81001")
    (tmp_path / "alloc.csv").write_text(rows, encoding="utf-8")
    result = invoke("budget", "import", str(tmp_path / "alloc.csv"), "--year", "2024-25",
                    "--on", "2024-04-01", actor=ALLOCATOR)
    assert result.code == code, result.stderr
    result.one_line_error(*fragments)
    assert head(db_url) == 1


@pytest.mark.e2e
def test_an_element_written_as_a_heading_is_refused_naming_the_element_meant(
    invoke: Ledger, run_ledger: Ledger, db_url: str, tmp_path: Path,
) -> None:
    register(invoke, "A81001")
    (tmp_path / "alloc.csv").write_text(
        'practice,element,amount\nA81001,Acute,"£1,000"\nA81001,Mental Health,500\n',
        encoding="utf-8")
    result = run_ledger("budget", "import", str(tmp_path / "alloc.csv"), "--year", "2024-25",
                        "--on", "2024-04-01", actor=ALLOCATOR)
    assert result.code == EXIT_USAGE, result.stderr
    result.one_line_error("alloc.csv line 3: unknown element 'Mental Health': write "
                          "mental-health; nothing was imported [rule: element]")
    option = run_ledger("budget", "allocate", "A81001", "--year", "2024-25", "--element",
                        "primary_care=10", "--on", "2024-04-01", actor=ALLOCATOR)
    assert option.code == EXIT_USAGE, option.stderr
    option.one_line_error("unknown element 'primary_care': write primary-care")
    assert head(db_url) == 1


def test_an_unreadable_csv_is_a_usage_error(invoke: Ledger, db_url: str, tmp_path: Path) -> None:
    (tmp_path / "latin1.csv").write_bytes("practice,element,amount\nA81001,acute,£10\n"
                                          .encode("latin-1"))
    result = invoke("budget", "import", str(tmp_path / "latin1.csv"), "--year", "2024-25",
                    actor=ALLOCATOR)
    assert result.code == EXIT_USAGE
    result.one_line_error("latin1.csv is not UTF-8",
                          'save it as "CSV UTF-8 (Comma delimited)" (Excel) or CSV in UTF-8')
    (tmp_path / "allocations.xlsx").write_bytes(b"PK\x03\x04\x14\x00\x06\x00\xff\xfe")
    workbook = invoke("budget", "import", str(tmp_path / "allocations.xlsx"), "--year",
                      "2024-25", actor=ALLOCATOR)
    assert workbook.code == EXIT_USAGE
    workbook.one_line_error("allocations.xlsx is not UTF-8", "CSV UTF-8")
    missing = invoke("budget", "import", str(tmp_path / "nope.csv"), "--year", "2024-25",
                     actor=ALLOCATOR)
    assert missing.code == EXIT_USAGE
    assert "nope.csv" in missing.stderr
    assert head(db_url) == 0


# --- apply ---------------------------------------------------------------------------


def line(command: str, command_id: str, actor: str, **args: Any) -> str:
    return json.dumps({"command": command, "command_id": command_id, "actor": actor,
                       "args": args})


def commitments(count: int, start: int = 1) -> list[str]:
    return [
        line("spend commit", f"c-{n}", "practice:A81001", practice="A81001", year="2024-25",
             element="acute", ref=f"R-{n:05d}", amount="10.00", provider="RTR",
             service="Hip replacement", qs=["QS3"], on="2024-06-01")
        for n in range(start, start + count)
    ]


SETUP = [
    line("practice register", "s-1", ALLOCATOR, practice="A81001", name="The Densham Surgery",
         list_size=4069, on="2024-04-01"),
    line("budget allocate", "s-2", ALLOCATOR, practice="A81001", year="2024-25",
         element={"acute": "1200000"}, on="2024-04-01"),
]


def test_a_long_apply_still_lists_each_line_that_flagged_an_overspend(
    invoke: Ledger, tmp_path: Path
) -> None:
    over = line("spend commit", "c-over", "practice:A81001", practice="A81001",
                year="2024-25", element="acute", ref="R-OVER", amount="2000000",
                provider="RTR", service="Elective cardiology", on="2024-07-01")
    file = tmp_path / "commands.jsonl"
    file.write_text("\n".join([*SETUP, *commitments(60), over, *commitments(5, 61)]) + "\n",
                    encoding="utf-8")
    result = invoke("apply", str(file))
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("applied: 68 lines (1-68)"), result.stdout
    flagged = [text for text in lines if "OVERSPEND FLAGGED" in text]
    assert len(flagged) == 6, result.stdout  # the big one and every line after it
    assert flagged[0].startswith("line 63: applied c-over spend commit: committed "
                                 "£2,000,000.00 as R-OVER"), flagged[0]
    assert lines[-1] == "commands.jsonl: 68 applied, 0 already applied, 0 refused"


def test_apply_reports_each_line_and_a_rerun_is_already_applied(
    invoke: Ledger, db_url: str, tmp_path: Path
) -> None:
    file = tmp_path / "commands.jsonl"
    bad = [
        '{"command": "spend commit", "command_id": "c-trunc", "args": {"practice": "A81',
        "garbage, not json",
        line("spend commit", "c-nhs", "practice:A81001", practice="A81001", year="2024-25",
             element="acute", ref="R-NHS", amount="1", provider="RTR",
             service="Patient 9434765919", on="2024-06-01"),
        line("spend commit", "c-auth", "practice:A81002", practice="A81001", year="2024-25",
             element="acute", ref="R-AUTH", amount="1", provider="RTR", service="x",
             on="2024-06-01"),
    ]
    file.write_text("\n".join([*SETUP, *commitments(2), "", *bad, *commitments(1, 3)]) + "\n",
                    encoding="utf-8")
    first = invoke("apply", str(file))
    assert first.code == EXIT_USAGE, first.stderr  # malformed lines: the highest code
    out = first.stdout
    assert "line 1: applied s-1 practice register: registered A81001" in out
    assert "line 4: applied c-2 spend commit" in out
    assert "line 6: refused (no command id): not valid JSON" in out
    assert "line 7: refused (no command id): not valid JSON" in out
    assert "line 8: refused c-nhs spend commit:" in out
    assert "[rule: no-patient-data]" in out
    assert "line 9: refused c-auth spend commit:" in out
    assert "[rule: authority]" in out
    assert "line 10: applied c-3" in out
    assert "commands.jsonl: 5 applied, 0 already applied, 4 refused" in out
    first.one_line_error("4 of 9 lines refused")
    assert head(db_url) == 5

    again = invoke("apply", str(file))
    assert again.code == EXIT_USAGE
    assert "commands.jsonl: 0 applied, 5 already applied, 4 refused" in again.stdout
    assert head(db_url) == 5

    good = tmp_path / "good.jsonl"
    good.write_text("\n".join([*SETUP, *commitments(4)]), encoding="utf-8")
    third = invoke("apply", str(good))
    assert third.code == 0, third.stdout
    assert "good.jsonl: 1 applied, 5 already applied, 0 refused" in third.stdout
    assert third.stderr == ""


def test_apply_stop_on_error_stops_at_the_first_refused_line(
    invoke: Ledger, db_url: str, tmp_path: Path
) -> None:
    file = tmp_path / "commands.jsonl"
    file.write_text("\n".join([*SETUP, *commitments(1), "{oops", *commitments(2, 2)]),
                    encoding="utf-8")
    result = invoke("apply", str(file), "--stop-on-error")
    assert result.code == EXIT_USAGE
    assert "line 4: refused" in result.stdout
    assert "3 applied, 0 already applied, 1 refused (stopped at the first refusal" \
        in result.stdout
    assert head(db_url) == 3


def test_apply_exits_with_the_code_its_refused_lines_would_get_alone(
    invoke: Ledger, db_url: str, tmp_path: Path
) -> None:
    ruled = line("spend commit", "c-auth", "practice:A81002", practice="A81001",
                 year="2024-25", element="acute", ref="R-AUTH", amount="1", provider="RTR",
                 service="x", on="2024-06-01")
    file = tmp_path / "ruled.jsonl"
    file.write_text("\n".join([*SETUP, ruled]) + "\n", encoding="utf-8")
    only_rules = invoke("apply", str(file))
    assert only_rules.code == EXIT_REFUSED, only_rules.stdout
    alone = invoke("spend", "commit", "A81001", "--year", "2024-25", "--element", "acute",
                   "--ref", "R-X", "--amount", "abc", "--provider", "RTR", "--service", "x",
                   actor="practice:A81001")
    assert alone.code == EXIT_USAGE
    malformed = tmp_path / "malformed.jsonl"
    malformed.write_text("\n".join([
        ruled.replace("c-auth", "c-auth-2"), "{not json",
        line("spend commit", "c-abc", "practice:A81001", practice="A81001", year="2024-25",
             element="acute", ref="R-X", amount="abc", provider="RTR", service="x"),
    ]) + "\n", encoding="utf-8")
    mixed = invoke("apply", str(malformed))
    assert mixed.code == EXIT_USAGE, mixed.stdout
    assert "3 refused" in mixed.stdout
    assert head(db_url) == 2


def test_apply_of_a_file_that_cannot_be_read_exits_2(
    invoke: Ledger, db_url: str, tmp_path: Path
) -> None:
    missing = invoke("apply", str(tmp_path / "missing.jsonl"))
    assert missing.code == EXIT_USAGE
    missing.one_line_error("cannot read", "missing.jsonl", "[rule: file]")
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b'{"command": "\xff\xfe"}\n')
    unreadable = invoke("apply", str(binary))
    assert unreadable.code == EXIT_USAGE
    unreadable.one_line_error("binary.jsonl is not UTF-8")
    assert head(db_url) == 0


@pytest.mark.e2e
def test_apply_rerun_after_a_kill_applies_only_what_is_missing(
    run_ledger: Ledger, db_url: str, tmp_path: Path
) -> None:
    total = 1_000
    file = tmp_path / "commands.jsonl"
    file.write_text("\n".join([*SETUP, *commitments(total)]) + "\n", encoding="utf-8")
    process = subprocess.Popen(
        [*ledger_executable(), "--db", db_url, "apply", str(file), "--batch-size", "20"],
        cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    first = process.stderr.readline()  # the first batch is committed
    assert first.startswith("done 20 of 1,002 lines"), first
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    recorded = head(db_url)
    assert 20 <= recorded < total + 2

    rerun = run_ledger("apply", str(file), "--batch-size", "500")
    assert rerun.code == 0, rerun.stderr
    summary = rerun.stdout.splitlines()[-1]
    assert summary == (f"commands.jsonl: {total + 2 - recorded:,} applied, "
                       f"{recorded:,} already applied, 0 refused")
    assert topics(db_url) == {"PracticeRegistered": 1, "BudgetAllocated": 1,
                              "SpendCommitted": total}


@pytest.mark.e2e
def test_apply_through_a_service_stopped_by_ctrl_c_says_to_run_it_again(
    tmp_path: Path,
) -> None:
    """The service may have applied any of the file's lines when the wait for its answer
    is stopped: exit 130 saying so, as a direct apply does, not click's "Aborted!" and
    exit 1, which says a refusal that recorded nothing."""
    file = tmp_path / "commands.jsonl"
    file.write_text("\n".join([*SETUP, *commitments(3)]) + "\n", encoding="utf-8")
    asked = threading.Event()
    finished = threading.Event()  # the thread ends with the test: later ones may fork
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def never_answer() -> None:  # reads the request, then keeps the client waiting
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                asked.set()
                finished.wait(30)

        server = threading.Thread(target=never_answer, daemon=True)
        server.start()
        try:
            interruptible = ("import os, signal, sys; signal.signal(signal.SIGINT, "
                             "signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])")
            process = subprocess.Popen(
                [sys.executable, "-c", interruptible, *ledger_executable(), "--server",
                 f"http://127.0.0.1:{port}", "--token", "lt_secret", "apply", str(file)],
                cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True,
            )
            assert asked.wait(30), "the request never came"
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=30)
        finally:
            finished.set()
            server.join(timeout=30)
    assert process.returncode == 130, (process.returncode, stdout, stderr)
    assert "Traceback" not in stderr
    said = stderr.splitlines()
    assert said, (stdout, stderr)
    assert said[-1].startswith("interrupted: commands.jsonl: "), stderr
    assert "Run the same command again" in said[-1]


@pytest.mark.e2e
def test_apply_stopped_by_ctrl_c_says_how_far_it_got_and_a_rerun_applies_the_rest(
    run_ledger: Ledger, db_url: str, tmp_path: Path
) -> None:
    total = 1_000
    file = tmp_path / "commands.jsonl"
    file.write_text("\n".join([*SETUP, *commitments(total)]) + "\n", encoding="utf-8")
    # Ctrl-C reaches the command as at a terminal, whether or not the test runner's
    # process ignores SIGINT (an ignored signal stays ignored across exec).
    interruptible = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                     "os.execv(sys.argv[1], sys.argv[1:])")
    process = subprocess.Popen(
        [sys.executable, "-c", interruptible, *ledger_executable(), "--db", db_url, "apply",
         str(file), "--batch-size", "20"],
        cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    first = process.stderr.readline()  # the first batch is committed
    assert first.startswith("done 20 of 1,002 lines"), first
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    said = stderr.splitlines()
    assert said, "nothing said after Ctrl-C"
    last = said[-1]
    assert last.startswith("interrupted: commands.jsonl: "), stderr
    assert "of 1,002 lines done before it" in last
    assert "settled" not in last  # to a finance reader, paying a commitment
    assert "Run the same command again" in last
    recorded = head(db_url)
    done = int(last.split(": ")[2].split(" of ")[0].replace(",", ""))
    assert 20 <= done <= recorded < total + 2

    rerun = run_ledger("apply", str(file), "--batch-size", "500")
    assert rerun.code == 0, rerun.stderr
    assert rerun.stdout.splitlines()[-1] == (
        f"commands.jsonl: {total + 2 - recorded:,} applied, {recorded:,} already applied, "
        "0 refused")
    assert topics(db_url) == {"PracticeRegistered": 1, "BudgetAllocated": 1,
                              "SpendCommitted": total}


PIPELINED = """
import os, sys
from ledger.application import batch
from ledger.store import appender
batch._spare_core = lambda: {spare}
batch.PARSE_STAGE_MIN_LINES = 1
answer, told = appender._answer, []
def dies_before_the_second(conn, said):
    told.append(said)
    if len(told) == 2:
        open("died", "w").close()
        os._exit(1)
    return answer(conn, said)
appender._answer = dies_before_the_second
from commands.app import main
sys.argv[0] = "ledger"
sys.exit(main())
"""
"""`ledger` with the appending process made to die having committed its second batch,
before saying so (leaving a file `died` in its working directory); with `spare=False`,
the command run the ordinary way (no appending process, no parse process)."""


@pytest.mark.e2e
def test_apply_whose_appending_process_died_just_after_a_commit_says_what_a_plain_run_says(
    tmp_path: Path,
) -> None:
    """The lines of the batch committed, never acknowledged, are applied by this run and
    said so: every line's outcome, the summary and the exit code are the ordinary run's."""
    file = tmp_path / "commands.jsonl"
    lines = [*SETUP, *commitments(20), commitments(1)[0], '{"command": "spend commit"}']
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    piped, plain = (
        subprocess.run([sys.executable, "-c", PIPELINED.format(spare=spare), "--db",
                        str(tmp_path / f"{spare}.db"), "apply", str(file), "--batch-size", "3"],
                       cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                       timeout=120, check=False)
        for spare in (True, False))
    assert (tmp_path / "died").exists(), piped.stderr
    assert "Traceback" not in piped.stderr + plain.stderr
    assert (piped.returncode, piped.stdout) == (plain.returncode, plain.stdout)
    assert plain.returncode == EXIT_USAGE, plain.stderr
    assert plain.stdout.splitlines()[-1] == (
        "commands.jsonl: 22 applied, 1 already applied, 1 refused")


CTRL_C_IN_THE_POOL = """
import inspect, os, signal, sys, threading
from eventsourcing.persistence import ConnectionPool
from ledger.application import batch
batch._spare_core = lambda: True
batch.PARSE_STAGE_MIN_LINES = 1
window = sys.argv.pop(1)
put = ConnectionPool.put_connection.__code__
source, first = inspect.getsourcelines(put)
released = first + next(i for i, text in enumerate(source) if "conn.in_use.release()" in text)
passes = []

def in_the_window(frame, event):
    if window == "semaphore":
        caller = frame.f_back
        return (event == "call" and frame.f_code is threading.Condition.__exit__.__code__
                and isinstance(caller.f_locals.get("self"), threading.Semaphore)
                and caller.f_back.f_code.co_name == "get_connection")
    return event == "line" and frame.f_code is put and frame.f_lineno == released

def ctrl_c_there(frame, event, arg):
    if len(passes) < 20 and in_the_window(frame, event):
        passes.append(1)
        if len(passes) == 20:
            os.kill(os.getpid(), signal.SIGINT)
    return ctrl_c_there if frame.f_code is put and len(passes) < 20 else None

sys.settrace(ctrl_c_there)
from commands.app import main
sys.argv[0] = "ledger"
sys.exit(main())
"""
"""`ledger` getting Ctrl-C at the 20th time its main thread is in a window of
eventsourcing's connection pool (the first argument): its semaphore's lock taken and
about to be given back, as a connection is taken ("semaphore"), or a connection back
in the pool and its own lock not yet released ("pooled connection")."""


@pytest.mark.e2e
@pytest.mark.parametrize("window", ["semaphore", "pooled connection"])
def test_apply_stopped_by_ctrl_c_inside_the_connection_pool_still_closes_and_ends(
    tmp_path: Path, window: str
) -> None:
    """Ctrl-C arriving while the connection pool holds a lock for a moment: the run ends,
    exit 130, saying how far it got (closing the ledger, it takes a connection again)."""
    file = tmp_path / "commands.jsonl"
    file.write_text("\n".join([*SETUP, *commitments(300)]) + "\n", encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_IN_THE_POOL, window, "--db",
         str(tmp_path / "ledger.db"), "apply", str(file), "--batch-size", "10"],
        cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1].startswith("interrupted: commands.jsonl: "), stderr


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # ended meanwhile
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Whether `pid` is a process that has not ended (a zombie has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.e2e
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_the_processes_of_apply_end_when_it_is_killed_and_a_rerun_applies_the_rest(
    sqlite_path: str, tmp_path: Path
) -> None:
    """`ledger apply` killed outright (SIGKILL) while its parse process parses ahead and
    its appending process appends: both end too, and a rerun applies only what is
    missing. (SQLite: on PostgreSQL the pool's threads keep the lines parsed, and the
    batches appended, in the running process.)"""
    total = 30_000
    file = tmp_path / "commands.jsonl"
    file.write_text("\n".join([*SETUP, *commitments(total)]) + "\n", encoding="utf-8")
    # The command as installed, with a core taken as free for the parse process whatever
    # the machine's load while the tests run.
    script = ("import sys; from ledger.application import batch; "
              "batch._spare_core = lambda: True; from commands.app import main; "
              "sys.argv[0] = 'ledger'; sys.exit(main())")
    process = subprocess.Popen(
        [sys.executable, "-c", script, "--db", sqlite_path, "apply", str(file)],
        cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()  # the first batch is committed
        assert first.startswith("done 2,000 of 30,002 lines"), first
        children = children_of(process.pid)
        assert len(children) == 2  # the parse process and the appending process
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while any(map(running, children)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(running, children)), "a process of the run outlived it"
    recorded = head(sqlite_path)
    assert 2_000 <= recorded < total + 2

    rerun = subprocess.run([*ledger_executable(), "--db", sqlite_path, "apply", str(file)],
                           cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                           timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.splitlines()[-1] == (
        f"commands.jsonl: {total + 2 - recorded:,} applied, {recorded:,} already applied, "
        "0 refused")
    assert topics(sqlite_path) == {"PracticeRegistered": 1, "BudgetAllocated": 1,
                                   "SpendCommitted": total}
