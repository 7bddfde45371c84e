"""Property-based tests: random command sequences against a Budget and a reference model.

Each test drives the real aggregate and an independent, deliberately naive model
of the rules (DESIGN §4 and "Rules in detail") with the same random commands,
including unauthorised actors and dates outside the year. The aggregate must
accept exactly what the model accepts, record nothing when it refuses, and
agree with the model afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import TypeVar

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ledger.domain.budget import Budget
from ledger.domain.errors import LedgerError
from ledger.domain.events import BudgetEvent, CommitmentVaried, SpendCommitted
from ledger.domain.values import ELEMENTS, Element
from tests.ledger.domain.builders import ALLOCATOR, ME, PRACTICE, YEAR, budget, ctx

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

FIRST, LAST = YEAR.first_day, YEAR.last_day
DAYS_IN_YEAR = (LAST - FIRST).days + 1
ALL_DAYS = [FIRST + timedelta(days=n) for n in range(DAYS_IN_YEAR)]
AUTHORISED = {ME, ALLOCATOR}
ACTORS = [ME] * 6 + [ALLOCATOR] * 3 + ["allocator:Q99", "practice:A81002", "consortium:16C",
                                      "auditor:jsmith"]
MOVED = (Element.ACUTE, Element.PRESCRIBING, Element.COMMUNITY)  # delegated and revoked
HOLDERS = ["practice:A81002", "practice:A81003", "consortium:16C", "consortium:07L", ME]

# Dates move forward through the year from step to step (by `advance` days, sometimes
# backwards to test backdating); now and then one jumps outside the year.
advances = st.integers(min_value=-40, max_value=25)
jumps = st.sampled_from([0] * 40 + [-60, -1000, 400])


def dated(steps: list[_Step]) -> list[_Step]:
    cursor, out = 0, []
    for step in steps:
        cursor = min(max(cursor + step.advance, 0), DAYS_IN_YEAR - 1)
        out.append(replace(step, day=FIRST + timedelta(days=cursor + step.jump)))
    return out


_Step = TypeVar("_Step", "HoldingStep", "SpendStep")


def in_year(day: date) -> bool:
    return FIRST <= day <= LAST


# --- holders -------------------------------------------------------------------------


@dataclass(frozen=True)
class HoldingStep:
    kind: str  # delegate | revoke | opt-out | opt-in
    actor: str
    advance: int = 0
    jump: int = 0
    day: date = FIRST
    elements: tuple[Element, ...] = ()
    holder: str = ""
    reason: str | None = None


_delegate = st.builds(
    HoldingStep, kind=st.just("delegate"), actor=st.sampled_from(ACTORS), advance=advances,
    jump=jumps, elements=st.lists(st.sampled_from(MOVED), unique=True, max_size=2).map(tuple),
    holder=st.sampled_from(HOLDERS))
_revoke = st.builds(
    HoldingStep, kind=st.just("revoke"), actor=st.sampled_from(ACTORS), advance=advances,
    jump=jumps, elements=st.lists(st.sampled_from(MOVED), unique=True, max_size=2).map(tuple))
_opt_out = st.builds(
    HoldingStep, kind=st.just("opt-out"), actor=st.sampled_from(ACTORS), advance=advances,
    jump=jumps, holder=st.sampled_from(HOLDERS), reason=st.sampled_from(["merger", None]))
_opt_in = st.builds(HoldingStep, kind=st.just("opt-in"), actor=st.sampled_from(ACTORS),
                    advance=advances, jump=jumps)
holding_steps = st.one_of(_delegate, _delegate, _revoke, _revoke, _revoke, _opt_out, _opt_in)


@dataclass
class HoldersModel:
    """Per element, the changes in recorded order; the last one on or before a day wins."""

    changes: dict[Element, list[tuple[date, str]]] = field(
        default_factory=lambda: {e: [] for e in ELEMENTS})
    opt_outs: list[tuple[date, str | None]] = field(default_factory=list)

    def holder(self, element: Element, day: date) -> str:
        current = ME
        for changed_on, holder in self.changes[element]:  # naive on purpose: a linear scan
            if changed_on <= day:
                current = holder
        return current

    def opted_out(self, day: date) -> str | None:
        current: str | None = None
        for changed_on, holder in self.opt_outs:
            if changed_on <= day:
                current = holder
        return current

    def not_before_last(self, elements: tuple[Element, ...], day: date) -> bool:
        return all(not self.changes[e] or day >= max(d for d, _ in self.changes[e])
                   for e in elements)

    def accepts(self, step: HoldingStep) -> bool:
        if step.actor not in AUTHORISED or not in_year(step.day):
            return False
        day = step.day
        if step.kind in ("delegate", "revoke"):
            if not step.elements or self.opted_out(day):
                return False
            if not self.not_before_last(step.elements, day):
                return False
            if step.kind == "delegate":
                return step.holder != ME and all(
                    self.holder(e, day) != step.holder for e in step.elements)
            return all(self.holder(e, day) != ME for e in step.elements)
        if not self.not_before_last(ELEMENTS, day):
            return False
        if step.kind == "opt-out":
            return bool(step.reason) and step.holder != ME and not self.opted_out(day)
        return self.opted_out(day) is not None

    def apply(self, step: HoldingStep) -> None:
        if step.kind == "delegate":
            for e in step.elements:
                self.changes[e].append((step.day, step.holder))
        elif step.kind == "revoke":
            for e in step.elements:
                self.changes[e].append((step.day, ME))
        elif step.kind == "opt-out":
            self.opt_outs.append((step.day, step.holder))
            for e in ELEMENTS:
                self.changes[e].append((step.day, step.holder))
        else:
            self.opt_outs.append((step.day, None))
            for e in ELEMENTS:
                self.changes[e].append((step.day, ME))


def run_holding_step(b: Budget, step: HoldingStep) -> None:
    context = ctx(step.actor, step.day, reason=step.reason)
    if step.kind == "delegate":
        b.delegate(context, list(step.elements), step.holder)
    elif step.kind == "revoke":
        b.revoke(context, list(step.elements))
    elif step.kind == "opt-out":
        b.opt_out(context, step.holder)
    else:
        b.opt_in(context)


def attempt(b: Budget, action: object) -> bool:
    """Run `action`; True if accepted. A refusal must leave no pending event behind."""
    assert callable(action)
    before, version = len(b.pending_events), b.version
    try:
        action()
    except LedgerError:
        assert len(b.pending_events) == before, "a refused command recorded events"
        assert b.version == version
        return False
    assert len(b.pending_events) == before + 1, "an accepted command records one event"
    return True


@SETTINGS
@given(steps=st.lists(holding_steps, min_size=5, max_size=30))
def test_every_element_has_exactly_the_modelled_holder_every_day(
    steps: list[HoldingStep],
) -> None:
    b = budget(saved=False)
    model = HoldersModel()
    for step in dated(steps):
        expected = model.accepts(step)
        accepted = attempt(b, lambda s=step: run_holding_step(b, s))
        assert accepted == expected, step
        if accepted:
            model.apply(step)
    replayed = Budget.from_events(b.id, list(b.pending_events))
    for day in ALL_DAYS:
        holders = b.holders_on(day)
        assert set(holders) == set(ELEMENTS)
        for element in ELEMENTS:
            assert holders[element] == model.holder(element, day), (day, element)
        assert replayed.holders_on(day) == holders
        assert b.opted_out_to(day) == model.opted_out(day)


@SETTINGS
@given(steps=st.lists(holding_steps, min_size=5, max_size=30))
def test_the_accountable_practice_never_changes(steps: list[HoldingStep]) -> None:
    b = budget(saved=False)
    for step in dated(steps):
        attempt(b, lambda s=step: run_holding_step(b, s))
        assert b.accountable == ME
        assert b.practice == PRACTICE
    events = b.pending_events
    assert all(isinstance(e, BudgetEvent) and e.practice == PRACTICE for e in events)
    assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
    assert Budget.from_events(b.id, list(events)).accountable == ME


# --- spending on hard and indicative budgets -----------------------------------------

ELEMENTS_USED = (Element.ACUTE, Element.PRESCRIBING)
REFS = [f"R-{n}" for n in range(3)]
SPENDERS = [ME] * 8 + ["consortium:16C", ALLOCATOR]
amounts = st.integers(min_value=-2, max_value=4_000)


@dataclass(frozen=True)
class SpendStep:
    kind: str  # commit | vary | settle | final | cancel | adjust | harden | soften
    actor: str
    advance: int = 0
    jump: int = 0
    day: date = FIRST
    ref: str = ""
    element: Element = Element.ACUTE
    amount: int = 0


_spend = [
    st.builds(SpendStep, kind=st.just(kind), actor=st.sampled_from(SPENDERS), advance=advances,
              jump=jumps, ref=st.sampled_from(REFS), element=st.sampled_from(ELEMENTS_USED),
              amount=amounts)
    for kind in ("commit", "commit", "vary", "vary", "settle", "settle", "final", "cancel")
]
_adjust = st.builds(SpendStep, kind=st.just("adjust"), actor=st.just(ALLOCATOR),
                    advance=advances, jump=jumps, element=st.sampled_from(ELEMENTS_USED),
                    amount=st.integers(min_value=-8_000, max_value=4_000))
_status = st.builds(SpendStep, kind=st.sampled_from(["harden", "soften"]),
                    actor=st.sampled_from([ALLOCATOR, ALLOCATOR, ME]), advance=advances,
                    jump=jumps)
spend_steps = st.one_of(*_spend, _adjust, _status)


@dataclass
class Line:
    element: Element
    day: date
    amount: int
    settled: int = 0
    open: bool = True

    @property
    def outstanding(self) -> int:
        return self.amount - self.settled if self.open else 0


@dataclass
class SpendModel:
    allocated: dict[Element, int]
    status: list[tuple[date, bool]] = field(default_factory=list)
    lines: dict[str, Line] = field(default_factory=dict)

    def hard_on(self, day: date) -> bool:
        current = False
        for changed_on, hard in self.status:
            if changed_on <= day:
                current = hard
        return current

    def hard_on_or_after(self, day: date) -> bool:
        return self.hard_on(day) or any(d > day and hard for d, hard in self.status)

    @property
    def hard_now(self) -> bool:
        return bool(self.status) and self.status[-1][1]

    def used(self, element: Element) -> int:
        return sum(x.outstanding + x.settled for x in self.lines.values() if x.element == element)

    def fits(self, element: Element, extra: int, day: date) -> bool:
        over = self.used(element) + extra > self.allocated[element]
        return not (extra > 0 and over and self.hard_on_or_after(day))

    def overspend(self, element: Element, extra: int) -> int:
        return max(self.used(element) + extra - self.allocated[element], 0)

    def accepts(self, s: SpendStep) -> bool:
        if not in_year(s.day):
            return False
        if s.kind in ("harden", "soften"):
            if s.actor != ALLOCATOR or (self.status and s.day < self.status[-1][0]):
                return False
            if s.kind == "soften":
                return self.hard_on(s.day)
            return not self.hard_on(s.day) and all(
                self.used(e) <= self.allocated[e] for e in ELEMENTS_USED)
        if s.kind == "adjust":
            after = self.allocated[s.element] + s.amount
            if s.amount == 0 or after < 0:
                return False
            return not (s.amount < 0 and self.hard_on_or_after(s.day)
                        and after < self.used(s.element))
        if s.actor != ME:
            return False
        if s.kind == "commit":
            return s.ref not in self.lines and s.amount > 0 and self.fits(s.element, s.amount,
                                                                           s.day)
        line = self.lines.get(s.ref)
        if line is None or not line.open or s.day < line.day:
            return False
        if s.kind == "vary":
            return (s.amount > 0 and s.amount >= line.settled and s.amount != line.amount
                    and self.fits(line.element, s.amount - line.amount, s.day))
        if s.kind in ("settle", "final"):
            return 0 < s.amount <= line.outstanding
        return True  # cancel

    def apply(self, s: SpendStep) -> None:
        if s.kind in ("harden", "soften"):
            self.status.append((s.day, s.kind == "harden"))
        elif s.kind == "adjust":
            self.allocated[s.element] += s.amount
        elif s.kind == "commit":
            self.lines[s.ref] = Line(s.element, s.day, s.amount)
        elif s.kind == "vary":
            self.lines[s.ref].amount = s.amount
        elif s.kind in ("settle", "final"):
            line = self.lines[s.ref]
            line.settled += s.amount
            if s.kind == "final":
                line.amount, line.open = line.settled, False
        else:
            line = self.lines[s.ref]
            line.amount, line.open = line.settled, False


def run_spend_step(b: Budget, s: SpendStep) -> None:
    context = ctx(s.actor, s.day, reason="because")
    if s.kind == "commit":
        b.commit(context, ref=s.ref, element=s.element, amount=s.amount, provider="RTR",
                 service="Hip")
    elif s.kind == "vary":
        b.vary(context, s.ref, s.amount)
    elif s.kind in ("settle", "final"):
        b.settle(context, s.ref, s.amount, final=s.kind == "final")
    elif s.kind == "cancel":
        b.cancel(context, s.ref)
    elif s.kind == "adjust":
        b.adjust(context, s.element, s.amount)
    elif s.kind == "harden":
        b.make_hard(context)
    else:
        b.make_indicative(context)


def check_totals(b: Budget, model: SpendModel) -> None:
    for element in ELEMENTS:
        mine = [c for c in b.commitments.values() if c.element == element]
        assert b.outstanding[element] == sum(c.outstanding for c in mine)
        assert b.settled[element] == sum(c.settled for c in mine)
    for element in ELEMENTS_USED:
        assert b.allocated[element] == model.allocated[element]
        assert b.used(element) == model.used(element)
        lines = [x for x in model.lines.values() if x.element == element]
        assert b.outstanding[element] == sum(x.outstanding for x in lines)
        assert b.settled[element] == sum(x.settled for x in lines)


@SETTINGS
@example(  # regression: a commitment backdated before the hardening date overspent it
    hard=False, allocations=(1000, 0),
    steps=[SpendStep("harden", ALLOCATOR, advance=100),
           SpendStep("commit", ME, advance=-50, ref="R-0", amount=2000)],
)
@example(  # regression: a reduction on an overspent hard period was refused
    hard=False, allocations=(1000, 0),
    steps=[SpendStep("harden", ALLOCATOR, advance=100),
           SpendStep("commit", ME, advance=10, ref="R-0", amount=500),
           SpendStep("soften", ALLOCATOR, advance=100),
           SpendStep("commit", ME, advance=10, ref="R-1", amount=1000),
           SpendStep("vary", ME, advance=-100, ref="R-0", amount=400)],
)
@example(  # regression: a variation to zero crashed instead of being refused
    hard=False, allocations=(1000, 0),
    steps=[SpendStep("commit", ME, ref="R-0", amount=500),
           SpendStep("vary", ME, ref="R-0", amount=0)],
)
@given(
    hard=st.booleans(),
    allocations=st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)),
    steps=st.lists(spend_steps, min_size=10, max_size=40),
)
def test_spending_matches_the_model_and_hard_budgets_are_never_overspent(
    hard: bool, allocations: tuple[int, int], steps: list[SpendStep]
) -> None:
    allocated = dict(zip(ELEMENTS_USED, allocations, strict=True))
    b = budget({**dict.fromkeys(ELEMENTS, 0), **allocated},
               hard_from="2024-04-01" if hard else None)
    model = SpendModel(dict(allocated), [(FIRST, True)] if hard else [])
    for step in dated(steps):
        expected = model.accepts(step)
        overspend: int | None = None
        if expected and step.kind in ("commit", "vary"):
            line = model.lines.get(step.ref)
            extra = step.amount - (line.amount if line else 0)
            element = line.element if line else step.element
            if extra > 0:
                overspend = model.overspend(element, extra)
        accepted = attempt(b, lambda s=step: run_spend_step(b, s))
        assert accepted == expected, step
        if not accepted:
            continue
        event = b.pending_events[-1]
        if isinstance(event, SpendCommitted | CommitmentVaried) and overspend is not None:
            assert event.overspend_pence == overspend, "indicative overspend is flagged"
        model.apply(step)
        check_totals(b, model)
        if b.status and b.status[-1][2] == "hard":
            for element in ELEMENTS:
                assert b.used(element) <= b.available(element) + b.drawn[element], element
    assert model.hard_now == (bool(b.status) and b.status[-1][2] == "hard")
