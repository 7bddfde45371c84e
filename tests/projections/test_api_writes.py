"""Writes over HTTP: every write command, the same answers and refusals as the command line.

The same lines run through the service's `POST` routes on one store and through
the command line's write path (build_command + LedgerService.execute, what
`ledger <noun> <verb>` and `ledger apply` call) on another; answers, refusals
and the events recorded must agree, on both stores.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from commands.app import app as cli
from commands.errors import exit_code
from ledger.application.commands import build_command
from ledger.application.service import Answer
from ledger.bootstrap import Ledger, bootstrap
from ledger.domain.errors import LedgerError, outcome_of
from ledger.domain.events import PracticeRegistered, SpendCommitted
from projections.api import create_app
from projections.api_writes import path_of, write_commands
from projections.queries import feed_row
from tests.conftest import PG_BASE_URL, FakeClock, _drop_schema
from tests.ledger.application.scenario import bearer, grant_token

ALLOC = "allocator:Q71"
A1, A2, A3 = "A81001", "A81002", "A81003"
Y = "2024-25"
ON = "2024-04-01"

LINES: list[tuple[str, str, dict[str, Any]]] = [
    *[("practice register", ALLOC, {"practice": p, "name": f"Surgery {p}", "list_size": 4000,
                                    "weighted": {"acute": 4100}, "on": ON})
      for p in (A1, A2, A3)],
    ("consortium form", ALLOC, {"consortium": "16C", "name": "Tees", "officer": "Dr A", "on": ON}),
    *[("consortium join", "consortium:16C", {"consortium": "16C", "practice": p, "on": ON})
      for p in (A1, A2)],
    *[("budget allocate", ALLOC, {"practice": p, "year": Y, "on": ON,
                                  "element": {"acute": "10000", "prescribing": "5000"}})
      for p in (A1, A2, A3)],
    ("consortium risk-pool", "consortium:16C", {"consortium": "16C", "year": Y,
                                                 "top_slice": "1%", "on": ON}),
    ("consortium adopt", "consortium:16C", {"consortium": "16C", "year": Y, "codes": ["QS1"],
                                            "on": ON}),
    ("budget adjust", ALLOC, {"practice": A1, "year": Y, "element": "acute", "by": "500",
                              "reason": "recount", "on": "2024-05-01"}),
    ("budget delegate", f"practice:{A1}", {"practice": A1, "year": Y,
                                           "element": ["prescribing"], "to": "consortium:16C",
                                           "on": "2024-05-01"}),
    ("budget revoke", f"practice:{A1}", {"practice": A1, "year": Y, "element": ["prescribing"],
                                         "on": "2024-05-02"}),
    ("budget opt-out", f"practice:{A3}", {"practice": A3, "year": Y, "to": f"practice:{A2}",
                                          "reason": "merger", "on": "2024-05-01"}),
    ("budget opt-in", f"practice:{A3}", {"practice": A3, "year": Y, "on": "2024-06-01"}),
    ("budget harden", ALLOC, {"practice": A2, "year": Y, "on": "2024-05-01"}),
    ("spend commit", f"practice:{A1}", {"practice": A1, "year": Y, "element": "acute",
                                        "ref": "R-1", "amount": "2500", "provider": "RTR",
                                        "service": "Hips", "qs": ["QS1"], "on": "2024-07-01"}),
    ("spend vary", f"practice:{A1}", {"ref": "R-1", "amount": "3000", "on": "2024-07-02"}),
    ("spend settle", f"practice:{A1}", {"ref": "R-1", "amount": "1000", "on": "2024-07-03"}),
    ("spend commit", f"practice:{A2}", {"practice": A2, "year": Y, "element": "acute",
                                        "ref": "R-2", "amount": "200", "provider": "RTR",
                                        "service": "Knees", "on": "2024-07-01"}),
    ("spend cancel", f"practice:{A2}", {"ref": "R-2", "on": "2024-07-05"}),
    ("budget soften", ALLOC, {"practice": A2, "year": Y, "on": "2024-08-01"}),
    ("consortium leave", "consortium:16C", {"consortium": "16C", "practice": A2,
                                            "on": "2025-01-01"}),
    # refused, each for its own reason
    ("spend commit", f"practice:{A2}", {"practice": A1, "year": Y, "element": "acute",
                                        "ref": "R-9", "amount": "1", "provider": "X",
                                        "service": "Y", "on": "2024-07-01"}),
    ("spend commit", f"practice:{A1}", {"practice": A1, "year": Y, "element": "acute",
                                        "ref": "R-8", "amount": "12.345", "provider": "X",
                                        "service": "Y"}),
    ("spend vary", f"practice:{A1}", {"ref": "R-404", "amount": "1", "on": "2024-07-02"}),
    ("budget allocate", ALLOC, {"practice": "A89999", "year": Y, "on": ON,
                                "element": {"acute": "1"}}),
    ("consortium join", "consortium:16C", {"consortium": "16C", "practice": A1, "on": ON,
                                           "colour": "blue"}),
    ("budget harden", "consortium:16C", {"practice": A1, "year": Y, "on": ON}),
]


@pytest.fixture
def other_db(db_url: str, tmp_path: Path) -> Iterator[str]:
    """A second, empty store of the same kind as the test's."""
    if db_url.startswith("postgresql"):
        schema = f"t_{uuid.uuid4().hex[:16]}"
        yield f"{PG_BASE_URL}?schema={schema}"
        _drop_schema(schema)
    else:
        yield str(tmp_path / "other.db")


class Tokens(dict[str, str]):
    """A live token's secret per actor, granted when first asked for: a practice's or a
    consortium's only once the lines have registered or formed it, as a token is granted
    only to an organisation the ledger knows."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__()
        self.ledger = ledger

    def __missing__(self, actor: str) -> str:
        self[actor] = grant_token(self.ledger, actor)
        return self[actor]


@pytest.fixture
def tokens(ledger: Ledger) -> dict[str, str]:
    granted = Tokens(ledger)
    for actor in (ALLOC, "auditor:audit"):
        granted[actor] = grant_token(ledger, actor)
    return granted


@pytest.fixture
def api(tokens: dict[str, str], db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(db_url)) as c:
        yield c


def without_time(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("position", "recorded_at")}


def business_feed(ledger: Ledger) -> list[dict[str, Any]]:
    return [without_time(feed_row(p, e)) for p, e in ledger.store.iter_events()
            if not e.topic.startswith("Access")]


def test_every_write_command_has_a_post_route_in_the_contract(api: TestClient) -> None:
    schema = api.get("/openapi.json").json()
    for name in write_commands():
        assert "post" in schema["paths"][path_of(name)], name
    assert {name for name, _, _ in LINES} <= set(write_commands())


def cli_write(ledger: Ledger, name: str, actor: str, args: dict[str, Any], key: str
              ) -> tuple[Answer | None, LedgerError | None]:
    """What the command line's write path answers, or the error it refuses with."""
    try:
        return ledger.service.execute(build_command(name, args), actor, key), None
    except LedgerError as error:
        return None, error


def test_http_writes_answer_and_record_what_the_command_line_does(
        api: TestClient, tokens: dict[str, str], ledger: Ledger, other_db: str) -> None:
    refused: list[str] = []
    with bootstrap(other_db, clock=FakeClock()) as direct:
        for i, (name, actor, args) in enumerate(LINES):
            key = f"line-{i}"
            answer = api.post(path_of(name), json=args,
                              headers=bearer(tokens[actor]) | {"Idempotency-Key": key})
            assert "\n" not in answer.text
            expected, error = cli_write(direct, name, actor, args, key)
            if error is not None:
                assert answer.status_code == outcome_of(error)[1], (name, answer.text)
                assert answer.json() == {"error": error.message, "rule": error.rule}, name
                refused.append(error.rule)
                continue
            assert expected is not None
            assert answer.status_code == 201, (name, answer.text)
            got = answer.json()
            assert got["summary"] == expected.summary, name
            assert got["command_id"] == key
            assert got["effective_on"] == expected.effective_on.isoformat()  # type: ignore[union-attr]
            assert [e["topic"] for e in got["events"]] == [e["topic"] for e in expected.events]
            assert got["already_applied"] is False
        assert refused == ["authority", "amount", "commitment", "practice", "arguments",
                           "authority"]
        assert business_feed(ledger) == business_feed(direct)
        actors = {e["actor"] for e in business_feed(ledger)}
        assert actors == {actor for _, actor, _ in LINES[:-6]}


def test_the_idempotency_key_records_once_and_refuses_another_body(
        api: TestClient, tokens: dict[str, str], ledger: Ledger) -> None:
    headers = bearer(tokens[ALLOC]) | {"Idempotency-Key": "reg-1"}
    first = api.post("/practice/register", json=LINES[0][2], headers=headers)
    again = api.post("/practice/register", json=LINES[0][2], headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json() | {"already_applied": True}
    other = api.post("/practice/register", json=LINES[1][2], headers=headers)
    assert other.status_code == 409
    assert other.json()["rule"] == "idempotency"
    assert [e.topic for _, e in ledger.store.iter_events()].count("PracticeRegistered") == 1
    bad_key = api.post("/practice/register", json=LINES[1][2],
                       headers=bearer(tokens[ALLOC]) | {"Idempotency-Key": "has space"})
    assert bad_key.status_code == 400


def test_the_actor_is_the_tokens_and_read_only_tokens_cannot_write(
        api: TestClient, tokens: dict[str, str], ledger: Ledger) -> None:
    body = LINES[0][2] | {"actor": ALLOC}
    smuggled = api.post("/practice/register", json=body, headers=bearer(tokens[ALLOC]))
    assert smuggled.status_code == 400
    assert "unknown argument actor" in smuggled.json()["error"]
    ledger.service.execute(build_command(LINES[1][0], LINES[1][2]), ALLOC)
    by_practice = api.post("/practice/register", json=LINES[0][2],
                           headers=bearer(tokens[f"practice:{A2}"]))
    assert by_practice.status_code == 403
    assert by_practice.json()["rule"] == "authority"
    for secret in (tokens["auditor:audit"],
                   grant_token(ledger, f"practice:{A2}", read_only=True)):
        refused = api.post("/practice/register", json=LINES[0][2], headers=bearer(secret))
        assert refused.status_code == 403, refused.text
    assert api.post("/practice/register", json=LINES[0][2]).status_code == 401
    assert api.get("/practice/register").status_code == 405
    assert api.get("/practice/register").json()["rule"] == "http"


def test_tokens_are_granted_and_revoked_over_http_by_the_allocator_only(
        api: TestClient, tokens: dict[str, str], ledger: Ledger) -> None:
    ledger.service.execute(build_command(LINES[3][0], LINES[3][2]), ALLOC)
    made = api.post("/token/create", json={"actor": "consortium:16C", "name": "finance"},
                    headers=bearer(tokens[ALLOC]))
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    assert api.get("/pools", headers=bearer(secret)).status_code == 200
    refused = api.post("/token/create", json={"actor": ALLOC},
                       headers=bearer(tokens["consortium:16C"]))
    assert refused.status_code == 403
    revoked = api.post("/token/revoke", json={"token_id": made.json()["token_id"]},
                       headers=bearer(tokens[ALLOC]))
    assert revoked.status_code == 201, revoked.text
    assert api.get("/pools", headers=bearer(secret)).status_code == 401


def test_a_token_for_an_unknown_practice_or_consortium_is_refused_over_http(
        api: TestClient, tokens: dict[str, str], ledger: Ledger) -> None:
    before = ledger.store.head()
    for grantee, rule in (("practice:A89999", "practice"), ("consortium:99X", "consortium")):
        refused = api.post("/token/create", json={"actor": grantee},
                           headers=bearer(tokens[ALLOC]) | {"Idempotency-Key": grantee})
        assert refused.status_code == 404, refused.text
        assert refused.json()["rule"] == rule
        assert "a token is granted only" in refused.json()["error"]
    assert ledger.store.head() == before


def test_a_cli_write_and_an_http_write_print_the_same_answer(
        api: TestClient, tokens: dict[str, str], other_db: str) -> None:
    done = CliRunner().invoke(cli, ["--db", other_db, "--actor", ALLOC, "practice", "register",
                                    A1, "--name", f"Surgery {A1}", "--list-size", "4000",
                                    "--weighted", "acute=4100", "--on", ON])
    assert done.exit_code == 0, done.output
    answer = api.post("/practice/register", json=LINES[0][2], headers=bearer(tokens[ALLOC]))
    assert f"done: {answer.json()['summary']}" in done.stdout
    twice = CliRunner().invoke(cli, ["--db", other_db, "--actor", ALLOC, "practice", "register",
                                     A1, "--name", "X", "--list-size", "1"])
    http_twice = api.post("/practice/register", json=LINES[0][2] | {"name": "X", "list_size": 1},
                          headers=bearer(tokens[ALLOC]))
    assert twice.exit_code == exit_code(LedgerError("x", "y")) == 1
    assert http_twice.status_code == 409
    assert http_twice.json()["error"] in twice.stderr.replace("\n", " ")


def test_an_empty_blank_or_malformed_idempotency_key_is_refused_with_nothing_recorded(
        api: TestClient, tokens: dict[str, str], ledger: Ledger) -> None:
    """A zero-width space in a key arrives as its UTF-8 bytes, which HTTP reads as Latin-1."""
    before = ledger.store.head()
    for key in ("", "   ", "c\u200b1".encode(), "c 1", "x" * 129):
        refused = api.post("/practice/register", json=LINES[0][2],
                           headers=bearer(tokens[ALLOC]) | {"Idempotency-Key": key})
        assert refused.status_code == 400, (key, refused.text)
        assert refused.json()["rule"] == "identifier"
        assert refused.json()["error"].startswith("command id ")
    assert ledger.store.head() == before


def test_http_writes_share_the_text_rules_and_the_spelling_does_not_matter(
        api: TestClient, tokens: dict[str, str], ledger: Ledger) -> None:
    headers = bearer(tokens[ALLOC])
    before = ledger.store.head()
    bidi = LINES[0][2] | {"name": "Surgery\u202egnp.exe"}
    refused = api.post("/practice/register", json=bidi, headers=headers)
    assert refused.status_code == 400
    assert refused.json()["rule"] == "text-characters"
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in refused.json()["error"]
    assert ledger.store.head() == before
    keyed = headers | {"Idempotency-Key": "reg-nfc"}
    first = api.post("/practice/register", json=LINES[0][2] | {"name": "Cafe\u0301"},
                     headers=keyed)
    again = api.post("/practice/register", json=LINES[0][2] | {"name": " Caf\u00e9 ",
                                                                "list_size": "4,000"},
                     headers=keyed)
    assert (first.status_code, again.status_code) == (201, 200)
    names = [e.name for _, e in ledger.store.iter_events() if isinstance(e, PracticeRegistered)]
    assert names == ["Caf\u00e9"]


@pytest.mark.parametrize("body", [
    '{"practice": "A81001", "name": "Surgery", "list_size": 4000, "on": "2024-04-01", '
    '"practice": "A81002"}',
    '{"practice": "A81001", "name": "Surgery", "list_size": 4000, "on": "2024-04-01", '
    '"weighted": {"acute": "4100", "acute": "9100"}}',
    '{"practice": "A81001", "name": "Surgery", "list_size": NaN, "on": "2024-04-01"}',
    '[{"practice": "A81001"}]',
    '',
])
def test_a_write_body_that_json_reads_two_ways_is_refused_with_nothing_recorded(
        api: TestClient, tokens: dict[str, str], ledger: Ledger, body: str) -> None:
    """A key given twice is one value to a person reading the body and the last to a
    plain parser: refused (400), as in `apply` lines, never read as the last one."""
    before = ledger.store.head()
    refused = api.post("/practice/register", content=body.encode(),
                       headers=bearer(tokens[ALLOC]) | {"Content-Type": "application/json"})
    assert refused.status_code == 400, refused.text
    assert refused.json()["rule"] == "request"
    anonymous = api.post("/practice/register", content=body.encode(),
                         headers={"Content-Type": "application/json"})
    assert anonymous.status_code == 401, anonymous.text
    assert ledger.store.head() == before


def test_a_token_request_naming_its_actor_twice_is_refused(
        api: TestClient, tokens: dict[str, str], ledger: Ledger) -> None:
    before = ledger.store.head()
    refused = api.post("/token/create", content=b'{"actor": "practice:A81001", '
                       b'"actor": "allocator:Q71"}',
                       headers=bearer(tokens[ALLOC]) | {"Content-Type": "application/json"})
    assert refused.status_code == 400, refused.text
    assert "appears twice" in refused.json()["error"]
    assert ledger.store.head() == before


def test_two_idempotency_keys_on_one_request_are_refused(
        api: TestClient, tokens: dict[str, str], ledger: Ledger) -> None:
    before = ledger.store.head()
    refused = api.post("/practice/register", json=LINES[0][2],
                       headers=[*bearer(tokens[ALLOC]).items(), ("Idempotency-Key", "k-1"),
                                ("Idempotency-Key", "k-2")])
    assert refused.status_code == 400, refused.text
    assert refused.json()["rule"] == "identifier"
    assert ledger.store.head() == before


def test_a_practice_token_cannot_commit_against_an_element_it_no_longer_holds(
        api: TestClient, tokens: dict[str, str], ledger: Ledger) -> None:
    # A81001 registered, a member of 16C, allocated acute and prescribing.
    for i, (name, actor, args) in enumerate(LINES[:7]):
        done = api.post(path_of(name), json=args,
                        headers=bearer(tokens[actor]) | {"Idempotency-Key": f"s-{i}"})
        assert done.status_code == 201, (name, done.text)
    delegated = api.post("/budget/delegate", headers=bearer(tokens[f"practice:{A1}"]),
                         json={"practice": A1, "year": Y, "element": ["prescribing"],
                               "to": "consortium:16C", "on": "2024-05-01"})
    assert delegated.status_code == 201, delegated.text

    def commit(actor: str, element: str, ref: str) -> Any:
        return api.post("/spend/commit", headers=bearer(tokens[actor]), json={
            "practice": A1, "year": Y, "element": element, "ref": ref, "amount": "100",
            "provider": "RTR", "service": "Clinic", "on": "2024-07-01"})

    refused = commit(f"practice:{A1}", "prescribing", "R-P1")
    assert refused.status_code == 403, refused.text
    assert refused.json()["rule"] == "authority"
    assert commit("consortium:16C", "prescribing", "R-C1").status_code == 201
    assert commit(f"practice:{A1}", "acute", "R-A1").status_code == 201
    refs = [e.ref for _, e in ledger.store.iter_events() if isinstance(e, SpendCommitted)]
    assert refs == ["R-C1", "R-A1"]


BUILT_BEFORE_AND_AFTER = """
from ledger.application.commands import COMMANDS
from projections.api import create_app

def built():
    return sum(command.__pydantic_complete__ for command in COMMANDS.values())

before = built()
create_app(DB)
print(before, built(), len(COMMANDS))
"""


def test_the_service_builds_every_command_validator_before_it_serves(tmp_path: Path) -> None:
    """Commands build their validators at first use; a server validating on several
    threads must not race that build, so it builds them all as it is made."""
    script = f"DB = {str(tmp_path / 'l.db')!r}\n{BUILT_BEFORE_AND_AFTER}"
    printed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             check=True, cwd=Path(__file__).resolve().parents[2]).stdout
    before, after, commands = map(int, printed.split())
    assert before < commands
    assert after == commands
