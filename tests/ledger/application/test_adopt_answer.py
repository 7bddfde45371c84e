"""`consortium adopt` answers with the standards that command adopted, as its event
records them, and names apart those it named that were adopted for the year already."""

from __future__ import annotations

from ledger.bootstrap import Ledger
from ledger.domain.events import QualityStandardsAdopted
from tests.ledger.application.scenario import YEAR, events, run, seed

OFFICER = "consortium:16C"


def adopt(ledger: Ledger, *codes: str, year: str = YEAR) -> str:
    return run(ledger, "consortium adopt", OFFICER, consortium="16C", year=year,
               codes=list(codes), on="2024-04-01").summary


def test_adopt_answers_with_what_it_adopted_and_says_which_were_adopted_already(
        ledger: Ledger) -> None:
    seed(ledger, practices=(), members=())
    assert adopt(ledger, "QS1", "QS2") == f"16C adopted QS1, QS2 for {YEAR}"
    assert adopt(ledger, "QS2", "QS3", "QS3", "QS1") == (
        f"16C adopted QS3 for {YEAR} (QS1, QS2 already adopted)")
    assert adopt(ledger, "QS6") == f"16C adopted QS6 for {YEAR}"
    recorded = [e.codes for _, e in events(ledger) if isinstance(e, QualityStandardsAdopted)]
    assert recorded == [("QS1", "QS2"), ("QS3",), ("QS6",)]
