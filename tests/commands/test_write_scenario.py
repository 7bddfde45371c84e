"""The write scenario of DESIGN §6, run with the real `ledger` command on both stores.

The design's lines are run in an order that makes sense for one practice's year
(its opt-out follows the delegation it revokes, since a holding change may not
be dated before one already recorded).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.commands.conftest import Ledger, head, topics

pytestmark = pytest.mark.e2e

ALLOCATOR = "allocator:Q71"
OFFICER = "consortium:16C/Dr A Example"
PRACTICE = "practice:A81001"


def test_the_design_scenario_records_each_command_once(
    run_ledger: Ledger, db_url: str, tmp_path: Path
) -> None:
    (tmp_path / "practices.csv").write_text(
        "practice,name,list_size,consortium,acute_weighted,notes\n"
        "A81002,Queens Park Medical Centre,11000,16C,12100,ignored\n"
        "A81003,Woodlands Road Surgery,5200,,,\n",
        encoding="utf-8",
    )
    (tmp_path / "allocations.csv").write_text(
        'practice,element,amount\nA81002,acute,"£2,400,000.00"\nA81002,prescribing,600000\n'
        "A81003,acute,900000.5\n",
        encoding="utf-8",
    )
    steps: list[tuple[str, list[str], str]] = [
        (ALLOCATOR, ["consortium", "form", "16C", "--name", "Tees Valley",
                     "--officer", "Dr A Example", "--on", "2024-04-01"],
         "formed consortium 16C Tees Valley"),
        (ALLOCATOR, ["practice", "register", "A81001", "--name", "The Densham Surgery",
                     "--list-size", "4069", "--on", "2024-04-01"],
         "registered A81001 The Densham Surgery"),
        (ALLOCATOR, ["practice", "import", "practices.csv", "--on", "2024-04-01"],
         "imported 2 practices from practices.csv"),
        (OFFICER, ["consortium", "join", "16C", "A81001", "--on", "2024-04-01"],
         "A81001 joined 16C on 2024-04-01"),
        (OFFICER, ["consortium", "risk-pool", "16C", "--year", "2024-25", "--top-slice", "1%",
                   "--on", "2024-04-01"], "1% risk pool"),
        (OFFICER, ["consortium", "adopt", "16C", "--year", "2024-25", "QS1", "QS2", "QS3"],
         "adopted QS1, QS2, QS3"),
        (ALLOCATOR, ["budget", "allocate", "A81001", "--year", "2024-25",
                     "--element", "acute=1200000", "--element", "prescribing=310000.50",
                     "--on", "2024-04-01"], "allocated £1,510,000.50 to A81001"),
        (ALLOCATOR, ["budget", "import", "allocations.csv", "--year", "2024-25",
                     "--on", "2024-04-01"], "imported 3 allocation rows"),
        (ALLOCATOR, ["budget", "adjust", "A81001", "--year", "2024-25", "--element", "acute",
                     "--by", "-5000", "--reason", "List cleansing", "--on", "2024-05-01"],
         "by -£5,000.00 to £1,195,000.00"),
        (PRACTICE, ["budget", "delegate", "A81001", "--year", "2024-25", "--element",
                    "prescribing", "--to", "consortium:16C", "--on", "2024-06-01"],
         "delegated prescribing to consortium:16C from 2024-06-01"),
        (ALLOCATOR, ["budget", "harden", "A81001", "--year", "2024-25", "--on", "2024-07-01"],
         "is hard from 2024-07-01"),
        (PRACTICE, ["budget", "revoke", "A81001", "--year", "2024-25", "--element",
                    "prescribing", "--on", "2024-09-01"], "took back prescribing"),
        (PRACTICE, ["budget", "opt-out", "A81001", "--year", "2024-25", "--to",
                    "practice:A81002", "--on", "2024-10-01", "--reason", "Partner retiring"],
         "opted out to practice:A81002"),
        (PRACTICE, ["budget", "opt-in", "A81001", "--year", "2024-25", "--on", "2024-11-01"],
         "opted back in from 2024-11-01"),
        (PRACTICE, ["spend", "commit", "A81001", "--year", "2024-25", "--element", "acute",
                    "--ref", "R-0001", "--amount", "12500", "--provider", "RTR",
                    "--service", "Hip replacement", "--qs", "QS3"],
         "committed £12,500.00 as R-0001"),
        (PRACTICE, ["spend", "vary", "R-0001", "--amount", "13000"], "varied R-0001 to £13,000.00"),
        (PRACTICE, ["spend", "settle", "R-0001", "--amount", "6000"],
         "settled £6,000.00 of R-0001 (£7,000.00 outstanding)"),
        (PRACTICE, ["spend", "settle", "R-0001", "--amount", "7000", "--final"], "final; closed"),
        (PRACTICE, ["spend", "commit", "A81001", "--year", "2024-25", "--element", "acute",
                    "--ref", "R-0002", "--amount", "£1,250.00", "--provider", "RXF",
                    "--service", "Cataract surgery", "--on", "2024-12-02"], "R-0002"),
        (PRACTICE, ["spend", "cancel", "R-0002", "--reason", "Not needed"],
         "cancelled R-0002, releasing £1,250.00"),
        (ALLOCATOR, ["budget", "soften", "A81001", "--year", "2024-25", "--on", "2025-01-06"],
         "is indicative from 2025-01-06"),
    ]
    for actor, args, expected in steps:
        result = run_ledger(*args, actor=actor)
        assert result.code == 0, (args, result.stdout, result.stderr)
        assert expected in result.stdout, (args, result.stdout)
        assert result.stderr == ""

    assert topics(db_url) == {
        "ConsortiumFormed": 1, "PracticeRegistered": 3, "PracticeJoined": 2,
        "RiskPoolAgreed": 1, "QualityStandardsAdopted": 1, "BudgetAllocated": 4,
        "AllocationAdjusted": 1, "HoldingDelegated": 1, "MadeHard": 1, "DelegationRevoked": 1,
        "OptedOut": 1, "OptedIn": 1, "SpendCommitted": 2, "CommitmentVaried": 1,
        "CommitmentSettled": 2, "CommitmentCancelled": 1, "MadeIndicative": 1,
    }

    # The same command id twice records once and answers the same.
    before = head(db_url)
    for _ in range(2):
        again = run_ledger("--command-id", "c-adopt-qs6", "consortium", "adopt", "16C",
                           "--year", "2024-25", "QS6", actor=OFFICER)
        assert again.code == 0, again.stderr
        assert "16C adopted QS6 for 2024-25" in again.stdout, again.stdout
        assert "QS1" not in again.stdout
    assert "already applied" in again.stdout
    assert head(db_url) == before + 1
    # ... and the same id for something else is refused by rule (exit 1).
    clash = run_ledger("--command-id", "c-adopt-qs6", "consortium", "adopt", "16C",
                       "--year", "2024-25", "QS8", actor=OFFICER)
    assert clash.code == 1
    clash.one_line_error("c-adopt-qs6", "[rule: idempotency]")
    # A rule refusal after the scenario: R-0001 is closed.
    closed = run_ledger("spend", "cancel", "R-0001", actor=PRACTICE)
    assert closed.code == 1
    closed.one_line_error("R-0001 is already settled in full or cancelled", "[rule: commitment]")
    assert head(db_url) == before + 1
