"""The read API (`ledger serve`): the rows of the read queries over HTTP, on both stores.

A small ledger is written through the real application service; each endpoint must
answer exactly what its `Reads` / `JointReads` query returns, serialised as the
CLI's `--format json` serialises it (orjson: pence as integers, ISO dates).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from commands.app import app as cli
from ledger.bootstrap import Ledger, bootstrap
from ledger.domain.errors import (
    IdempotencyConflict,
    InvalidInput,
    LedgerError,
    NotAuthenticated,
    NotAuthorised,
    NotFound,
    RuleViolation,
    StoreUnavailable,
)
from projections.api import create_app, status_of
from projections.joint_queries import JointReads
from tests.ledger.application.scenario import (
    A1,
    A2,
    A3,
    YEAR,
    bearer,
    commit,
    grant_token,
    run,
    seed,
)
from tests.projections.live_server import ledger_serve

REPO = Path(__file__).resolve().parents[2]


def write_ledger(ledger: Ledger) -> None:
    """Three practices in 16C with a 1% risk pool, standards adopted, a delegation,
    commitments (tagged, settled, varied)."""
    seed(ledger, members=(A1, A2, A3))
    run(ledger, "consortium risk-pool", "consortium:16C", consortium="16C", year=YEAR,
        top_slice="1%", on="2024-04-01")
    run(ledger, "consortium adopt", "consortium:16C", consortium="16C", year=YEAR,
        codes=["QS1", "QS3"], on="2024-04-01")
    run(ledger, "budget delegate", f"practice:{A1}", practice=A1, year=YEAR,
        element=["prescribing"], to="consortium:16C", on="2024-06-01")
    commit(ledger, "R-1", "2500")
    commit(ledger, "R-2", "1200", practice=A2)
    commit(ledger, "R-3", "800", practice=A3, element="community")
    run(ledger, "spend settle", f"practice:{A1}", ref="R-1", amount="1000", on="2024-08-01")
    run(ledger, "spend vary", f"practice:{A2}", ref="R-2", amount="1300", on="2024-08-02")


@pytest.fixture
def written(ledger: Ledger, db_url: str) -> str:
    write_ledger(ledger)
    return db_url


@pytest.fixture
def client(written: str, ledger: Ledger) -> Iterator[TestClient]:
    """A client holding an auditor's token: reads everything."""
    headers = bearer(grant_token(ledger, "auditor:audit"))
    with TestClient(create_app(written), headers=headers) as c:
        yield c


def reads_of(ledger: Ledger) -> JointReads:
    return JointReads(ledger.store, today=datetime.now(UTC).date())


def as_json(value: Any) -> Any:
    """What the CLI's `--format json` makes of rows: orjson, read back."""
    return json.loads(orjson.dumps(value, option=orjson.OPT_UTC_Z))


Query = Callable[[JointReads], Any]

CASES: list[tuple[str, dict[str, Any], Query]] = [
    ("/holders", {}, lambda r: r.holders()),
    ("/holders", {"practice": A1, "as_of": "2024-06-15"},
     lambda r: r.holders(practice=A1, as_of=date(2024, 6, 15))),
    ("/holders", {"holder": "consortium:16C", "year": YEAR},
     lambda r: r.holders(holder="consortium:16C", year=YEAR)),
    ("/holders", {"consortium": "16C", "known_at": "2024-07-15T09:30:00Z"},
     lambda r: r.holders(consortium="16C",
                         known_at=datetime(2024, 7, 15, 9, 30, tzinfo=UTC))),
    ("/position", {}, lambda r: r.position()),
    ("/position", {"by": "consortium", "year": YEAR},
     lambda r: r.position(by="consortium", year=YEAR)),
    ("/position", {"practice": A2, "as_of": "2024-07-31"},
     lambda r: r.position(practice=A2, as_of=date(2024, 7, 31))),
    ("/position", {"by": "allocator"}, lambda r: r.position(by="allocator")),
    ("/pools", {}, lambda r: r.pools()),
    ("/pools", {"consortium": "16C", "as_of": "2024-05-01"},
     lambda r: r.pools(consortium="16C", as_of=date(2024, 5, 1))),
    ("/quality", {}, lambda r: r.quality()),
    ("/quality", {"consortium": "16C", "year": YEAR, "qs": ["QS1", "QS3"]},
     lambda r: r.quality(consortium="16C", year=YEAR, codes=["QS1", "QS3"])),
    ("/variation", {"method": "tukey"}, lambda r: r.variation()),
    ("/variation", {"consortium": "16C", "element": "acute", "as_of": "2024-09-30",
                    "method": "tukey"},
     lambda r: r.variation(consortium="16C", element="acute", as_of=date(2024, 9, 30))),
    ("/variation", {}, lambda r: r.funnel()),
    ("/variation", {"consortium": "16C", "against": "national", "overdispersion": "true"},
     lambda r: r.funnel(consortium="16C", against="national", overdispersion=True)),
]


def test_each_read_answers_the_rows_of_its_query(client: TestClient, ledger: Ledger) -> None:
    for path, params, query in CASES:
        answer = client.get(path, params=params)
        assert answer.status_code == 200, (path, params, answer.text)
        assert answer.headers["content-type"] == "application/json"
        expected = as_json(query(reads_of(ledger)))
        assert expected, f"the scenario should give {path} {params} some rows"
        assert answer.json() == expected, (path, params)


def test_trail_rows_and_fields_are_the_clis(client: TestClient, ledger: Ledger) -> None:
    answer = client.get(f"/trail/{A1}", params={"year": YEAR, "since": "2024-06-01"})
    assert answer.status_code == 200, answer.text
    found = answer.json()
    expected = reads_of(ledger).trail(A1, year=YEAR, since=date(2024, 6, 1))
    fields = ["position", "recorded_at", "effective_on", "actor", "event", "summary", "year"]
    assert found == as_json([{k: r[k] for k in fields} for r in expected])
    assert [list(r) for r in found] == [fields] * len(found)
    assert {r["event"] for r in found} >= {"HoldingDelegated", "SpendCommitted"}
    assert all(r["effective_on"] >= "2024-06-01" for r in found)


def test_rows_are_what_ledger_format_json_prints(client: TestClient, written: str) -> None:
    for path, params, args in [
            ("/holders", {"practice": A1}, ["holders", "--practice", A1]),
            ("/position", {"by": "consortium"}, ["position", "--by", "consortium"]),
            ("/quality", {}, ["quality"]),
            ("/variation", {"consortium": "16C"}, ["variation", "--consortium", "16C"]),
            ("/variation", {"consortium": "16C", "method": "tukey"},
             ["variation", "--consortium", "16C", "--method", "tukey"]),
            (f"/trail/{A2}", {}, ["trail", A2])]:
        done = CliRunner().invoke(cli, ["--db", written, *args, "--format", "json"])
        assert done.exit_code == 0, done.output
        assert client.get(path, params=params).json() == json.loads(done.stdout), path


def test_projections_status_lists_every_projection_with_its_lag(client: TestClient,
                                                                ledger: Ledger) -> None:
    client.get("/position")  # catches up what position reads
    found = client.get("/projections").json()
    head = ledger.store.head()
    assert {r["projection"] for r in found} >= {"holders", "positions", "trail"}
    assert all(set(r) == {"projection", "position", "head", "lag", "holds"} for r in found)
    assert all(r["head"] == head and r["lag"] == head - r["position"] for r in found)
    positions = next(r for r in found if r["projection"] == "positions")
    assert positions["lag"] == 0


def test_the_feed_resumes_from_next_after_with_no_gaps_or_repeats(
        client: TestClient, ledger: Ledger) -> None:
    everything = as_json(list(reads_of(ledger).events(0)))
    ledger_id = client.get("/events").json()["ledger_id"]
    assert isinstance(ledger_id, str)
    assert len(ledger_id) == 36
    seen: list[dict[str, Any]] = []
    checkpoint = 0
    for _ in range(100):
        page = client.get("/events", params={"after": checkpoint, "limit": 7}).json()
        assert set(page) == {"events", "next_after", "head", "ledger_id", "visible_to"}
        assert page["visible_to"] is None
        assert page["head"] == ledger.store.head()
        assert page["ledger_id"] == ledger_id
        assert len(page["events"]) <= 7
        if not page["events"]:
            assert page["next_after"] == checkpoint
            break
        assert page["events"][0]["position"] > checkpoint
        assert page["next_after"] == page["events"][-1]["position"]
        seen += page["events"]
        checkpoint = page["next_after"]
    assert seen == everything
    assert len({r["position"] for r in seen}) == len(seen) == ledger.store.head()
    # A consumer holding its checkpoint gets exactly what was written since.
    commit(ledger, "R-4", "50", practice=A3)
    page = client.get("/events", params={"after": checkpoint}).json()
    assert [r["event"] for r in page["events"]] == ["SpendCommitted"]
    assert page["events"][0]["ref"] == "R-4"
    assert page["next_after"] == ledger.store.head()
    assert client.get("/events", params={"after": page["next_after"]}).json() == {
        "events": [], "next_after": page["next_after"], "head": page["next_after"],
        "ledger_id": ledger_id, "visible_to": None}
    middle = client.get("/events", params={"after": 5, "limit": 2}).json()
    assert middle == {"events": everything[5:7], "next_after": everything[6]["position"],
                      "head": ledger.store.head(), "ledger_id": ledger_id, "visible_to": None}


BAD: list[tuple[str, int, str | None, str]] = [
    ("/trail/A99999", 404, "practice", "no practice A99999"),
    ("/holders?practice=A99999", 404, "practice", "no practice A99999"),
    ("/pools?consortium=99X", 404, "consortium", "no consortium 99X"),
    ("/holders?as_of=2024-02-30", 400, "date", "malformed date"),
    ("/holders?known_at=yesterday", 400, "instant", "malformed instant"),
    ("/holders?practice=A81001&consortium=16C", 400, "options", "at most one"),
    ("/position?by=colour", 400, "by", "--by must be one of"),
    ("/position?year=2024", 400, None, ""),
    ("/trail/A81001?since=2024-09-01&until=2024-06-01", 400, "date", "after"),
    ("/variation?element=teeth", 400, None, ""),
    ("/variation?method=median", 400, "method", "unknown method"),
    ("/quality?qs=QS", 400, None, ""),
    ("/projections?status=rebuild", 400, "projections", "only status"),
    ("/events?after=-1", 400, "after", "0 or more"),
    ("/events?limit=0", 400, "limit", "1 to 1000"),
    ("/events?limit=1001", 400, "limit", "1 to 1000"),
    ("/events?after=abc", 400, "request", "after"),
    ("/nowhere", 404, "http", "Not Found"),
]


def test_bad_input_is_a_mapped_status_and_one_line_of_json(client: TestClient) -> None:
    for path, status, rule, words in BAD:
        answer = client.get(path)
        assert answer.status_code == status, (path, answer.text)
        assert "\n" not in answer.text
        body = answer.json()
        assert set(body) == {"error", "rule"}, path
        assert body["error"], path
        if rule is not None:
            assert body["rule"] == rule, (path, body)
        assert words in body["error"], (path, body)


@pytest.mark.parametrize(("error", "status"), [
    (InvalidInput("date", "x"), 400),
    (NotFound("practice", "x"), 404),
    (RuleViolation("pool", "x"), 409),
    (NotAuthenticated("authentication", "x"), 401),
    (NotAuthorised("actor", "x"), 403),
    (IdempotencyConflict("command", "x"), 409),
    (StoreUnavailable("store", "x"), 503),
    (LedgerError("ledger", "x"), 409),
])
def test_each_error_kind_has_its_status(error: LedgerError, status: int) -> None:
    assert status_of(error) == status


def test_an_unreachable_store_is_503_until_it_can_be_opened(tmp_path: Path) -> None:
    missing = tmp_path / "not-yet" / "ledger.db"
    with TestClient(create_app(str(missing))) as c:
        for path in ("/health", "/holders", "/events"):
            answer = c.get(path)
            assert answer.status_code == 503, answer.text
            assert answer.json()["rule"] == "store"
            assert "\n" not in answer.text
        missing.parent.mkdir()
        answer = c.get("/health")  # a read never creates the ledger
        assert answer.status_code == 503, answer.text
        assert "no ledger at" in answer.json()["error"]
        assert not missing.exists()
        with bootstrap(str(missing)) as written:  # the first write creates it
            run(written, "practice register", "allocator:Q71", practice=A1, name="S",
                list_size=1)
        answer = c.get("/health")
        assert answer.status_code == 200
        assert answer.json() == {"status": "ok", "head": 1}


def test_concurrent_requests_catch_up_once_and_agree(client: TestClient, ledger: Ledger
                                                     ) -> None:
    for i in range(5):
        commit(ledger, f"R-C{i}", "10", practice=A2)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def ask(path: str) -> None:
        got = client.get(path)
        with lock:
            answers.append(got)

    paths = ["/position", "/holders", "/quality", "/variation", "/pools", "/trail/A81002"] * 3
    threads = [threading.Thread(target=ask, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(answers) == len(paths)
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    position = [a.json() for a in answers if a.url.path == "/position"]
    assert position[0] == position[1] == position[2] == as_json(reads_of(ledger).position())
    a2 = next(r for r in position[0] if r["practice"] == A2 and r["element"] == "acute")
    assert a2["committed_pence"] == 130_000 + 5 * 1_000


def test_the_openapi_schema_has_a_title_a_description_and_every_endpoint(
        client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["info"]["title"] == "Commissioning ledger read API"
    assert "next_after" in schema["info"]["description"]
    assert set(schema["paths"]) >= {"/health", "/holders", "/trail/{code}", "/position",
                                    "/pools", "/quality", "/variation", "/projections",
                                    "/events"}


def test_every_description_in_the_openapi_schema_closes_the_brackets_it_opens(
        client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    unbalanced: list[str] = []

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "description" and isinstance(value, str):
                    depth = 0
                    for char in value:
                        depth += {"(": 1, ")": -1}.get(char, 0)
                        if depth < 0:
                            break
                    if depth:
                        unbalanced.append(f"{where}: {value}")
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for n, value in enumerate(node):
                walk(value, f"{where}[{n}]")

    walk(schema, "")
    assert unbalanced == []


# --- the real `ledger serve` ---------------------------------------------------------


@pytest.mark.e2e
def test_ledger_serve_answers_health_and_the_feed(written: str, ledger: Ledger,
                                                 tmp_path: Path) -> None:
    secret = grant_token(ledger, "service:feed")
    with ledger_serve(written, tmp_path) as base:
        health = httpx.get(f"{base}/health", timeout=10)
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "head": ledger.store.head()}
        assert httpx.get(f"{base}/events", timeout=10).status_code == 401
        page = httpx.get(f"{base}/events", params={"after": 0, "limit": 4}, timeout=10,
                         headers=bearer(secret)).json()
        assert page["events"] == as_json(list(reads_of(ledger).events(0)))[:4]
        assert page["next_after"] == page["events"][-1]["position"]
