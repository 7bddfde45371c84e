"""variation: what each practice commits per element, and the population it serves.

The fold keeps two kinds of rows; the comparison with the consortium's median
and the outlier rule are computed at query time (projections/joint_queries.py),
over the few members of one consortium:

- `variation_populations`: every population figure of a practice, by the date
  it takes effect: one row per element of each `PracticeRegistered` and
  `ListSizeRecorded` (each carries the whole list size and weighted population,
  so a missing element means "no weighted figure", not "unchanged");
- `variation_commitments`: every commitment by ref, with its practice, year,
  element and what it is worth now (outstanding + settled, kept current
  through variations, settlements and cancellations:
  projections/commitment_value.py).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from ledger.domain.events import (
    CommitmentCancelled,
    CommitmentSettled,
    CommitmentVaried,
    ListSizeRecorded,
    PracticeRegistered,
    SpendCommitted,
)
from ledger.domain.values import ELEMENTS, format_weighted
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

# Weighted populations are exact decimals, kept as their text ("5044.162762"); the
# table's name changed with that (an older ledger rebuilds it: `projections rebuild`).
POPULATIONS = Table(
    "variation_population_figures",
    key=(text("practice"), day("effective_on"), integer("position"), text("element")),
    values=(text("weighted"), integer("list_size")),
)
COMMITMENTS = Table(
    "variation_commitments",
    key=(text("ref"),),
    values=(text("practice"), text("year"), text("element"), day("effective_on"),
            integer("value"), integer("settled"), flag("open")),
    indexes=(("year", "element"),),
)


def population(_state: State, item: Positioned) -> list[Change]:
    e = item.event
    assert isinstance(e, PracticeRegistered | ListSizeRecorded)
    # Events read back without validation carry element names and figures as strings.
    weighted = {str(k): format_weighted(v) for k, v in e.weighted_population.items()}
    return [
        Put(POPULATIONS, (e.practice, e.effective_on, item.position, str(element)),
            (weighted.get(str(element)), e.list_size))
        for element in ELEMENTS
    ]


def committed(_state: State, item: Positioned) -> list[Change]:
    e = item.event
    assert isinstance(e, SpendCommitted)
    return [Put(COMMITMENTS, (e.ref,),
                (e.practice, e.year, str(e.element), e.effective_on, *made(e.amount_pence)))]


def changed(state: State, item: Positioned) -> list[Change]:
    """A variation, settlement or cancellation: the commitment's worth follows."""
    e = item.event
    assert isinstance(e, CommitmentVaried | CommitmentSettled | CommitmentCancelled)
    row = state.get(COMMITMENTS, (e.ref,))
    if row is None:
        return []
    practice, year, element, on, value, settled, is_open = row
    worth = after(Worth(value, settled, bool(is_open)), e)
    if worth == (value, settled, is_open):
        return []
    return [Put(COMMITMENTS, (e.ref,), (practice, year, element, on, *worth))]


_ELEMENT_NAMES = tuple(str(element) for element in ELEMENTS)


class VariationBulk:
    """The applies above over stored fields, for a rebuild from zero."""

    def __init__(self, rows: Rows) -> None:
        populations, commitments = rows.puts(POPULATIONS), rows.puts(COMMITMENTS)
        known: dict[str, tuple[str, str, str, str, Value]] = {}  # ref -> where, worth

        def b_population(position: int, _v: int, f: dict[str, Any]) -> None:
            weighted = {str(k): format_weighted(v) for k, v in f["weighted_population"].items()}
            practice, on, size = f["practice"], f["effective_on"], f["list_size"]
            for element in _ELEMENT_NAMES:
                populations[(practice, on, position, element)] = (weighted.get(element), size)

        def b_committed(_p: int, _v: int, f: dict[str, Any]) -> None:
            practice, year, element, on, amount = (
                f["practice"], f["year"], f["element"], f["effective_on"], f["amount_pence"])
            known[f["ref"]] = (practice, year, element, on, (amount, 0, True))
            commitments[(f["ref"],)] = (practice, year, element, on, amount, 0, 1)

        def changing(rule: Callable[[Value, dict[str, Any]], Value]) -> BulkApply:
            def b_changed(_p: int, _v: int, f: dict[str, Any]) -> None:
                ref = f["ref"]
                row = known.get(ref)
                if row is None:
                    return
                practice, year, element, on, before = row
                worth = rule(before, f)
                if worth == before:
                    return
                known[ref] = (practice, year, element, on, worth)
                commitments[(ref,)] = (practice, year, element, on, worth[0], worth[1],
                                       1 if worth[2] else 0)
            return b_changed

        self.handlers: dict[str, BulkApply] = {
            PracticeRegistered.topic: b_population,
            ListSizeRecorded.topic: b_population,
            SpendCommitted.topic: b_committed,
            **{topic: changing(rule) for topic, rule in RULES.items()},
        }

    def end_batch(self) -> None:
        pass


VARIATION = Projection(
    name="variation",
    tables=(POPULATIONS, COMMITMENTS),
    applies={
        PracticeRegistered.topic: population,
        ListSizeRecorded.topic: population,
        SpendCommitted.topic: committed,
        CommitmentVaried.topic: changed,
        CommitmentSettled.topic: changed,
        CommitmentCancelled.topic: changed,
    },
    description="commitments and weighted population per practice and element",
    bulk=VariationBulk,
)


# --- peer review: pure statistics over one consortium's rates (used at query time) ----

MIN_MEMBERS_FOR_OUTLIERS = 4
OUTLIER_RULE = (
    "an outlier lies outside Q1 - 1.5 x IQR ... Q3 + 1.5 x IQR of its consortium's members' "
    "rates for the element (commitments per 1,000, or spend per 1,000); quartiles interpolate "
    "linearly between the sorted rates (numpy's default); with fewer than "
    f"{MIN_MEMBERS_FOR_OUTLIERS} members that have a population, no outliers are flagged"
)


@dataclass(frozen=True, slots=True)
class Spread:
    """The median and the Tukey fences of a set of rates; fences only from 4 rates up."""

    median: Fraction
    low: Fraction | None
    high: Fraction | None

    def outside(self, rate: Fraction) -> str:
        """'high', 'low' or '' for a rate against the fences."""
        if self.high is not None and rate > self.high:
            return "high"
        if self.low is not None and rate < self.low:
            return "low"
        return ""


def spread(rates: Sequence[Fraction]) -> Spread | None:
    """Median and fences of `rates`, exactly (no floating point); None when empty."""
    if not rates:
        return None
    ordered = sorted(rates)
    median = statistics.median(ordered)
    if len(ordered) < MIN_MEMBERS_FOR_OUTLIERS:
        return Spread(median, None, None)
    q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    iqr = q3 - q1
    return Spread(median, q1 - Fraction(3, 2) * iqr, q3 + Fraction(3, 2) * iqr)


def per_1000(amount: int, population: int | Decimal) -> Fraction | None:
    """`amount` per 1,000 of `population` (a weighted population is an exact decimal),
    exactly; None without a population."""
    if population <= 0:
        return None
    return Fraction(amount * 1000) / Fraction(population)
