"""Invariant 11: two real OS processes writing to one budget lose and duplicate nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from ledger.bootstrap import Ledger
from ledger.domain.budget import Budget
from ledger.domain.events import SpendCommitted, budget_stream
from ledger.domain.values import Element
from tests.ledger.application.scenario import A1, ALLOCATOR, YEAR, run, seed

ROOT = Path(__file__).resolve().parents[3]
PER_WORKER = 200


def race(db: str, tmp_path: Path, *extra: str, per_worker: int = PER_WORKER
         ) -> list[Counter[str]]:
    """Start two writer processes, release them together, and collect their summaries."""
    go = tmp_path / "go"
    writers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.ledger.application.concurrent_writer", db, worker,
             str(per_worker), str(go), *extra],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for worker in ("a", "b")
    ]
    time.sleep(1.0)  # both import and open the store before the race starts
    go.touch()
    summaries = []
    for writer in writers:
        out, err = writer.communicate(timeout=240)
        assert writer.returncode == 0, err
        summaries.append(Counter(json.loads(out.strip().splitlines()[-1])))
    for summary in summaries:
        assert not [k for k in summary if k.startswith("error:")], summary
    return summaries


def no_writer_gave_up(summaries: list[Counter[str]]) -> None:
    # Optimistic concurrency must retry until the command is decided: giving up
    # ("the ledger is too busy", StoreUnavailable) with only two writers loses commands.
    assert all(s["refused:concurrency"] == 0 for s in summaries), (
        f"a writer gave up retrying: {summaries}")


def check_log(ledger: Ledger) -> list[SpendCommitted]:
    """Positions strictly increase and gap-free; the budget's versions run 1..n."""
    recorded = list(ledger.store.iter_events())
    positions = [p for p, _ in recorded]
    assert positions == list(range(positions[0], positions[0] + len(positions)))
    stream = [e for _, e in recorded if e.originator_id == budget_stream(A1, YEAR)]
    assert [e.originator_version for e in stream] == list(range(1, len(stream) + 1))
    assert stream == ledger.store.stream(budget_stream(A1, YEAR))
    return [e for _, e in recorded if isinstance(e, SpendCommitted)]


def test_two_processes_committing_at_once_record_every_commit_exactly_once(
    ledger: Ledger, db_url: str, tmp_path: Path
) -> None:
    seed(ledger, practices=(A1,), consortium=None, amount="1000000")
    summaries = race(db_url, tmp_path)
    committed = check_log(ledger)
    refs = Counter(e.ref for e in committed)
    assert set(refs.values()) == {1}, "a commitment was recorded twice"
    applied = {f"R-{w}-{n}" for w in "ab" for n in range(PER_WORKER)}
    assert len({e.command_id for e in committed}) == len(committed)
    assert set(refs) <= applied
    assert len(committed) == sum(s["applied"] for s in summaries)
    no_writer_gave_up(summaries)
    assert set(refs) == applied
    assert [s["applied"] for s in summaries] == [PER_WORKER, PER_WORKER]


def test_a_hard_budget_is_never_overspent_under_the_race(
    ledger: Ledger, db_url: str, tmp_path: Path
) -> None:
    per_worker, limit = 100, 150  # pounds: room for 150 of the 200 one-pound commitments
    seed(ledger, practices=(A1,), consortium=None, amount=str(limit))
    run(ledger, "budget harden", ALLOCATOR, practice=A1, year=YEAR, on="2024-04-01")
    summaries = race(db_url, tmp_path, per_worker=per_worker)
    committed = check_log(ledger)
    stream = ledger.store.stream(budget_stream(A1, YEAR))
    budget = Budget.from_events(stream[0].originator_id, stream)
    assert budget.used(Element.ACUTE) <= budget.available(Element.ACUTE), "overspent"
    assert sum(e.amount_pence for e in committed) == budget.used(Element.ACUTE)
    assert len(committed) == limit
    no_writer_gave_up(summaries)
    applied = sum(s["applied"] for s in summaries)
    refused = sum(s["refused:hard-budget"] for s in summaries)
    assert (applied, refused) == (limit, 2 * per_worker - limit), summaries


def test_two_processes_sending_the_same_command_ids_record_each_once(
    ledger: Ledger, db_url: str, tmp_path: Path
) -> None:
    seed(ledger, practices=(A1,), consortium=None, amount="1000000")
    summaries = race(db_url, tmp_path, "--shared-ids")
    committed = check_log(ledger)
    assert sorted(e.command_id for e in committed) == sorted(f"c-{n}" for n in range(PER_WORKER))
    assert len({e.ref for e in committed}) == PER_WORKER
    no_writer_gave_up(summaries)
    # Each id is applied by one writer; the other must get the same answer back
    # ("already applied"), never a refusal such as "reference already used".
    refusals = [k for s in summaries for k in s if k.startswith("refused:")]
    assert not refusals, f"a duplicate command id was refused instead of answered: {summaries}"
    assert sum(s["applied"] for s in summaries) == PER_WORKER, summaries
    assert sum(s["already applied"] for s in summaries) == PER_WORKER, summaries


pytestmark = pytest.mark.timeout(300)
