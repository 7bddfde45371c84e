"""`EventStore.holds`: whether a write was committed, told by the very event it wrote."""

from __future__ import annotations

import uuid

from ledger.bootstrap import Ledger
from tests.ledger.application.scenario import A1, seed


def test_a_store_holds_the_very_event_written_and_no_other_at_its_place(
    ledger: Ledger
) -> None:
    seed(ledger, practices=(A1,), consortium=None)
    written = ledger.store.notifications(0, 100)
    assert written
    for event in written:
        stream = uuid.UUID(str(event.originator_id))
        version, state = event.originator_version, bytes(event.state)
        assert ledger.store.holds(stream, version, state)
        assert not ledger.store.holds(stream, version, state + b" ")  # another writer's
        assert not ledger.store.holds(stream, version + 100, state)  # never written
