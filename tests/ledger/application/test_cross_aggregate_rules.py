"""Invariant 7 across aggregates: membership, holders that exist, no cycles, leaving."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ledger.bootstrap import Ledger
from ledger.domain.errors import NotFound, RuleViolation
from tests.ledger.application.scenario import A1, A2, A3, ALLOCATOR, ME, YEAR, commit, run, seed

OFFICER = "consortium:16C"


def refused(ledger: Ledger, action: Callable[[], object], rule: str) -> None:
    head = ledger.store.head()
    with pytest.raises(RuleViolation) as error:
        action()
    assert error.value.rule == rule, str(error.value)
    assert ledger.store.head() == head


def delegate(ledger: Ledger, practice: str, to: str, on: str, element: str = "acute") -> None:
    run(ledger, "budget delegate", f"practice:{practice}", practice=practice, year=YEAR,
        element=element, to=to, on=on)


def test_delegation_to_a_consortium_needs_membership_on_the_effective_date(
    ledger: Ledger,
) -> None:
    seed(ledger, members=())
    run(ledger, "consortium join", OFFICER, consortium="16C", practice=A1, on="2024-06-01")
    refused(ledger, lambda: delegate(ledger, A1, "consortium:16C", "2024-05-31"), "membership")
    delegate(ledger, A1, "consortium:16C", "2024-06-01")
    # A2 never joined.
    refused(ledger, lambda: delegate(ledger, A2, "consortium:16C", "2024-07-01"), "membership")
    # Opting out to a consortium needs membership too.
    refused(ledger, lambda: run(ledger, "budget opt-out", f"practice:{A2}", practice=A2,
                                year=YEAR, to="consortium:16C", reason="x", on="2024-07-01"),
            "membership")


def test_a_membership_that_has_ended_does_not_allow_delegation(ledger: Ledger) -> None:
    seed(ledger)
    run(ledger, "consortium leave", OFFICER, consortium="16C", practice=A1, on="2024-06-01")
    refused(ledger, lambda: delegate(ledger, A1, "consortium:16C", "2024-06-01"), "membership")


def test_the_holder_cannot_be_the_practice_itself(ledger: Ledger) -> None:
    seed(ledger)
    refused(ledger, lambda: delegate(ledger, A1, f"practice:{A1}", "2024-06-01"), "holder")
    refused(ledger, lambda: run(ledger, "budget opt-out", ME, practice=A1, year=YEAR,
                                to=f"practice:{A1}", reason="x", on="2024-06-01"), "holder")


def test_holders_must_exist(ledger: Ledger) -> None:
    seed(ledger)
    for holder, rule in (("consortium:07L", "consortium"), ("practice:B82001", "practice")):
        head = ledger.store.head()
        with pytest.raises(NotFound) as error:
            delegate(ledger, A1, holder, "2024-06-01")
        assert error.value.rule == rule
        assert ledger.store.head() == head


def test_delegations_may_not_form_a_cycle(ledger: Ledger) -> None:
    seed(ledger)
    delegate(ledger, A1, f"practice:{A2}", "2024-06-01")
    refused(ledger, lambda: delegate(ledger, A2, f"practice:{A1}", "2024-06-01"), "no-cycles")
    delegate(ledger, A2, f"practice:{A3}", "2024-06-01")
    refused(ledger, lambda: delegate(ledger, A3, f"practice:{A1}", "2024-07-01"), "no-cycles")
    # Another element is not part of the chain.
    delegate(ledger, A2, f"practice:{A1}", "2024-06-01", element="prescribing")


def test_a_cycle_through_an_opt_out_is_refused(ledger: Ledger) -> None:
    seed(ledger)
    run(ledger, "budget opt-out", ME, practice=A1, year=YEAR, to=f"practice:{A2}",
        reason="merger", on="2024-06-01")
    refused(ledger, lambda: run(ledger, "budget opt-out", f"practice:{A2}", practice=A2,
                                year=YEAR, to=f"practice:{A1}", reason="x", on="2024-07-01"),
            "no-cycles")


def test_a_cycle_closed_by_an_earlier_recorded_later_dated_delegation_is_refused(
    ledger: Ledger,
) -> None:
    seed(ledger)
    delegate(ledger, A1, f"practice:{A2}", "2024-09-01")
    refused(ledger, lambda: run(ledger, "budget delegate", f"practice:{A2}", practice=A2,
                                year=YEAR, element="acute", to=f"practice:{A1}",
                                on="2024-05-01"), "no-cycles")


def test_leaving_a_consortium_that_still_holds_elements_is_refused(ledger: Ledger) -> None:
    seed(ledger)
    delegate(ledger, A1, "consortium:16C", "2024-06-01", element="prescribing")
    refused(ledger, lambda: run(ledger, "consortium leave", OFFICER, consortium="16C",
                                practice=A1, on="2024-09-01"), "membership")
    run(ledger, "budget revoke", ME, practice=A1, year=YEAR, element="prescribing",
        on="2024-09-01")
    run(ledger, "consortium leave", OFFICER, consortium="16C", practice=A1, on="2024-09-01")


def test_leaving_is_refused_when_a_later_delegation_is_recorded(ledger: Ledger) -> None:
    seed(ledger)
    delegate(ledger, A1, "consortium:16C", "2024-10-01")
    refused(ledger, lambda: run(ledger, "consortium leave", OFFICER, consortium="16C",
                                practice=A1, on="2024-09-01"), "membership")


def test_leaving_is_refused_while_a_later_years_budget_is_delegated(ledger: Ledger) -> None:
    seed(ledger)
    run(ledger, "budget allocate", ALLOCATOR, practice=A1, year="2025-26", on="2025-04-01",
        element={"acute": "5000"})
    run(ledger, "budget delegate", ME, practice=A1, year="2025-26", element="acute",
        to="consortium:16C", on="2025-04-01")
    refused(ledger, lambda: run(ledger, "consortium leave", OFFICER, consortium="16C",
                                practice=A1, on="2025-03-01"), "membership")


def test_a_delegation_may_not_outlast_a_recorded_leave(ledger: Ledger) -> None:
    seed(ledger)
    run(ledger, "consortium leave", OFFICER, consortium="16C", practice=A1, on="2024-09-01")
    refused(ledger, lambda: delegate(ledger, A1, "consortium:16C", "2024-06-01"), "membership")


def test_the_consortium_commits_only_while_it_holds(ledger: Ledger) -> None:
    seed(ledger)
    delegate(ledger, A1, "consortium:16C", "2024-06-01")
    commit(ledger, "R-1", "10", actor=OFFICER, on="2024-06-01")
    run(ledger, "budget revoke", ME, practice=A1, year=YEAR, element="acute", on="2024-08-01")
    head = ledger.store.head()
    with pytest.raises(RuleViolation):
        commit(ledger, "R-2", "10", actor=OFFICER, on="2024-08-01")
    assert ledger.store.head() == head
