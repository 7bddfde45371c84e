"""Every number has a range: out-of-range input is malformed (exit 2), a command that would
take a stored total past its range is refused (exit 1, rule `overflow`), and nothing the
ledger stores can make a read or a write fail. Every case runs on both stores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from commands.errors import EXIT_REFUSED, EXIT_USAGE
from commands.options import MAX_POSITION as CLI_MAX_POSITION
from ledger.application.commands import build_command
from ledger.bootstrap import Ledger, bootstrap
from ledger.domain.values import MAX_AMOUNT_PENCE, MAX_ELEMENT_TURNOVER_PENCE, format_pence
from ledger.store.eventstore import MAX_POSITION
from ledger.store.mapper import decode_event, encode_event
from projections.api import create_app
from tests.commands.conftest import Ledger as RunLedger
from tests.commands.conftest import head
from tests.ledger.application.scenario import bearer, grant_token

ALLOCATOR = "allocator:Q71"
PRACTICE = "practice:A81001"
YEAR = ["--year", "2024-25"]
LIMIT = MAX_ELEMENT_TURNOVER_PENCE


def pounds(pence: int) -> str:
    return f"{pence // 100}.{pence % 100:02d}"


def test_the_ranges_are_far_above_nhs_budgets_and_far_below_2_to_the_63() -> None:
    nhs_england_budget = 190_000_000_000 * 100
    assert MAX_AMOUNT_PENCE == 10**14
    assert 5 * nhs_england_budget < MAX_AMOUNT_PENCE
    assert MAX_AMOUNT_PENCE * 90_000 < 2**63
    # A roll-up of every possible practice code (one letter, five digits) at the limit.
    assert 26 * 100_000 * LIMIT < 2**63 - 1
    assert MAX_POSITION == CLI_MAX_POSITION == 2**63 - 1


@pytest.fixture
def budget(ledger: Ledger, db_url: str) -> str:
    """A81001 with a 2024-25 budget of £100 on acute, in consortium 16C."""
    service = ledger.service
    setup: list[tuple[str, str, dict[str, Any]]] = [
        (ALLOCATOR, "consortium form", {"consortium": "16C", "name": "Tees", "officer": "Dr A",
                                        "on": "2024-04-01"}),
        (ALLOCATOR, "practice register",
         {"practice": "A81001", "name": "Densham", "list_size": 4069, "on": "2024-04-01"}),
        (ALLOCATOR, "consortium join", {"consortium": "16C", "practice": "A81001",
                                        "on": "2024-04-01"}),
        (ALLOCATOR, "budget allocate", {"practice": "A81001", "year": "2024-25",
                                        "element": {"acute": "100"}, "on": "2024-04-01"}),
    ]
    for actor, name, args in setup:
        service.execute(build_command(name, args), actor)
    ledger.close()
    return db_url


def commit(amount: str, ref: str = "R-1") -> list[str]:
    return ["spend", "commit", "A81001", *YEAR, "--element", "acute", "--ref", ref,
            "--amount", amount, "--provider", "RTR", "--service", "Hips", "--on", "2024-06-01"]


ABOVE_INPUT = pounds(MAX_AMOUNT_PENCE + 1)  # 1000000000000.01


@pytest.mark.parametrize(
    ("actor", "args"),
    [
        pytest.param(PRACTICE, commit("99999999999999999999"), id="commit 10^20 pounds"),
        pytest.param(PRACTICE, commit(ABOVE_INPUT), id="commit one penny over"),
        pytest.param(PRACTICE, commit("1" * 5000), id="commit 5,000 digits"),
        pytest.param(ALLOCATOR, ["budget", "allocate", "A81001", "--year", "2025-26",
                                 "--element", "acute=92233720368547758.08"],
                     id="allocate 2^63 pence"),
        pytest.param(ALLOCATOR, ["budget", "adjust", "A81001", *YEAR, "--element", "acute",
                                 "--by", f"-{ABOVE_INPUT}", "--reason", "r"],
                     id="adjust by minus one penny over"),
        pytest.param(PRACTICE, ["spend", "vary", "R-0", "--amount", "£1,000,000,000,000.01"],
                     id="vary one penny over"),
        pytest.param(PRACTICE, ["spend", "settle", "R-0", "--amount", ABOVE_INPUT],
                     id="settle one penny over"),
    ],
)
def test_an_amount_above_the_input_range_is_malformed(
    invoke: RunLedger, budget: str, actor: str, args: list[str]
) -> None:
    before = head(budget)
    result = invoke(*args, actor=actor)
    assert result.code == EXIT_USAGE
    bound = ("at least -£1,000,000,000,000.00" if f"-{ABOVE_INPUT}" in args
             else "at most £1,000,000,000,000.00")
    result.one_line_error(f"is out of range: {bound}", "[rule: amount-range]")
    assert head(budget) == before


def test_an_amount_at_the_input_range_parses_and_then_meets_the_element_limit(
    invoke: RunLedger, budget: str
) -> None:
    result = invoke(*commit(pounds(MAX_AMOUNT_PENCE)), actor=PRACTICE)
    assert result.code == EXIT_REFUSED
    result.one_line_error("past the £10,000,000,000.00 one element may move", "[rule: overflow]")
    assert head(budget) == 4


def test_an_element_moves_up_to_its_limit_and_not_a_penny_more(
    invoke: RunLedger, budget: str
) -> None:
    # £100 allocated; commitments up to the limit less the allocation are accepted.
    fits = invoke(*commit(pounds(LIMIT - 100_00)), actor=PRACTICE)
    assert fits.code == 0, fits.stderr
    assert "OVERSPEND FLAGGED" in fits.stdout
    over = invoke(*commit("0.01", ref="R-2"), actor=PRACTICE)
    assert over.code == EXIT_REFUSED
    over.one_line_error("committing R-2 would move £10,000,000,000.01 on acute",
                        "[rule: overflow]")
    # Reducing counts too: every movement adds its size, so no as-of figure can grow
    # beyond the limit by moving money back and forth.
    cancel = invoke("spend", "cancel", "R-1", "--reason", "typo", actor=PRACTICE)
    assert cancel.code == EXIT_REFUSED
    cancel.one_line_error("cancelling R-1 would move", "[rule: overflow]")
    assert head(budget) == 5
    for read in (["position", "--practice", "A81001", *YEAR], ["trail", "A81001"],
                 ["replay", "A81001", *YEAR], ["holders", "--practice", "A81001"],
                 ["position", "--by", "consortium", *YEAR],
                 ["position", "--by", "allocator", *YEAR, "--format", "json"],
                 ["events"], ["projections", "rebuild"], ["verify"]):
        result = invoke(*read)
        assert result.code == 0, (read, result.stderr)
    rows = json.loads(invoke("position", "--by", "allocator", *YEAR, "--format", "json").stdout)
    acute = next(r for r in rows if r["element"] == "acute")
    assert acute["committed_pence"] == LIMIT - 100_00
    assert acute["remaining_pence"] == 100_00 - (LIMIT - 100_00)


def test_money_moved_back_and_forth_counts_at_every_step(
    invoke: RunLedger, budget: str
) -> None:
    half = pounds(LIMIT // 2 - 100_00)
    adjust = ["budget", "adjust", "A81001", *YEAR, "--element", "acute", "--reason", "r"]
    assert invoke(*adjust, "--by", half, actor=ALLOCATOR).code == 0
    assert invoke(*adjust, "--by", f"-{half}", actor=ALLOCATOR).code == 0
    # Allocated is back at £100, but £9,999,999,900 has moved: £100 is left to move.
    result = invoke(*adjust, "--by", "100.01", actor=ALLOCATOR)
    assert result.code == EXIT_REFUSED
    result.one_line_error(f"would move {format_pence(LIMIT + 1)}", "[rule: overflow]")
    assert invoke(*adjust, "--by", "100", actor=ALLOCATOR).code == 0


# --- integers ------------------------------------------------------------------------


def test_event_positions_have_the_stores_range(invoke: RunLedger, budget: str) -> None:
    beyond = invoke("events", "--after", str(2**63))
    assert beyond.code == EXIT_USAGE
    assert "Traceback" not in beyond.stderr
    at = invoke("events", "--after", str(MAX_POSITION))
    assert (at.code, at.stdout) == (1, "")
    at.one_line_error(f"checkpoint {MAX_POSITION} is past the head of this ledger",
                      "[rule: after]")
    negative = invoke("events", "--after", "-1")
    assert negative.code == EXIT_USAGE


@pytest.fixture
def auditor(budget: str) -> dict[str, str]:
    """Headers of an auditor's token: the feed is read with a token."""
    granting = bootstrap(budget)
    try:
        return bearer(grant_token(granting, "auditor:audit"))
    finally:
        granting.close()


@pytest.mark.parametrize(
    ("query", "status"),
    [
        pytest.param("after=9223372036854775808", 400, id="after 2^63"),
        pytest.param("after=" + "9" * 40, 400, id="after 40 digits"),
        pytest.param("after=-1", 400, id="after negative"),
        pytest.param("limit=" + "1" * 30, 400, id="limit 10^30"),
        pytest.param("limit=0", 400, id="limit zero"),
        pytest.param("after=1e3", 400, id="after not an integer"),
        pytest.param("after=true", 400, id="after a boolean"),
    ],
)
def test_the_feeds_numbers_are_refused_out_of_range_not_crashed_on(
    budget: str, auditor: dict[str, str], query: str, status: int
) -> None:
    with TestClient(create_app(budget)) as client:
        response = client.get(f"/events?{query}", headers=auditor)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error", "rule"}


def test_the_feed_reads_the_last_position_as_past_the_head(
        budget: str, auditor: dict[str, str]) -> None:
    with TestClient(create_app(budget)) as client:
        response = client.get(f"/events?after={MAX_POSITION}", headers=auditor)
    assert response.status_code == 409, response.text
    assert response.json()["rule"] == "after"
    assert f"checkpoint {MAX_POSITION} is past the head" in response.json()["error"]


# --- JSON values of `ledger apply`: exactly the types documented --------------------


SETTLE: dict[str, Any] = {"command": "spend settle", "command_id": "s-1", "actor": PRACTICE,
                          "args": {"ref": "R-1", "amount": "10", "on": "2024-07-01"}}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param({"final": 1}, "final: Input should be a valid boolean",
                     id="final as 1"),
        pytest.param({"final": "yes"}, "final: Input should be a valid boolean",
                     id="final as a string"),
        pytest.param({"amount": True}, "amount true must be written as text",
                     id="amount as a boolean"),
        pytest.param({"amount": 10.5}, "amount 10.5 must be written as text",
                     id="amount as a JSON fraction"),
        pytest.param({"amount": None}, "amount null must be written as text",
                     id="amount as null"),
        pytest.param({"amount": 10**20}, "is out of range", id="amount as a huge integer"),
        pytest.param({"on": 1719792000}, "malformed date '1719792000'", id="date as a number"),
        pytest.param({"ref": ["R-1"]}, "ref: Input should be a valid string",
                     id="ref as a list"),
    ],
)
def test_apply_values_of_the_wrong_json_type_are_refused(
    invoke: RunLedger, budget: str, tmp_path: Path, args: dict[str, Any], fragment: str
) -> None:
    assert invoke(*commit("50"), actor=PRACTICE).code == 0
    line = {**SETTLE, "args": {**SETTLE["args"], **args}}
    path = tmp_path / "commands.jsonl"
    path.write_text(json.dumps(line), encoding="utf-8")
    result = invoke("apply", str(path))
    assert result.code != 0
    assert "line 1: refused s-1 spend settle" in result.stdout, result.stdout
    assert fragment in result.stdout, result.stdout
    assert head(budget) == 5


def test_apply_takes_whole_pounds_as_json_integers(
    invoke: RunLedger, budget: str, tmp_path: Path
) -> None:
    assert invoke(*commit("50"), actor=PRACTICE).code == 0
    path = tmp_path / "commands.jsonl"
    path.write_text(json.dumps({**SETTLE, "args": {**SETTLE["args"], "amount": 10}}),
                    encoding="utf-8")
    result = invoke("apply", str(path))
    assert result.code == 0, result.stdout
    assert "settled £10.00 of R-1" in result.stdout


# --- what is written reads back exactly ----------------------------------------------


def test_every_event_every_command_writes_reads_back_exactly(
    ledger: Ledger, db_url: str
) -> None:
    """Each command at the edges of its ranges; each stored event decodes and re-encodes
    to the very bytes stored."""
    service = ledger.service
    steps: list[tuple[str, str, dict[str, Any]]] = [
        (ALLOCATOR, "consortium form", {"consortium": "16C", "name": "Tees Valley",
                                        "officer": "Dr Ünïcødé Smith", "on": "2024-04-01"}),
        (ALLOCATOR, "practice register", {"practice": "A81001", "name": "Densham",
                                          "list_size": 0, "on": "2024-04-01"}),
        (ALLOCATOR, "practice register", {"practice": "A81002", "name": "Queens Park",
                                          "list_size": 4069, "on": "2024-04-01"}),
        (ALLOCATOR, "consortium join", {"consortium": "16C", "practice": "A81001",
                                        "on": "2024-04-01"}),
        (ALLOCATOR, "consortium join", {"consortium": "16C", "practice": "A81002",
                                        "on": "2024-04-01"}),
        (ALLOCATOR, "consortium risk-pool", {"consortium": "16C", "year": "2024-25",
                                             "top_slice": "10%", "on": "2024-04-01"}),
        (ALLOCATOR, "consortium adopt", {"consortium": "16C", "year": "2024-25",
                                         "codes": ["QS9999", "QS1"], "on": "2024-04-01"}),
        (ALLOCATOR, "budget allocate", {"practice": "A81001", "year": "2024-25", "element": {
            "acute": pounds(LIMIT // 4), "maternity": "0"}, "on": "2024-04-01"}),
        (ALLOCATOR, "budget allocate", {"practice": "A81002", "year": "2024-25",
                                        "element": {"acute": pounds(LIMIT // 4)},
                                        "on": "2024-04-01"}),
        (ALLOCATOR, "budget adjust", {"practice": "A81001", "year": "2024-25",
                                      "element": "acute", "by": "-0.01", "reason": "r",
                                      "on": "2024-04-02"}),
        (ALLOCATOR, "budget harden", {"practice": "A81001", "year": "2024-25",
                                      "on": "2024-04-03"}),
        (PRACTICE, "spend commit", {"practice": "A81001", "year": "2024-25",
                                    "element": "acute", "ref": "R-1",
                                    "amount": pounds(LIMIT // 4), "provider": "RTR",
                                    "service": "Hips", "qs": ["QS1"], "on": "2024-05-01"}),
        (PRACTICE, "spend vary", {"ref": "R-1", "amount": "0.01", "on": "2024-05-02"}),
        (PRACTICE, "spend settle", {"ref": "R-1", "amount": "0.01", "final": True,
                                    "on": "2024-05-03"}),
        (PRACTICE, "budget delegate", {"practice": "A81001", "year": "2024-25",
                                       "element": ["prescribing"], "to": "consortium:16C",
                                       "on": "2024-06-01"}),
        (PRACTICE, "budget revoke", {"practice": "A81001", "year": "2024-25",
                                     "element": "prescribing", "on": "2024-07-01"}),
        (PRACTICE, "budget opt-out", {"practice": "A81001", "year": "2024-25",
                                      "to": "practice:A81002", "reason": "r",
                                      "on": "2024-08-01"}),
        (PRACTICE, "budget opt-in", {"practice": "A81001", "year": "2024-25",
                                     "on": "2024-09-01"}),
        (ALLOCATOR, "budget soften", {"practice": "A81001", "year": "2024-25",
                                      "on": "2024-10-01"}),
        (PRACTICE, "spend commit", {"practice": "A81001", "year": "2024-25",
                                    "element": "acute", "ref": "R-2", "amount": "5",
                                    "provider": "RTR", "service": "Eyes",
                                    "on": "2024-10-02"}),
        (PRACTICE, "spend cancel", {"ref": "R-2", "reason": "r", "on": "2024-10-03"}),
        (ALLOCATOR, "consortium leave", {"consortium": "16C", "practice": "A81002",
                                         "on": "2025-04-01"}),
    ]
    for actor, name, args in steps:
        service.execute(build_command(name, args), actor)
    store = ledger.store
    stored = store.notifications(0, 1000)
    assert len(stored) >= len(steps)
    topics = {n.topic for n in stored}
    assert len(topics) >= 18, topics
    for n in stored:
        event = decode_event(n.topic, n.originator_id, n.originator_version, n.state)
        assert encode_event(event) == bytes(n.state), n.topic


def test_a_position_past_the_largest_is_refused_naming_the_largest(
        invoke: RunLedger, budget: str) -> None:
    beyond = invoke("events", "--after", str(2**63))
    assert beyond.code == EXIT_USAGE
    beyond.one_line_error(f"--after must be 0 to {MAX_POSITION:,}, not '{2**63}'",
                          "[rule: after]")
    with TestClient(create_app(budget)) as client:
        granting = bootstrap(budget)
        try:
            headers = bearer(grant_token(granting, "auditor:audit"))
        finally:
            granting.close()
        response = client.get(f"/events?after={2**63}", headers=headers)
    assert response.status_code == 400, response.text
    assert f"after must be 0 to {MAX_POSITION:,}" in response.json()["error"]
