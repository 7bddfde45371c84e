"""One handler per command: load the aggregates, call the domain, describe the result.

Handlers do no I/O of their own; the unit of work loads aggregates and the
service saves what they trigger.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from ledger.application.commands import (
    BudgetAdjust,
    BudgetAllocate,
    BudgetAllocateFormula,
    BudgetDelegate,
    BudgetHarden,
    BudgetOptIn,
    BudgetOptOut,
    BudgetRevoke,
    BudgetSoften,
    Command,
    ConsortiumAdopt,
    ConsortiumForm,
    ConsortiumJoin,
    ConsortiumLeave,
    ConsortiumRiskPool,
    PracticeClose,
    PracticeListSize,
    PracticeRegister,
    SpendCancel,
    SpendCommit,
    SpendSettle,
    SpendVary,
    TokenCreate,
    TokenRevoke,
)
from ledger.application.unit_of_work import UnitOfWork
from ledger.domain.aggregate import Context
from ledger.domain.budget import Budget, formula_amounts, top_slice
from ledger.domain.errors import NotFound, RuleViolation
from ledger.domain.events import (
    CommitmentVaried,
    LedgerEvent,
    RiskPoolDrawn,
    RiskPoolReturned,
    SpendCommitted,
)
from ledger.domain.organisations import Consortium, Practice
from ledger.domain.pool import PoolAccess
from ledger.domain.rules import check_new_holder, check_no_cycle
from ledger.domain.values import (
    Actor,
    Element,
    FinancialYear,
    Role,
    format_pence,
    format_weighted,
    utc_text,
)
from ledger.store.recorders import RefEntry


@dataclass(slots=True)
class Result:
    summary: str
    refs: tuple[RefEntry, ...] = ()


Handler = Callable[[Any, Context, UnitOfWork], Result]
HANDLERS: dict[type[Command], Handler] = {}


def arg(command: Command, name: str) -> Any:
    """A command's argument by name, or None when its kind has no such argument.

    Read from the model's field values: `getattr` with a default goes through
    pydantic's slow path for every name a model lacks.
    """
    return command.__dict__.get(name)


def handles(command_type: type[Command]) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        HANDLERS[command_type] = func
        return func

    return register


# --- effective dates -----------------------------------------------------------------


def effective_date(command: Command, today: date, uow: UnitOfWork) -> date:
    """`--on` when given; otherwise today, kept inside the budget's financial year.

    When today lies outside the budget's year, the default is the year's nearest
    day (its last day for a past year), and the answer says which date was used.
    """
    if command.on is not None:
        return command.on
    year = _year_of(command, uow)
    if year is None:
        return today
    return min(max(today, year.first_day), year.last_day)


def _year_of(command: Command, uow: UnitOfWork) -> FinancialYear | None:
    year = arg(command, "year")
    if isinstance(year, str):
        return FinancialYear.parse(year)
    ref = arg(command, "ref")
    if isinstance(command, SpendVary | SpendCancel) and ref:
        entry = uow.ref(ref)
        return FinancialYear.parse(entry.year) if entry else None
    return None


def require_in_existence(command: Command, context: Context, uow: UnitOfWork) -> None:
    """A command may not take effect before the practice it names was registered, nor
    before the consortium it names was formed (rule: effective-date)."""
    day = context.effective_on
    values = command.__dict__  # as `arg`
    year = values.get("year")
    if isinstance(year, str) and day not in FinancialYear.parse(year):
        return  # the handler refuses it under the financial year's own rule
    code = values.get("practice")
    if isinstance(code, str) and not isinstance(command, PracticeRegister):
        practice = uow.practice(code)
        if practice.version:
            practice.require_registered_by(day, _doing(command.name))
    code = values.get("consortium")
    if isinstance(code, str) and not isinstance(command, ConsortiumForm):
        consortium = uow.consortium(code)
        if consortium.version:
            consortium.require_formed_by(day, _doing(command.name))
    holder = values.get("to")
    if isinstance(holder, str):
        kind, _, other = holder.partition(":")
        if kind == "consortium" and uow.consortium(other).version:
            uow.consortium(other).require_formed_by(day, f"hold its budget ({holder})")
        if kind == "practice" and uow.practice(other).version:
            uow.practice(other).require_registered_by(day, f"hold its budget ({holder})")


@functools.cache
def _doing(name: str) -> str:
    """What a command does, for a refusal: `spend commit` -> `commit`."""
    return name.split(" ", 1)[-1] if " " in name else name


def practices_named(commands: Iterable[Command]) -> Iterator[str]:
    for command in commands:
        practice = command.__dict__.get("practice")
        if isinstance(practice, str):
            yield practice


def refs_named(commands: Iterable[Command]) -> Iterator[str]:
    for command in commands:
        ref = command.__dict__.get("ref")
        if isinstance(ref, str):
            yield ref


# --- practices -----------------------------------------------------------------------


def existing_practice(uow: UnitOfWork, code: str) -> Practice:
    practice = uow.practice(code)
    if not practice.version:
        raise NotFound("practice", f"no practice {code}; register it first")
    return practice


def existing_consortium(uow: UnitOfWork, code: str) -> Consortium:
    consortium = uow.consortium(code)
    if not consortium.version:
        raise NotFound("consortium", f"no consortium {code}; form it first")
    return consortium


@handles(PracticeRegister)
def register_practice(command: PracticeRegister, context: Context, uow: UnitOfWork) -> Result:
    if uow.practice(command.practice).version:
        raise RuleViolation(
            "practice",
            f"practice {command.practice} is already registered (a new list size is "
            "`practice list-size`, or `practice import FILE --list-sizes`)",
        )
    practice = Practice.register(
        context,
        code=command.practice,
        name=command.practice_name,
        list_size=command.list_size,
        weighted_population=dict(command.weighted),
    )
    uow.adopt(practice)
    return Result(
        f"registered {practice.code} {practice.name} (list size {practice.list_size:,}) "
        f"for allocator:{practice.allocator}"
    )


@handles(PracticeListSize)
def record_list_size(command: PracticeListSize, context: Context, uow: UnitOfWork) -> Result:
    practice = existing_practice(uow, command.practice)
    practice.record_list_size(context, command.list_size, dict(command.weighted))
    figures = "".join(f", {e} {format_weighted(w)}" for e, w in command.weighted.items())
    return Result(
        f"recorded list size {command.list_size:,}{figures} for {practice.code} "
        f"from {context.effective_on}"
    )


@handles(PracticeClose)
def close_practice(command: PracticeClose, context: Context, uow: UnitOfWork) -> Result:
    practice = existing_practice(uow, command.practice)
    day = context.effective_on
    later = [
        f"{ref} ({commitment.committed_on})"
        for year in uow.budget_years(practice.code)
        for ref, commitment in uow.budget(practice.code, FinancialYear.parse(year))
        .commitments.items()
        if commitment.committed_on >= day
    ]
    if later:
        raise RuleViolation(
            "practice-open",
            f"{practice.code} has commitments effective on or after {day}: "
            f"{', '.join(sorted(later)[:5])}{' ...' if len(later) > 5 else ''}; "
            "a practice closes after its last commitment",
        )
    practice.close(context)
    return Result(
        f"{practice.code} closed from {day}; its budgets stay accountable and readable"
    )


# --- consortia -----------------------------------------------------------------------


@handles(ConsortiumForm)
def form_consortium(command: ConsortiumForm, context: Context, uow: UnitOfWork) -> Result:
    if uow.consortium(command.consortium).version:
        raise RuleViolation("consortium", f"consortium {command.consortium} already exists")
    consortium = Consortium.form(
        context, code=command.consortium, name=command.consortium_name, officer=command.officer
    )
    uow.adopt(consortium)
    return Result(f"formed consortium {consortium.code} {consortium.name}")


@handles(ConsortiumJoin)
def join_consortium(command: ConsortiumJoin, context: Context, uow: UnitOfWork) -> Result:
    consortium = existing_consortium(uow, command.consortium)
    existing_practice(uow, command.practice).require_open_on(context.effective_on)
    year = str(FinancialYear.containing(context.effective_on))
    if year in consortium.top_slices:
        require_top_slice_fits(uow, command.practice, year, consortium.top_slices[year],
                               context.effective_on)
    require_no_other_consortium(uow, command.practice, consortium.code, context.effective_on)
    consortium.join(context, command.practice)
    uow.affiliate(command.practice, consortium.code)
    return Result(f"{command.practice} joined {consortium.code} on {context.effective_on}")


def require_no_other_consortium(uow: UnitOfWork, practice: str, joining: str,
                                day: date) -> None:
    """RuleViolation (rule `membership`) when `practice` is a member of a consortium other
    than `joining` on `day` or later: a practice is a member of one consortium at a time.

    Its top-slice goes to one risk pool and its budget into one consortium's figures; a
    second membership would count the same top-slice in two pools' capacity, money no
    budget gave up."""
    for code in uow.consortia_of(practice):
        if code == joining:
            continue
        for membership in uow.consortium(code).memberships.get(practice, ()):
            if membership.left_on is None or day < membership.left_on:
                until = (f" until {membership.left_on}" if membership.left_on is not None
                         else "")
                raise RuleViolation(
                    "membership",
                    f"{practice} is a member of {code} from {membership.joined_on}{until}; a "
                    f"practice is a member of one consortium at a time: it may join {joining} "
                    f"from the day it leaves {code}",
                )


@handles(ConsortiumLeave)
def leave_consortium(command: ConsortiumLeave, context: Context, uow: UnitOfWork) -> Result:
    consortium = existing_consortium(uow, command.consortium)
    existing_practice(uow, command.practice)
    day = context.effective_on
    budget = uow.budget(command.practice, FinancialYear.containing(day))
    holder = f"consortium:{consortium.code}"
    for year in uow.budget_years(command.practice):
        fy = FinancialYear.parse(year)
        if fy < budget.year:
            continue
        held = uow.budget(command.practice, fy).held_by_on_or_after(holder, day)
        if held:
            raise RuleViolation(
                "membership",
                f"{consortium.code} holds {', '.join(held)} of {command.practice}'s {year} "
                f"budget on or after {day}; revoke those delegations first",
            )
    if str(budget.year) in consortium.top_slices:
        access = pool_access(uow, consortium.code, str(budget.year), day)
        leaving = _top_slices(budget, access.basis_points)
        require_capacity_covers_draws(access, access.capacity - leaving, f"{command.practice} "
                                      f"leaving {consortium.code}")
    consortium.leave(context, command.practice)
    return Result(f"{command.practice} left {consortium.code} on {day}")


@handles(ConsortiumRiskPool)
def agree_risk_pool(command: ConsortiumRiskPool, context: Context, uow: UnitOfWork) -> Result:
    consortium = existing_consortium(uow, command.consortium)
    year = FinancialYear.parse(command.year)
    basis_points = command.top_slice
    for member in consortium.members_on(context.effective_on):
        require_top_slice_fits(uow, member, str(year), basis_points, context.effective_on)
    consortium.agree_risk_pool(context, year, basis_points)
    return Result(
        f"{consortium.code} agreed a {basis_points / 100:g}% risk pool top-slice for {year}"
    )


@handles(ConsortiumAdopt)
def adopt_standards(command: ConsortiumAdopt, context: Context, uow: UnitOfWork) -> Result:
    """Answers with the standards this command adopted (its event's codes) and, apart,
    those it named that were adopted for the year before: `16C adopted QS3 for 2024-25
    (QS1 already adopted)`."""
    consortium = existing_consortium(uow, command.consortium)
    before = consortium.standards(command.year)
    consortium.adopt_standards(context, FinancialYear.parse(command.year), list(command.codes))
    adopted = [code for code in consortium.standards(command.year) if code not in before]
    already = [code for code in dict.fromkeys(command.codes) if code in before]
    also = f" ({', '.join(already)} already adopted)" if already else ""
    return Result(f"{consortium.code} adopted {', '.join(adopted)} for {command.year}{also}")


# --- budgets -------------------------------------------------------------------------


def existing_budget(uow: UnitOfWork, practice: str, year: str) -> Budget:
    existing_practice(uow, practice)
    return uow.budget(practice, FinancialYear.parse(year))


@handles(BudgetAllocate)
def allocate(command: BudgetAllocate, context: Context, uow: UnitOfWork) -> Result:
    practice = existing_practice(uow, command.practice)
    budget = uow.budget(command.practice, command.financial_year)
    amounts = command.amounts_pence()
    opening = not budget.exists
    budget.allocate(context, practice, amounts, getattr(command, "basis", None))
    if opening:
        uow.opened_budget(practice.code, command.year)
    total = sum(amounts.values())
    return Result(
        f"allocated {format_pence(total)} to {practice.code} for {command.year} "
        f"across {len(amounts)} element(s)"
    )


@handles(BudgetAllocateFormula)
def allocate_by_formula(command: BudgetAllocateFormula, context: Context, uow: UnitOfWork
                        ) -> Result:
    practice = existing_practice(uow, command.practice)
    budget = uow.budget(command.practice, command.financial_year)
    amounts, terms = formula_amounts(practice, context.effective_on, command.rates_pence())
    opening = not budget.exists
    budget.allocate(context, practice, amounts, "by formula: weighted population x rate",
                    formula=terms)
    if opening:
        uow.opened_budget(practice.code, command.year)
    parts = ", ".join(
        f"{e} {format_weighted(t.weighted_population)} x {format_pence(t.rate_pence)} = "
        f"{format_pence(amounts[e])}" for e, t in terms.items())
    return Result(
        f"allocated {format_pence(sum(amounts.values()))} to {practice.code} for "
        f"{command.year} by formula ({parts})"
    )


@handles(BudgetAdjust)
def adjust(command: BudgetAdjust, context: Context, uow: UnitOfWork) -> Result:
    budget = existing_budget(uow, command.practice, command.year)
    delta = command.by
    code, basis_points = top_slice_terms(uow, budget.practice, str(budget.year),
                                         context.effective_on)
    if code and delta < 0:
        access = pool_access(uow, code, str(budget.year), context.effective_on)
        old = budget.allocated[command.element]
        shrink = top_slice(old, basis_points) - top_slice(old + delta, basis_points)
        require_capacity_covers_draws(access, access.capacity - shrink,
                                      f"cutting {command.element} of {command.practice}")
    budget.adjust(context, command.element, delta, basis_points)
    return Result(
        f"adjusted {command.element} of {command.practice} {command.year} by "
        f"{format_pence(delta)} to {format_pence(budget.allocated[command.element])}"
    )


def _check_holder(
    uow: UnitOfWork, budget: Budget, elements: list[Element], holder: str, day: date
) -> None:
    kind, _, code = holder.partition(":")
    consortium = uow.consortium(code) if kind == "consortium" else None
    holder_practice = uow.practice(code) if kind == "practice" else None
    check_new_holder(
        budget.practice,
        holder,
        day,
        consortium=consortium if consortium and consortium.version else None,
        holder_practice=holder_practice if holder_practice and holder_practice.version else None,
    )

    def holder_of(practice: str, element: Element, on: date) -> str | None:
        other = uow.budget(practice, budget.year)
        return other.holder_on(element, on) if other.exists else None

    def changes_after(practice: str, element: Element, on: date) -> list[date]:
        other = uow.budget(practice, budget.year)
        return other.holder_changes_after(element, on) if other.exists else []

    check_no_cycle(budget.practice, elements, holder, day, holder_of,
                   changes_after=changes_after)


@handles(BudgetDelegate)
def delegate(command: BudgetDelegate, context: Context, uow: UnitOfWork) -> Result:
    budget = existing_budget(uow, command.practice, command.year)
    elements = list(command.element)
    if budget.exists:
        _check_holder(uow, budget, elements, command.to, context.effective_on)
    budget.delegate(context, elements, command.to)
    return Result(
        f"{command.practice} delegated {', '.join(elements)} to {command.to} "
        f"from {context.effective_on}"
    )


@handles(BudgetRevoke)
def revoke(command: BudgetRevoke, context: Context, uow: UnitOfWork) -> Result:
    budget = existing_budget(uow, command.practice, command.year)
    budget.revoke(context, list(command.element))
    return Result(
        f"{command.practice} took back {', '.join(command.element)} from {context.effective_on}"
    )


@handles(BudgetOptOut)
def opt_out(command: BudgetOptOut, context: Context, uow: UnitOfWork) -> Result:
    budget = existing_budget(uow, command.practice, command.year)
    if budget.exists:
        _check_holder(uow, budget, list(Element), command.to, context.effective_on)
    budget.opt_out(context, command.to)
    return Result(
        f"{command.practice} opted out to {command.to} from {context.effective_on}; "
        f"it stays accountable"
    )


@handles(BudgetOptIn)
def opt_in(command: BudgetOptIn, context: Context, uow: UnitOfWork) -> Result:
    budget = existing_budget(uow, command.practice, command.year)
    budget.opt_in(context)
    return Result(f"{command.practice} opted back in from {context.effective_on}")


@handles(BudgetHarden)
def harden(command: BudgetHarden, context: Context, uow: UnitOfWork) -> Result:
    budget = existing_budget(uow, command.practice, command.year)
    budget.make_hard(context, basis_points_of(uow, budget, context.effective_on))
    return Result(f"{command.practice} {command.year} is hard from {context.effective_on}")


@handles(BudgetSoften)
def soften(command: BudgetSoften, context: Context, uow: UnitOfWork) -> Result:
    budget = existing_budget(uow, command.practice, command.year)
    budget.make_indicative(context)
    return Result(
        f"{command.practice} {command.year} is indicative from {context.effective_on}"
    )


# --- the consortium's risk pool ------------------------------------------------------


def top_slice_terms(uow: UnitOfWork, practice: str, year: str, day: date) -> tuple[str, int]:
    """(consortium, top-slice in basis points) of the pool the practice belongs to on `day`.

    ("", 0) when the practice is in no consortium with a risk pool for the year.
    """
    for code in uow.consortia_of(practice):
        consortium = uow.consortium(code)
        if year in consortium.top_slices and consortium.is_member(practice, day):
            return code, consortium.top_slices[year]
    return "", 0


def pool_access(uow: UnitOfWork, consortium_code: str, year: str, day: date) -> PoolAccess:
    """The pool with its capacity: the sum of its members' top-slices on `day`."""
    consortium = uow.consortium(consortium_code)
    basis_points = consortium.top_slices.get(year, 0)
    fy = FinancialYear.parse(year)
    capacity = 0
    for member in consortium.members_on(day):
        budget = uow.budget(member, fy)
        capacity += sum(top_slice(budget.allocated[e], basis_points) for e in Element)
    return PoolAccess(consortium_code, basis_points, capacity, uow.pool(consortium_code, year))


def pool_for_spend(
    uow: UnitOfWork, budget: Budget, element: Element, extra: int, day: date
) -> tuple[int, PoolAccess | None]:
    """Top-slice basis points, and the pool only when the spend would overspend."""
    code, basis_points = top_slice_terms(uow, budget.practice, budget.year.text, day)
    if not code or budget.shortfall(element, extra, basis_points) == 0:
        return basis_points, None
    return basis_points, pool_access(uow, code, str(budget.year), day)


def pool_for_return(uow: UnitOfWork, budget: Budget, ref: str, day: date) -> PoolAccess | None:
    commitment = budget.commitment(ref)
    if not commitment.drawn:
        return None
    return pool_access(uow, commitment.pool, str(budget.year), day)


def _top_slices(budget: Budget, basis_points: int) -> int:
    return sum(top_slice(budget.allocated[e], basis_points) for e in Element)


def require_top_slice_fits(
    uow: UnitOfWork, practice: str, year: str, basis_points: int, day: date
) -> None:
    """A new top-slice must not leave a hard budget below what it has committed and settled."""
    budget = uow.budget(practice, FinancialYear.parse(year))
    if not budget.exists or not budget.is_hard_on_or_after(day):
        return
    short = [e for e in Element
             if budget.available(e, basis_points) + budget.drawn[e] < budget.used(e)]
    if short:
        raise RuleViolation(
            "hard-budget",
            f"a {basis_points / 100:g}% top-slice would leave {practice}'s hard {year} budget "
            f"below what it has committed and settled on {', '.join(short)}",
        )


def require_capacity_covers_draws(access: PoolAccess, capacity: int, what: str) -> None:
    """A pool's capacity may not fall below what has already been drawn on it."""
    if capacity < access.pool.drawn:
        raise RuleViolation(
            "risk-pool",
            f"{what} would cut consortium {access.consortium}'s risk pool to "
            f"{format_pence(capacity)}, below the {format_pence(access.pool.drawn)} already drawn",
        )


def basis_points_of(uow: UnitOfWork, budget: Budget, day: date) -> int:
    return top_slice_terms(uow, budget.practice, str(budget.year), day)[1]


# --- spending ------------------------------------------------------------------------


@handles(SpendCommit)
def commit(command: SpendCommit, context: Context, uow: UnitOfWork) -> Result:
    # Each field read once: a command's attributes are read through pydantic's __getattr__
    # hook, several times the cost of a local's, and every bulk-load line runs this.
    practice, year, ref, element = command.practice, command.year, command.ref, command.element
    amount = command.amount
    existing_practice(uow, practice).require_open_on(context.effective_on)
    budget = uow.budget(practice, FinancialYear.parse(year))
    if uow.ref(ref) is not None:
        raise RuleViolation("commitment", f"commitment reference {ref} is already used")
    basis_points, pool = pool_for_spend(uow, budget, element, amount, context.effective_on)
    budget.commit(
        context,
        ref=ref,
        element=element,
        amount=amount,
        provider=command.provider,
        service=command.service,
        qs_codes=command.qs,
        basis_points=basis_points,
        pool=pool,
    )
    flag = _spend_flags(context)
    return Result(
        f"committed {format_pence(amount)} as {ref} against {element} of "
        f"{practice} {year}{flag}",
        (RefEntry(ref, practice, year),),  # the refs, by position: no dict of keywords
    )


def budget_of_ref(uow: UnitOfWork, ref: str) -> Budget:
    """The budget a commitment ref was committed against; NotFound (rule `commitment`)
    when none was, naming the ref in capitals when that one was (refs are compared
    exactly: `r-0001` is not `R-0001`)."""
    entry = uow.ref(ref)
    if entry is None:
        upper = ref.upper()
        other = (f"; refs are case-sensitive: {upper} is one"
                 if upper != ref and uow.ref(upper) is not None else "")
        raise NotFound("commitment", f"no commitment {ref}{other}")
    return uow.budget(entry.practice, FinancialYear.parse(entry.year))


@handles(SpendVary)
def vary(command: SpendVary, context: Context, uow: UnitOfWork) -> Result:
    budget = budget_of_ref(uow, command.ref)
    amount = command.amount
    commitment = budget.commitment(command.ref)
    increase = max(amount - commitment.amount, 0)
    if increase:  # a closed practice's commitments may be reduced, settled, cancelled
        uow.practice(budget.practice).require_open_on(context.effective_on)
    basis_points, pool = pool_for_spend(uow, budget, commitment.element, increase,
                                        context.effective_on)
    if not increase:
        pool = pool_for_return(uow, budget, command.ref, context.effective_on)
    budget.vary(context, command.ref, amount, basis_points, pool)
    flag = _spend_flags(context)
    return Result(f"varied {command.ref} to {format_pence(amount)}{flag}")


@handles(SpendSettle)
def settle(command: SpendSettle, context: Context, uow: UnitOfWork) -> Result:
    budget = budget_of_ref(uow, command.ref)
    amount = command.amount
    pool = pool_for_return(uow, budget, command.ref, context.effective_on)
    budget.settle(context, command.ref, amount, final=command.final, pool=pool)
    left = budget.commitment(command.ref).outstanding
    tail = "final; closed" if command.final else f"{format_pence(left)} outstanding"
    flags = _spend_flags(context)
    return Result(f"settled {format_pence(amount)} of {command.ref} ({tail}){flags}")


@handles(SpendCancel)
def cancel(command: SpendCancel, context: Context, uow: UnitOfWork) -> Result:
    budget = budget_of_ref(uow, command.ref)
    released = budget.commitment(command.ref).outstanding
    budget.cancel(context, command.ref, pool_for_return(uow, budget, command.ref,
                                                        context.effective_on))
    return Result(
        f"cancelled {command.ref}, releasing {format_pence(released)}{_spend_flags(context)}"
    )


_OVERSPENDING = (SpendCommitted, CommitmentVaried)


@functools.cache
def _flag_kinds(kind: type[LedgerEvent]) -> tuple[bool, bool, bool]:
    """Whether an event of this kind is one that flags an overspend, a pool draw, a pool
    return: asked once a kind (`isinstance` asks a model's class through its metaclass,
    event after event); `isinstance` then only narrows, on the event's own class."""
    return (issubclass(kind, _OVERSPENDING), issubclass(kind, RiskPoolDrawn),
            issubclass(kind, RiskPoolReturned))


def _spend_flags(context: Context) -> str:
    """What the answer must tell staff: an indicative overspend, or a pool draw."""
    flags = []
    for event in context.journal:
        overspending, drawn, returned = _flag_kinds(type(event))
        if overspending and isinstance(event, _OVERSPENDING) and event.overspend_pence:
            flags.append(f"OVERSPEND FLAGGED: {format_pence(event.overspend_pence)} over")
        if drawn and isinstance(event, RiskPoolDrawn):
            flags.append(
                f"{format_pence(event.amount_pence)} drawn from consortium "
                f"{event.consortium}'s risk pool"
            )
        if returned and isinstance(event, RiskPoolReturned):
            flags.append(
                f"{format_pence(event.amount_pence)} returned to consortium "
                f"{event.consortium}'s risk pool"
            )
    return "".join(f"; {flag}" for flag in flags) if flags else ""


# --- access to the service -------------------------------------------------------------


def grantee_known(uow: UnitOfWork, grantee: str) -> bool:
    """Whether a token's grantee is an organisation the ledger knows: a practice
    registered or a consortium formed. Allocators, auditors and services are not
    organisations of the ledger: any is known."""
    actor = Actor.parse(grantee)
    finder = {Role.PRACTICE: uow.practice, Role.CONSORTIUM: uow.consortium}.get(actor.role)
    return finder is None or bool(finder(actor.code).version)


@handles(TokenCreate)
def create_token(command: TokenCreate, context: Context, uow: UnitOfWork) -> Result:
    register = uow.access()
    register.grant(context, token_id=command.token_id, grantee=command.actor,
                   digest=command.secret_sha256, label=command.label,
                   expires_at=command.expires, read_only=command.read_only,
                   bootstrap=command.bootstrap,
                   grantee_known=grantee_known(uow, command.actor))
    grant = register.grants[command.token_id]
    mode = "read-only" if grant.read_only else "read-write"
    until = f", {expiry_text(grant.expires_at)}" if grant.expires_at else ""
    return Result(f"granted token {command.token_id} to {grant.grantee} ({mode}{until})")


def expiry_text(expires_at: datetime) -> str:
    """A token's expiry as its answer says it: `works through 2099-03-31 UTC, expires
    2099-04-01T00:00:00Z` when it falls at midnight UTC (as a bare date's does), so no
    reader takes the date shown for the last day it works; otherwise `expires` and the
    instant, in UTC ending in Z."""
    moment = expires_at.astimezone(UTC)
    if moment.time() == time() and moment.date() > date.min:
        last = moment.date() - timedelta(days=1)
        return f"works through {last.isoformat()} UTC, expires {utc_text(moment)}"
    return f"expires {utc_text(moment)}"


@handles(TokenRevoke)
def revoke_token(command: TokenRevoke, context: Context, uow: UnitOfWork) -> Result:
    register = uow.access()
    register.revoke(context, command.token_id)
    grantee = register.grants[command.token_id].grantee
    return Result(f"revoked token {command.token_id} of {grantee}")
