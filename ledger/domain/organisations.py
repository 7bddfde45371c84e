"""Practices and consortia: who exists, who belongs where, and when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from ledger.domain.aggregate import Aggregate, Context, applies
from ledger.domain.errors import NotAuthorised, RuleViolation
from ledger.domain.events import (
    ConsortiumFormed,
    ListSizeRecorded,
    PracticeClosed,
    PracticeJoined,
    PracticeLeft,
    PracticeRegistered,
    QualityStandardsAdopted,
    RiskPoolAgreed,
    consortium_stream,
    practice_stream,
)
from ledger.domain.values import Element, FinancialYear, Role


class Practice(Aggregate):
    """A GP practice: registered once by an allocator, who alone may fund it."""

    code: str
    name: str
    list_size: int
    weighted_population: dict[Element, Decimal]
    allocator: str
    registered_on: date
    closed_on: date | None
    # (effective on, list size, weighted population) of every figure recorded, in order.
    figures: list[tuple[date, int, dict[Element, Decimal]]]

    @classmethod
    def register(
        cls,
        context: Context,
        *,
        code: str,
        name: str,
        list_size: int,
        weighted_population: dict[Element, Decimal],
    ) -> Practice:
        context.require_role(Role.ALLOCATOR, what="register practices")
        practice = cls(practice_stream(code))
        practice.trigger(
            PracticeRegistered,
            context,
            practice=code,
            name=name,
            list_size=list_size,
            weighted_population=weighted_population,
            allocator=context.actor.code,
        )
        return practice

    @applies(PracticeRegistered)
    def _registered(self, event: PracticeRegistered) -> None:
        self.registered_on = event.effective_on
        self.code = event.practice
        self.name = event.name
        self.list_size = event.list_size
        self.weighted_population = dict(event.weighted_population)
        self.allocator = event.allocator
        self.closed_on = None
        self.figures = [(event.effective_on, event.list_size, dict(event.weighted_population))]

    def require_allocator(self, context: Context, what: str) -> None:
        actor = context.actor
        if actor.role is not Role.ALLOCATOR or actor.code != self.allocator:
            raise NotAuthorised(
                "authority",
                f"only allocator:{self.allocator}, which registered {self.code}, may {what}; "
                f"{actor} may not",
            )

    def record_list_size(
        self, context: Context, list_size: int, weighted_population: dict[Element, Decimal]
    ) -> None:
        """The list size in force from the effective date; the weighted figures given
        replace those elements' figures, the other elements keep theirs (the event
        carries every element's figure)."""
        self.require_allocator(context, "record its list size")
        self.require_registered_by(context.effective_on, "record a list size")
        self.require_open_on(context.effective_on)
        self.trigger(
            ListSizeRecorded,
            context,
            practice=self.code,
            list_size=list_size,
            weighted_population=self.weighted_population | weighted_population,
        )

    @applies(ListSizeRecorded)
    def _list_size(self, event: ListSizeRecorded) -> None:
        self.list_size = event.list_size
        self.weighted_population = dict(event.weighted_population)
        self.figures.append((event.effective_on, event.list_size,
                             dict(event.weighted_population)))

    def weighted_population_on(self, day: date) -> dict[Element, Decimal]:
        """The weighted populations in force on `day`: the latest figures effective by
        then (of two on one date, the later recorded)."""
        in_force = [f for f in self.figures if f[0] <= day]
        if not in_force:
            return {}
        return max(enumerate(in_force), key=lambda item: (item[1][0], item[0]))[1][2]

    def close(self, context: Context) -> None:
        self.require_allocator(context, "close it")
        if self.closed_on is not None:
            raise RuleViolation("practice-open", f"{self.code} closed on {self.closed_on}")
        self.require_registered_by(context.effective_on, "close it")
        self.trigger(PracticeClosed, context, practice=self.code)

    @applies(PracticeClosed)
    def _closed(self, event: PracticeClosed) -> None:
        self.closed_on = event.effective_on

    def require_registered_by(self, day: date, what: str) -> None:
        """Nothing about a practice may take effect before it was registered."""
        if day < self.registered_on:
            raise RuleViolation(
                "effective-date",
                f"{self.code} was registered on {self.registered_on}; cannot {what} "
                f"effective {day}, before it was registered",
            )

    def require_open_on(self, day: date) -> None:
        if self.closed_on is not None and day >= self.closed_on:
            raise RuleViolation("practice-open", f"{self.code} closed on {self.closed_on}")


@dataclass(frozen=True, slots=True)
class Membership:
    joined_on: date
    left_on: date | None = None

    def covers(self, day: date) -> bool:
        return self.joined_on <= day and (self.left_on is None or day < self.left_on)


class Consortium(Aggregate):
    """Practices commissioning together, with joint accountability arrangements."""

    code: str
    name: str
    accountable_officer: str
    formed_on: date
    memberships: dict[str, list[Membership]]
    top_slices: dict[str, int]
    adopted_standards: dict[str, tuple[str, ...]]

    @classmethod
    def form(cls, context: Context, *, code: str, name: str, officer: str) -> Consortium:
        require_officer_or_allocator(context, code, "form it")
        consortium = cls(consortium_stream(code))
        consortium.trigger(
            ConsortiumFormed, context, consortium=code, name=name, accountable_officer=officer
        )
        return consortium

    @applies(ConsortiumFormed)
    def _formed(self, event: ConsortiumFormed) -> None:
        self.formed_on = event.effective_on
        self.code = event.consortium
        self.name = event.name
        self.accountable_officer = event.accountable_officer
        self.memberships = {}
        self.top_slices = {}
        self.adopted_standards = {}

    def require_formed_by(self, day: date, what: str) -> None:
        """Nothing about a consortium may take effect before it was formed."""
        if day < self.formed_on:
            raise RuleViolation(
                "effective-date",
                f"consortium {self.code} was formed on {self.formed_on}; cannot {what} "
                f"effective {day}, before it was formed",
            )

    def is_member(self, practice: str, day: date) -> bool:
        return any(m.covers(day) for m in self.memberships.get(practice, ()))

    def leaves_on(self, practice: str, day: date) -> date | None:
        """When the membership covering `day` ends, if its end is already recorded."""
        for membership in self.memberships.get(practice, ()):
            if membership.covers(day):
                return membership.left_on
        return None

    def members_on(self, day: date) -> list[str]:
        return sorted(p for p in self.memberships if self.is_member(p, day))

    def join(self, context: Context, practice: str) -> None:
        require_officer_or_allocator(context, self.code, "manage its membership")
        day = context.effective_on
        history = self.memberships.get(practice, [])
        if history and history[-1].left_on is None:
            raise RuleViolation(
                "membership", f"{practice} is already a member of {self.code} "
                f"(since {history[-1].joined_on})"
            )
        if history and history[-1].left_on is not None and day < history[-1].left_on:
            raise RuleViolation(
                "membership", f"{practice} left {self.code} on {history[-1].left_on}; "
                "it can rejoin on or after that date"
            )
        self.trigger(PracticeJoined, context, consortium=self.code, practice=practice)

    @applies(PracticeJoined)
    def _joined(self, event: PracticeJoined) -> None:
        self.memberships.setdefault(event.practice, []).append(Membership(event.effective_on))

    def leave(self, context: Context, practice: str) -> None:
        require_officer_or_allocator(context, self.code, "manage its membership")
        history = self.memberships.get(practice, [])
        if not history or history[-1].left_on is not None:
            raise RuleViolation("membership", f"{practice} is not a member of {self.code}")
        if context.effective_on <= history[-1].joined_on:
            raise RuleViolation(
                "membership", f"{practice} joined {self.code} on {history[-1].joined_on}; "
                "it can leave only after that date"
            )
        self.trigger(PracticeLeft, context, consortium=self.code, practice=practice)

    @applies(PracticeLeft)
    def _left(self, event: PracticeLeft) -> None:
        history = self.memberships[event.practice]
        history[-1] = Membership(history[-1].joined_on, event.effective_on)

    def agree_risk_pool(self, context: Context, year: FinancialYear, basis_points: int) -> None:
        require_officer_or_allocator(context, self.code, "agree its risk pool")
        if not 0 < basis_points <= 1000:
            raise RuleViolation("top-slice", "the top-slice must be more than 0% and at most 10%")
        if str(year) in self.top_slices:
            raise RuleViolation(
                "risk-pool",
                f"{self.code} already agreed a {self.top_slices[str(year)] / 100:g}% risk pool "
                f"for {year}",
            )
        if context.effective_on not in year:
            raise RuleViolation("effective-date", f"{context.effective_on} is outside {year}")
        if not self.members_on(context.effective_on):
            raise RuleViolation(
                "risk-pool", f"{self.code} has no members on {context.effective_on}"
            )
        self.trigger(
            RiskPoolAgreed,
            context,
            consortium=self.code,
            year=str(year),
            top_slice_basis_points=basis_points,
        )

    @applies(RiskPoolAgreed)
    def _risk_pool(self, event: RiskPoolAgreed) -> None:
        self.top_slices[event.year] = event.top_slice_basis_points

    def adopt_standards(self, context: Context, year: FinancialYear, codes: list[str]) -> None:
        require_officer_or_allocator(context, self.code, "adopt quality standards")
        if not codes:
            raise RuleViolation("qs-code", "name at least one quality standard")
        new = tuple(c for c in dict.fromkeys(codes) if c not in self.standards(str(year)))
        if not new:
            raise RuleViolation(
                "qs-code", f"{self.code} has already adopted {', '.join(codes)} for {year}"
            )
        self.trigger(
            QualityStandardsAdopted, context, consortium=self.code, year=str(year), codes=new
        )

    @applies(QualityStandardsAdopted)
    def _adopted(self, event: QualityStandardsAdopted) -> None:
        self.adopted_standards[event.year] = self.standards(event.year) + event.codes

    def standards(self, year: str) -> tuple[str, ...]:
        return self.adopted_standards.get(year, ())


def require_officer_or_allocator(context: Context, consortium: str, what: str) -> None:
    actor = context.actor
    if actor.role is Role.ALLOCATOR:
        return
    if actor.role is Role.CONSORTIUM and actor.code == consortium:
        return
    raise NotAuthorised(
        "authority",
        f"only consortium:{consortium}'s officer or an allocator may {what}; {actor} may not",
    )
