"""`verify` on PostgreSQL keeps its one snapshot for as long as checking the log takes,
however long that is beside the store's idle-in-transaction limit (which ends write
transactions left open)."""

from __future__ import annotations

import time

import pytest

from ledger.application.commands import build_command
from ledger.auditlog.seal import MerkleSealing
from ledger.auditlog.verify import verify_store
from ledger.bootstrap import bootstrap
from ledger.store.eventstore import StoreTarget, open_store, parse_target


@pytest.mark.postgres
def test_verify_outlasts_the_stores_idle_in_transaction_limit(pg_url: str) -> None:
    ledger = bootstrap(pg_url)
    ledger.service.execute(build_command(
        "practice register",
        {"practice": "A81001", "name": "Densham", "list_size": 4069, "on": "2024-04-01"}),
        "allocator:Q71")
    ledger.close()
    parsed = parse_target(pg_url)
    target = StoreTarget(parsed.kind, parsed.location,
                         {**parsed.env, "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "1"})
    store = open_store(target, hooks=(MerkleSealing(),), create=False)
    try:
        # Idle between reads for longer than the limit, as hashing a large log is.
        report = verify_store(store, progress=lambda _done, _total: time.sleep(2))
    finally:
        store.close()
    assert report.ok, report.damage
    assert report.events_checked == 1
