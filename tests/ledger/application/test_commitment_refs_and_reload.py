"""Commitment references are unique across budgets; a second ledger sees the same state."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ledger.bootstrap import Ledger
from ledger.domain.budget import Budget
from ledger.domain.errors import NotFound, RuleViolation
from ledger.domain.events import budget_stream
from tests.ledger.application.scenario import A1, A2, ME, YEAR, commit, events, run, seed


def test_a_reference_is_unique_across_budgets_and_years(ledger: Ledger) -> None:
    seed(ledger)
    commit(ledger, "R-1", "10")
    head = ledger.store.head()
    with pytest.raises(RuleViolation) as error:
        commit(ledger, "R-1", "10", practice=A2)
    assert error.value.rule == "commitment"
    run(ledger, "budget allocate", "allocator:Q71", practice=A1, year="2025-26",
        element={"acute": "10"}, on="2025-04-01")
    with pytest.raises(RuleViolation):
        run(ledger, "spend commit", ME, practice=A1, year="2025-26", element="acute",
            ref="R-1", amount="1", provider="RTR", service="Hip", on="2025-05-01")
    assert ledger.store.head() == head + 1  # only the 2025-26 allocation


def test_a_reference_finds_its_budget(ledger: Ledger) -> None:
    seed(ledger)
    commit(ledger, "R-A2", "10", practice=A2)
    run(ledger, "spend settle", f"practice:{A2}", ref="R-A2", amount="10", final=True,
        on="2024-07-02")
    with pytest.raises(NotFound):
        run(ledger, "spend vary", ME, ref="R-none", amount="5", on="2024-07-02")
    stream = ledger.store.stream(budget_stream(A2, YEAR))
    assert [e.topic for e in stream][-2:] == ["SpendCommitted", "CommitmentSettled"]


def test_a_second_ledger_on_the_same_store_sees_the_same_state(
    open_ledger: Callable[[], Ledger],
) -> None:
    first = open_ledger()
    seed(first)
    commit(first, "R-1", "100")
    run(first, "budget delegate", ME, practice=A1, year=YEAR, element="acute",
        to="consortium:16C", on="2024-08-01")
    second = open_ledger()
    assert second.store.head() == first.store.head()
    assert events(second) == events(first)
    # The second instance acts on what the first recorded, and vice versa.
    run(second, "spend vary", ME, ref="R-1", amount="120", on="2024-07-15")
    with pytest.raises(RuleViolation):  # the first's cache must not hide the second's change
        run(first, "spend vary", ME, ref="R-1", amount="120", on="2024-07-16")
    run(first, "spend settle", ME, ref="R-1", amount="120", on="2024-07-16")
    stream = second.store.stream(budget_stream(A1, YEAR))
    budget = Budget.from_events(stream[0].originator_id, stream)
    assert budget.settled[budget.commitments["R-1"].element] == 120_00
    assert budget.holder_on(budget.commitments["R-1"].element,
                            budget.year.last_day) == "consortium:16C"
    assert [e.originator_version for e in stream] == list(range(1, len(stream) + 1))
