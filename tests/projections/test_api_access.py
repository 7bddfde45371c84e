"""Who may read what through the service, per role and endpoint, on both stores.

16C has A81001-3 (A81001 delegates prescribing to 16C, A81003 opts out to
A81002); 17D has A81004. Each role's token must see exactly its own part.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledger.bootstrap import Ledger
from ledger.domain.events import budget_stream
from projections.api import create_app
from tests.conftest import STORES, written_once
from tests.ledger.application.scenario import (
    ALLOCATOR,
    YEAR,
    bearer,
    commit,
    grant_token,
    run,
)
from tests.projections.live_server import SseReader, live_server
from tests.projections.test_api import write_ledger

A4 = "A81004"
ROLES = ("allocator", "auditor", "service", "consortium", "other-consortium", "practice",
         "holder-practice")


def write_roles(ledger: Ledger) -> dict[str, str]:
    """The ledger of the module's docstring, and a token for each role (by role)."""
    write_ledger(ledger)
    run(ledger, "practice register", ALLOCATOR, practice=A4, name="Far Surgery", list_size=10,
        on="2024-04-01")
    run(ledger, "budget allocate", ALLOCATOR, practice=A4, year=YEAR, on="2024-04-01",
        element={"acute": "500"})
    run(ledger, "consortium form", ALLOCATOR, consortium="17D", name="Far", officer="Dr Far",
        on="2024-04-01")
    run(ledger, "consortium join", "consortium:17D", consortium="17D", practice=A4,
        on="2024-04-01")
    run(ledger, "budget opt-out", "practice:A81003", practice="A81003", year=YEAR,
        to="practice:A81002", reason="merger", on="2024-06-01")
    return {role: grant_token(ledger, actor) for role, actor in {
        "allocator": ALLOCATOR, "auditor": "auditor:audit", "service": "service:feed",
        "consortium": "consortium:16C", "other-consortium": "consortium:17D",
        "practice": "practice:A81001", "holder-practice": "practice:A81002"}.items()}


@pytest.fixture(scope="module", params=STORES)
def roles(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[str, dict[str, str]]]:
    """The ledger and its tokens on each store, written once for the tests that only read
    it through the service: reads record nothing."""
    tokens: dict[str, str] = {}
    with written_once(request.param, tmp_path_factory.mktemp("roles"),
                      lambda ledger: tokens.update(write_roles(ledger))) as db:
        yield db, tokens


@pytest.fixture
def tokens(roles: tuple[str, dict[str, str]]) -> dict[str, str]:
    return roles[1]


@pytest.fixture
def api(roles: tuple[str, dict[str, str]]) -> Iterator[TestClient]:
    with TestClient(create_app(roles[0])) as c:
        yield c


@pytest.fixture
def own_tokens(ledger: Ledger) -> dict[str, str]:
    """The tokens of a ledger of the test's own, for a test that records on it."""
    return write_roles(ledger)


@pytest.fixture
def own_api(own_tokens: dict[str, str], db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(db_url)) as c:
        yield c


def get(api: TestClient, tokens: dict[str, str], role: str, path: str) -> tuple[int, Any]:
    answer = api.get(path, headers=bearer(tokens[role]))
    return answer.status_code, answer.json()


ENDPOINTS = ["/holders", "/trail/A81001", "/position", "/pools", "/quality", "/variation",
             "/projections", "/events"]

# role -> endpoints it may not read at all (403)
FORBIDDEN: dict[str, set[str]] = {
    "allocator": set(), "auditor": set(), "service": set(),
    "consortium": {"/projections"},
    "other-consortium": {"/trail/A81001", "/projections"},
    "practice": {"/pools", "/quality", "/variation", "/projections"},
    "holder-practice": {"/trail/A81001", "/pools", "/quality", "/variation", "/projections"},
}


def test_without_a_live_token_every_endpoint_but_health_is_401(
        own_api: TestClient, ledger: Ledger) -> None:
    api = own_api
    assert api.get("/health").status_code == 200
    expired = grant_token(ledger, "consortium:16C", expires="2024-08-01T00:00:00Z")
    revoked = grant_token(ledger, "auditor:gone")
    found = api.get("/holders", headers=bearer(revoked))
    assert found.status_code == 200
    from ledger.application.commands import TokenRevoke  # noqa: PLC0415
    from projections.access import load_register  # noqa: PLC0415
    gone = next(g.token_id for g in load_register(ledger.store).grants.values()
                if str(g.grantee) == "auditor:gone")
    ledger.service.execute(TokenRevoke(token_id=gone), ALLOCATOR)
    for path in ENDPOINTS:
        for headers, words in [({}, "no bearer token"),
                               ({"Authorization": "Basic dXNlcjpwdw=="}, "no bearer token"),
                               (bearer("not-a-token"), "unknown bearer token"),
                               (bearer(expired), "expired"), (bearer(revoked), "revoked")]:
            answer = api.get(path, headers=headers)
            assert answer.status_code == 401, (path, headers, answer.text)
            assert answer.json() == {"error": answer.json()["error"], "rule": "authentication"}
            assert words in answer.json()["error"]
            assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("role", ROLES)
def test_each_role_reads_its_endpoints_and_is_403_on_the_others(
        api: TestClient, tokens: dict[str, str], role: str) -> None:
    for path in ENDPOINTS:
        status, body = get(api, tokens, role, path)
        expected = 403 if path in FORBIDDEN[role] else 200
        assert status == expected, (role, path, body)
        if status == 403:
            assert isinstance(body, dict), body
            assert body["rule"] == "authorisation", body


def practices_in(rows: object) -> set[str]:
    assert isinstance(rows, list)
    return {r["practice"] for r in rows}


def test_a_consortium_sees_its_members_practices_only(
        api: TestClient, tokens: dict[str, str]) -> None:
    members = {"A81001", "A81002", "A81003"}
    for path in ("/holders", "/position", "/variation"):
        status, rows = get(api, tokens, "consortium", path)
        assert status == 200, path
        assert practices_in(rows) == members, path
        status, rows = get(api, tokens, "other-consortium", path)
        assert status == 200, path
        assert practices_in(rows) <= {A4}, path
    everything = practices_in(get(api, tokens, "allocator", "/holders")[1])
    assert everything == members | {A4}
    status, rows = get(api, tokens, "consortium", "/pools")
    assert status == 200
    assert {r["consortium"] for r in rows} == {"16C"}
    status, rows = get(api, tokens, "consortium", "/position?by=consortium")
    assert status == 200
    assert {r["consortium"] for r in rows} == {"16C"}
    for path in (f"/holders?practice={A4}", "/holders?consortium=17D", f"/trail/{A4}",
                 "/holders?holder=consortium:17D", f"/holders?holder=practice:{A4}",
                 "/position?by=allocator", "/position?consortium=17D", "/pools?consortium=17D",
                 "/quality?consortium=17D", "/variation?consortium=17D"):
        assert get(api, tokens, "consortium", path)[0] == 403, path
    assert get(api, tokens, "consortium", "/holders?holder=consortium:16C")[0] == 200


def test_a_practice_sees_its_own_budgets_and_those_it_holds(
        api: TestClient, tokens: dict[str, str]) -> None:
    status, rows = get(api, tokens, "practice", "/holders")
    assert status == 200
    assert practices_in(rows) == {"A81001"}
    status, rows = get(api, tokens, "holder-practice", "/holders")
    assert status == 200
    assert practices_in(rows) == {"A81002", "A81003"}
    assert all(r["practice"] == "A81002" or r["holder"] == "practice:A81002"
               for r in rows)
    status, rows = get(api, tokens, "practice", "/position")
    assert status == 200
    assert practices_in(rows) == {"A81001"}
    assert get(api, tokens, "practice", "/trail/A81001")[0] == 200
    for path in ("/holders?practice=A81002", "/holders?consortium=16C", "/trail/A81002",
                 "/position?by=consortium", "/holders?holder=practice:A81002"):
        assert get(api, tokens, "practice", path)[0] == 403, path


# --- the feed, each organisation its own part ------------------------------------------

ACTORS = {"allocator": ALLOCATOR, "auditor": "auditor:audit", "service": "service:feed",
          "consortium": "consortium:16C", "other-consortium": "consortium:17D",
          "practice": "practice:A81001", "holder-practice": "practice:A81002"}
A3_BUDGET = str(budget_stream("A81003", YEAR))


def in_part(role: str, row: dict[str, Any]) -> bool:
    """The part of the feed each role's token must see, row by row (the fixture's
    ledger: 16C has A81001-3, 17D has A81004, A81003 opted out to A81002)."""
    if role in ("allocator", "auditor", "service"):
        return True
    if row["event"].startswith("Access"):
        return False
    practice, consortium = row.get("practice"), row.get("consortium")
    if role in ("consortium", "other-consortium"):
        own, members = (("16C", {"A81001", "A81002", "A81003"}) if role == "consortium"
                        else ("17D", {A4}))
        return consortium == own if consortium is not None else practice in members
    if role == "practice":
        return practice == "A81001"
    return practice == "A81002" or row["stream"] == A3_BUDGET


def whole_feed(api: TestClient, secret: str, limit: int) -> tuple[list[dict[str, Any]],
                                                                   set[str | None]]:
    """Every row a token reads by following `next_after` until it reaches the head."""
    rows: list[dict[str, Any]] = []
    parts: set[str | None] = set()
    checkpoint = 0
    for _ in range(1000):
        page = api.get("/events", params={"after": checkpoint, "limit": limit},
                       headers=bearer(secret))
        assert page.status_code == 200, page.text
        body = page.json()
        parts.add(body["visible_to"])
        assert body["next_after"] >= checkpoint
        assert all(r["position"] > checkpoint for r in body["events"])
        rows += body["events"]
        checkpoint = body["next_after"]
        if checkpoint == body["head"]:
            return rows, parts
    raise AssertionError("the feed never reached its head")


@pytest.mark.parametrize("role", ROLES)
def test_each_role_reads_its_own_part_of_the_feed_at_the_ledgers_positions(
        api: TestClient, tokens: dict[str, str], role: str) -> None:
    everything, _ = whole_feed(api, tokens["allocator"], 1000)
    part, visible_to = whole_feed(api, tokens[role], 1000)
    assert part == [r for r in everything if in_part(role, r)]
    assert part, role
    assert visible_to == {None if role in ("allocator", "auditor", "service")
                          else ACTORS[role]}
    # Small pages give the same rows, and so do pages cut short by the scan bound.
    assert whole_feed(api, tokens[role], 2)[0] == part


def test_a_sparse_part_of_the_feed_pages_past_what_it_may_not_see(
        api: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from projections import api_feed  # noqa: PLC0415
    full, _ = whole_feed(api, tokens["other-consortium"], 1000)
    monkeypatch.setattr(api_feed, "SCAN", 3)
    page = api.get("/events", params={"after": 0, "limit": 2},
                   headers=bearer(tokens["other-consortium"])).json()
    assert page["events"] == []
    assert page["next_after"] == 3 < page["head"]
    assert whole_feed(api, tokens["other-consortium"], 1)[0] == full


def test_a_consortium_never_sees_another_consortiums_events_in_the_feed(
        api: TestClient, tokens: dict[str, str]) -> None:
    mine, _ = whole_feed(api, tokens["consortium"], 1000)
    theirs, _ = whole_feed(api, tokens["other-consortium"], 1000)
    assert "17D" not in json.dumps(mine)
    assert A4 not in json.dumps(mine)
    assert "16C" not in json.dumps(theirs)
    assert {r["event"] for r in theirs} == {"PracticeRegistered", "BudgetAllocated",
                                            "ConsortiumFormed", "PracticeJoined"}
    # Its own events, its members' and their budgets' are all there.
    assert {"ConsortiumFormed", "RiskPoolAgreed", "QualityStandardsAdopted",
            "HoldingDelegated", "OptedOut", "SpendCommitted"} <= {r["event"] for r in mine}
    assert not {r["event"] for r in mine + theirs} & {"AccessGranted", "AccessRevoked"}


def test_a_practice_reads_the_budgets_it_holds_for_others_but_not_their_practice(
        api: TestClient, tokens: dict[str, str]) -> None:
    held, _ = whole_feed(api, tokens["holder-practice"], 1000)
    others = [r for r in held if r["practice"] != "A81002"]
    assert {r["stream"] for r in others} == {A3_BUDGET}
    # The whole budget, from its allocation (before A81002 held it) to its opt-out.
    assert others[0]["event"] == "BudgetAllocated"
    assert others[-1]["event"] == "OptedOut"
    own, _ = whole_feed(api, tokens["practice"], 1000)
    assert {r["practice"] for r in own} == {"A81001"}
    assert "PracticeJoined" in {r["event"] for r in own}


@pytest.fixture
def served(own_api: TestClient, db_url: str) -> Iterator[str]:
    with live_server(db_url) as base:
        yield base


def test_the_live_feed_streams_each_organisation_its_part_and_resumes_in_it(
        served: str, ledger: Ledger, own_tokens: dict[str, str]) -> None:
    tokens = own_tokens
    head = ledger.store.head()
    readers = {role: SseReader(f"{served}/events/live?after={head}", bearer(tokens[role]))
               for role in ("consortium", "other-consortium", "holder-practice")}
    try:
        assert {r.status for r in readers.values()} == {200}
        commit(ledger, "R-FAR", "5", practice=A4)  # head + 1: 17D's
        commit(ledger, "R-NEAR", "5", practice="A81002")  # head + 2: 16C's
        # A81001 hands its acute budget to A81002, which commits against it.
        run(ledger, "budget delegate", "practice:A81001", practice="A81001", year=YEAR,
            element=["acute"], to="practice:A81002", on="2024-07-01")  # head + 3
        commit(ledger, "R-HELD", "5", practice="A81001",
               actor="practice:A81002")  # head + 4
        commit(ledger, "R-FAR-2", "5", practice=A4)  # head + 5
        seen = {role: [reader.next() for _ in range(n)] for (role, reader), n in zip(
            readers.items(), (3, 2, 3), strict=True)}
        assert [(int(i), d["event"].get("ref")) for i, d in seen["consortium"]] == [
            (head + 2, "R-NEAR"), (head + 3, None), (head + 4, "R-HELD")]
        assert [(int(i), d["event"]["ref"]) for i, d in seen["other-consortium"]] == [
            (head + 1, "R-FAR"), (head + 5, "R-FAR-2")]
        assert [(int(i), d["event"]["event"]) for i, d in seen["holder-practice"]] == [
            (head + 2, "SpendCommitted"), (head + 3, "HoldingDelegated"),
            (head + 4, "SpendCommitted")]
        for role, messages in seen.items():
            assert {d["visible_to"] for _, d in messages} == {ACTORS[role]}
            assert {d["head"] for _, d in messages} <= set(range(head + 1, head + 6))
    finally:
        for reader in readers.values():
            reader.close()
    # Resuming from a position it never saw (another consortium's event) skips nothing.
    resumed = SseReader(f"{served}/events/live",
                        bearer(tokens["consortium"]) | {"Last-Event-ID": str(head + 1)})
    try:
        ident, data = resumed.next()
        assert (int(ident), data["event"]["ref"]) == (head + 2, "R-NEAR")
        ident, data = resumed.next()
        assert int(ident) == head + 3
    finally:
        resumed.close()


@pytest.mark.parametrize("query", ["holder=garbage", "holder=practice:A81", "practice=A81",
                                   "consortium=16", "practice=%FF"])
@pytest.mark.parametrize("role", ["consortium", "practice"])
def test_a_malformed_filter_is_400_for_every_role_not_a_refusal_to_read_it(
        api: TestClient, tokens: dict[str, str], role: str, query: str) -> None:
    status, body = get(api, tokens, role, f"/holders?{query}")
    everything_status, everything_body = get(api, tokens, "allocator", f"/holders?{query}")
    assert (status, body) == (everything_status, everything_body) == (400, body), body
    assert body["rule"] in {"holder", "practice-code", "consortium-code"}, body
