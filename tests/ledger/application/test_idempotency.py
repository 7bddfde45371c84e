"""Invariant 10: a command id records once and always gets the same answer."""

from __future__ import annotations

import hashlib
import sqlite3
from urllib.parse import parse_qs, urlsplit

import orjson
import psycopg
import pytest
from psycopg import sql

from ledger.application.commands import FINGERPRINT_VERSION, build_command
from ledger.bootstrap import Ledger
from ledger.domain.errors import IdempotencyConflict, RuleViolation
from tests.conftest import PG_BASE_URL
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


# --- receipts recorded by older versions, whose fingerprints are of another format -----


def _set_fingerprint(db_url: str, command_id: str, fingerprint: str) -> None:
    """Rewrite a receipt's fingerprint with SQL, as an older version would have stored it."""
    if db_url.startswith("postgresql://"):
        schema = parse_qs(urlsplit(db_url).query)["schema"][0]
        with psycopg.connect(PG_BASE_URL, autocommit=True) as conn:
            changed = conn.execute(
                sql.SQL("UPDATE {0}.ledger_commands SET fingerprint = %s "
                        "WHERE command_id = %s").format(sql.Identifier(schema)),
                (fingerprint, command_id)).rowcount
    else:
        with sqlite3.connect(db_url) as conn:
            changed = conn.execute(
                "UPDATE ledger_commands SET fingerprint = ? WHERE command_id = ?",
                (fingerprint, command_id)).rowcount
    assert changed == 1


def _sha256(*parts: object) -> str:
    return hashlib.sha256(orjson.dumps(list(parts), option=orjson.OPT_SORT_KEYS)).hexdigest()


COMMIT_ARGS = {"practice": "A81001", "year": YEAR, "element": "acute", "ref": "R-1",
               "provider": " RTR", "service": "Hip replacement", "qs": ["QS9", "QS3"],
               "on": "2024-07-01"}


def test_a_receipt_of_the_first_format_still_answers_its_own_retry(
        ledger: Ledger, db_url: str) -> None:
    """The first format: SHA-256 over the arguments as written (amount text, text as given,
    QS codes in the order given) and the actor as given; no version prefix."""
    seed(ledger)
    run(ledger, "spend commit", ME, "c-old", **COMMIT_ARGS, amount="100.00")
    _set_fingerprint(db_url, "c-old", _sha256("spend commit", ME, {
        **COMMIT_ARGS, "amount": "100.00"}))
    head = ledger.store.head()
    again = run(ledger, "spend commit", ME, "c-old", **COMMIT_ARGS, amount="100.00")
    assert again.already_applied
    with pytest.raises(IdempotencyConflict):
        run(ledger, "spend commit", ME, "c-old", **COMMIT_ARGS, amount="100.01")
    assert ledger.store.head() == head
    assert topics(ledger).count("SpendCommitted") == 1


def test_a_receipt_of_the_second_format_still_answers_its_own_retry(
        ledger: Ledger, db_url: str) -> None:
    """The second format: `v2:` and SHA-256 over parsed values (pence, QS codes in order)
    with text as given, before text was normalised."""
    seed(ledger)
    run(ledger, "spend commit", ME, "c-v2", **COMMIT_ARGS, amount="100")
    body = {**COMMIT_ARGS, "amount": 10000, "qs": ["QS3", "QS9"]}
    _set_fingerprint(db_url, "c-v2", "v2:" + _sha256("spend commit", ME, body))
    head = ledger.store.head()
    for spelling in ("100", "100.00", "£100"):
        assert run(ledger, "spend commit", ME, "c-v2", **COMMIT_ARGS,
                   amount=spelling).already_applied
    with pytest.raises(IdempotencyConflict):
        run(ledger, "spend commit", ME, "c-v2", **COMMIT_ARGS, amount="99")
    assert ledger.store.head() == head


def test_new_receipts_carry_the_current_format(ledger: Ledger) -> None:
    seed(ledger)
    run(ledger, "spend commit", ME, "c-new", **COMMIT_ARGS, amount="100")
    receipt = ledger.store.receipts(["c-new"])["c-new"]
    assert receipt.fingerprint.startswith("v3:")
    assert FINGERPRINT_VERSION == "v3"


def test_commands_spelled_differently_are_equal_and_fingerprint_alike() -> None:
    given = {**COMMIT_ARGS, "amount": "100"}
    spelled = {**COMMIT_ARGS, "amount": "£100.00", "provider": "RTR ", "qs": ["qs3", "QS9"],
               "practice": "a81001", "element": "ACUTE"}
    first = build_command("spend commit", given)
    second = build_command("spend commit", spelled)
    assert first == second
    assert hash(first) == hash(second)
    assert first.fingerprint(ME) == second.fingerprint(ME)
    assert first != build_command("spend commit", {**given, "amount": "100.01"})


def test_a_formula_receipt_taken_over_the_rate_as_written_still_answers_its_retry() -> None:
    """Before rates were fingerprinted in pence, a v3 receipt held each rate's text."""
    from ledger.application.commands import _digest  # noqa: PLC0415

    args = {"practice": "A81001", "year": "2024-25", "rate": {"acute": "780"},
            "on": "2024-04-01"}
    command = build_command("budget allocate-formula", args)
    legacy = f"{FINGERPRINT_VERSION}:" + _digest(command.name, ME, command.model_dump(
        mode="python", exclude_none=True))
    assert legacy != command.fingerprint(ME)
    assert command.matches(legacy, ME, ME)
    respelled = build_command("budget allocate-formula", {**args, "rate": {"acute": "780.00"}})
    assert respelled.fingerprint(ME) == command.fingerprint(ME)
    other = build_command("budget allocate-formula", {**args, "rate": {"acute": "781"}})
    assert not other.matches(legacy, ME, ME)
    assert not other.matches(command.fingerprint(ME), ME, ME)
