"""The live feed: server-sent events from a checkpoint, new commits pushed, on both stores."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from ledger.bootstrap import Ledger
from tests.ledger.application.scenario import A2, ALLOCATOR, bearer, commit, grant_token
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
