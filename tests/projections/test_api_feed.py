"""The live feed: server-sent events from a checkpoint, new commits pushed, on both stores."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import httpx
import pytest

from ledger.bootstrap import Ledger
from projections import api_feed
from tests.commands.conftest import clean_env, ledger_executable
from tests.ledger.application.scenario import A2, ALLOCATOR, YEAR, bearer, commit, grant_token
from tests.ledger.store.test_commits import register_elsewhere
from tests.projections.live_server import SseReader, live_server
from tests.projections.test_api import write_ledger


@pytest.fixture
def server(ledger: Ledger, db_url: str) -> Iterator[str]:
    write_ledger(ledger)
    with live_server(db_url) as base:
        yield base


def test_the_stream_resumes_after_the_checkpoint_and_pushes_new_commits(
        server: str, ledger: Ledger) -> None:
    secret = grant_token(ledger, "service:feed")
    writer = grant_token(ledger, ALLOCATOR)
    page = httpx.get(f"{server}/events", params={"limit": 1000}, headers=bearer(secret)).json()
    everything = page["events"]
    head = ledger.store.head()
    reader = SseReader(f"{server}/events/live?after=3",
                       bearer(secret) | {"Last-Event-ID": "5"})
    try:
        assert reader.status == 200
        for expected in everything[5:]:
            ident, data = reader.next()
            assert ident == str(expected["position"])
            assert data["event"] == expected
            assert data["ledger_id"] == page["ledger_id"]
            assert data["head"] >= expected["position"]
        # A commit through the service itself, and one by another writer of the store.
        made = httpx.post(f"{server}/consortium/form", headers=bearer(writer),
                          json={"consortium": "99X", "name": "New", "officer": "Dr N"})
        assert made.status_code == 201, made.text
        ident, data = reader.next()
        assert (ident, data["event"]["event"]) == (str(head + 1), "ConsortiumFormed")
        commit(ledger, "R-LIVE", "10", practice=A2)
        ident, data = reader.next()
        assert (ident, data["event"]["event"], data["event"]["ref"]) == (
            str(head + 2), "SpendCommitted", "R-LIVE")
        assert data["head"] == head + 2
    finally:
        reader.close()


def test_the_stream_needs_a_live_token_and_a_checkpoint_that_is_a_position(
        server: str, ledger: Ledger) -> None:
    assert httpx.get(f"{server}/events/live", timeout=10).status_code == 401
    service = grant_token(ledger, "service:feed")
    bad = httpx.get(f"{server}/events/live", timeout=10,
                    headers=bearer(service) | {"Last-Event-ID": "five"})
    assert bad.status_code == 400
    assert bad.json()["rule"] == "last-event-id"


def test_a_commit_by_another_process_reaches_a_live_consumer(
        ledger: Ledger, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if db_url.startswith("postgresql"):
        # Streams never look again on their own: only the NOTIFY of the other process's
        # commit can bring its event. SQLite has no such signal and polls.
        monkeypatch.setattr(api_feed, "FALLBACK_SECONDS", 3600.0)
        monkeypatch.setattr(api_feed, "POLL_SECONDS", 3600.0)
    write_ledger(ledger)
    secret = grant_token(ledger, "consortium:16C")
    head = ledger.store.head()
    with live_server(db_url) as server:
        reader = SseReader(f"{server}/events/live?after={head}", bearer(secret))
        try:
            assert reader.status == 200
            register_elsewhere(db_url, "A81009")  # not 16C's: skipped
            done = subprocess.run(
                [*ledger_executable(), "--db", db_url, "--actor", f"practice:{A2}", "spend",
                 "commit", A2, "--year", YEAR, "--element", "acute", "--ref", "R-ELSEWHERE",
                 "--amount", "25", "--provider", "RTR", "--service", "Clinic",
                 "--on", "2024-07-01"],
                env=clean_env(), capture_output=True, text=True, timeout=300, check=False)
            assert done.returncode == 0, done.stderr
            ident, data = reader.next(wait=300)
            assert (int(ident), data["event"]["ref"]) == (head + 2, "R-ELSEWHERE")
        finally:
            reader.close()


def test_a_checkpoint_past_the_head_is_refused_naming_the_head(
        server: str, ledger: Ledger) -> None:
    """A consumer's checkpoint past the log's last position (kept from another ledger, or
    from before a backup was restored) is a 409 saying so, on the page and the stream
    alike, never an empty page for ever or a stream that waits for positions the log
    will give to other events."""
    secret = grant_token(ledger, "consortium:16C")
    head = ledger.store.head()
    asked = [(f"{server}/events?after={head + 1}", {}),
             (f"{server}/events/live?after={head + 1}", {}),
             (f"{server}/events/live", {"Last-Event-ID": str(head + 500)})]
    for url, extra in asked:
        refused = httpx.get(url, headers=bearer(secret) | extra, timeout=10)
        assert refused.status_code == 409, (url, refused.text)
        body = refused.json()
        assert body["rule"] == "after", body
        assert f"past the head of this ledger ({head})" in body["error"], body
    at_head = httpx.get(f"{server}/events", params={"after": head}, headers=bearer(secret),
                        timeout=10)
    assert (at_head.status_code, at_head.json()["events"]) == (200, [])


def test_events_after_a_position_past_the_head_exits_1_naming_the_head(
        ledger: Ledger, db_url: str) -> None:
    write_ledger(ledger)
    head = ledger.store.head()
    done = subprocess.run([*ledger_executable(), "--db", db_url, "events", "--after",
                           str(head + 1), "--follow"], env=clean_env(), capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert f"past the head of this ledger ({head})" in done.stderr


def test_a_live_stream_ends_when_its_token_is_revoked_sending_nothing_after(
        server: str, ledger: Ledger) -> None:
    """Revoking a token cuts the streams it opened: the next event is not sent, a
    `ledger-error` message says why (rule authentication) and the stream ends."""
    from ledger.application.access import new_token  # noqa: PLC0415
    from tests.ledger.application.scenario import run  # noqa: PLC0415

    grant_token(ledger, ALLOCATOR)
    token = new_token()
    run(ledger, "token create", ALLOCATOR, actor="service:feed", token_id=token.token_id,
        secret_sha256=token.digest)
    head = ledger.store.head()
    reader = SseReader(f"{server}/events/live?after={head - 1}", bearer(token.secret))
    try:
        assert reader.status == 200
        ident, _ = reader.next()
        assert ident == str(head)
        run(ledger, "token revoke", ALLOCATOR, token_id=token.token_id)
        commit(ledger, "R-AFTER", "10", practice=A2)
        ident, data = reader.next()
        assert ident == "", data  # no event: the error message has no id
        assert data == {"error": f"token {token.token_id} is revoked",
                        "rule": "authentication"}
    finally:
        reader.close()
