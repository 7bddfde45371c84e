"""A batch of many events is given the positions its rows take, and sealed at them.

SQLite inserts a batch of many events with one statement and works their positions
out from the largest position before it (ledger/store/recorders.py `_insert_rows`);
whatever the store, each event's position must be its row's, in order, and every
leaf of the Merkle log must cover the event at its position.
"""

from __future__ import annotations

from ledger.application.commands import build_command
from ledger.application.service import Request
from ledger.auditlog.verify import verify_store
from ledger.bootstrap import Ledger
from ledger.store.recorders import BULK_ROWS
from tests.ledger.application.scenario import A1, ME, YEAR, seed


def commits(first: int, count: int) -> list[Request]:
    return [
        Request(build_command("spend commit", {
            "practice": A1, "year": YEAR, "element": "acute", "ref": f"R-{i}",
            "amount": "10", "provider": "RTR", "service": "Hip", "on": "2024-07-01"}),
            ME, f"c-{i}")
        for i in range(first, first + count)
    ]


def test_a_batch_of_many_events_takes_the_next_positions_in_order(ledger: Ledger) -> None:
    seed(ledger, practices=(A1,), consortium=None)
    before = ledger.store.head()
    small, many = BULK_ROWS - 1, 3 * BULK_ROWS
    ledger.service.execute_batch(commits(0, small))  # inserted one by one
    ledger.service.execute_batch(commits(small, many))  # in one statement
    stored = list(ledger.store.iter_events())
    assert [p for p, _ in stored[-(small + many):]] == [
        before + 1 + i for i in range(small + many)]
    assert [e.command_id for _, e in stored[-(small + many):]] == [
        f"c-{i}" for i in range(small + many)]
    report = verify_store(ledger.store)
    assert report.ok, report.first
    assert report.sealed == ledger.store.head()
