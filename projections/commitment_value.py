"""What a commitment is worth now, after its variations, settlements and cancellation.

Shared by the `quality` and `variation` folds (each keeps its own rows). The
rules mirror ledger/domain/budget.py and projections/positions.py:

- a commitment is worth its amount when made;
- a variation sets its new total;
- a settlement adds to what is paid; a final settlement releases whatever was
  left outstanding, so the commitment is then worth what was paid;
- a cancellation releases what is outstanding and keeps what was paid.

`value` is therefore outstanding plus settled: the spend the commitment stands
for. A commitment cancelled with nothing paid is worth zero and stops counting.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ledger.domain.events import (
    CommitmentCancelled,
    CommitmentSettled,
    CommitmentVaried,
    LedgerEvent,
)


class Worth(NamedTuple):
    value: int  # pence: outstanding + settled
    settled: int  # pence paid so far
    open: bool  # neither finally settled nor cancelled


def made(amount_pence: int) -> Worth:
    return Worth(amount_pence, 0, open=True)


def after(worth: Worth, event: LedgerEvent) -> Worth:
    """The worth of a commitment after one of its later events (others change nothing)."""
    return after_fields(worth, event.topic, event.__dict__)


def after_fields(worth: Worth, topic: str, fields: dict[str, Any]) -> Worth:
    """`after`, given the event's topic and fields (stored or validated)."""
    if topic == CommitmentVaried.topic:
        return Worth(fields["amount_pence"], worth.settled, worth.open)
    if topic == CommitmentSettled.topic:
        paid = worth.settled + fields["amount_pence"]
        if fields["final"]:
            return Worth(paid, paid, open=False)
        return Worth(worth.value, paid, worth.open)
    if topic == CommitmentCancelled.topic:
        if not worth.open:
            return worth
        return Worth(worth.settled, worth.settled, open=False)
    return worth
