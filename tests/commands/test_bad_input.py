"""Bad input (issue 3, item 6): one line naming the problem, the right exit code,
no traceback, and nothing recorded.

Most cases run the app in-process (fast); a few run the real command in a
subprocess to prove the same holds end to end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from commands.errors import EXIT_REFUSED, EXIT_USAGE
from ledger.application.commands import build_command
from ledger.bootstrap import Ledger
from tests.commands.conftest import Ledger as RunLedger
from tests.commands.conftest import head, invoke_app, run_command
from tests.conftest import STORES, written_once

ALLOCATOR = "allocator:Q71"
PRACTICE = "practice:A81001"


def write_base(ledger: Ledger) -> None:
    """A81001 in consortium 16C with a 2024-25 budget and one commitment, R-0001."""
    steps: list[tuple[str, str, dict[str, Any]]] = [
        (ALLOCATOR, "consortium form",
         {"consortium": "16C", "name": "Tees Valley", "officer": "Dr A Example",
          "on": "2024-04-01"}),
        (ALLOCATOR, "practice register",
         {"practice": "A81001", "name": "The Densham Surgery", "list_size": 4069,
          "on": "2024-04-01"}),
        (ALLOCATOR, "practice register",
         {"practice": "A81002", "name": "Queens Park Medical Centre", "list_size": 9000,
          "on": "2024-04-01"}),
        (ALLOCATOR, "consortium join", {"consortium": "16C", "practice": "A81001",
                                        "on": "2024-04-01"}),
        (ALLOCATOR, "budget allocate", {"practice": "A81001", "year": "2024-25",
                                        "element": {"acute": "1200000"}, "on": "2024-04-01"}),
        (PRACTICE, "spend commit", {"practice": "A81001", "year": "2024-25", "element": "acute",
                                    "ref": "R-0001", "amount": "12500", "provider": "RTR",
                                    "service": "Hip replacement", "on": "2024-06-01"}),
    ]
    for actor, name, args in steps:
        ledger.service.execute(build_command(name, args), actor)


@pytest.fixture
def base(ledger: Ledger, db_url: str) -> str:
    """The base ledger, for a test that records on it."""
    write_base(ledger)
    ledger.close()
    return db_url


@pytest.fixture(scope="module", params=STORES)
def refusing(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[str]:
    """The base ledger on each store, written once for the cases that are refused: each
    records nothing (it says so), so each finds the ledger as written."""
    with written_once(request.param, tmp_path_factory.mktemp("bad-input"), write_base) as db:
        yield db


COMMIT = ["spend", "commit", "A81001", "--year", "2024-25", "--element", "acute",
          "--ref", "R-0002", "--provider", "RTR", "--service", "Cataract surgery",
          "--on", "2024-07-01"]


def commit(amount: str = "100", *extra: str) -> list[str]:
    return [*COMMIT, "--amount", amount, *extra]


CASES: list[tuple[str, str | None, list[str], int, tuple[str, ...]]] = [
    ("malformed ODS code", ALLOCATOR,
     ["practice", "register", "A8100", "--name", "X", "--list-size", "10"],
     EXIT_USAGE, ("malformed practice code 'A8100'", "[rule: practice-code]")),
    ("ODS code with letters", ALLOCATOR,
     ["budget", "harden", "AB1001", "--year", "2024-25"],
     EXIT_USAGE, ("malformed practice code 'AB1001'",)),
    ("malformed consortium code", ALLOCATOR,
     ["consortium", "form", "1C", "--name", "X", "--officer", "Y"],
     EXIT_USAGE, ("malformed consortium code '1C'", "[rule: consortium-code]")),
    ("consortium code without a digit", ALLOCATOR,
     ["consortium", "join", "ABC", "A81001"],
     EXIT_USAGE, ("malformed consortium code 'ABC'",)),
    ("unknown practice", ALLOCATOR,
     ["budget", "allocate", "A99999", "--year", "2024-25", "--element", "acute=10"],
     EXIT_REFUSED, ("no practice A99999", "[rule: practice]")),
    ("unknown commitment", PRACTICE, ["spend", "vary", "R-9999", "--amount", "10"],
     EXIT_REFUSED, ("no commitment R-9999", "[rule: commitment]")),
    ("negative amount", PRACTICE, commit("-5"),
     EXIT_USAGE, ("amount '-5' must not carry a sign", "[rule: amount]")),
    ("zero amount", PRACTICE, commit("0"),
     EXIT_USAGE, ("amount '0' must be more than zero",)),
    ("three decimals", PRACTICE, commit("1.234"), EXIT_USAGE, ("malformed amount '1.234'",)),
    ("not a number", PRACTICE, commit("abc"), EXIT_USAGE, ("malformed amount 'abc'",)),
    ("exponent", PRACTICE, commit("1e9"), EXIT_USAGE, ("malformed amount '1e9'",)),
    ("NaN", PRACTICE, commit("NaN"), EXIT_USAGE, ("malformed amount 'NaN'",)),
    ("infinity", PRACTICE, commit("inf"), EXIT_USAGE, ("malformed amount 'inf'",)),
    ("bad separators", PRACTICE, commit("£1,2,3"), EXIT_USAGE, ("malformed amount '£1,2,3'",)),
    ("adjustment in accounting brackets", ALLOCATOR,
     ["budget", "adjust", "A81001", "--year", "2024-25", "--element", "acute", "--by",
      "(£5,000)", "--reason", "x"], EXIT_USAGE,
     ("malformed amount '(£5,000)': write a reduction with a minus sign, as '-£5,000'",
      "[rule: amount]")),
    ("ref in lower case", PRACTICE, ["spend", "settle", "r-0001", "--amount", "10"],
     EXIT_REFUSED, ("no commitment r-0001; refs are case-sensitive: R-0001 is one",
                    "[rule: commitment]")),
    ("unknown ref", PRACTICE, ["spend", "settle", "r-0009", "--amount", "10"],
     EXIT_REFUSED, ("no commitment r-0009 [rule: commitment]",)),
    ("zero adjustment", ALLOCATOR,
     ["budget", "adjust", "A81001", "--year", "2024-25", "--element", "acute", "--by", "0",
      "--reason", "x"], EXIT_USAGE, ("an adjustment must not be zero",)),
    ("allocation without amount", ALLOCATOR,
     ["budget", "allocate", "A81001", "--year", "2024-25", "--element", "maternity"],
     EXIT_USAGE, ("write --element maternity=AMOUNT",)),
    ("date after the year", PRACTICE,
     [*COMMIT[:-2], "--on", "2025-04-01", "--amount", "100"],
     EXIT_REFUSED, ("effective date 2025-04-01 is outside the financial year 2024-25",
                    "[rule: effective-date]")),
    ("date before the year", ALLOCATOR,
     ["budget", "harden", "A81001", "--year", "2024-25", "--on", "2024-03-31"],
     EXIT_REFUSED, ("outside the financial year 2024-25",)),
    ("malformed date", PRACTICE, [*COMMIT[:-2], "--on", "2024-13-01", "--amount", "100"],
     EXIT_USAGE, ("malformed date '2024-13-01'",)),
    ("day/month/year date", PRACTICE, [*COMMIT[:-2], "--on", "14/10/2024", "--amount", "100"],
     EXIT_USAGE, ("malformed date '14/10/2024'",
                  "YYYY-MM-DD, here 2024-10-14 if it is day/month/year", "[rule: date]")),
    ("month/day/year date", PRACTICE, [*COMMIT[:-2], "--on", "10/14/2024", "--amount", "100"],
     EXIT_USAGE, ("malformed date '10/14/2024': write it as YYYY-MM-DD, like 2024-06-01",)),
    ("top-slice under one without its sign", "consortium:16C",
     ["consortium", "risk-pool", "16C", "--year", "2024-25", "--top-slice", "0.01",
      "--on", "2024-04-01"],
     EXIT_USAGE, ("percentage '0.01' is ambiguous: write 1% if it is a fraction, 0.01% if it "
                  "is a percentage", "[rule: percent]")),
    ("date without its dashes", PRACTICE, [*COMMIT[:-2], "--on", "20240601", "--amount", "100"],
     EXIT_USAGE, ("malformed date '20240601': write it as YYYY-MM-DD, like 2024-06-01",)),
    ("week date", PRACTICE, [*COMMIT[:-2], "--on", "2024-W23", "--amount", "100"],
     EXIT_USAGE, ("malformed date '2024-W23': write it as YYYY-MM-DD",)),
    ("date in other digits", PRACTICE,
     [*COMMIT[:-2], "--on", "\u0662\u0660\u0662\u0664-06-01", "--amount", "100"],
     EXIT_USAGE, ("malformed date", "write it as YYYY-MM-DD")),
    ("malformed year", ALLOCATOR, ["budget", "harden", "A81001", "--year", "2024-26"],
     EXIT_USAGE, ("malformed financial year '2024-26'", "[rule: year]")),
    ("unknown element", PRACTICE,
     ["spend", "commit", "A81001", "--year", "2024-25", "--element", "dentistry",
      "--ref", "R-0002", "--amount", "100", "--provider", "RTR", "--service", "x"],
     EXIT_USAGE, ("unknown element 'dentistry'", "[rule: element]")),
    ("unknown element to delegate", PRACTICE,
     ["budget", "delegate", "A81001", "--year", "2024-25", "--element", "acute,optics",
      "--to", "consortium:16C"], EXIT_USAGE, ("unknown element 'optics'",)),
    ("holder is not a holder", PRACTICE,
     ["budget", "delegate", "A81001", "--year", "2024-25", "--element", "acute",
      "--to", "16C"], EXIT_USAGE, ("malformed holder '16C'",)),
    ("another practice commits", "practice:A81002", commit("100"),
     EXIT_REFUSED, ("only the holder of acute on 2024-07-01 (practice:A81001)",
                    "[rule: authority]")),
    ("practice allocates to itself", PRACTICE,
     ["budget", "allocate", "A81001", "--year", "2024-25", "--element", "maternity=10"],
     EXIT_REFUSED, ("only allocator:Q71", "[rule: authority]")),
    ("another allocator", "allocator:Q99",
     ["budget", "harden", "A81001", "--year", "2024-25", "--on", "2024-07-01"],
     EXIT_REFUSED, ("only allocator:Q71", "[rule: authority]")),
    ("auditor writes", "auditor:jsmith", commit("100"),
     EXIT_REFUSED, ("auditors only read", "[rule: authority]")),
    ("no actor", None, commit("100"), EXIT_USAGE,
     ("writes need an actor", "--actor allocator:Q71, practice:A81001 or consortium:16C",
      "[rule: actor]")),
    ("malformed actor", "nobody", commit("100"), EXIT_USAGE, ("malformed actor 'nobody'",)),
    ("NHS number in a service", PRACTICE,
     [*COMMIT[:-4], "--service", "Review for 943 476 5919", "--on", "2024-07-01",
      "--amount", "100"],
     EXIT_USAGE, ("NHS number", "[rule: no-patient-data]")),
    ("NHS number with dashes in a reason", ALLOCATOR,
     ["budget", "adjust", "A81001", "--year", "2024-25", "--element", "acute", "--by", "10",
      "--reason", "Patient 943-476-5919 moved"], EXIT_USAGE, ("NHS number",)),
    ("NHS number in a name", ALLOCATOR,
     ["practice", "register", "A81009", "--name", "Surgery 9434765919", "--list-size", "10"],
     EXIT_USAGE, ("NHS number",)),
    ("NHS number in an actor's name", "practice:A81001/9434765919", commit("100"),
     EXIT_USAGE, ("NHS number",)),
    ("NHS number in fullwidth digits in a service", PRACTICE,
     [*COMMIT[:-4], "--service", "Review for \uff19\uff14\uff13 \uff14\uff17\uff16 "
      "\uff15\uff19\uff11\uff19", "--on", "2024-07-01", "--amount", "100"],
     EXIT_USAGE, ("NHS number", "[rule: no-patient-data]")),
    ("NHS number grouped another way in a reason", ALLOCATOR,
     ["budget", "adjust", "A81001", "--year", "2024-25", "--element", "acute", "--by", "10",
      "--reason", "Patient 94347.65919 moved"], EXIT_USAGE, ("NHS number",)),
    ("NHS number with en dashes in a name", ALLOCATOR,
     ["practice", "register", "A81009", "--name", "Surgery 943\u2013476\u20135919",
      "--list-size", "10"], EXIT_USAGE, ("NHS number",)),
    ("weighted population without a value", ALLOCATOR,
     ["practice", "register", "A81009", "--name", "X", "--list-size", "10",
      "--weighted", "acute"], EXIT_USAGE,
     ("--weighted takes ELEMENT=N", "write --weighted acute=N")),
    ("allocation below zero", ALLOCATOR,
     ["budget", "adjust", "A81001", "--year", "2024-25", "--element", "acute",
      "--by", "-1200000.01", "--reason", "Error"], EXIT_REFUSED, ("would fall below zero",)),
    ("unsupported database", PRACTICE, ["--db", "mysql://x/y", *commit("100")],
     EXIT_USAGE, ("unsupported database",)),
]


@pytest.mark.parametrize(
    ("actor", "args", "code", "fragments"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_bad_input_is_one_line_with_its_exit_code_and_records_nothing(
    refusing: str, actor: str | None, args: list[str], code: int, fragments: tuple[str, ...],
) -> None:
    before = head(refusing)
    if args[0] == "--db":  # another store than the test's
        result = invoke_app(args[1], *args[2:], actor=actor)
    else:
        result = invoke_app(refusing, *args, actor=actor)
    assert result.code == code, (result.stdout, result.stderr)
    result.one_line_error(*fragments)
    assert result.stdout == ""
    assert head(refusing) == before


def test_the_valid_neighbours_of_the_bad_cases_are_accepted(base: str, invoke: RunLedger) -> None:
    """The bad cases fail for the reason given: change the bad part and they pass."""
    for n, amount in enumerate(("1234", "1234.5", "£1,234.56", "1,234.56")):
        ref = f"R-100{n}"
        result = invoke(*[a if a != "R-0002" else ref for a in COMMIT], "--amount", amount,
                        actor=PRACTICE)
        assert result.code == 0, result.stderr
        assert f"committed {'£1,234.50' if n == 1 else '£1,234.00' if n == 0 else '£1,234.56'}" \
            in result.stdout
    assert head(base) == 6 + 4


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("actor", "args", "code", "fragments"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES
     if case[0] in {"NHS number in a service", "bad separators", "another practice commits",
                    "day/month/year date", "adjustment in accounting brackets",
                    "ref in lower case", "date without its dashes", "week date",
                    "top-slice under one without its sign"}],
)
def test_bad_input_in_the_real_command(
    refusing: str, tmp_path: Path, actor: str | None, args: list[str], code: int,
    fragments: tuple[str, ...],
) -> None:
    before = head(refusing)
    result = run_command(refusing, tmp_path, *args, actor=actor)
    assert result.code == code, result.stderr
    result.one_line_error(*fragments)
    assert head(refusing) == before


def test_a_usage_error_from_the_parser_exits_2(base: str, invoke: RunLedger) -> None:
    result = invoke("spend", "commit", "A81001", "--year", "2024-25", actor=PRACTICE)
    assert result.code == EXIT_USAGE
    assert "Missing option" in result.stderr
    assert head(base) == 6


@pytest.mark.e2e
def test_a_read_given_a_day_month_year_date_shows_it_as_iso(
    refusing: str, tmp_path: Path,
) -> None:
    result = run_command(refusing, tmp_path, "position", "--practice", "A81001", "--year",
                         "2024-25", "--as-of", "31/12/2024")
    assert result.code == EXIT_USAGE, result.stderr
    result.one_line_error("malformed date '31/12/2024' for --as-of",
                          "YYYY-MM-DD, here 2024-12-31 if it is day/month/year")
    assert result.stdout == ""


@pytest.mark.e2e
@pytest.mark.parametrize("given", ["20241231", "2024-W52", "2024-366"])
def test_a_read_given_a_date_in_another_iso_form_is_refused_naming_yyyy_mm_dd(
    refusing: str, tmp_path: Path, given: str,
) -> None:
    result = run_command(refusing, tmp_path, "position", "--practice", "A81001", "--year",
                         "2024-25", "--as-of", given)
    assert result.code == EXIT_USAGE, result.stderr
    result.one_line_error(f"malformed date '{given}' for --as-of", "YYYY-MM-DD")
    assert result.stdout == ""
