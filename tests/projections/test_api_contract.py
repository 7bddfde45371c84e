"""The published OpenAPI document is kept: schemathesis drives every operation of the live
app with bounded generated requests and checks each answer against the contract."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance
from typer.testing import CliRunner

from commands.app import app as cli
from ledger.bootstrap import Ledger
from projections.api import create_app
from projections.contract import feed_event_schemas
from tests.ledger.application.scenario import ALLOCATOR, bearer, grant_token
from tests.projections.test_api import write_ledger

EXAMPLES = 8
# Every check schemathesis has but one: a request the schema allows may still be
# malformed for the ledger (2024-26 is not a financial year, 2024-02-30 not a date,
# a practice may not be named twice), and the service rightly answers 400 as the
# command line exits 2. Requests the schema forbids must still be refused.

STREAM_SECONDS = 2.0
"""How long an event stream's answer is read. The live feed sends the events after the
checkpoint at once, then nothing until a commit (none is made while it is read) or its
ping (PING_SECONDS, 15 s): reading it for schemathesis's default 10 s would see no more,
and 20 events (its default limit) end the read at once."""


def transport_options(operation: Any) -> dict[str, float]:
    """What the calls of `operation` need beyond the defaults: a stream's read time."""
    streams = any("text/event-stream" in answer.get("content", {})
                  for answer in operation.definition.raw["responses"].values())
    return {"timeout": STREAM_SECONDS} if streams else {}


@pytest.fixture(autouse=True, scope="module")
def asgi_thread_stopped() -> Iterator[None]:
    """schemathesis calls an app in this process through an event-loop thread it keeps,
    with the apps' lifespans it started, until the process exits: stopped after these
    tests, so no later test runs beside a thread it did not start (`ledger apply` forks
    its appending process only when no other thread runs)."""
    yield
    asgi._shutdown()  # its exit hook: no public way to stop the thread
    left = [t.name for t in threading.enumerate() if t.name.startswith("asyncio-portal")]
    assert not left, f"schemathesis's event-loop thread still runs: {left}"


@pytest.fixture
def written(ledger: Ledger, db_url: str) -> tuple[str, str]:
    write_ledger(ledger)
    return db_url, grant_token(ledger, ALLOCATOR)


def test_every_operation_keeps_the_published_contract(written: tuple[str, str]) -> None:
    db, secret = written
    app = create_app(db)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    assert len(operations) > 25

    for operation in operations:
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            case.call_and_validate(headers=bearer(secret), excluded_checks=[
                positive_data_acceptance], **transport_options(case.operation))

        try:
            check()
        except Exception as error:  # noqa: BLE001 - collected and reported together
            failures.append(f"{operation.label}: {error}")
    assert not failures, "\n\n".join(failures)


def test_served_events_validate_against_the_exported_schemas(written: tuple[str, str]) -> None:
    db, secret = written
    schemas = feed_event_schemas()
    with TestClient(create_app(db), headers=bearer(secret)) as client:
        rows = client.get("/events", params={"limit": 1000}).json()["events"]
        assert client.get("/schemas").json() == schemas
    assert len({r["event"] for r in rows}) >= 8
    for row in rows:
        jsonschema_rs.validate(schemas[f"{row['event']}.v{row['schema_version']}"], row,
                               validate_formats=True)
    first = rows[0]
    with pytest.raises(jsonschema_rs.ValidationError):
        jsonschema_rs.validate(schemas[f"{first['event']}.v{first['schema_version']}"],
                               first | {"extra": 1})


def test_ledger_schema_writes_the_schemas_the_service_publishes(tmp_path: Path) -> None:
    printed = CliRunner().invoke(cli, ["schema"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.stdout) == json.loads(orjson.dumps(feed_event_schemas()))
    written = CliRunner().invoke(cli, ["schema", "--out", str(tmp_path / "schemas")])
    assert written.exit_code == 0, written.output
    files = sorted(p.name for p in (tmp_path / "schemas").iterdir())
    assert files == sorted(f"{name}.json" for name in feed_event_schemas())
    one = json.loads((tmp_path / "schemas" / "SpendCommitted.v1.json").read_text())
    assert one["properties"]["event"]["const"] == "SpendCommitted"
    assert one["additionalProperties"] is False


def test_unknown_query_parameters_are_refused(written: tuple[str, str]) -> None:
    db, secret = written
    with TestClient(create_app(db), headers=bearer(secret)) as client:
        for path in ("/holders?colour=red", "/events?after=0&page=2", "/health?x=1"):
            answer = client.get(path)
            assert answer.status_code == 400, (path, answer.text)
            assert answer.json()["rule"] == "request"
            assert "unknown query parameter" in answer.json()["error"]
        assert client.get("/holders?practice=A81001").status_code == 200


def test_instants_have_one_form_in_the_feed_the_reads_and_the_cli(
        written: tuple[str, str]) -> None:
    db, secret = written
    with TestClient(create_app(db), headers=bearer(secret)) as client:
        feed = client.get("/events").json()["events"]
        trail = client.get("/trail/A81001").json()
    cli_trail = json.loads(CliRunner().invoke(cli, ["--db", db, "trail", "A81001",
                                                    "--format", "json"]).stdout)
    cli_events = [json.loads(line) for line in CliRunner().invoke(
        cli, ["--db", db, "events"]).stdout.splitlines() if line]
    instants = ([r["recorded_at"] for r in feed + trail + cli_trail] +
                [r["recorded_at"] for r in cli_events])
    assert instants
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", t) for t in instants)


def test_the_feed_documents_only_the_statuses_it_sends(ledger: Ledger, db_url: str) -> None:
    write_ledger(ledger)
    tokens = [grant_token(ledger, actor) for actor in
              (ALLOCATOR, "consortium:16C", "practice:A81001", "auditor:Ada", "service:bi")]
    app = create_app(db_url)
    documented = app.openapi()["paths"]["/events"]["get"]["responses"]
    assert "403" not in documented
    with TestClient(app) as client:
        for secret in tokens:
            assert client.get("/events?after=0", headers=bearer(secret)).status_code == 200
