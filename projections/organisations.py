"""organisations: practices, consortia, who was a member when, and risk pools.

The other read models join these rows at query time (a consortium's members on
a date, a practice's top-slice), so none of their folds depends on another's.
"""

from __future__ import annotations

from typing import Any

from ledger.domain.events import (
    ConsortiumFormed,
    ListSizeRecorded,
    PracticeClosed,
    PracticeJoined,
    PracticeLeft,
    PracticeRegistered,
    RiskPoolAgreed,
)
from projections.core import (
    BulkApply,
    Change,
    Delete,
    Positioned,
    Projection,
    Put,
    Rows,
    State,
    Table,
    day,
    integer,
    text,
)

PRACTICES = Table(
    "org_practices",
    key=(text("practice"),),
    values=(text("name"), text("allocator"), integer("list_size"), day("closed_on")),
)
CONSORTIA = Table("org_consortia", key=(text("consortium"),), values=(text("name"),))
MEMBERSHIPS = Table(
    "org_memberships",
    key=(text("consortium"), text("practice"), day("joined_on")),
    values=(day("left_on"),),
    indexes=(("practice",),),
)
# The open membership of a practice in a consortium, to close it when it leaves.
OPEN_MEMBERSHIPS = Table(
    "org_open_memberships",
    key=(text("consortium"), text("practice")),
    values=(day("joined_on"),),
)
RISK_POOLS = Table(
    "org_risk_pools",
    key=(text("consortium"), text("year")),
    values=(integer("basis_points"),),
)


def registered(_state: State, item: Positioned) -> list[Change]:
    e = item.event
    assert isinstance(e, PracticeRegistered)
    return [Put(PRACTICES, (e.practice,), (e.name, e.allocator, e.list_size, None))]


def list_size(state: State, item: Positioned) -> list[Change]:
    e = item.event
    assert isinstance(e, ListSizeRecorded)
    old = state.get(PRACTICES, (e.practice,))
    if old is None:
        return []
    return [Put(PRACTICES, (e.practice,), (old[0], old[1], e.list_size, old[3]))]


def closed(state: State, item: Positioned) -> list[Change]:
    e = item.event
    assert isinstance(e, PracticeClosed)
    old = state.get(PRACTICES, (e.practice,))
    if old is None:
        return []
    return [Put(PRACTICES, (e.practice,), (old[0], old[1], old[2], e.effective_on))]


def formed(_state: State, item: Positioned) -> list[Change]:
    e = item.event
    assert isinstance(e, ConsortiumFormed)
    return [Put(CONSORTIA, (e.consortium,), (e.name,))]


def joined(_state: State, item: Positioned) -> list[Change]:
    e = item.event
    assert isinstance(e, PracticeJoined)
    return [
        Put(MEMBERSHIPS, (e.consortium, e.practice, e.effective_on), (None,)),
        Put(OPEN_MEMBERSHIPS, (e.consortium, e.practice), (e.effective_on,)),
    ]


def left(state: State, item: Positioned) -> list[Change]:
    e = item.event
    assert isinstance(e, PracticeLeft)
    open_row = state.get(OPEN_MEMBERSHIPS, (e.consortium, e.practice))
    if open_row is None:
        return []
    return [
        Put(MEMBERSHIPS, (e.consortium, e.practice, open_row[0]), (e.effective_on,)),
        Delete(OPEN_MEMBERSHIPS, (e.consortium, e.practice)),
    ]


def pool(_state: State, item: Positioned) -> list[Change]:
    e = item.event
    assert isinstance(e, RiskPoolAgreed)
    return [Put(RISK_POOLS, (e.consortium, e.year), (e.top_slice_basis_points,))]


class OrganisationsBulk:
    """The applies above over stored fields, for a rebuild from zero."""

    def __init__(self, rows: Rows) -> None:
        practices = rows.puts(PRACTICES)
        consortia = rows.puts(CONSORTIA)
        memberships = rows.puts(MEMBERSHIPS)
        open_out = rows.puts(OPEN_MEMBERSHIPS)
        pools = rows.puts(RISK_POOLS)
        known: dict[tuple[Any, ...], tuple[Any, ...]] = {}  # practice rows so far
        open_now: dict[tuple[Any, ...], str] = {}  # open memberships: joined on

        def b_registered(_p: int, _v: int, f: dict[str, Any]) -> None:
            key = (f["practice"],)
            practices[key] = known[key] = (f["name"], f["allocator"], f["list_size"], None)

        def b_list_size(_p: int, _v: int, f: dict[str, Any]) -> None:
            key = (f["practice"],)
            old = known.get(key)
            if old is not None:
                practices[key] = known[key] = (old[0], old[1], f["list_size"], old[3])

        def b_closed(_p: int, _v: int, f: dict[str, Any]) -> None:
            key = (f["practice"],)
            old = known.get(key)
            if old is not None:
                practices[key] = known[key] = (old[0], old[1], old[2], f["effective_on"])

        def b_formed(_p: int, _v: int, f: dict[str, Any]) -> None:
            consortia[(f["consortium"],)] = (f["name"],)

        def b_joined(_p: int, _v: int, f: dict[str, Any]) -> None:
            on = f["effective_on"]
            memberships[(f["consortium"], f["practice"], on)] = (None,)
            key = (f["consortium"], f["practice"])
            open_now[key] = on
            open_out[key] = (on,)

        def b_left(_p: int, _v: int, f: dict[str, Any]) -> None:
            key = (f["consortium"], f["practice"])
            joined_on = open_now.pop(key, None)
            if joined_on is not None:
                memberships[(*key, joined_on)] = (f["effective_on"],)
                open_out[key] = None

        def b_pool(_p: int, _v: int, f: dict[str, Any]) -> None:
            pools[(f["consortium"], f["year"])] = (f["top_slice_basis_points"],)

        self.handlers: dict[str, BulkApply] = {
            PracticeRegistered.topic: b_registered,
            ListSizeRecorded.topic: b_list_size,
            PracticeClosed.topic: b_closed,
            ConsortiumFormed.topic: b_formed,
            PracticeJoined.topic: b_joined,
            PracticeLeft.topic: b_left,
            RiskPoolAgreed.topic: b_pool,
        }

    def end_batch(self) -> None:
        pass


ORGANISATIONS = Projection(
    name="organisations",
    tables=(PRACTICES, CONSORTIA, MEMBERSHIPS, OPEN_MEMBERSHIPS, RISK_POOLS),
    applies={
        PracticeRegistered.topic: registered,
        ListSizeRecorded.topic: list_size,
        PracticeClosed.topic: closed,
        ConsortiumFormed.topic: formed,
        PracticeJoined.topic: joined,
        PracticeLeft.topic: left,
        RiskPoolAgreed.topic: pool,
    },
    description="practices, consortia, memberships over time, risk pools",
    bulk=OrganisationsBulk,
)
