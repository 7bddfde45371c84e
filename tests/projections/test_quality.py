"""quality: adopted standards and the commitments tagged with them.

Pure folds first (no database), then the query on both stores over a ledger
written through the real service (tests/projections/joint_scenario.py), then
the real `ledger quality` command in a subprocess.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ledger.bootstrap import Ledger, bootstrap
from ledger.domain.errors import InvalidInput, NotFound
from ledger.domain.events import (
    CommitmentCancelled,
    CommitmentSettled,
    CommitmentVaried,
    budget_stream,
)
from projections.commitment_value import Worth, after, made
from projections.core import fold, positioned
from projections.joint_queries import JointReads
from projections.materialise import Materialiser
from projections.quality import ADOPTED, QUALITY, TAGGED, TAGS
from tests.projections import joint_scenario
from tests.projections.joint_scenario import JointHistory, invoke, one_line_error, run_ledger

D = date
TODAY = D(2025, 6, 1)


def _event(cls: type[Any], **fields: Any) -> Any:
    base = {"originator_id": budget_stream("A81001", "2024-25"), "originator_version": 2,
            "recorded_at": "2024-07-01T09:00:00Z", "effective_on": D(2024, 6, 1),
            "actor": "practice:A81001", "command_id": "c-1", "practice": "A81001",
            "year": "2024-25", "ref": "R1"}
    return cls(**base | fields)


# --- what a commitment is worth ----------------------------------------------------------


def test_worth_follows_variation_settlement_and_cancellation() -> None:
    worth = made(10_000)
    assert worth == Worth(10_000, 0, open=True)
    worth = after(worth, _event(CommitmentVaried, amount_pence=12_000))
    assert worth == Worth(12_000, 0, open=True)
    worth = after(worth, _event(CommitmentSettled, amount_pence=5_000))
    assert worth == Worth(12_000, 5_000, open=True)  # partly paid: still worth its total
    cancelled = after(worth, _event(CommitmentCancelled))
    assert cancelled == Worth(5_000, 5_000, open=False)  # the outstanding 7,000 released
    final = after(worth, _event(CommitmentSettled, amount_pence=1_000, final=True))
    assert final == Worth(6_000, 6_000, open=False)  # the last 6,000 released
    assert after(cancelled, _event(CommitmentCancelled)) == cancelled


# --- the fold, without a database --------------------------------------------------------


def test_fold_keeps_adopted_standards_and_tagged_commitments_current() -> None:
    h = JointHistory()
    h.adopt("16C", ["QS1", "QS3"])
    h.adopt("16C", ["QS9"], on=D(2024, 5, 1))
    h.tagged("A81001", "R1", 10_000, ["QS3", "QS2"], D(2024, 6, 1))
    h.tagged("A81001", "R2", 4_000, [], D(2024, 6, 1))  # untagged: no rows
    h.vary("A81001", "R1", 12_000, D(2024, 6, 2))
    h.vary("A81001", "R2", 5_000, D(2024, 6, 2))  # untagged: still no rows
    h.settle("A81001", "R1", 2_000, D(2024, 7, 1), final=True)
    h.tagged("A81002", "R3", 700, ["QS1"], D(2024, 6, 1))
    h.cancel("A81002", "R3", D(2024, 6, 3))
    state = fold(QUALITY, positioned(h.events))

    assert state.table(ADOPTED) == {
        ("16C", "2024-25", "QS1"): (D(2024, 4, 1), 1),
        ("16C", "2024-25", "QS3"): (D(2024, 4, 1), 1),
        ("16C", "2024-25", "QS9"): (D(2024, 5, 1), 2),
    }
    assert state.table(TAGS) == {
        ("R1", "QS3"): ("A81001", "2024-25", D(2024, 6, 1), 2_000),
        ("R1", "QS2"): ("A81001", "2024-25", D(2024, 6, 1), 2_000),
        ("R3", "QS1"): ("A81002", "2024-25", D(2024, 6, 1), 0),
    }
    assert state.table(TAGGED)[("R1",)] == ("QS3 QS2", "A81001", "2024-25", D(2024, 6, 1),
                                            2_000, 2_000, False)


def test_fold_ignores_later_events_of_commitments_it_never_saw() -> None:
    h = JointHistory()
    h.vary("A81001", "R9", 12_000, D(2024, 6, 2))
    h.cancel("A81001", "R9", D(2024, 6, 3))
    assert fold(QUALITY, positioned(h.events)).rows == {}


# --- the query, on both stores, through the real service ------------------------------------


def row(consortium: str, qs: str, adopted: bool, count: int, spend: int,
        on: date | None = None) -> dict[str, Any]:
    return {"consortium": consortium, "year": "2024-25", "qs_code": qs, "adopted": adopted,
            "adopted_on": on, "commitments": count, "spend_pence": spend,
            "gap": adopted and count == 0}


# Hand-checked from the scenario's docstring:
# QS3 for 16C: R-101 settled finally at 600 + R-201 varied to 2,600 + R-301 1,000 = £4,200;
# R-601 (A81006, before it joined 00P) does not count for 00P, R-602 does; R-701's practice
# belongs to no consortium; QS9's only commitment was cancelled unpaid: a gap, like QS1.
EXPECTED = [
    row("00P", "QS3", False, 1, 70_000),
    row("16C", "QS1", True, 0, 0, D(2024, 4, 1)),
    row("16C", "QS2", True, 1, 300_000, D(2024, 4, 1)),
    row("16C", "QS3", True, 3, 420_000, D(2024, 4, 1)),
    row("16C", "QS9", True, 0, 0, D(2024, 4, 2)),
    row("16C", "QS10", False, 1, 150_000),
]


@pytest.fixture
def reads(ledger: Ledger) -> JointReads:
    return JointReads(ledger.store, today=TODAY)


def test_quality_per_consortium_with_gaps(ledger: Ledger, reads: JointReads) -> None:
    joint_scenario.write(ledger)
    assert reads.quality() == EXPECTED
    assert reads.quality(consortium="16c", year="2024-25") == EXPECTED[1:]
    assert [r["qs_code"] for r in reads.quality(codes=["qs3", "QS1"])] == ["QS3", "QS1", "QS3"]
    with pytest.raises(NotFound, match=r"no budgets in 2025-26 \(years with budgets: 2024-25\)"):
        reads.quality(year="2025-26")


def test_quality_caught_up_step_by_step_equals_a_rebuild(ledger: Ledger,
                                                         reads: JointReads) -> None:
    steps = joint_scenario.steps()
    for start, stop in ((0, 20), (20, 40), (40, len(steps))):
        joint_scenario.write_steps(ledger, steps[start:stop])
        reads.quality()
    assert reads.quality() == EXPECTED
    Materialiser(ledger.store).rebuild(["quality"])
    assert reads.quality() == EXPECTED


def test_a_membership_recorded_late_still_attributes_earlier_commitments(
        ledger: Ledger, reads: JointReads) -> None:
    joint_scenario.write(ledger)
    assert reads.quality(consortium="00P") == [row("00P", "QS3", False, 1, 70_000)]
    # Backdated: A81007 joined 00P from the start of the year, recorded after its commitment.
    joint_scenario.run(ledger, "consortium join", "consortium:00P",
                       {"consortium": "00P", "practice": "A81007", "on": "2024-04-01"})
    assert reads.quality(consortium="00P") == [row("00P", "QS3", False, 2, 160_000)]


def test_quality_refuses_bad_input(ledger: Ledger, reads: JointReads) -> None:
    joint_scenario.write(ledger, upto=10)
    with pytest.raises(NotFound, match="no consortium 99C"):
        reads.quality(consortium="99C")
    with pytest.raises(InvalidInput, match="consortium"):
        reads.quality(consortium="ZZZ")
    with pytest.raises(InvalidInput, match="quality standard 'QSX'"):
        reads.quality(codes=["QSX"])
    with pytest.raises(InvalidInput, match="financial year"):
        reads.quality(year="2024")


# --- the real command ---------------------------------------------------------------------


@pytest.mark.e2e
def test_ledger_quality_command(ledger: Ledger, db_url: str, tmp_path: Path) -> None:
    joint_scenario.write(ledger)
    ledger.close()
    done = run_ledger(db_url, "quality", "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        r | {"adopted_on": r["adopted_on"].isoformat() if r["adopted_on"] else None}
        for r in EXPECTED]


def test_quality_table_csv_and_errors_in_process(
        sqlite_path: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # tables unwrapped, whatever the terminal
    # The rendering and the error mapping do not depend on the store: SQLite only.
    db_url = sqlite_path
    with bootstrap(db_url) as ledger:
        joint_scenario.write(ledger)
    done = invoke(db_url, "quality", "--consortium", "16C", "--format", "csv")
    assert done.exit_code == 0, done.stderr
    table = list(csv.DictReader(io.StringIO(done.stdout)))
    assert list(table[0]) == ["consortium", "year", "qs_code", "adopted", "adopted_on",
                              "commitments", "spend_pence", "gap"]
    assert [(r["qs_code"], r["adopted"], r["commitments"], r["spend_pence"], r["gap"])
            for r in table] == [("QS1", "true", "0", "0", "true"),
                                ("QS2", "true", "1", "300000", "false"),
                                ("QS3", "true", "3", "420000", "false"),
                                ("QS9", "true", "0", "0", "true"),
                                ("QS10", "false", "1", "150000", "false")]

    done = invoke(db_url, "quality", "--year", "2024-25")
    assert done.exit_code == 0, done.stderr
    assert "£4,200.00" in done.stdout
    assert "2 adopted standard(s) with no commitments: 16C 2024-25 QS1, 16C 2024-25 QS9" \
        in " ".join(done.stdout.split())

    for args, code, message in [
        (["--consortium", "99C"], 1, "no consortium 99C"),
        (["--consortium", "ZZZ"], 2, "malformed consortium code 'ZZZ'"),
        (["--qs", "QS0"], 2, "malformed quality standard 'QS0'"),
        (["--year", "24-25"], 2, "malformed financial year"),
    ]:
        done = invoke(db_url, "quality", *args)
        assert done.exit_code == code, (args, done.stderr)
        assert one_line_error(done.stderr).count(message) == 1, done.stderr
