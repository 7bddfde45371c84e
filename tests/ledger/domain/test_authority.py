"""Invariant 3: every write is checked against the actor's role, for each command.

Each case names a command, runs it against fresh aggregates as each actor in
turn, and expects exactly the listed actors to succeed; every other actor is
refused with `NotAuthorised` and the aggregates record nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from ledger.domain.aggregate import Aggregate
from ledger.domain.budget import Budget
from ledger.domain.errors import NotAuthorised
from ledger.domain.organisations import Consortium, Practice
from ledger.domain.values import Element, FinancialYear
from tests.ledger.domain.builders import ALLOCATOR, YEAR, budget, commit, consortium, ctx, practice

ACTORS = (
    "allocator:Q71",
    "allocator:Q99",
    "practice:A81001",
    "practice:A81002",
    "consortium:16C",
    "consortium:07L",
    "auditor:jsmith",
)
PRACTICE_OR_ITS_ALLOCATOR = {"allocator:Q71", "practice:A81001"}
OFFICER_OR_ALLOCATOR = {"consortium:16C", "allocator:Q71", "allocator:Q99"}


@dataclass
class World:
    practice: Practice
    consortium: Consortium
    budget: Budget

    @property
    def aggregates(self) -> tuple[Aggregate, ...]:
        return (self.practice, self.consortium, self.budget)


def world() -> World:
    """A81001's budget with acute held by consortium 16C from 1 July, and R-1 committed by it."""
    owner = practice()
    group = consortium("16C", "A81001")
    allocated = budget()
    allocated.delegate(ctx(ALLOCATOR, "2024-07-01"), [Element.ACUTE], "consortium:16C")
    commit(allocated, "R-P", 1000_00, element=Element.PRESCRIBING, on="2024-06-01")
    commit(allocated, "R-C", 1000_00, element=Element.ACUTE, actor="consortium:16C",
           on="2024-07-01")
    allocated.collect_events()
    return World(owner, group, allocated)


Action = Callable[[World, str], object]


def _register(w: World, actor: str) -> None:
    Practice.register(ctx(actor), code="B82001", name="New", list_size=1, weighted_population={})


def _soften(w: World, actor: str) -> None:
    w.budget.make_hard(ctx(ALLOCATOR, "2024-08-01"))
    w.budget.collect_events()
    w.budget.make_indicative(ctx(actor, "2024-09-01"))


def _opt_in(w: World, actor: str) -> None:
    w.budget.opt_out(ctx(ALLOCATOR, "2024-08-01", reason="merger"), "practice:A81002")
    w.budget.collect_events()
    w.budget.opt_in(ctx(actor, "2024-09-01"))


def _form(w: World, actor: str) -> None:
    Consortium.form(ctx(actor), code="16C", name="T", officer="Dr B")

CASES: dict[str, tuple[Action, set[str]]] = {
    "register a practice": (_register, {"allocator:Q71", "allocator:Q99"}),
    "record a list size": (
        lambda w, a: w.practice.record_list_size(ctx(a), 5000, {}), {"allocator:Q71"}),
    "close a practice": (lambda w, a: w.practice.close(ctx(a)), {"allocator:Q71"}),
    "allocate": (
        lambda w, a: Budget.empty("A81001", FinancialYear(2025)).allocate(
            ctx(a, "2025-04-01"), w.practice, {Element.ACUTE: 100}),
        {"allocator:Q71"},
    ),
    "adjust": (
        lambda w, a: w.budget.adjust(ctx(a, reason="recount"), Element.ACUTE, 500),
        {"allocator:Q71"},
    ),
    "harden": (lambda w, a: w.budget.make_hard(ctx(a, "2024-08-01")), {"allocator:Q71"}),
    "soften": (_soften, {"allocator:Q71"}),
    "delegate": (
        lambda w, a: w.budget.delegate(ctx(a, "2024-08-01"), [Element.COMMUNITY],
                                       "consortium:16C"),
        PRACTICE_OR_ITS_ALLOCATOR,
    ),
    "revoke": (
        lambda w, a: w.budget.revoke(ctx(a, "2024-08-01"), [Element.ACUTE]),
        PRACTICE_OR_ITS_ALLOCATOR,
    ),
    "opt out": (
        lambda w, a: w.budget.opt_out(ctx(a, "2024-08-01", reason="merger"), "practice:A81002"),
        PRACTICE_OR_ITS_ALLOCATOR,
    ),
    "opt in": (_opt_in, PRACTICE_OR_ITS_ALLOCATOR),
    "commit against an element the practice holds": (
        lambda w, a: commit(w.budget, "R-new", 100, element=Element.PRESCRIBING, actor=a),
        {"practice:A81001"},
    ),
    "commit against an element delegated to a consortium": (
        lambda w, a: commit(w.budget, "R-new", 100, element=Element.ACUTE, actor=a,
                            on="2024-07-01"),
        {"consortium:16C"},
    ),
    "commit before the delegation takes effect": (
        lambda w, a: commit(w.budget, "R-new", 100, element=Element.ACUTE, actor=a,
                            on="2024-06-30"),
        {"practice:A81001"},
    ),
    "vary": (lambda w, a: w.budget.vary(ctx(a, "2024-07-02"), "R-C", 2000_00),
             {"consortium:16C"}),
    "settle": (lambda w, a: w.budget.settle(ctx(a, "2024-07-02"), "R-C", 10_00),
               {"consortium:16C"}),
    "cancel": (lambda w, a: w.budget.cancel(ctx(a, "2024-07-02"), "R-P"),
               {"practice:A81001"}),
    "form a consortium": (_form, OFFICER_OR_ALLOCATOR),
    "join a consortium": (lambda w, a: w.consortium.join(ctx(a), "A81002"),
                          OFFICER_OR_ALLOCATOR),
    "leave a consortium": (lambda w, a: w.consortium.leave(ctx(a, "2024-08-01"), "A81001"),
                           OFFICER_OR_ALLOCATOR),
    "agree a risk pool": (lambda w, a: w.consortium.agree_risk_pool(ctx(a), YEAR, 100),
                          OFFICER_OR_ALLOCATOR),
    "adopt quality standards": (
        lambda w, a: w.consortium.adopt_standards(ctx(a), YEAR, ["QS1"]), OFFICER_OR_ALLOCATOR),
}


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("command", list(CASES))
def test_only_the_authorised_roles_may_issue_each_command(command: str, actor: str) -> None:
    action, allowed = CASES[command]
    w = world()
    if actor in allowed:
        action(w, actor)
    else:
        with pytest.raises(NotAuthorised) as refused:
            action(w, actor)
        assert refused.value.rule == "authority"
        assert actor in str(refused.value)
        assert all(not a.pending_events for a in w.aggregates)


def test_an_auditor_is_refused_every_write() -> None:
    for command, (action, allowed) in CASES.items():
        assert "auditor:jsmith" not in allowed, command
        with pytest.raises(NotAuthorised):
            action(world(), "auditor:jsmith")


def test_the_allocator_may_not_spend_a_practice_budget() -> None:
    w = world()
    with pytest.raises(NotAuthorised, match="only the holder of prescribing"):
        commit(w.budget, "R-x", 100, element=Element.PRESCRIBING, actor=ALLOCATOR)
