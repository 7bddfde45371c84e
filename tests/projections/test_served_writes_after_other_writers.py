"""The service's group commit sees what other writers did between its groups.

`ledger serve` commits waiting writes together from whichever request thread's
turn it is (several pooled connections), and on SQLite a write transaction
carries what it knew to the next while nothing else was written. Here requests
from several threads are committed in groups while another ledger writes to the
same store in between; then the other ledger closes the practice and the
service's next commitments must be refused at their first attempt (a stale read
of the practice would be accepted, then conflict on the Merkle log and run again),
and the log must verify with every event sealed once, on both stores.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledger.bootstrap import Ledger
from ledger.domain.events import SpendCommitted, budget_stream
from ledger.store.eventstore import EventStore
from projections.api import create_app
from tests.ledger.application.scenario import (
    A1,
    ALLOCATOR,
    YEAR,
    bearer,
    commit,
    grant_token,
    run,
    seed,
)
from tests.ledger.store.test_carried_state import sealed_every_event

ME = f"practice:{A1}"


@pytest.fixture
def served(open_ledger: Callable[[], Ledger], db_url: str
           ) -> Iterator[tuple[TestClient, Ledger, str]]:
    """(the service, another ledger on its store, a token of A1's)."""
    other = open_ledger()
    seed(other, practices=(A1,), consortium=None, amount="1000")
    grant_token(other, ALLOCATOR)
    token = grant_token(other, ME)
    with TestClient(create_app(db_url)) as client:
        yield client, other, token


def post_commit(client: TestClient, token: str, ref: str, on: str = "2024-07-01") -> Any:
    return client.post("/spend/commit", headers=bearer(token) | {"Idempotency-Key": ref},
                       json={"practice": A1, "year": YEAR, "element": "acute", "ref": ref,
                             "amount": "1.00", "provider": "RTR", "service": "Hip",
                             "on": on})


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts write transactions of every store: one run on stale state conflicts and
    runs again."""
    counted: list[int] = []
    write = EventStore.write

    def counting(self: EventStore, *args: Any, **kwargs: Any) -> Any:
        counted.append(1)
        return write(self, *args, **kwargs)

    monkeypatch.setattr(EventStore, "write", counting)
    return counted


def test_group_commits_between_another_ledgers_writes_see_them(
    served: tuple[TestClient, Ledger, str], writes: list[int],
) -> None:
    client, other, token = served
    statuses: list[int] = []

    def request(ref: str) -> None:
        statuses.append(post_commit(client, token, ref).status_code)

    for round_ in range(4):
        threads = [threading.Thread(target=request, args=(f"R-h{round_}-{n}",))
                   for n in range(6)]
        for thread in threads:
            thread.start()
        commit(other, f"R-o{round_}", "1.00")  # between and among the service's groups
        for thread in threads:
            thread.join(timeout=120)
    assert statuses == [201] * 24
    assert post_commit(client, token, "R-h0-0").json()["already_applied"] is True
    for n in range(3):  # one after another: what each knew is carried to the next
        assert post_commit(client, token, f"R-s{n}").status_code == 201
    run(other, "practice close", ALLOCATOR, practice=A1, on="2024-08-01")
    before = len(writes)
    for n in range(3):
        refused = post_commit(client, token, f"R-late{n}", on="2024-09-01")
        assert refused.status_code != 201, refused.text
        assert refused.json()["rule"] == "practice-open"
    assert post_commit(client, token, "R-last", on="2024-07-31").status_code == 201
    assert len(writes) - before == 4  # none ran on stale state, conflicted and ran again
    refs = [e.ref for e in other.store.stream(budget_stream(A1, YEAR))
            if isinstance(e, SpendCommitted)]
    assert len(refs) == len(set(refs)) == 24 + 4 + 3 + 1
    sealed_every_event(other)
