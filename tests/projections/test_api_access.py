"""Who may read what through the service, per role and endpoint, on both stores.

16C has A81001-3 (A81001 delegates prescribing to 16C, A81003 opts out to
A81002); 17D has A81004. Each role's token must see exactly its own part.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledger.bootstrap import Ledger
from projections.api import create_app
from tests.ledger.application.scenario import (
    ALLOCATOR,
    YEAR,
    bearer,
    grant_token,
    run,
)
from tests.projections.test_api import write_ledger

A4 = "A81004"
ROLES = ("allocator", "auditor", "service", "consortium", "other-consortium", "practice",
         "holder-practice")


@pytest.fixture
def tokens(ledger: Ledger) -> dict[str, str]:
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


@pytest.fixture
def api(tokens: dict[str, str], db_url: str) -> Iterator[TestClient]:
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
    "consortium": {"/projections", "/events"},
    "other-consortium": {"/trail/A81001", "/projections", "/events"},
    "practice": {"/pools", "/quality", "/variation", "/projections", "/events"},
    "holder-practice": {"/trail/A81001", "/pools", "/quality", "/variation", "/projections",
                        "/events"},
}


def test_without_a_live_token_every_endpoint_but_health_is_401(
        api: TestClient, ledger: Ledger, tokens: dict[str, str]) -> None:
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
