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

from collections.abc import Callable
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
    rule = RULES.get(event.topic)
    return worth if rule is None else Worth._make(rule(worth, event.__dict__))


# (value, settled, open): a `Worth`, or the same as a plain tuple.
Value = tuple[int, int, bool]


def _varied(worth: Value, fields: dict[str, Any]) -> Value:
    return (fields["amount_pence"], worth[1], worth[2])


def _settled(worth: Value, fields: dict[str, Any]) -> Value:
    paid = worth[1] + fields["amount_pence"]
    if fields["final"]:
        return (paid, paid, False)
    return (worth[0], paid, worth[2])


def _cancelled(worth: Value, _fields: dict[str, Any]) -> Value:
    if not worth[2]:
        return worth
    return (worth[1], worth[1], False)


# Per topic of a commitment's later event: its worth after it, given the event's fields
# (stored or validated).
RULES: dict[str, Callable[[Value, dict[str, Any]], Value]] = {
    CommitmentVaried.topic: _varied,
    CommitmentSettled.topic: _settled,
    CommitmentCancelled.topic: _cancelled,
}
