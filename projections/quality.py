"""quality: the quality standards each consortium adopted, and the commitments tagged with them.

Two kinds of rows, keyed so the fold only writes what one event says:

- `quality_adopted`: (consortium, year, QS code) -> when it was adopted;
- `quality_tags`: (commitment ref, QS code) -> the accountable practice, the
  budget year, the commitment's effective date and what it is worth now
  (outstanding + settled, kept current through variations, settlements and
  cancellations: projections/commitment_value.py).

`quality_commitments` remembers each tagged commitment's codes and worth, so a
later variation, settlement or cancellation can update its tag rows.

Which consortium a commitment counts for is decided at query time
(projections/joint_queries.py): the consortium(s) its practice was a member of
on the commitment's effective date, from the `organisations` memberships. A
membership recorded late (backdated) therefore still attributes the
commitment correctly, and this fold depends on no other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger.domain.events import (
    CommitmentCancelled,
    CommitmentSettled,
    CommitmentVaried,
    QualityStandardsAdopted,
    SpendCommitted,
)
from projections.commitment_value import RULES, Value, Worth, after, made
from projections.core import (
    BulkApply,
    Change,
    Positioned,
    Projection,
    Put,
    Rows,
    State,
    Table,
    day,
    flag,
    integer,
    text,
)

ADOPTED = Table(
    "quality_adopted",
    key=(text("consortium"), text("year"), text("qs_code")),
    values=(day("adopted_on"), integer("position")),
    indexes=(("year",),),
)
TAGS = Table(
    "quality_tags",
    key=(text("ref"), text("qs_code")),
    values=(text("practice"), text("year"), day("effective_on"), integer("value")),
    indexes=(("year", "qs_code"),),
)
# ref -> what its tag rows need (codes space-separated) and its worth; read back by the fold.
TAGGED = Table(
    "quality_commitments",
    key=(text("ref"),),
    values=(text("codes"), text("practice"), text("year"), day("effective_on"),
            integer("value"), integer("settled"), flag("open")),
)


def adopted(_state: State, item: Positioned) -> list[Change]:
    e = item.event
    assert isinstance(e, QualityStandardsAdopted)
    return [Put(ADOPTED, (e.consortium, e.year, str(code)), (e.effective_on, item.position))
            for code in e.codes]


def committed(_state: State, item: Positioned) -> list[Change]:
    e = item.event
    assert isinstance(e, SpendCommitted)
    codes = tuple(dict.fromkeys(str(c) for c in e.qs_codes))
    if not codes:
        return []
    worth = made(e.amount_pence)
    where = (e.practice, e.year, e.effective_on)
    changes: list[Change] = [Put(TAGGED, (e.ref,), (" ".join(codes), *where, *worth))]
    changes += [Put(TAGS, (e.ref, code), (*where, worth.value)) for code in codes]
    return changes


def changed(state: State, item: Positioned) -> list[Change]:
    """A variation, settlement or cancellation of a commitment: its tags' worth follows."""
    e = item.event
    assert isinstance(e, CommitmentVaried | CommitmentSettled | CommitmentCancelled)
    row = state.get(TAGGED, (e.ref,))
    if row is None:  # not tagged with any standard
        return []
    codes, practice, year, on, value, settled, is_open = row
    worth = after(Worth(value, settled, bool(is_open)), e)
    where = (practice, year, on)
    changes: list[Change] = [Put(TAGGED, (e.ref,), (codes, *where, *worth))]
    if worth.value != value:
        changes += [Put(TAGS, (e.ref, code), (*where, worth.value)) for code in codes.split()]
    return changes


class QualityBulk:
    """The applies above over stored fields, for a rebuild from zero."""

    def __init__(self, rows: Rows) -> None:
        adopted_out, tags, tagged_out = rows.puts(ADOPTED), rows.puts(TAGS), rows.puts(TAGGED)
        # ref -> (codes space-separated, practice, year, effective_on, worth)
        tagged: dict[str, tuple[str, str, str, str, Value]] = {}

        def b_adopted(position: int, _v: int, f: dict[str, Any]) -> None:
            consortium, year, on = f["consortium"], f["year"], f["effective_on"]
            for code in f["codes"]:
                adopted_out[(consortium, year, str(code))] = (on, position)

        def b_committed(_p: int, _v: int, f: dict[str, Any]) -> None:
            listed = f["qs_codes"]
            if not listed:  # most commitments: no standard, no rows
                return
            codes = tuple(dict.fromkeys(str(c) for c in listed))
            ref, practice, year, on = f["ref"], f["practice"], f["year"], f["effective_on"]
            amount = f["amount_pence"]
            joined = " ".join(codes)
            tagged[ref] = (joined, practice, year, on, (amount, 0, True))
            tagged_out[(ref,)] = (joined, practice, year, on, amount, 0, 1)
            for code in codes:
                tags[(ref, code)] = (practice, year, on, amount)

        def changing(rule: Callable[[Value, dict[str, Any]], Value]) -> BulkApply:
            def b_changed(_p: int, _v: int, f: dict[str, Any]) -> None:
                ref = f["ref"]
                row = tagged.get(ref)
                if row is None:
                    return
                codes, practice, year, on, before = row
                worth = rule(before, f)
                tagged[ref] = (codes, practice, year, on, worth)
                value = worth[0]
                tagged_out[(ref,)] = (codes, practice, year, on, value, worth[1],
                                      1 if worth[2] else 0)
                if value != before[0]:
                    for code in codes.split():
                        tags[(ref, code)] = (practice, year, on, value)
            return b_changed

        self.handlers: dict[str, BulkApply] = {
            QualityStandardsAdopted.topic: b_adopted,
            SpendCommitted.topic: b_committed,
            **{topic: changing(rule) for topic, rule in RULES.items()},
        }

    def end_batch(self) -> None:
        pass


QUALITY = Projection(
    name="quality",
    tables=(ADOPTED, TAGS, TAGGED),
    applies={
        QualityStandardsAdopted.topic: adopted,
        SpendCommitted.topic: committed,
        CommitmentVaried.topic: changed,
        CommitmentSettled.topic: changed,
        CommitmentCancelled.topic: changed,
    },
    description="adopted quality standards; commitments and spend tagged with each",
    bulk=QualityBulk,
)
