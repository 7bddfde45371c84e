"""Peer review before anything is committed says so plainly: there is nothing to compare,
and the limits shown are those of nothing expected (never blank), overdispersion or not."""

from __future__ import annotations

import json

import pytest

from tests.commands.conftest import Ledger as Run

pytestmark = pytest.mark.usefixtures("signing_key")
ALLOCATOR = "allocator:Q71"


def populate(invoke: Run) -> None:
    """16C with two members, each with an acute budget and nothing committed; written
    through the command line in-process (what the tests read runs the real `ledger`)."""
    steps: list[tuple[str, tuple[str, ...]]] = [
        (ALLOCATOR, ("consortium", "form", "16C", "--name", "Tees", "--officer", "Dr J")),
        *[(ALLOCATOR, ("practice", "register", code, "--name", code, "--list-size", size,
                       "--weighted", f"acute={size}.5"))
          for code, size in (("A81001", "4069"), ("A81002", "2100"))],
        *[("consortium:16C", ("consortium", "join", "16C", code))
          for code in ("A81001", "A81002")],
        *[(ALLOCATOR, ("budget", "allocate", code, "--year", "2024-25", "--element",
                       "acute=1000")) for code in ("A81001", "A81002")],
    ]
    for actor, args in steps:
        done = invoke(*args, "--on", "2024-04-01", actor=actor)
        assert done.code == 0, (args, done.stderr)


@pytest.mark.parametrize("adjusted", [(), ("--overdispersion",)], ids=["exact", "adjusted"])
def test_a_funnel_with_nothing_committed_says_there_is_nothing_to_compare(
        invoke: Run, run_ledger: Run, adjusted: tuple[str, ...]) -> None:
    populate(invoke)
    asked = ("variation", "--consortium", "16C", "--element", "acute", "--year", "2024-25",
             *adjusted)
    table = run_ledger(*asked)
    assert table.code == 0, table.stderr
    text = " ".join(table.stdout.split())
    assert "nothing committed to compare" in text, text
    assert " .. -" not in text, text
    done = run_ledger(*asked, "--format", "json")
    assert done.code == 0, done.stderr
    rows = json.loads(done.stdout)
    assert len(rows) == 2
    for row in rows:
        assert row["upper_95"] is not None, row
        assert row["upper_998"] is not None, row
        assert row["upper_95"] > 0, row
        assert "nothing committed to compare" in row["note"], row
        assert row["overdispersion"] is False, row


def test_a_review_of_every_element_with_nothing_committed_says_why_it_is_empty(
        invoke: Run, run_ledger: Run) -> None:
    populate(invoke)
    done = run_ledger("variation", "--consortium", "16C", "--year", "2024-25")
    assert done.code == 0, done.stderr
    assert "no commitments by member practices in scope: nothing to compare" in " ".join(
        done.stdout.split())
