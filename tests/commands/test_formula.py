"""Allocation by formula: weighted population x pounds per head, half up to the penny."""

from __future__ import annotations

import json

import pytest

from commands.errors import EXIT_REFUSED, EXIT_USAGE
from tests.commands.conftest import Ledger, head

ALLOCATOR = "allocator:Q71"


def ok(result: object) -> None:
    assert getattr(result, "code") == 0, getattr(result, "stderr")  # noqa: B009


def half_up_pence(weighted: str, rate_pence: int) -> int:
    """weighted (a decimal string) x rate, half up to the penny, in integers only."""
    units, _, fraction = weighted.partition(".")
    micro = int(units) * 1_000_000 + int(fraction.ljust(6, "0"))
    return (micro * rate_pence + 500_000) // 1_000_000


def setup(invoke: Ledger) -> None:
    ok(invoke("consortium", "form", "16C", "--name", "Tees Valley", "--officer", "Dr A",
              "--on", "2025-04-01", actor=ALLOCATOR))
    for code, acute, prescribing in (("A81001", "5044.162762", "4617.616349"),
                                     ("A81002", "2907.062026", "4051.737375"),
                                     ("A81004", "0.000641", "1")):
        ok(invoke("practice", "register", code, "--name", f"Surgery {code}", "--list-size",
                  "4000", "--weighted", f"acute={acute}", "--weighted",
                  f"prescribing={prescribing}", "--on", "2025-04-01", actor=ALLOCATOR))
    ok(invoke("consortium", "join", "16C", "A81001", "--on", "2025-04-01", actor=ALLOCATOR))
    ok(invoke("consortium", "join", "16C", "A81002", "--on", "2025-04-01", actor=ALLOCATOR))


def test_a_dry_run_shows_the_amounts_and_records_nothing(invoke: Ledger, db_url: str) -> None:
    setup(invoke)
    before = head(db_url)
    done = invoke("budget", "allocate-formula", "--year", "2025-26", "--rate", "acute=780",
                  "--rate", "prescribing=170.25", "--on", "2025-04-01", "--dry-run",
                  actor=ALLOCATOR)
    ok(done)
    assert head(db_url) == before
    text = " ".join(done.stdout.split())
    # 5044.162762 x 78,000p = 393,444,695.436p -> £3,934,446.95 (half up)
    assert half_up_pence("5044.162762", 78_000) == 393_444_695
    assert "A81001 │ acute │ 5044.162762 │ £780.00 │ £3,934,446.95" in text
    # 0.000641 x 78,000p = 49.998p -> 50p; 1 x 17,025p
    assert "A81004 │ acute │ 0.000641 │ £780.00 │ £0.50" in text
    total = sum(half_up_pence(w, r) for w, r in [
        ("5044.162762", 78_000), ("4617.616349", 17_025), ("2907.062026", 78_000),
        ("4051.737375", 17_025), ("0.000641", 78_000), ("1", 17_025)])
    pounds, pence = divmod(total, 100)
    assert (f"dry run: would allocate 3 practices, £{pounds:,}.{pence:02d} in all; "
            "nothing recorded") in text


def test_each_practice_is_allocated_once_with_its_basis_recorded(invoke: Ledger,
                                                                 db_url: str) -> None:
    setup(invoke)
    args = ("budget", "allocate-formula", "--year", "2025-26", "--rate", "acute=780",
            "--rate", "prescribing=170.25", "--consortium", "16C", "--on", "2025-04-01")
    done = invoke(*args, actor=ALLOCATOR)
    ok(done)
    assert "done: allocated 2 practices" in done.stdout
    feed = [json.loads(line) for line in invoke("events").stdout.splitlines()]
    allocations = [e for e in feed if e["event"] == "BudgetAllocated"]
    assert [e["practice"] for e in allocations] == ["A81001", "A81002"]  # members only
    first = allocations[0]
    assert first["schema_version"] == 2
    assert first["amounts_pence"] == {"acute": half_up_pence("5044.162762", 78_000),
                                      "prescribing": half_up_pence("4617.616349", 17_025)}
    assert first["formula"] == {
        "acute": {"weighted_population": "5044.162762", "rate_pence": 78_000},
        "prescribing": {"weighted_population": "4617.616349", "rate_pence": 17_025}}
    assert first["command_id"].endswith(":A81001")
    trail = json.loads(invoke("trail", "A81001", "--format", "json").stdout)
    assert ("acute £3,934,446.95 = 5044.162762 weighted x £780.00"
            in trail[-1]["summary"])
    # The same run again records nothing twice.
    before = head(db_url)
    again = invoke(*args, actor=ALLOCATOR)
    ok(again)
    assert "already applied: allocated 2 practices" in again.stdout
    assert head(db_url) == before


def test_a_practice_without_a_rated_weighted_population_refuses_the_whole_run(
    invoke: Ledger, db_url: str
) -> None:
    setup(invoke)
    ok(invoke("practice", "register", "A81005", "--name", "No figures", "--list-size", "10",
              "--on", "2025-04-01", actor=ALLOCATOR))
    before = head(db_url)
    done = invoke("budget", "allocate-formula", "--year", "2025-26", "--rate", "acute=780",
                  "--on", "2025-04-01", actor=ALLOCATOR)
    assert done.code == EXIT_REFUSED
    done.one_line_error("A81005 has no weighted population for acute on 2025-04-01",
                        "[rule: formula]")
    assert head(db_url) == before


@pytest.mark.parametrize(("rate", "fragment"), [
    ("acute=-5", "rate for acute: amount '-5' must not carry a sign"),
    ("acute=7.805", "rate for acute: malformed amount"),
    ("acute=0", "must be more than zero"),
    ("teeth=5", "unknown element 'teeth'"),
    ("acute", "write --rate acute=POUNDS"),
])
def test_malformed_rates_are_refused(sqlite_path: str, rate: str, fragment: str) -> None:
    from typer.testing import CliRunner  # noqa: PLC0415

    from commands.app import app  # noqa: PLC0415

    result = CliRunner().invoke(app, ["--db", sqlite_path, "--actor", ALLOCATOR, "budget",
                                      "allocate-formula", "--year", "2025-26", "--rate", rate],
                                env={"LEDGER_DB": None, "LEDGER_ACTOR": None})
    assert result.exit_code == EXIT_USAGE, result.stderr
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_a_run_id_too_long_for_its_practices_ids_is_refused_and_one_that_fits_is_kept(
        invoke: Ledger, db_url: str) -> None:
    setup(invoke)
    before = head(db_url)
    rates = ("--year", "2025-26", "--rate", "acute=780", "--on", "2025-04-01")
    long = invoke("--command-id", "r" * 122, "budget", "allocate-formula", *rates,
                  actor=ALLOCATOR)
    assert long.code == EXIT_USAGE, long.stderr
    long.one_line_error("command id is 122 characters long", "<id>:<practice>",
                        "at most 121")
    assert head(db_url) == before
    fits = invoke("--command-id", "r" * 121, "budget", "allocate-formula", *rates,
                  actor=ALLOCATOR)
    assert fits.code == 0, fits.stderr
    ids = [json.loads(line)["command_id"] for line in invoke("events").stdout.splitlines()]
    assert max(len(i) for i in ids) == 128


@pytest.mark.parametrize(("rates", "before_run", "refusal", "code"), [
    pytest.param(("--rate", "acute=780"),
                 ("budget", "allocate", "A81002", "--year", "2025-26", "--element", "acute=1",
                  "--on", "2025-04-01"),
                 ("acute already allocated in the 2025-26 budget of A81002",
                  "[rule: allocation]"), EXIT_REFUSED, id="an element already allocated"),
    pytest.param(("--rate", "acute=1000000000000"), None,
                 ("past the £10,000,000,000.00 one element may move", "[rule: overflow]"),
                 EXIT_REFUSED, id="an element moving past its bound"),
])
def test_a_dry_run_is_refused_exactly_when_and_as_the_run_would_be(
        invoke: Ledger, db_url: str, rates: tuple[str, ...],
        before_run: tuple[str, ...] | None, refusal: tuple[str, ...], code: int) -> None:
    setup(invoke)
    if before_run is not None:
        ok(invoke(*before_run, actor=ALLOCATOR))
    before = head(db_url)
    args = ("budget", "allocate-formula", "--year", "2025-26", *rates, "--on", "2025-04-01")
    dry = invoke(*args, "--dry-run", actor=ALLOCATOR)
    assert (dry.code, dry.stdout) == (code, ""), dry.stderr
    line = dry.one_line_error(*refusal)
    assert head(db_url) == before
    run = invoke(*args, actor=ALLOCATOR)
    assert run.code == code, run.stderr
    assert run.one_line_error(*refusal) == line
    assert head(db_url) == before
