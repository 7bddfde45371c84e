"""A practice is a member of one consortium at a time: its top-slice goes to one risk pool.

A second membership at once would put the same top-slice in two pools' capacity (money
no budget gave up, which a hard budget's overspend could then draw) while the practice's
budget is cut for one of them only.
"""

from __future__ import annotations

import json

import pytest

from ledger.application import handlers
from tests.commands.conftest import Ledger, head

pytestmark = pytest.mark.usefixtures("signing_key")

ALLOCATOR = "allocator:Q71"
YEAR = "2024-25"


def two_consortia_with_pools(invoke: Ledger) -> None:
    writes: list[tuple[str, tuple[str, ...]]] = [
        (ALLOCATOR, ("consortium", "form", "16C", "--name", "Tees Valley", "--officer",
                     "Dr Jane Smith", "--on", "2024-04-01")),
        (ALLOCATOR, ("consortium", "form", "17D", "--name", "Durham", "--officer",
                     "Dr Ann Lee", "--on", "2024-04-01")),
        (ALLOCATOR, ("practice", "register", "A81001", "--name", "Densham", "--list-size",
                     "4069", "--on", "2024-04-01")),
        (ALLOCATOR, ("practice", "register", "A81002", "--name", "Park", "--list-size",
                     "3100", "--on", "2024-04-01")),
        ("consortium:16C", ("consortium", "join", "16C", "A81001", "--on", "2024-04-01")),
        ("consortium:17D", ("consortium", "join", "17D", "A81002", "--on", "2024-04-01")),
        (ALLOCATOR, ("budget", "allocate", "A81001", "--year", YEAR, "--on", "2024-04-01",
                     "--element", "acute=1000000")),
        (ALLOCATOR, ("budget", "allocate", "A81002", "--year", YEAR, "--on", "2024-04-01",
                     "--element", "acute=1000000")),
        ("consortium:16C", ("consortium", "risk-pool", "16C", "--year", YEAR, "--top-slice",
                            "1%", "--on", "2024-04-01")),
        ("consortium:17D", ("consortium", "risk-pool", "17D", "--year", YEAR, "--top-slice",
                            "10%", "--on", "2024-04-01")),
    ]
    for actor, args in writes:
        done = invoke(*args, actor=actor)
        assert done.code == 0, (args, done.stderr)


def capacities(invoke: Ledger, as_of: str) -> dict[str, int]:
    done = invoke("pools", "--year", YEAR, "--as-of", as_of, "--format", "json")
    assert done.code == 0, done.stderr
    return {r["consortium"]: r["capacity_pence"] for r in json.loads(done.stdout)}


@pytest.mark.parametrize("on", ["2024-06-01", "2024-04-01"])
def test_joining_a_second_consortium_while_a_member_of_one_is_refused(
        invoke: Ledger, db_url: str, on: str) -> None:
    two_consortia_with_pools(invoke)
    before = head(db_url)
    done = invoke("consortium", "join", "17D", "A81001", "--on", on, actor="consortium:17D")
    assert done.code == 1, (done.stdout, done.stderr)
    done.one_line_error("A81001 is a member of 16C from 2024-04-01",
                        "one consortium at a time", "[rule: membership]")
    assert head(db_url) == before
    # Each pool holds its own member's top-slice only: £10,000.00 and £100,000.00.
    assert capacities(invoke, "2024-07-01") == {"16C": 1_000_000, "17D": 10_000_000}


def test_a_practice_moves_to_another_consortium_from_the_day_it_leaves(
        invoke: Ledger, db_url: str) -> None:
    two_consortia_with_pools(invoke)
    assert invoke("consortium", "leave", "16C", "A81001", "--on", "2024-07-01",
                  actor="consortium:16C").code == 0
    early = invoke("consortium", "join", "17D", "A81001", "--on", "2024-06-30",
                   actor="consortium:17D")
    assert early.code == 1, early.stderr
    early.one_line_error("A81001 is a member of 16C from 2024-04-01 until 2024-07-01",
                         "[rule: membership]")
    moved = invoke("consortium", "join", "17D", "A81001", "--on", "2024-07-01",
                   actor="consortium:17D")
    assert moved.code == 0, moved.stderr
    assert capacities(invoke, "2024-06-30") == {"16C": 1_000_000, "17D": 10_000_000}
    assert capacities(invoke, "2024-07-01") == {"16C": 0, "17D": 20_000_000}
    # Nor may it go back to 16C while a member of 17D.
    back = invoke("consortium", "join", "16C", "A81001", "--on", "2024-08-01",
                  actor="consortium:16C")
    assert back.code == 1, back.stderr
    back.one_line_error("A81001 is a member of 17D from 2024-07-01", "[rule: membership]")


def test_a_ledger_recorded_with_a_practice_in_two_consortia_at_once_still_reads_and_folds(
        invoke: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """A double membership recorded before the rule (its events are in the log) is read
    as recorded: every read, a rebuild and the log's verification answer as before, and
    the practice may still leave either consortium."""
    two_consortia_with_pools(invoke)
    with monkeypatch.context() as before_the_rule:
        before_the_rule.setattr(handlers, "require_no_other_consortium",
                                lambda *_args: None)
        joined = invoke("consortium", "join", "17D", "A81001", "--on", "2024-06-01",
                        actor="consortium:17D")
        assert joined.code == 0, joined.stderr
    reads = [("pools", "--year", YEAR, "--as-of", "2024-07-01"),
             ("position", "--practice", "A81001", "--year", YEAR),
             ("position", "--consortium", "17D", "--year", YEAR),
             ("trail", "A81001"), ("replay", "A81001", "--year", YEAR),
             ("holders", "--year", YEAR), ("quality",), ("variation", "--consortium", "16C")]
    answers = {args: invoke(*args) for args in reads}
    assert {args: done.code for args, done in answers.items()} == dict.fromkeys(reads, 0)
    assert invoke("projections", "rebuild").code == 0
    assert {args: invoke(*args).stdout for args in reads} == {
        args: done.stdout for args, done in answers.items()}
    assert invoke("verify").code == 0
    left = invoke("consortium", "leave", "16C", "A81001", "--on", "2024-08-01",
                  actor="consortium:16C")
    assert left.code == 0, left.stderr
