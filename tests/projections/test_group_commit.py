"""Group commit: concurrent writes to the service commit together, each still its own unit.

Callers that arrive while a group is committing wait and are committed as the next
group, in one transaction. The tests hold the writer's commit turn while callers
queue, so the group they form is known; then each caller must get its own answer:
the good ones recorded, a refused one refused alone, a retried command id recorded
once whether the retry is in the same group or a later one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from ledger.application.service import LedgerService, Outcome, Request
from ledger.bootstrap import Ledger
from ledger.domain.events import SpendCommitted
from projections.api import create_app
from projections.api_writes import Writer
from tests.ledger.application.scenario import A1, A2, ALLOCATOR, YEAR, bearer, grant_token, seed
from tests.projections.live_server import ledger_serve


@pytest.fixture
def tokens(ledger: Ledger) -> dict[str, str]:
    seed(ledger, practices=(A1, A2), consortium=None)
    return {actor: grant_token(ledger, actor)
            for actor in (ALLOCATOR, f"practice:{A1}", f"practice:{A2}")}


@pytest.fixture
def api(tokens: dict[str, str], db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(db_url)) as client:
        yield client


def groups_of(client: TestClient) -> list[int]:
    """Record the size of every group the service's write path runs from now on."""
    service: LedgerService = client.app.state.served.service()  # type: ignore[attr-defined]
    sizes: list[int] = []
    original = service.execute_batch

    def spy(requests: Sequence[Request], **kwargs: Any) -> list[Outcome]:
        sizes.append(len(requests))
        return original(requests, **kwargs)

    service.execute_batch = spy  # type: ignore[method-assign]
    return sizes


def commit(practice: str, ref: str, amount: str = "100") -> dict[str, Any]:
    return {"practice": practice, "year": YEAR, "element": "acute", "ref": ref,
            "amount": amount, "provider": "RTR", "service": "Hips", "on": "2024-07-01"}


def together(client: TestClient, posts: list[Callable[[], httpx.Response]]
             ) -> list[httpx.Response]:
    """Send the posts while the writer is busy, so they queue, in order, as one group."""
    writer: Writer = client.app.state.writer  # type: ignore[attr-defined]
    answers: list[httpx.Response | None] = [None] * len(posts)

    def send(i: int) -> None:
        answers[i] = posts[i]()

    with writer._lock:  # the writer is busy committing: callers queue
        for i in range(len(posts)):
            threading.Thread(target=send, args=(i,)).start()
            give_up = time.monotonic() + 60
            while writer.waiting() <= i and time.monotonic() < give_up:
                time.sleep(0.005)
        assert writer.waiting() == len(posts)
    give_up = time.monotonic() + 60
    while any(a is None for a in answers) and time.monotonic() < give_up:
        time.sleep(0.01)
    return [a for a in answers if a is not None]


def refs_recorded(ledger: Ledger) -> list[str]:
    return sorted(e.ref for _, e in ledger.store.iter_events()
                  if isinstance(e, SpendCommitted))


def test_a_refused_write_in_a_group_is_refused_alone_and_its_neighbours_are_recorded(
        api: TestClient, tokens: dict[str, str], ledger: Ledger) -> None:
    sizes = groups_of(api)
    a1, a2 = bearer(tokens[f"practice:{A1}"]), bearer(tokens[f"practice:{A2}"])
    posts: list[Callable[[], httpx.Response]] = [
        lambda: api.post("/spend/commit", json=commit(A1, "R-1"), headers=a1),
        lambda: api.post("/spend/commit", json=commit(A1, "R-2"), headers=a1),
        # practice A2 may not spend A1's budget
        lambda: api.post("/spend/commit", json=commit(A1, "R-3"), headers=a2),
        lambda: api.post("/spend/commit", json=commit(A2, "R-4"), headers=a2),
        lambda: api.post("/spend/commit", json=commit(A2, "R-5"), headers=a2),
    ]
    answers = together(api, posts)
    assert sizes == [5]
    assert [a.status_code for a in answers] == [201, 201, 403, 201, 201]
    assert answers[2].json()["rule"] == "authority"
    assert [a.json()["summary"].split()[3] for i, a in enumerate(answers) if i != 2] == [
        "R-1", "R-2", "R-4", "R-5"]
    assert refs_recorded(ledger) == ["R-1", "R-2", "R-4", "R-5"]


def test_a_retried_command_id_records_once_within_a_group_and_across_groups(
        api: TestClient, tokens: dict[str, str], ledger: Ledger) -> None:
    sizes = groups_of(api)
    a1 = bearer(tokens[f"practice:{A1}"])
    same = a1 | {"Idempotency-Key": "commit-r1"}
    posts: list[Callable[[], httpx.Response]] = [
        lambda: api.post("/spend/commit", json=commit(A1, "R-1"), headers=same),
        lambda: api.post("/spend/commit", json=commit(A1, "R-1"), headers=same),
        lambda: api.post("/spend/commit", json=commit(A1, "R-2", "999"), headers=same),
        lambda: api.post("/spend/commit", json=commit(A1, "R-3"), headers=a1),
    ]
    first, retried, other_body, neighbour = together(api, posts)
    assert sizes == [4]
    assert (first.status_code, retried.status_code) == (201, 200)
    assert retried.json() == first.json() | {"already_applied": True}
    assert other_body.status_code == 409
    assert other_body.json()["rule"] == "idempotency"
    assert neighbour.status_code == 201
    later = api.post("/spend/commit", json=commit(A1, "R-1"), headers=same)
    assert later.status_code == 200
    assert later.json() == retried.json()
    assert sizes == [4, 1]
    assert refs_recorded(ledger) == ["R-1", "R-3"]


def test_without_group_commit_each_write_is_its_own_transaction(
        tokens: dict[str, str], db_url: str, ledger: Ledger) -> None:
    with TestClient(create_app(db_url, group_commit=False)) as client:
        sizes = groups_of(client)
        a1 = bearer(tokens[f"practice:{A1}"])
        threads = [threading.Thread(target=client.post, args=("/spend/commit",),
                                    kwargs={"json": commit(A1, f"R-{i}"), "headers": a1})
                   for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sizes == [1] * 6
    assert refs_recorded(ledger) == [f"R-{i}" for i in range(6)]


@pytest.mark.parametrize("mode", ["--group-commit", "--no-group-commit"])
def test_the_real_service_answers_concurrent_writers_each_their_own_in_either_mode(
        mode: str, tokens: dict[str, str], db_url: str, ledger: Ledger,
        tmp_path: Path) -> None:
    a1, a2 = bearer(tokens[f"practice:{A1}"]), bearer(tokens[f"practice:{A2}"])
    sends: list[tuple[dict[str, str], dict[str, Any]]] = [
        *[(a1 | {"Idempotency-Key": f"k-{i}"}, commit(A1, f"R-{i}")) for i in range(6)],
        (a2 | {"Idempotency-Key": "k-bad"}, commit(A1, "R-bad")),  # not A2's budget
        (a1 | {"Idempotency-Key": "k-0"}, commit(A1, "R-0")),  # a retry
    ]
    with ledger_serve(db_url, tmp_path, mode) as base, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(
            lambda send: httpx.post(f"{base}/spend/commit", headers=send[0], json=send[1],
                                    timeout=60), sends))
    codes = [a.status_code for a in answers]
    assert codes[1:6] == [201] * 5
    assert sorted([codes[0], codes[7]]) == [200, 201]
    assert codes[6] == 403
    assert answers[6].json()["rule"] == "authority"
    assert refs_recorded(ledger) == sorted(f"R-{i}" for i in range(6))
