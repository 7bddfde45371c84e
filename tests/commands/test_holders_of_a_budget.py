"""`ledger holders` lists the elements a budget has: those allocated (a zero allocation
too), adjusted or delegated by the date and instant asked, never the elements nobody
allocated; the service's /holders answers the same rows."""

from __future__ import annotations

import json

import pytest

from ledger.bootstrap import Ledger
from tests.commands.conftest import Ledger as Run
from tests.ledger.application.scenario import bearer, grant_token

pytestmark = pytest.mark.usefixtures("signing_key")
ALLOCATOR = "allocator:Q71"
YEAR = "2024-25"


def populate(invoke: Run) -> None:
    """Two practices, A81001's budget (a zero allocation too) and a delegation; written
    through the command line in-process (what the tests read runs the real `ledger`)."""
    steps: list[tuple[str, tuple[str, ...]]] = [
        (ALLOCATOR, ("practice", "register", "A81001", "--name", "Densham", "--list-size",
                     "4069", "--on", "2024-04-01")),
        (ALLOCATOR, ("practice", "register", "A81002", "--name", "Park", "--list-size",
                     "3100", "--on", "2024-04-01")),
        (ALLOCATOR, ("budget", "allocate", "A81001", "--year", YEAR, "--on", "2024-04-01",
                     "--element", "acute=1200000", "--element", "maternity=0")),
        ("practice:A81001", ("budget", "delegate", "A81001", "--year", YEAR, "--element",
                             "prescribing", "--to", "practice:A81002", "--on", "2024-06-01")),
    ]
    for actor, args in steps:
        done = invoke(*args, actor=actor)
        assert done.code == 0, (args, done.stderr)


def test_holders_show_only_the_elements_allocated_or_delegated(invoke: Run,
                                                                run_ledger: Run) -> None:
    populate(invoke)
    done = run_ledger("holders", "--practice", "A81001", "--format", "json")
    assert done.code == 0, done.stderr
    assert [(r["element"], r["holder"], r["since"]) for r in json.loads(done.stdout)] == [
        ("acute", "practice:A81001", "2024-04-01"),
        ("maternity", "practice:A81001", "2024-04-01"),
        ("prescribing", "practice:A81002", "2024-06-01"),
    ]
    before = run_ledger("holders", "--as-of", "2024-05-31", "--format", "csv")
    assert before.code == 0, before.stderr
    assert before.stdout.splitlines()[1:] == [
        "A81001,2024-25,acute,practice:A81001,2024-04-01",
        "A81001,2024-25,maternity,practice:A81001,2024-04-01",
    ]
    table = run_ledger("holders")
    assert table.code == 0, table.stderr
    for never_allocated in ("community", "mental-health", "health-inequalities",
                            "primary-care"):
        assert never_allocated not in table.stdout


def test_the_service_answers_the_holders_the_command_line_prints(
        ledger: Ledger, invoke: Run, run_ledger: Run, db_url: str) -> None:
    from fastapi.testclient import TestClient  # noqa: PLC0415

    from projections.api import create_app  # noqa: PLC0415

    populate(invoke)
    secret = grant_token(ledger, "auditor:peer")
    with TestClient(create_app(db_url)) as client:
        for params in ({}, {"as_of": "2024-05-31"}, {"holder": "practice:A81002"}):
            answer = client.get("/holders", params=params, headers=bearer(secret))
            assert answer.status_code == 200, answer.text
            options = [f"--{k.replace('_', '-')}={v}" for k, v in params.items()]
            printed = run_ledger("holders", *options, "--format", "json")
            assert printed.code == 0, printed.stderr
            assert answer.json() == json.loads(printed.stdout), params
            assert {r["element"] for r in answer.json()} <= {
                "acute", "maternity", "prescribing"}


def test_replay_shows_the_holders_of_the_elements_the_budget_has(invoke: Run,
                                                                  run_ledger: Run) -> None:
    """An opt-out moves every element; a step of replay, like holders, shows those the
    budget has."""
    populate(invoke)
    done = run_ledger("budget", "opt-out", "A81001", "--year", YEAR, "--to",
                      "practice:A81002", "--reason", "Merger talks", "--on", "2024-07-01",
                      actor="practice:A81001")
    assert done.code == 0, done.stderr
    done = run_ledger("replay", "A81001", "--year", YEAR, "--format", "json")
    assert done.code == 0, done.stderr
    steps = json.loads(done.stdout)
    assert [s["holders"] for s in steps] == [
        {"acute": "practice:A81001", "maternity": "practice:A81001"},
        {"acute": "practice:A81001", "maternity": "practice:A81001",
         "prescribing": "practice:A81002"},
        dict.fromkeys(("acute", "maternity", "prescribing"), "practice:A81002"),
    ]
    table = run_ledger("replay", "A81001", "--year", YEAR)
    assert table.code == 0, table.stderr
    assert "primary-care" not in table.stdout


def test_holders_help_says_which_elements_it_lists(run_ledger: Run) -> None:
    done = run_ledger("holders", "--help")
    assert done.code == 0, done.stderr
    assert "an element nobody allocated is not listed" in " ".join(done.stdout.split())


UNKNOWN_HOLDERS = [("practice:B82099", "no practice B82099", "practice"),
                   ("consortium:99z", "no consortium 99Z", "consortium")]


@pytest.mark.parametrize(("holder", "message", "rule"), UNKNOWN_HOLDERS)
def test_a_holder_the_ledger_does_not_know_is_refused_not_shown_holding_nothing(
        ledger: Ledger, invoke: Run, run_ledger: Run, db_url: str, holder: str,
        message: str, rule: str) -> None:
    from fastapi.testclient import TestClient  # noqa: PLC0415

    from projections.api import create_app  # noqa: PLC0415

    populate(invoke)
    for year in ((), ("--year", YEAR)):
        done = run_ledger("holders", "--holder", holder, *year)
        assert done.code == 1, (done.stdout, done.stderr)
        done.one_line_error(message, f"[rule: {rule}]")
        assert done.stdout == ""
    secret = grant_token(ledger, "auditor:peer")
    with TestClient(create_app(db_url)) as client:
        answer = client.get("/holders", params={"holder": holder}, headers=bearer(secret))
        assert answer.status_code == 404, answer.text
        assert answer.json()["rule"] == rule
        assert message in answer.json()["error"]
