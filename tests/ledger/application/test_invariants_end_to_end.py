"""Each invariant of DESIGN §4 end to end, through LedgerService, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from ledger.application.commands import build_command
from ledger.bootstrap import Ledger
from ledger.domain.budget import Budget
from ledger.domain.errors import InvalidInput, LedgerError, NotAuthorised, RuleViolation
from ledger.domain.events import SpendCommitted, budget_stream
from tests.ledger.application.scenario import (
    A1,
    A2,
    ALLOCATOR,
    ME,
    YEAR,
    commit,
    events,
    run,
    seed,
    topics,
)


def refused_and_nothing_recorded(ledger: Ledger, action: object, error: type[LedgerError],
                                 rule: str | None = None) -> LedgerError:
    assert callable(action)
    head = ledger.store.head()
    with pytest.raises(error) as refused:
        action()
    if rule is not None:
        assert refused.value.rule == rule, str(refused.value)
    assert ledger.store.head() == head
    return refused.value


def test_holders_move_with_delegation_opt_out_and_opt_in(ledger: Ledger) -> None:
    seed(ledger)
    run(ledger, "budget delegate", ME, practice=A1, year=YEAR, element=["prescribing"],
        to="consortium:16C", on="2024-06-01")
    run(ledger, "budget opt-out", ME, practice=A1, year=YEAR, to="practice:A81002",
        on="2024-08-01", reason="merger talks")
    run(ledger, "budget opt-in", ME, practice=A1, year=YEAR, on="2024-10-01")
    # The holder on each command's own date decides who may spend.
    commit(ledger, "R-1", "10", element="prescribing", actor="consortium:16C", on="2024-06-01")
    commit(ledger, "R-2", "10", element="acute", actor="practice:A81002", on="2024-08-01")
    refused_and_nothing_recorded(
        ledger, lambda: commit(ledger, "R-3", "10", element="prescribing",
                               actor="consortium:16C", on="2024-10-01"), NotAuthorised)
    commit(ledger, "R-3", "10", element="prescribing", on="2024-10-01")
    assert topics(ledger).count("SpendCommitted") == 3


def test_the_accountable_practice_stays_on_every_budget_event(ledger: Ledger) -> None:
    seed(ledger)
    run(ledger, "budget opt-out", ME, practice=A1, year=YEAR, to="practice:A81002",
        on="2024-08-01", reason="merger")
    commit(ledger, "R-1", "10", actor="practice:A81002", on="2024-08-02")
    stream = ledger.store.stream(budget_stream(A1, YEAR))
    assert stream
    assert {getattr(e, "practice", None) for e in stream} == {A1}
    assert Budget.from_events(stream[0].originator_id, stream).accountable == ME


@pytest.mark.parametrize(
    ("name", "actor", "args"),
    [
        ("practice register", "practice:A81001", {"practice": "B82001", "name": "X",
                                                  "list_size": 1}),
        ("budget allocate", "allocator:Q99", {"practice": A2, "year": "2025-26",
                                              "element": {"acute": "1"}, "on": "2025-04-01"}),
        ("budget adjust", ME, {"practice": A1, "year": YEAR, "element": "acute", "by": "5",
                               "reason": "x", "on": "2024-07-01"}),
        ("budget harden", ME, {"practice": A1, "year": YEAR, "on": "2024-07-01"}),
        ("budget delegate", "practice:A81002", {"practice": A1, "year": YEAR,
                                                "element": "acute", "to": "consortium:16C",
                                                "on": "2024-07-01"}),
        ("budget opt-out", "consortium:16C", {"practice": A1, "year": YEAR,
                                              "to": "practice:A81002", "reason": "x",
                                              "on": "2024-07-01"}),
        ("spend commit", ALLOCATOR, {"practice": A1, "year": YEAR, "element": "acute",
                                     "ref": "R-9", "amount": "1", "provider": "RTR",
                                     "service": "Hip", "on": "2024-07-01"}),
        ("consortium join", "consortium:07L", {"consortium": "16C", "practice": A2}),
        ("consortium form", "practice:A81001", {"consortium": "07L", "name": "X",
                                                "officer": "Y"}),
    ],
)
def test_commands_without_authority_are_refused_and_record_nothing(
    ledger: Ledger, name: str, actor: str, args: dict[str, object]
) -> None:
    seed(ledger, practices=(A1, A2))
    command = build_command(name, args)
    for who in (actor, "auditor:jsmith"):
        error = refused_and_nothing_recorded(
            ledger, lambda w=who: ledger.service.execute(command, w),
            NotAuthorised, "authority")
        assert who in str(error)


def test_a_hard_budget_takes_exactly_its_available_amount_and_not_a_penny_more(
    ledger: Ledger,
) -> None:
    seed(ledger, amount="100")
    run(ledger, "budget harden", ALLOCATOR, practice=A1, year=YEAR, on="2024-04-01")
    commit(ledger, "R-1", "60")
    refused_and_nothing_recorded(ledger, lambda: commit(ledger, "R-2", "40.01"), RuleViolation,
                                 "hard-budget")
    commit(ledger, "R-2", "£40.00")
    refused_and_nothing_recorded(ledger, lambda: commit(ledger, "R-3", "0.01"), RuleViolation,
                                 "hard-budget")
    refused_and_nothing_recorded(
        ledger, lambda: run(ledger, "spend vary", ME, ref="R-1", amount="60.01",
                            on="2024-07-02"), RuleViolation, "hard-budget")


def test_an_indicative_budget_records_and_flags_overspend(ledger: Ledger) -> None:
    seed(ledger, amount="100")
    answer = commit(ledger, "R-1", "150")
    assert "OVERSPEND FLAGGED" in answer.summary
    recorded = [e for _, e in events(ledger) if isinstance(e, SpendCommitted)]
    assert [e.overspend_pence for e in recorded] == [50_00]


def test_adjustments_never_take_a_hard_budget_below_what_is_used(ledger: Ledger) -> None:
    seed(ledger, amount="100")
    run(ledger, "budget harden", ALLOCATOR, practice=A1, year=YEAR, on="2024-04-01")
    commit(ledger, "R-1", "60")
    run(ledger, "spend settle", ME, ref="R-1", amount="20", on="2024-07-02")
    refused_and_nothing_recorded(
        ledger, lambda: run(ledger, "budget adjust", ALLOCATOR, practice=A1, year=YEAR,
                            element="acute", by="-40.01", reason="cut", on="2024-08-01"),
        RuleViolation, "hard-budget")
    run(ledger, "budget adjust", ALLOCATOR, practice=A1, year=YEAR, element="acute",
        by="-40", reason="cut", on="2024-08-01")


def test_malformed_amounts_are_refused_before_anything_is_recorded(ledger: Ledger) -> None:
    seed(ledger, practices=(A1,))
    for amount in ["-5", "0", "1.234", "abc", "1e9", "NaN", "inf", "£1,2,3", "1,23"]:
        refused_and_nothing_recorded(
            ledger, lambda a=amount: commit(ledger, "R-1", a),
            InvalidInput)


@pytest.mark.parametrize("on", ["2024-03-31", "2025-04-01"])
def test_effective_dates_outside_the_year_are_refused(ledger: Ledger, on: str) -> None:
    seed(ledger, practices=(A1, A2))
    refused_and_nothing_recorded(ledger, lambda: commit(ledger, "R-1", "10", on=on),
                                 RuleViolation, "effective-date")
    refused_and_nothing_recorded(
        ledger, lambda: run(ledger, "budget delegate", ME, practice=A1, year=YEAR,
                            element="acute", to="practice:A81002", on=on),
        RuleViolation, "effective-date")


def test_free_text_with_an_nhs_number_is_refused(ledger: Ledger) -> None:
    seed(ledger, practices=(A1, A2))
    for text in ["943 476 5919", "9434765919", "943-476-5919"]:
        refused_and_nothing_recorded(
            ledger, lambda t=text: commit(ledger, "R-1", "10",
                                          service=f"Hip for {t}"), InvalidInput)
        refused_and_nothing_recorded(
            ledger, lambda t=text: run(ledger, "budget opt-out", ME,
                                       practice=A1, year=YEAR, to="practice:A81002",
                                       reason=f"patient {t}", on="2024-07-01"),
            InvalidInput)
    commit(ledger, "R-1", "10", service="Hip for 943 476 5918")  # fails the check: not one


def test_commitments_vary_settle_and_cancel_by_reference(ledger: Ledger) -> None:
    seed(ledger)
    commit(ledger, "R-1", "100")
    run(ledger, "spend vary", ME, ref="R-1", amount="130", on="2024-07-02")
    run(ledger, "spend settle", ME, ref="R-1", amount="60", on="2024-07-03")
    refused_and_nothing_recorded(
        ledger, lambda: run(ledger, "spend vary", ME, ref="R-1", amount="59.99",
                            on="2024-07-04"), RuleViolation, "commitment")
    refused_and_nothing_recorded(
        ledger, lambda: run(ledger, "spend settle", ME, ref="R-1", amount="70.01",
                            on="2024-07-04"), RuleViolation, "commitment")
    answer = run(ledger, "spend cancel", ME, ref="R-1", reason="duplicate", on="2024-07-05")
    assert "£70.00" in answer.summary
    assert topics(ledger)[-4:] == ["SpendCommitted", "CommitmentVaried", "CommitmentSettled",
                                   "CommitmentCancelled"]
