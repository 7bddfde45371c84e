"""Reads that never write: `serve --projected` answers from projections a projector keeps
(`ledger project`), reports the lag in /ready; `serve` guards its address; on both stores."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from commands.app import app as cli
from commands.errors import EXIT_USAGE
from ledger.bootstrap import Ledger
from projections.api import create_app
from projections.materialise import Materialiser
from tests.commands.conftest import clean_env, ledger_executable
from tests.commands.test_unreadable_events import insert_row, unknown_topic
from tests.ledger.application.scenario import A2, bearer, commit, grant_token
from tests.ledger.store.test_commits import register_elsewhere
from tests.projections.live_server import ledger_serve
from tests.projections.test_api import write_ledger


def project(db: str) -> None:
    done = CliRunner().invoke(cli, ["--db", db, "project"])
    assert done.exit_code == 0, done.output
    assert "projections at position" in done.stdout


def committed(client: TestClient) -> int:
    rows = client.get("/position", params={"practice": A2}).json()
    return sum(r["committed_pence"] for r in rows)


def test_projected_reads_never_write_and_ready_reports_the_lag(
        ledger: Ledger, db_url: str) -> None:
    write_ledger(ledger)
    secret = grant_token(ledger, "auditor:audit")
    project(db_url)
    views = Materialiser(ledger.store)
    with TestClient(create_app(db_url, projected=True), headers=bearer(secret)) as client:
        before = committed(client)
        ready = client.get("/ready").json()
        assert ready["lag"] == 0
        assert ready["projected"] is True
        assert ready["head"] == ledger.store.head()
        commit(ledger, "R-P1", "100", practice=A2)
        positions = views.positions(create=False)
        assert committed(client) == before, "a projected read caught up (wrote)"
        for path in ("/holders", "/trail/A81002", "/pools", "/quality", "/variation",
                     "/projections"):
            assert client.get(path).status_code == 200, path
        assert views.positions(create=False) == positions
        lagging = client.get("/ready").json()
        assert lagging["lag"] >= 1
        assert lagging["projections"]["positions"] >= 1
        project(db_url)
        assert committed(client) == before + 10_000
        assert client.get("/ready").json()["lag"] == 0


def test_projected_reads_stop_at_an_event_this_version_cannot_read(
        ledger: Ledger, db_url: str) -> None:
    """The projector stops at such an event (exit 5); the reads it keeps must not go on
    answering from before it as if the log ended there."""
    write_ledger(ledger)
    secret = grant_token(ledger, "auditor:audit")
    project(db_url)
    position = insert_row(db_url, *unknown_topic())
    with TestClient(create_app(db_url, projected=True), headers=bearer(secret)) as client:
        for path in ("/holders", "/position", "/trail/A81002", "/pools", "/quality",
                     "/variation", "/projections", "/ready", "/events"):
            answer = client.get(path)
            assert answer.status_code == 503, (path, answer.text)
            assert answer.json()["rule"] == "unreadable-event", (path, answer.text)
            assert f"position {position}" in answer.json()["error"]


def test_reads_that_catch_up_report_ready_too(ledger: Ledger, db_url: str) -> None:
    write_ledger(ledger)
    with TestClient(create_app(db_url)) as client:
        ready = client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["projected"] is False


def test_serve_refuses_to_listen_beyond_loopback_while_no_token_exists(
        ledger: Ledger, db_url: str) -> None:
    write_ledger(ledger)
    done = CliRunner().invoke(cli, ["--db", db_url, "serve", "--host", "0.0.0.0"])
    assert done.exit_code == EXIT_USAGE
    assert "refusing to listen on 0.0.0.0" in done.stderr
    assert "no token exists" in done.stderr


@pytest.mark.e2e
def test_serve_runs_projected_on_several_workers(ledger: Ledger, db_url: str,
                                                 tmp_path: Path) -> None:
    write_ledger(ledger)
    secret = grant_token(ledger, "service:feed")
    project(db_url)
    with ledger_serve(db_url, tmp_path, "--workers", "2", "--projected") as base:
        ready = httpx.get(f"{base}/ready", timeout=10)
        assert ready.json()["projected"] is True
        assert ready.json()["lag"] == 0
        for _ in range(6):
            page = httpx.get(f"{base}/events", headers=bearer(secret), timeout=10).json()
            assert page["head"] == ledger.store.head()
    logs = "".join(p.read_text() for p in tmp_path.glob("serve-*.log"))
    assert "Started parent process" in logs


def test_the_projector_follows_commits_made_by_another_process(
        ledger: Ledger, db_url: str) -> None:
    write_ledger(ledger)
    # On PostgreSQL it never looks again on its own: only the NOTIFY of each commit wakes
    # it. SQLite has no such signal, so there it polls.
    poll = "3600" if db_url.startswith("postgresql") else "0.05"
    projector = subprocess.Popen(
        [*ledger_executable(), "--db", db_url, "project", "--follow", "--poll", poll],
        env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert projector.stdout is not None
        line = projector.stdout.readline()
        assert "projections at position" in line, line
        views = Materialiser(ledger.store)
        for code in ("A81008", "A81009"):
            register_elsewhere(db_url, code)
            head = ledger.store.head()
            deadline = time.monotonic() + 300  # a loaded machine; not a timing
            while any(s.position < head for s in views.status(create=False)):
                assert projector.poll() is None, projector.stderr
                assert time.monotonic() < deadline, views.status(create=False)
                time.sleep(0.05)
    finally:
        projector.send_signal(signal.SIGINT)
        out, _ = projector.communicate(timeout=60)
    assert f"stopped at position {ledger.store.head()}" in out
