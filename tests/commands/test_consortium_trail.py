"""`ledger trail` takes a practice or a consortium: a consortium's trail is its forming,
members joining and leaving, risk pools and their draws, quality standards and holdings
delegated to it, in order; any other code is refused saying what trail takes and what to
use instead (exit 2), as an unknown consortium is (exit 1). The service answers the same
to whoever may read the consortium."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from commands.errors import EXIT_REFUSED, EXIT_USAGE
from ledger.bootstrap import Ledger as LedgerApp
from projections.api import create_app
from tests.commands.conftest import Ledger
from tests.ledger.application.scenario import grant_token

ALLOCATOR = "allocator:Q71"
OFFICER = "consortium:16C"


@pytest.fixture
def consortium(invoke: Ledger) -> Ledger:
    steps: list[tuple[str, tuple[str, ...]]] = [
        (ALLOCATOR, ("practice", "register", "A81001", "--name", "The Densham Surgery",
                     "--list-size", "4069", "--on", "2024-04-01")),
        (ALLOCATOR, ("practice", "register", "A81002", "--name", "Queens Park",
                     "--list-size", "15321", "--on", "2024-04-01")),
        (ALLOCATOR, ("consortium", "form", "16C", "--name", "Tees Valley", "--officer",
                     "Dr Jane Smith", "--on", "2024-04-01")),
        (OFFICER, ("consortium", "join", "16C", "A81001", "--on", "2024-04-01")),
        (OFFICER, ("consortium", "join", "16C", "A81002", "--on", "2024-04-01")),
        (OFFICER, ("consortium", "risk-pool", "16C", "--year", "2024-25", "--top-slice", "1%",
                   "--on", "2024-04-01")),
        (OFFICER, ("consortium", "adopt", "16C", "--year", "2024-25", "QS1", "QS2",
                   "--on", "2024-04-02")),
        (ALLOCATOR, ("budget", "allocate", "A81001", "--year", "2024-25", "--element",
                     "prescribing=1000", "--on", "2024-04-01")),
        ("practice:A81001", ("budget", "delegate", "A81001", "--year", "2024-25",
                             "--element", "prescribing", "--to", OFFICER,
                             "--on", "2024-06-01")),
        (OFFICER, ("consortium", "leave", "16C", "A81002", "--on", "2024-09-01")),
    ]
    for actor, args in steps:
        done = invoke(*args, actor=actor)
        assert done.code == 0, (args, done.stderr)
    return invoke


CONSORTIUM_EVENTS = ["ConsortiumFormed", "PracticeJoined", "PracticeJoined", "RiskPoolAgreed",
                     "QualityStandardsAdopted", "HoldingDelegated", "PracticeLeft"]


@pytest.mark.e2e
def test_a_consortium_s_trail_is_every_event_of_the_consortium_in_order(
        consortium: Ledger, run_ledger: Ledger) -> None:
    done = run_ledger("trail", "16c", "--format", "json")
    assert done.code == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["event"] for r in rows] == CONSORTIUM_EVENTS
    assert [r["position"] for r in rows] == sorted(r["position"] for r in rows)
    assert rows[0]["actor"] == ALLOCATOR
    assert "A81002 left consortium 16C" in rows[-1]["summary"], rows[-1]
    table = run_ledger("trail", "16C", "--since", "2024-06-01")
    assert table.code == 0, table.stderr
    assert "Trail of 16C" in table.stdout
    assert "PracticeLeft" in table.stdout
    assert "RiskPoolAgreed" not in table.stdout


def test_a_practice_s_trail_is_as_it_was(consortium: Ledger) -> None:
    done = consortium("trail", "A81002", "--format", "json")
    assert done.code == 0, done.stderr
    events = [r["event"] for r in json.loads(done.stdout)]
    assert events == ["PracticeRegistered", "PracticeJoined", "RiskPoolAgreed",
                      "QualityStandardsAdopted", "PracticeLeft"]


@pytest.mark.parametrize(("code", "code_exit", "fragments"), [
    ("allocator:Q71", EXIT_USAGE,
     ("trail takes a practice's ODS code (A81001) or a consortium's code (16C), "
      "not 'allocator:Q71'", "each event's actor in ledger events", "[rule: trail]")),
    ("consortium:16C", EXIT_USAGE,
     ("trail takes the code alone, without consortium: before it: write ledger trail 16C",)),
    ("Q71", EXIT_REFUSED,
     ("no consortium Q71: trail takes a practice's ODS code (A81001) or a consortium's code "
      "(16C)", "[rule: consortium]")),
    ("A81001-2", EXIT_USAGE,
     ("malformed code 'A81001-2': trail takes a practice's ODS code (A81001) or a "
      "consortium's code (16C)",)),
])
def test_a_code_trail_does_not_take_is_refused_saying_what_it_takes(
        code: str, code_exit: int, fragments: tuple[str, ...], consortium: Ledger) -> None:
    done = consortium("trail", code)
    assert done.code == code_exit, done.stderr
    done.one_line_error(*fragments)
    assert done.stdout == ""


@pytest.mark.e2e
def test_the_real_command_refuses_a_code_trail_does_not_take(consortium: Ledger,
                                                             run_ledger: Ledger) -> None:
    done = run_ledger("trail", "consortium:16C")
    assert done.code == EXIT_USAGE, done.stderr
    done.one_line_error("trail takes the code alone, without consortium: before it: write "
                        "ledger trail 16C")
    assert done.stdout == ""


@pytest.fixture
def served(consortium: Ledger, open_ledger: Callable[[], LedgerApp], db_url: str
           ) -> Iterator[tuple[TestClient, dict[str, str]]]:
    ledger = open_ledger()
    tokens = {actor: grant_token(ledger, actor) for actor in (
        ALLOCATOR, OFFICER, "auditor:audit", "practice:A81001")}
    with TestClient(create_app(db_url)) as client:
        yield client, tokens


def test_the_service_answers_a_consortium_s_trail_to_its_officer_and_auditors_only(
        served: tuple[TestClient, dict[str, str]]) -> None:
    client, tokens = served
    for actor in (OFFICER, "auditor:audit"):
        answer = client.get("/trail/16C", headers={"Authorization": f"Bearer {tokens[actor]}"})
        assert answer.status_code == 200, answer.text
        assert [r["event"] for r in answer.json()] == CONSORTIUM_EVENTS
    refused = client.get("/trail/16C",
                         headers={"Authorization": f"Bearer {tokens['practice:A81001']}"})
    assert refused.status_code == 403, refused.text
    assert "consortium 16C" in refused.json()["error"]
