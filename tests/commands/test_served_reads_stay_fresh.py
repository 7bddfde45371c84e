"""A running service's reads, once its projections are at the head, stay right.

`ledger serve` keeps its projections' state between requests, and a read whose
projections are already at the log's head costs one statement (projections/
materialise.py `_current`). These tests run the service, answer reads from that
short path, then change the log underneath it (a command from another process, a
row that does not decode inserted around the ledger) and check the next reads see
the command and refuse the log (503), on both stores.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from projections.api import create_app
from projections.materialise import Materialiser
from tests.commands.conftest import Ledger
from tests.commands.test_unreadable_events import (
    ALLOCATOR,
    CASES,
    insert_row,
    populate,
    signing_key,  # noqa: F401 - the autouse fixture, for the tests here too
)


@pytest.fixture
def short_reads(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What each `_current` answered (True: the read took the short path)."""
    answers: list[bool] = []
    current = Materialiser._current

    def spied(self: Materialiser, *args: Any) -> bool:
        answers.append(current(self, *args))
        return answers[-1]

    monkeypatch.setattr(Materialiser, "_current", spied)
    return answers


@pytest.fixture
def client(invoke: Ledger, db_url: str) -> Iterator[TestClient]:
    populate(invoke)
    made = invoke("token", "create", "--actor", ALLOCATOR, "--bootstrap")
    token = re.search(r"token [a-z0-9]{12}: (\S+)", made.stdout)
    assert token is not None, made.stdout
    with TestClient(create_app(db_url), headers={"Authorization": f"Bearer {token[1]}"}) as c:
        yield c


def acute_remaining(client: TestClient) -> int:
    answer = client.get("/position", params={"practice": "A81001", "year": "2024-25"})
    assert answer.status_code == 200, answer.text
    rows = [r for r in answer.json() if r["element"] == "acute"]
    assert len(rows) == 1, answer.json()
    return int(rows[0]["remaining_pence"])


def test_a_command_from_another_process_shows_in_the_next_read(
    client: TestClient, invoke: Ledger, short_reads: list[bool],
) -> None:
    before = acute_remaining(client)
    assert acute_remaining(client) == before
    assert short_reads[-1]  # at the head: the short path
    done = invoke("spend", "commit", "A81001", "--year", "2024-25", "--element", "acute",
                  "--ref", "R-0001", "--amount", "123.45", "--provider", "RTR",
                  "--service", "Hip", "--on", "2024-07-01", actor="practice:A81001")
    assert done.code == 0, done.stderr
    assert acute_remaining(client) == before - 12345
    assert not short_reads[-1]  # the log moved: caught up
    assert acute_remaining(client) == before - 12345
    assert short_reads[-1]


@pytest.mark.parametrize("case", ["unknown topic", "known kind without a field",
                                  "known kind with a number past 64 bits"])
def test_a_row_that_does_not_decode_stops_reads_answered_from_current_projections(
    client: TestClient, invoke: Ledger, db_url: str, short_reads: list[bool], case: str,
) -> None:
    acute_remaining(client)
    acute_remaining(client)
    assert short_reads[-1]  # the service answers from projections it knows are current
    make, fragments = CASES[case]
    position = insert_row(db_url, *make(invoke))
    for path in ("/position", "/holders", "/pools", "/trail/A81001", "/projections"):
        for _ in range(2):  # and again: a refusal leaves nothing behind that lets it pass
            answer = client.get(path)
            assert answer.status_code == 503, (path, answer.text)
            assert answer.json()["rule"] == "unreadable-event"
            assert f"position {position}" in answer.json()["error"]
            assert all(f in answer.json()["error"] for f in fragments), answer.json()
