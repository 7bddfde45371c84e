"""A practice's commissioning budget for one financial year: one event stream.

The budget answers, for any business date, who holds each element, whether the
budget is hard or indicative and whether the practice has opted out; and, as of
now, what is allocated, committed and settled. Commands check every rule first
and only then trigger events, so a refused command leaves no trace.
"""

from __future__ import annotations

import bisect
import uuid
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from ledger.domain.aggregate import Aggregate, Context, applies
from ledger.domain.errors import NotAuthorised, NotFound, RuleViolation
from ledger.domain.events import (
    AllocationAdjusted,
    BudgetAllocated,
    CommitmentCancelled,
    CommitmentSettled,
    CommitmentVaried,
    DelegationRevoked,
    FormulaTerm,
    HoldingDelegated,
    MadeHard,
    MadeIndicative,
    OptedIn,
    OptedOut,
    RiskPoolDrawn,
    RiskPoolReturned,
    SpendCommitted,
    budget_stream,
)
from ledger.domain.organisations import Practice
from ledger.domain.pool import PoolAccess
from ledger.domain.values import (
    ELEMENTS,
    MAX_ELEMENT_TURNOVER_PENCE,
    Element,
    FinancialYear,
    Role,
    format_pence,
)

# A timeline is a sorted list of (effective_on, sequence, value); the value in
# force on a day is the last change effective on or before it. The sequence (the
# stream version) breaks ties between changes on the same day in recorded order.
Timeline = list[tuple[date, int, str]]

HARD = "hard"
INDICATIVE = "indicative"


def value_on(timeline: Timeline, day: date, default: str) -> str:
    index = bisect.bisect_right(timeline, (day, 1 << 62, ""))
    return timeline[index - 1][2] if index else default


@dataclass(slots=True)
class Commitment:
    ref: str
    element: Element
    committed_on: date
    amount: int
    settled: int = 0
    drawn: int = 0
    pool: str = ""
    open: bool = True

    @property
    def outstanding(self) -> int:
        return self.amount - self.settled if self.open else 0


def top_slice(allocated: int, basis_points: int) -> int:
    """The risk-pool contribution of an allocation, rounded down to the penny."""
    return max(allocated, 0) * basis_points // 10_000


class Budget(Aggregate):
    """One practice, one financial year. The practice stays accountable throughout."""

    def __init__(self, aggregate_id: uuid.UUID) -> None:
        super().__init__(aggregate_id)
        self.practice = ""
        self.year = FinancialYear(0)
        self.allocator = ""
        self.allocated: dict[Element, int] = dict.fromkeys(ELEMENTS, 0)
        self.allocated_elements: set[Element] = set()
        self.holders: dict[Element, Timeline] = {e: [] for e in ELEMENTS}
        self.opt_outs: Timeline = []
        self.status: Timeline = []
        self.commitments: dict[str, Commitment] = {}
        self.outstanding: dict[Element, int] = dict.fromkeys(ELEMENTS, 0)
        self.settled: dict[Element, int] = dict.fromkeys(ELEMENTS, 0)
        self.drawn: dict[Element, int] = dict.fromkeys(ELEMENTS, 0)
        # Money moved on each element, every movement at its size (MAX_ELEMENT_TURNOVER_PENCE).
        self.turnover: dict[Element, int] = dict.fromkeys(ELEMENTS, 0)

    @classmethod
    def empty(cls, practice: str, year: FinancialYear) -> Budget:
        budget = cls(budget_stream(practice, str(year)))
        budget.practice = practice
        budget.year = year
        return budget

    @property
    def exists(self) -> bool:
        return self.version > 0

    # --- queries -----------------------------------------------------------------------

    @property
    def accountable(self) -> str:
        return f"practice:{self.practice}"

    def holder_on(self, element: Element, day: date) -> str:
        return value_on(self.holders[element], day, self.accountable)

    def holders_on(self, day: date) -> dict[Element, str]:
        return {e: self.holder_on(e, day) for e in ELEMENTS}

    def holder_changes_after(self, element: Element, day: date) -> list[date]:
        return sorted({d for d, _, _ in self.holders[element] if d > day})

    def held_by_on_or_after(self, holder: str, day: date) -> list[Element]:
        """Elements `holder` holds on `day` or is due to hold from a later change."""
        return [
            e for e in ELEMENTS
            if self.holder_on(e, day) == holder
            or any(d >= day and h == holder for d, _, h in self.holders[e])
        ]

    def opted_out_to(self, day: date) -> str | None:
        return value_on(self.opt_outs, day, "") or None

    def is_hard_on(self, day: date) -> bool:
        return value_on(self.status, day, INDICATIVE) == HARD

    def is_hard_on_or_after(self, day: date) -> bool:
        """Hard on `day` or from a later date: a backdated change still counts against it."""
        return self.is_hard_on(day) or any(d > day and v == HARD for d, _, v in self.status)

    def available(self, element: Element, basis_points: int = 0) -> int:
        allocated = self.allocated[element]
        return allocated - top_slice(allocated, basis_points)

    def used(self, element: Element) -> int:
        """Outstanding commitments plus settlements: what counts against the budget."""
        return self.outstanding[element] + self.settled[element]

    def remaining(self, element: Element, basis_points: int = 0) -> int:
        return self.available(element, basis_points) + self.drawn[element] - self.used(element)

    def commitment(self, ref: str) -> Commitment:
        try:
            return self.commitments[ref]
        except KeyError:
            raise NotFound("commitment", f"no commitment {ref} on {self._name}") from None

    @property
    def _name(self) -> str:
        return f"the {self.year} budget of {self.practice}"

    # --- allocation (the allocator) ----------------------------------------------------

    def allocate(
        self,
        context: Context,
        practice: Practice,
        amounts: dict[Element, int],
        basis: str | None = None,
        formula: dict[Element, FormulaTerm] | None = None,
    ) -> None:
        practice.require_allocator(context, "allocate to it")
        self._require_in_year(context)
        practice.require_open_on(context.effective_on)
        if not amounts:
            raise RuleViolation("allocation", "name at least one element to allocate")
        if any(amount < 0 for amount in amounts.values()):
            raise RuleViolation("amount", "an allocation must not be negative")
        again = sorted(e for e in amounts if e in self.allocated_elements)
        if again:
            raise RuleViolation(
                "allocation",
                f"{', '.join(again)} already allocated in {self._name}; "
                "use `budget adjust` to change an allocation",
            )
        for element, amount in amounts.items():
            self._require_turnover(element, amount, "allocating")
        self.trigger(
            BudgetAllocated,
            context,
            practice=practice.code,
            year=str(self.year),
            allocator=practice.allocator,
            amounts_pence=amounts,
            basis=basis,
            formula=formula,
        )

    @applies(BudgetAllocated)
    def _allocated(self, event: BudgetAllocated) -> None:
        self.practice = event.practice
        self.year = FinancialYear.parse(event.year)
        self.allocator = event.allocator
        for element, amount in event.amounts_pence.items():
            self.allocated[element] += amount
            self.allocated_elements.add(element)
            self.turnover[element] += amount

    def adjust(self, context: Context, element: Element, delta: int, basis_points: int = 0) -> None:
        self._require_budget()
        self._require_allocator(context, "adjust its allocation")
        self._require_in_year(context)
        if delta == 0:
            raise RuleViolation("amount", "an adjustment must not be zero")
        if not context.reason:
            raise RuleViolation("reason", "an adjustment needs a reason")
        new_allocated = self.allocated[element] + delta
        if new_allocated < 0:
            raise RuleViolation(
                "allocation",
                f"{element} would fall below zero ({format_pence(new_allocated)})",
            )
        self._require_turnover(element, abs(delta), "adjusting")
        if delta < 0 and self.is_hard_on_or_after(context.effective_on):
            new_available = new_allocated - top_slice(new_allocated, basis_points)
            if new_available + self.drawn[element] < self.used(element):
                raise RuleViolation(
                    "hard-budget",
                    f"{element} would fall to {format_pence(new_available)}, below the "
                    f"{format_pence(self.used(element))} already committed and settled",
                )
        self.trigger(
            AllocationAdjusted,
            context,
            practice=self.practice,
            year=str(self.year),
            element=element,
            delta_pence=delta,
        )

    @applies(AllocationAdjusted)
    def _adjusted(self, event: AllocationAdjusted) -> None:
        self.allocated[event.element] += event.delta_pence
        self.turnover[event.element] += abs(event.delta_pence)

    def make_hard(self, context: Context, basis_points: int = 0) -> None:
        self._require_budget()
        self._require_allocator(context, "change its hard/indicative status")
        self._require_in_year(context)
        self._require_not_before_last(self.status, context, "status change")
        if self.is_hard_on(context.effective_on):
            raise RuleViolation("status", f"{self._name} is already hard")
        overspent = [
            e for e in ELEMENTS if self.remaining(e, basis_points) < 0
        ]
        if overspent:
            raise RuleViolation(
                "hard-budget",
                f"{', '.join(overspent)} already overspent; a hard budget cannot start overspent",
            )
        self.trigger(MadeHard, context, practice=self.practice, year=str(self.year))

    @applies(MadeHard)
    def _made_hard(self, event: MadeHard) -> None:
        _insert(self.status, event.effective_on, event.originator_version, HARD)

    def make_indicative(self, context: Context) -> None:
        self._require_budget()
        self._require_allocator(context, "change its hard/indicative status")
        self._require_in_year(context)
        self._require_not_before_last(self.status, context, "status change")
        if not self.is_hard_on(context.effective_on):
            raise RuleViolation("status", f"{self._name} is already indicative")
        self.trigger(MadeIndicative, context, practice=self.practice, year=str(self.year))

    @applies(MadeIndicative)
    def _made_indicative(self, event: MadeIndicative) -> None:
        _insert(self.status, event.effective_on, event.originator_version, INDICATIVE)

    # --- holding (the practice, or its allocator) --------------------------------------

    def delegate(self, context: Context, elements: list[Element], holder: str) -> None:
        self._require_holding_change(context, elements, "delegate")
        if holder == self.accountable:
            raise RuleViolation(
                "holder", f"{self.practice} cannot delegate to itself; use `budget revoke`"
            )
        day = context.effective_on
        same = [e for e in elements if self.holder_on(e, day) == holder]
        if same:
            raise RuleViolation(
                "holder", f"{holder} already holds {', '.join(same)} on {day}"
            )
        self.trigger(
            HoldingDelegated,
            context,
            practice=self.practice,
            year=str(self.year),
            elements=tuple(elements),
            holder=holder,
        )

    @applies(HoldingDelegated)
    def _delegated(self, event: HoldingDelegated) -> None:
        for element in event.elements:
            _insert(self.holders[element], event.effective_on, event.originator_version,
                    event.holder)

    def revoke(self, context: Context, elements: list[Element]) -> None:
        self._require_holding_change(context, elements, "revoke a delegation")
        day = context.effective_on
        held = [e for e in elements if self.holder_on(e, day) == self.accountable]
        if held:
            raise RuleViolation(
                "holder", f"{', '.join(held)} not delegated on {day}: nothing to revoke"
            )
        self.trigger(
            DelegationRevoked,
            context,
            practice=self.practice,
            year=str(self.year),
            elements=tuple(elements),
        )

    @applies(DelegationRevoked)
    def _revoked(self, event: DelegationRevoked) -> None:
        for element in event.elements:
            _insert(self.holders[element], event.effective_on, event.originator_version,
                    self.accountable)

    def opt_out(self, context: Context, holder: str) -> None:
        self._require_budget()
        self._require_practice_or_allocator(context, "opt out")
        self._require_in_year(context)
        if not context.reason:
            raise RuleViolation("reason", "an opt-out needs a reason")
        if holder == self.accountable:
            raise RuleViolation("holder", f"{self.practice} cannot opt out to itself")
        self._require_no_later_holding_change(context, list(ELEMENTS))
        current = self.opted_out_to(context.effective_on)
        if current:
            raise RuleViolation(
                "opt-out", f"{self.practice} is already opted out to {current}; opt in first"
            )
        self.trigger(OptedOut, context, practice=self.practice, year=str(self.year), holder=holder)

    @applies(OptedOut)
    def _opted_out(self, event: OptedOut) -> None:
        _insert(self.opt_outs, event.effective_on, event.originator_version, event.holder)
        for element in ELEMENTS:
            _insert(self.holders[element], event.effective_on, event.originator_version,
                    event.holder)

    def opt_in(self, context: Context) -> None:
        self._require_budget()
        self._require_practice_or_allocator(context, "opt in")
        self._require_in_year(context)
        self._require_no_later_holding_change(context, list(ELEMENTS))
        if not self.opted_out_to(context.effective_on):
            raise RuleViolation("opt-out", f"{self.practice} is not opted out on "
                                f"{context.effective_on}")
        self.trigger(OptedIn, context, practice=self.practice, year=str(self.year))

    @applies(OptedIn)
    def _opted_in(self, event: OptedIn) -> None:
        # Opt-in returns every element to the practice; earlier delegations stay ended.
        _insert(self.opt_outs, event.effective_on, event.originator_version, "")
        for element in ELEMENTS:
            _insert(self.holders[element], event.effective_on, event.originator_version,
                    self.accountable)

    # --- spending (the current holder of the element) ----------------------------------

    def commit(
        self,
        context: Context,
        *,
        ref: str,
        element: Element,
        amount: int,
        provider: str,
        service: str,
        qs_codes: tuple[str, ...] = (),
        basis_points: int = 0,
        pool: PoolAccess | None = None,
    ) -> None:
        self._require_budget()
        self._require_in_year(context)
        self._require_holder(context, element, "commit spend against")
        if amount <= 0:
            raise RuleViolation("amount", "a commitment must be more than zero")
        if ref in self.commitments:
            raise RuleViolation("commitment", f"commitment {ref} already exists")
        overspend, draw = self._check_spend(context, element, amount, basis_points, pool)
        self._require_turnover(element, amount + draw, f"committing {ref}")
        # The hot path of bulk loads: every value here is a parsed command's (free
        # text already checked for patient data) or a checked amount.
        self.trigger_validated(
            SpendCommitted,
            context,
            practice=self.practice,
            year=self.year.text,
            ref=ref,
            element=element,
            amount_pence=amount,
            provider=provider,
            service=service,
            qs_codes=qs_codes,
            overspend_pence=overspend,
        )
        self._draw(context, ref, draw, pool)

    @applies(SpendCommitted)
    def _committed(self, event: SpendCommitted) -> None:
        # Each field read once: an event's attributes are read through pydantic's
        # __getattr__ hook, several times the cost of a local's.
        ref, element, amount = event.ref, event.element, event.amount_pence
        self.commitments[ref] = Commitment(ref, element, event.effective_on, amount)
        self.outstanding[element] += amount
        self.turnover[element] += amount

    def shortfall(self, element: Element, extra: int, basis_points: int = 0) -> int:
        """How far `extra` more spend would take the element past what it has."""
        return max(extra - self.remaining(element, basis_points), 0)

    def vary(
        self,
        context: Context,
        ref: str,
        amount: int,
        basis_points: int = 0,
        pool: PoolAccess | None = None,
    ) -> None:
        commitment = self._open_commitment(context, ref, "vary")
        if amount <= 0:
            raise RuleViolation("amount", "a variation must be more than zero; cancel instead")
        if amount < commitment.settled:
            raise RuleViolation(
                "commitment",
                f"{ref} cannot fall below the {format_pence(commitment.settled)} already settled",
            )
        if amount == commitment.amount:
            raise RuleViolation("commitment", f"{ref} is already {format_pence(amount)}")
        increase = max(amount - commitment.amount, 0)
        overspend, draw = self._check_spend(
            context, commitment.element, increase, basis_points, pool
        )
        returned = 0 if increase else min(commitment.drawn, commitment.amount - amount)
        self._require_pool_for_return(commitment, returned, pool)
        self._require_turnover(commitment.element, abs(amount - commitment.amount) + draw
                               + returned, f"varying {ref}")
        self.trigger(
            CommitmentVaried,
            context,
            practice=self.practice,
            year=str(self.year),
            ref=ref,
            amount_pence=amount,
            overspend_pence=overspend,
        )
        self._draw(context, ref, draw, pool)
        self._return(context, commitment, returned, pool)

    @applies(CommitmentVaried)
    def _varied(self, event: CommitmentVaried) -> None:
        commitment = self.commitments[event.ref]
        self.outstanding[commitment.element] += event.amount_pence - commitment.amount
        self.turnover[commitment.element] += abs(event.amount_pence - commitment.amount)
        commitment.amount = event.amount_pence

    def settle(
        self,
        context: Context,
        ref: str,
        amount: int,
        *,
        final: bool = False,
        pool: PoolAccess | None = None,
    ) -> None:
        commitment = self._open_commitment(context, ref, "settle")
        if amount <= 0:
            raise RuleViolation("amount", "a settlement must be more than zero")
        if amount > commitment.outstanding:
            raise RuleViolation(
                "commitment",
                f"settling {format_pence(amount)} exceeds the "
                f"{format_pence(commitment.outstanding)} outstanding on {ref}; vary it first",
            )
        released = commitment.outstanding - amount if final else 0
        returned = min(commitment.drawn, released)
        self._require_pool_for_return(commitment, returned, pool)
        # A settlement moves its amount from committed to settled: it counts twice.
        self._require_turnover(commitment.element, 2 * amount + released + returned,
                               f"settling {ref}")
        self.trigger(
            CommitmentSettled,
            context,
            practice=self.practice,
            year=str(self.year),
            ref=ref,
            amount_pence=amount,
            final=final,
        )
        self._return(context, commitment, returned, pool)

    @applies(CommitmentSettled)
    def _settled(self, event: CommitmentSettled) -> None:
        commitment = self.commitments[event.ref]
        before = commitment.outstanding
        commitment.settled += event.amount_pence
        self.settled[commitment.element] += event.amount_pence
        if event.final:
            # A final settlement releases whatever was left outstanding.
            commitment.amount = commitment.settled
            commitment.open = False
        self.outstanding[commitment.element] += commitment.outstanding - before
        self.turnover[commitment.element] += event.amount_pence + (
            before - commitment.outstanding)

    def cancel(self, context: Context, ref: str, pool: PoolAccess | None = None) -> None:
        commitment = self._open_commitment(context, ref, "cancel")
        returned = min(commitment.drawn, commitment.outstanding)
        self._require_pool_for_return(commitment, returned, pool)
        self._require_turnover(commitment.element, commitment.outstanding + returned,
                               f"cancelling {ref}")
        self.trigger(
            CommitmentCancelled, context, practice=self.practice, year=str(self.year), ref=ref
        )
        self._return(context, commitment, returned, pool)

    @applies(CommitmentCancelled)
    def _cancelled(self, event: CommitmentCancelled) -> None:
        commitment = self.commitments[event.ref]
        self.outstanding[commitment.element] -= commitment.outstanding
        self.turnover[commitment.element] += commitment.outstanding
        commitment.amount = commitment.settled
        commitment.open = False

    # --- the consortium's risk pool ----------------------------------------------------

    def _draw(self, context: Context, ref: str, amount: int, pool: PoolAccess | None) -> None:
        if amount <= 0 or pool is None:
            return
        self.trigger(
            RiskPoolDrawn,
            context,
            practice=self.practice,
            year=str(self.year),
            ref=ref,
            consortium=pool.consortium,
            amount_pence=amount,
        )
        pool.pool.record_draw(context, self.practice, ref, amount)

    @applies(RiskPoolDrawn)
    def _pool_drawn(self, event: RiskPoolDrawn) -> None:
        commitment = self.commitments[event.ref]
        commitment.drawn += event.amount_pence
        commitment.pool = event.consortium
        self.drawn[commitment.element] += event.amount_pence
        self.turnover[commitment.element] += event.amount_pence

    def _require_pool_for_return(
        self, commitment: Commitment, amount: int, pool: PoolAccess | None
    ) -> None:
        if amount > 0 and (pool is None or pool.consortium != commitment.pool):
            raise RuleViolation(
                "risk-pool",
                f"{commitment.ref} drew on consortium {commitment.pool}'s pool; "
                "its draw must be returned to that pool",
            )

    def _return(
        self, context: Context, commitment: Commitment, amount: int, pool: PoolAccess | None
    ) -> None:
        if amount <= 0 or pool is None:
            return
        self.trigger(
            RiskPoolReturned,
            context,
            practice=self.practice,
            year=str(self.year),
            ref=commitment.ref,
            consortium=commitment.pool,
            amount_pence=amount,
        )
        pool.pool.record_return(context, self.practice, commitment.ref, amount)

    @applies(RiskPoolReturned)
    def _pool_returned(self, event: RiskPoolReturned) -> None:
        commitment = self.commitments[event.ref]
        commitment.drawn -= event.amount_pence
        self.drawn[commitment.element] -= event.amount_pence
        self.turnover[commitment.element] += event.amount_pence

    # --- rules shared by the commands above --------------------------------------------

    def _check_spend(
        self,
        context: Context,
        element: Element,
        extra: int,
        basis_points: int,
        pool: PoolAccess | None = None,
    ) -> tuple[int, int]:
        """(overspend an indicative budget flags, draw a hard budget takes from its pool).

        A hard budget refuses overspend unless its consortium's pool has headroom
        for the whole excess; then the excess is drawn, atomically with the spend.
        """
        after = self.remaining(element, basis_points) - extra
        if after >= 0:
            return 0, 0
        # Only an increase can be refused: reducing a commitment never adds to overspend.
        if extra > 0 and self.is_hard_on_or_after(context.effective_on):
            excess = -after
            if pool is not None and pool.headroom >= excess:
                return 0, excess
            headroom = (
                f"; consortium {pool.consortium}'s risk pool has "
                f"{format_pence(max(pool.headroom, 0))} headroom"
                if pool is not None
                else ""
            )
            raise RuleViolation(
                "hard-budget",
                f"{element} of {self._name} is hard: {format_pence(extra)} exceeds the "
                f"{format_pence(max(self.remaining(element, basis_points), 0))} remaining"
                f"{headroom}",
            )
        return -after, 0

    def _require_turnover(self, element: Element, moved: int, what: str) -> None:
        """Refuse a command that would move more than MAX_ELEMENT_TURNOVER_PENCE on an element.

        Every figure the ledger shows for an element is a sum of its movements, so while
        their sizes add up to no more than the limit, no total, as-of position or roll-up
        can leave the range its store and its readers hold (rule `overflow`).
        """
        after = self.turnover[element] + moved
        if after > MAX_ELEMENT_TURNOVER_PENCE:
            raise RuleViolation(
                "overflow",
                f"{what} would move {format_pence(after)} on {element} of {self._name} in "
                f"the year, past the {format_pence(MAX_ELEMENT_TURNOVER_PENCE)} one element "
                "may move (every allocation, adjustment, commitment, variation, settlement "
                "and pool draw counts at its size)",
            )

    def _open_commitment(self, context: Context, ref: str, what: str) -> Commitment:
        self._require_budget()
        self._require_in_year(context)
        commitment = self.commitment(ref)
        if not commitment.open:
            raise RuleViolation("commitment", f"{ref} is already settled in full or cancelled")
        if context.effective_on < commitment.committed_on:
            raise RuleViolation(
                "effective-date",
                f"{context.effective_on} is before {ref} was committed ({commitment.committed_on})",
            )
        self._require_holder(context, commitment.element, f"{what} commitments against")
        return commitment

    def _require_budget(self) -> None:
        if not self.exists:
            raise NotFound("budget", f"no budget for {self.practice} in {self.year}; "
                           "allocate one first")

    def _require_in_year(self, context: Context) -> None:
        if context.effective_on not in self.year:
            raise RuleViolation(
                "effective-date",
                f"effective date {context.effective_on} is outside the financial year "
                f"{self.year} ({self.year.first_day} to {self.year.last_day})",
            )

    def _require_allocator(self, context: Context, what: str) -> None:
        actor = context.actor
        if actor.role is not Role.ALLOCATOR or actor.code != self.allocator:
            raise NotAuthorised(
                "authority",
                f"only allocator:{self.allocator} may {what} of {self.practice}; "
                f"{actor} may not",
            )

    def _require_practice_or_allocator(self, context: Context, what: str) -> None:
        actor = context.actor
        if actor.holder == self.accountable:
            return
        if actor.role is Role.ALLOCATOR and actor.code == self.allocator:
            return
        raise NotAuthorised(
            "authority",
            f"only practice:{self.practice} or allocator:{self.allocator} may {what}; "
            f"{actor} may not",
        )

    def _require_holder(self, context: Context, element: Element, what: str) -> None:
        holder = self.holder_on(element, context.effective_on)
        if context.actor.holder != holder:
            raise NotAuthorised(
                "authority",
                f"only the holder of {element} on {context.effective_on} ({holder}) may "
                f"{what} it; {context.actor} may not",
            )

    def _require_holding_change(self, context: Context, elements: list[Element],
                                what: str) -> None:
        self._require_budget()
        self._require_practice_or_allocator(context, what)
        self._require_in_year(context)
        if not elements:
            raise RuleViolation("element", "name at least one element")
        opted_out = self.opted_out_to(context.effective_on)
        if opted_out:
            raise RuleViolation(
                "opt-out",
                f"{self.practice} is opted out to {opted_out} on {context.effective_on}; "
                "opt in first",
            )
        self._require_no_later_holding_change(context, elements)

    def _require_no_later_holding_change(self, context: Context,
                                         elements: list[Element]) -> None:
        # A change dated behind one already recorded would rewrite a holding the
        # ledger has acted on (commitments, later delegations); record it at or after.
        for element in elements:
            self._require_not_before_last(self.holders[element], context,
                                          f"holding change of {element}")

    def _require_not_before_last(self, timeline: Timeline, context: Context, what: str) -> None:
        if timeline and context.effective_on < timeline[-1][0]:
            raise RuleViolation(
                "effective-date",
                f"a {what} is already recorded effective {timeline[-1][0]}; "
                f"a new one cannot take effect earlier ({context.effective_on})",
            )


def _insert(timeline: Timeline, day: date, sequence: int, value: str) -> None:
    bisect.insort(timeline, (day, sequence, value))


# --- allocation by formula -----------------------------------------------------------


def formula_amounts(
    practice: Practice, day: date, rates_pence: dict[Element, int]
) -> tuple[dict[Element, int], dict[Element, FormulaTerm]]:
    """Per rated element: the practice's weighted population in force on `day` x the rate
    (pence per weighted head), rounded half up to the penny, exactly (Decimal).

    Refused (rule `formula`) when the practice has no weighted population for a rated
    element: the allocation would otherwise be silently zero.
    """
    weighted = practice.weighted_population_on(day)
    missing = [str(e) for e in rates_pence if e not in weighted]
    if missing:
        raise RuleViolation(
            "formula",
            f"{practice.code} has no weighted population for {', '.join(missing)} on {day}; "
            "record one (practice list-size --weighted) or leave the element's rate out",
        )
    amounts: dict[Element, int] = {}
    terms: dict[Element, FormulaTerm] = {}
    for element, rate in rates_pence.items():
        exact = weighted[element] * rate
        amounts[element] = int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
        terms[element] = FormulaTerm(weighted_population=weighted[element], rate_pence=rate)
    return amounts, terms
