"""Invariant 10: a command id records once and always gets the same answer."""

from __future__ import annotations

import pytest

from ledger.bootstrap import Ledger
from ledger.domain.errors import IdempotencyConflict, RuleViolation
from tests.ledger.application.scenario import ME, YEAR, commit, run, seed, topics


def test_the_same_command_id_twice_records_once_and_answers_the_same(ledger: Ledger) -> None:
    seed(ledger)
    first = commit(ledger, "R-1", "100", command_id="c-1")
    head = ledger.store.head()
    again = commit(ledger, "R-1", "100", command_id="c-1")
    assert ledger.store.head() == head
    assert again.already_applied
    assert not first.already_applied
    assert (again.command, again.command_id, again.summary, again.effective_on, again.events) \
        == (first.command, first.command_id, first.summary, first.effective_on, first.events)
    assert topics(ledger).count("SpendCommitted") == 1


def test_equivalent_spellings_of_a_command_are_the_same_command(ledger: Ledger) -> None:
    seed(ledger)
    commit(ledger, "R-1", "100", command_id="c-1")
    head = ledger.store.head()
    again = run(ledger, "spend commit", ME, "c-1", practice="a81001", year=YEAR,
                element="Acute", ref="R-1", amount=" 100 ", provider="RTR",
                service="Hip replacement", qs=["qs3"], on="2024-07-01")
    assert again.already_applied
    assert ledger.store.head() == head


@pytest.mark.parametrize("change", ["amount", "actor", "command"])
def test_the_same_id_for_a_different_command_is_a_conflict_and_records_nothing(
    ledger: Ledger, change: str
) -> None:
    seed(ledger)
    commit(ledger, "R-1", "100", command_id="c-1")
    head = ledger.store.head()
    attempts = {
        "amount": lambda: commit(ledger, "R-1", "101", command_id="c-1"),
        "actor": lambda: commit(ledger, "R-1", "100", command_id="c-1", actor="allocator:Q71"),
        "command": lambda: run(ledger, "spend cancel", ME, "c-1", ref="R-1", on="2024-07-02"),
    }
    with pytest.raises(IdempotencyConflict) as error:
        attempts[change]()
    assert error.value.rule == "idempotency"
    assert "c-1" in str(error.value)
    assert ledger.store.head() == head


def test_a_refused_command_leaves_its_id_free(ledger: Ledger) -> None:
    seed(ledger, amount="100")
    run(ledger, "budget harden", "allocator:Q71", practice="A81001", year=YEAR,
        on="2024-04-01")
    head = ledger.store.head()
    with pytest.raises(RuleViolation):
        commit(ledger, "R-1", "100.01", command_id="c-9")
    assert ledger.store.head() == head
    commit(ledger, "R-1", "100", command_id="c-9")
    assert ledger.store.head() == head + 1


def test_replaying_a_batch_applies_only_what_is_missing(ledger: Ledger) -> None:
    from ledger.application.commands import build_command  # noqa: PLC0415
    from ledger.application.service import Request  # noqa: PLC0415

    seed(ledger)

    def request(n: int) -> Request:
        args = {"practice": "A81001", "year": YEAR, "element": "acute", "ref": f"R-{n}",
                "amount": "1", "provider": "RTR", "service": "Hip", "on": "2024-07-01"}
        return Request(build_command("spend commit", args), ME, f"b-{n}")

    first = ledger.service.execute_batch([request(n) for n in range(3)])
    assert [o.status for o in first] == ["applied"] * 3
    second = ledger.service.execute_batch([request(n) for n in range(5)])
    assert [o.status for o in second] == ["already applied"] * 3 + ["applied"] * 2
    assert topics(ledger).count("SpendCommitted") == 5
