"""What `ledger report` shows, read at one signed checkpoint of the ledger.

`gather` seals the log and signs its head (ledger.auditlog.proofs.make_checkpoint),
runs the reads a report holds, then checks the log's head has not moved: every
figure then describes exactly the events the checkpoint covers (size and root),
so anyone can later prove which ledger state the report was computed at. If a
write lands meanwhile the whole report is read again (a few times, then
StoreUnavailable: the ledger is too busy to pin down).

The rows are the same dicts the JSON reads print (`ledger position --by
consortium`, `pools`, `quality`, `variation`, `holders`), so a report's figures
can be checked against them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from ledger.domain.errors import InvalidInput, NotFound, StoreUnavailable
from ledger.domain.values import FinancialYear
from ledger.store.eventstore import EventStore
from projections.joint_queries import JointReads

Row = dict[str, Any]
ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Pinned:
    """The signed checkpoint a report was computed at."""

    size: int
    root_base64: str
    root_hex: str
    origin: str
    signed_at: datetime | None
    note: str


@dataclass(slots=True)
class ReportData:
    """Every table and series of one report; rows as the JSON reads give them."""

    scope: str  # "consortium" | "allocator"
    code: str
    year: str
    as_of: date
    generated_at: datetime
    checkpoint: Pinned
    positions: list[Row] = field(default_factory=list)  # rolled up per element
    practices: list[Row] = field(default_factory=list)  # each member practice per element
    pools: list[Row] = field(default_factory=list)
    quality: list[Row] = field(default_factory=list)
    funnel: list[Row] = field(default_factory=list)
    timelines: dict[str, list[Row]] = field(default_factory=dict)  # consortium -> series
    holdings: list[Row] = field(default_factory=list)  # opt-outs and delegations in force


def gather(store: EventStore, *, consortium: str | None, allocator: str | None,
           year: str | None, now: datetime) -> ReportData:
    """Sign a checkpoint and read the report at it (module docstring).

    Exactly one of `consortium` and `allocator` (InvalidInput otherwise);
    NotFound for an unknown consortium or year.
    """
    from ledger.auditlog.proofs import make_checkpoint  # noqa: PLC0415 - audit tables

    if (consortium is None) == (allocator is None):
        raise InvalidInput("options", "give --consortium or --allocator (one of them)")
    if year is not None:  # before a checkpoint is signed for it
        JointReads(store, today=now.date()).require_budget_year(
            str(FinancialYear.parse(year)))
    for _ in range(ATTEMPTS):
        signed = make_checkpoint(store, now).signed
        cp = signed.checkpoint
        pinned = Pinned(size=cp.size, root_base64=base64.b64encode(cp.root).decode(),
                        root_hex=cp.root.hex(), origin=cp.origin, signed_at=cp.time,
                        note=signed.note)
        reads = JointReads(store, today=now.date())
        data = _read(reads, consortium=consortium, allocator=allocator, year=year,
                     pinned=pinned, now=now)
        if store.head() == cp.size:
            return data
    raise StoreUnavailable("report", f"the ledger kept changing while the report was read "
                                     f"({ATTEMPTS} tries): run it again when it is quieter")


def _read(reads: JointReads, *, consortium: str | None, allocator: str | None,
          year: str | None, pinned: Pinned, now: datetime) -> ReportData:
    if consortium is not None:
        head = reads.position(consortium=consortium, by="consortium", year=year)
        code = reads.consortium_code(consortium)
        fy, day = reads.year_and_day(year)
        data = ReportData("consortium", code, fy, day, now, pinned)
        data.positions = [r for r in head if r["consortium"] == code]
        data.practices = reads.position(consortium=code, year=fy)
        data.pools = reads.pools(consortium=code, year=fy)
        data.quality = reads.quality(consortium=code, year=fy)
        data.funnel = reads.funnel(consortium=code, year=fy)
        data.timelines = {code: reads.through_year(consortium=code, year=fy)}
        data.holdings = reads.holdings_in_force(consortium=code, year=fy)
        return data
    assert allocator is not None
    code = allocator.strip().upper()
    fy, day = reads.year_and_day(year)
    data = ReportData("allocator", code, fy, day, now, pinned)
    data.positions = [r for r in reads.position(by="allocator", year=fy)
                      if r["allocator"] == code]
    if not data.positions:
        raise NotFound("allocator", f"no budgets allocated by {code} in {fy}")
    data.practices = reads.position(by="consortium", year=fy)
    data.pools = reads.pools(year=fy)
    data.quality = reads.quality(year=fy)
    data.funnel = reads.funnel(year=fy)
    data.timelines = {c: reads.through_year(consortium=c, year=fy)
                      for c in dict.fromkeys(r["consortium"] for r in data.practices) if c}
    data.holdings = reads.holdings_in_force(year=fy)
    return data
