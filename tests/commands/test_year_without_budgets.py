"""Every read of a financial year nobody was allocated a budget for answers the same way:
refused in one line naming the rule (exit 1 on the command line, 404 from the service),
never an empty table for one read and a refusal for another."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.bootstrap import Ledger
from tests.commands.conftest import Ledger as Run
from tests.commands.conftest import invoke_app, run_command
from tests.conftest import STORES, written_once
from tests.ledger.application.scenario import bearer, grant_token
from tests.projections import joint_scenario
from tests.projections.builders import YEAR

pytestmark = pytest.mark.usefixtures("signing_key")

EMPTY = "2040-41"
REFUSAL = f"no budgets in {EMPTY} (years with budgets: {YEAR})"

READS = [
    ("holders",), ("holders", "--practice", "A81001"), ("holders", "--consortium", "16C"),
    ("holders", "--holder", "consortium:16C"), ("holders", "--known-at", "2040-07-15"),
    ("position",), ("position", "--by", "consortium"), ("position", "--by", "allocator"),
    ("position", "--practice", "A81001", "--format", "json"),
    ("pools",), ("quality",), ("quality", "--consortium", "16C"),
    ("variation", "--consortium", "16C"), ("variation", "--method", "tukey"),
    ("trail", "A81001"), ("trail", "16C"), ("trail", "A81001", "--since", "2040-05-01"),
    ("replay", "A81001"), ("replay", "A81001", "--until", "2040-10-01"),
]


@pytest.fixture(scope="module", params=STORES)
def scenario_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[str]:
    """The `--db` of the joint scenario's ledger on each store, written once for the reads
    below: they are refused, so they record nothing and each finds the ledger as written."""
    with written_once(request.param, tmp_path_factory.mktemp("joint-scenario"),
                      joint_scenario.write) as db:
        yield db


@pytest.mark.parametrize("read", READS, ids=" ".join)
def test_every_read_of_a_year_without_budgets_is_refused_alike(
        scenario_db: str, read: tuple[str, ...]) -> None:
    done = invoke_app(scenario_db, *read, "--year", EMPTY)
    assert done.code == 1, (done.stdout, done.stderr)
    done.one_line_error(REFUSAL, "[rule: year]")
    assert done.stdout == ""


def test_the_real_command_refuses_a_read_of_a_year_without_budgets_alike(
        scenario_db: str, tmp_path: Path) -> None:
    for read in (("position", "--by", "consortium"), ("trail", "16C")):
        done = run_command(scenario_db, tmp_path, *read, "--year", EMPTY)
        assert done.code == 1, (read, done.stdout, done.stderr)
        done.one_line_error(REFUSAL, "[rule: year]")
        assert done.stdout == ""


def test_a_date_in_a_year_without_budgets_is_refused_by_every_read(
        scenario_db: str, tmp_path: Path) -> None:
    for read in (("holders",), ("position",), ("pools",), ("variation",)):
        done = run_command(scenario_db, tmp_path, *read, "--as-of", "2040-06-01")
        assert done.code == 1, (read, done.stdout, done.stderr)
        done.one_line_error("2040-06-01", f"years with budgets: {YEAR}", "[rule: year]")


def test_the_report_of_a_year_without_budgets_is_refused_alike(
        scenario_db: str, tmp_path: Path) -> None:
    done = run_command(scenario_db, tmp_path, "report", "--consortium", "16C", "--year",
                       EMPTY, "--out", str(tmp_path / "r.html"))
    assert done.code == 1, done.stderr
    done.one_line_error(REFUSAL, "[rule: year]")


def test_the_service_answers_a_year_without_budgets_alike_on_every_read(
        ledger: Ledger, db_url: str) -> None:
    from fastapi.testclient import TestClient  # noqa: PLC0415

    from projections.api import create_app  # noqa: PLC0415

    joint_scenario.write(ledger)
    secret = grant_token(ledger, "auditor:peer")
    with TestClient(create_app(db_url)) as client:
        for route in ("/holders", "/position", "/pools", "/quality", "/variation",
                      "/trail/A81001", "/trail/16C", "/replay/A81001"):
            answer = client.get(route, params={"year": EMPTY}, headers=bearer(secret))
            assert answer.status_code == 404, (route, answer.text)
            assert answer.json()["rule"] == "year", route
            assert REFUSAL in answer.text, (route, answer.text)
            known = client.get(route, params={"year": YEAR}, headers=bearer(secret))
            assert known.status_code == 200, (route, known.text)


def test_a_replay_of_a_practice_without_a_budget_in_a_year_with_budgets_names_the_budget(
        ledger: Ledger, run_ledger: Run) -> None:
    joint_scenario.write(ledger)
    assert run_ledger("practice", "register", "B82099", "--name", "Late", "--list-size",
                      "3000", "--on", "2024-04-01", actor="allocator:Q71").code == 0
    done = run_ledger("replay", "B82099", "--year", YEAR)
    assert done.code == 1, (done.stdout, done.stderr)
    done.one_line_error(f"no budget for B82099 in {YEAR}", "[rule: budget]")
