"""A small ledger for the quality and variation tests, written through the real service.

Consortium 16C (five members from 2024-04-01) adopts QS1, QS2, QS3 and QS9
for 2024-25; consortium 00P has one member, A81006, from 2024-06-01; A81007
belongs to no consortium. All budgets are indicative (no refusals).

Acute commitments (pounds; what each is worth at the end):

    A81001  weighted acute 4,000   R-101 1,000 QS3, settled 600 final -> 600
                                   R-102 3,000 QS2                    -> 3,000
                                   R-103 5,000 QS9, cancelled unpaid  -> 0 (not counted)
    A81002  weighted acute 5,000   R-201 2,500 QS3, varied to 2,600   -> 2,600
                                   R-202 3,000                        -> 3,000
    A81003  weighted acute 2,000   R-301..R-312, 12 x 1,000 (R-301 QS3)
    A81004  weighted acute 10,000  R-401..R-406, 6 x 1,500 (R-401 QS10, not adopted)
    A81005  no weighted figure, list size 8,000
                                   R-501..R-504, 4 x 2,000
    A81006  (00P)                  R-601 700 QS3 on 2024-05-15, before it joined
                                   R-602 700 QS3 on 2024-07-01
    A81007  (no consortium)        R-701 900 QS3

Hand-checked results are in the tests that use this module.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from commands.app import app
from ledger.application.commands import build_command
from ledger.bootstrap import Ledger
from ledger.domain import events as ev
from ledger.domain.events import LedgerEvent, consortium_stream, practice_stream
from ledger.domain.values import Element
from tests.projections.builders import YEAR, History

ALLOCATOR = "allocator:Q71"

POPULATIONS: dict[str, tuple[int, dict[str, int]]] = {
    # practice: (list size, weighted population per element)
    "A81001": (4100, {"acute": 4000}),
    "A81002": (5100, {"acute": 5000}),
    "A81003": (2100, {"acute": 2000}),
    "A81004": (9800, {"acute": 10000}),
    "A81005": (8000, {}),
    "A81006": (3000, {"acute": 3000}),
    "A81007": (3000, {"acute": 3000}),
}

Step = tuple[str, str, dict[str, Any]]


def _commit(practice: str, ref: str, pounds: int, qs: list[str], on: str = "2024-05-01"
            ) -> Step:
    return ("spend commit", f"practice:{practice}", {
        "practice": practice, "year": YEAR, "element": "acute", "ref": ref,
        "amount": str(pounds), "provider": "RTR", "service": "Elective care", "qs": qs,
        "on": on,
    })


def steps() -> list[Step]:
    s: list[Step] = []
    for practice, (list_size, weighted) in POPULATIONS.items():
        s.append(("practice register", ALLOCATOR, {
            "practice": practice, "name": f"Surgery {practice}", "list_size": list_size,
            "weighted": weighted, "on": "2024-04-01"}))
    s.append(("consortium form", "consortium:16C",
              {"consortium": "16C", "name": "Tees Valley", "officer": "Dr A Brereton",
               "on": "2024-04-01"}))
    s.append(("consortium form", "consortium:00P",
              {"consortium": "00P", "name": "Sunderland", "officer": "Dr G Lowther",
               "on": "2024-04-01"}))
    s += [("consortium join", "consortium:16C",
           {"consortium": "16C", "practice": practice, "on": "2024-04-01"})
          for practice in ("A81001", "A81002", "A81003", "A81004", "A81005")]
    s.append(("consortium join", "consortium:00P",
              {"consortium": "00P", "practice": "A81006", "on": "2024-06-01"}))
    s.append(("consortium adopt", "consortium:16C", {
        "consortium": "16C", "year": YEAR, "codes": ["QS1", "QS2", "QS3"], "on": "2024-04-01"}))
    s.append(("consortium adopt", "consortium:16C",
              {"consortium": "16C", "year": YEAR, "codes": ["QS9"], "on": "2024-04-02"}))
    s += [("budget allocate", ALLOCATOR, {"practice": practice, "year": YEAR,
                                          "element": {"acute": "100000"}, "on": "2024-04-01"})
          for practice in POPULATIONS]
    s += [
        _commit("A81001", "R-101", 1000, ["QS3"]),
        _commit("A81001", "R-102", 3000, ["QS2"]),
        _commit("A81001", "R-103", 5000, ["QS9"]),
        _commit("A81002", "R-201", 2500, ["QS3"]),
        _commit("A81002", "R-202", 3000, []),
    ]
    s += [_commit("A81003", f"R-3{i:02d}", 1000, ["QS3"] if i == 1 else [])
          for i in range(1, 13)]
    s += [_commit("A81004", f"R-40{i}", 1500, ["QS10"] if i == 1 else []) for i in range(1, 7)]
    s += [_commit("A81005", f"R-50{i}", 2000, []) for i in range(1, 5)]
    s += [
        _commit("A81006", "R-601", 700, ["QS3"], on="2024-05-15"),
        _commit("A81006", "R-602", 700, ["QS3"], on="2024-07-01"),
        _commit("A81007", "R-701", 900, ["QS3"]),
        ("spend settle", "practice:A81001",
         {"ref": "R-101", "amount": "600", "final": True, "on": "2024-06-01"}),
        ("spend cancel", "practice:A81001",
         {"ref": "R-103", "reason": "Not needed", "on": "2024-06-01"}),
        ("spend vary", "practice:A81002", {"ref": "R-201", "amount": "2600", "on": "2024-06-01"}),
    ]
    return s


def run(ledger: Ledger, name: str, actor: str, args: dict[str, Any]) -> None:
    """One command through the application service, as the CLI would issue it."""
    ledger.service.execute(build_command(name, args), actor)


def write(ledger: Ledger, upto: int | None = None) -> None:
    """Record the scenario (or its first `upto` steps) through the application service."""
    for step in steps()[:upto]:
        run(ledger, *step)


def write_steps(ledger: Ledger, chosen: list[Step]) -> None:
    for step in chosen:
        run(ledger, *step)


# --- events built by hand, for the folds (no database) -------------------------------


class JointHistory(History):
    """`History` with the events of issue 6 the quality and variation folds read."""

    def adopt(self, consortium: str, codes: list[str], on: date = date(2024, 4, 1),
              year: str = YEAR) -> LedgerEvent:
        return self._add(ev.QualityStandardsAdopted, consortium_stream(consortium), on,
                         f"consortium:{consortium}", consortium=consortium, year=year,
                         codes=tuple(codes))

    def register_weighted(self, practice: str, list_size: int, weighted: dict[str, Any],
                          on: date = date(2024, 4, 1)) -> LedgerEvent:
        return self._add(ev.PracticeRegistered, practice_stream(practice), on,
                         "allocator:Q71", practice=practice, name=f"Surgery {practice}",
                         list_size=list_size, allocator="Q71",
                         weighted_population={Element(k): v for k, v in weighted.items()})

    def list_size(self, practice: str, list_size: int, weighted: dict[str, Any], on: date
                  ) -> LedgerEvent:
        return self._add(ev.ListSizeRecorded, practice_stream(practice), on, "allocator:Q71",
                         practice=practice, list_size=list_size,
                         weighted_population={Element(k): v for k, v in weighted.items()})

    def tagged(self, practice: str, ref: str, amount: int, qs: list[str], on: date,
               element: str = "acute") -> LedgerEvent:
        return self._budget(ev.SpendCommitted, practice, on, ref=ref, element=Element(element),
                            amount_pence=amount, provider="RTR", service="Elective care",
                            qs_codes=tuple(qs))


# --- the real `ledger` command, in a subprocess ---------------------------------------


def run_ledger(db: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`ledger --db DB ARGS...` as a user runs it: the installed script, else python -m."""
    script = Path(sys.executable).parent / "ledger"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "commands"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    env["COLUMNS"] = "160"
    return subprocess.run([*command, "--db", db, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def invoke(db: str, *args: str) -> Result:
    """The same `ledger` app in-process (fast): exit code, stdout and stderr apart."""
    result = CliRunner().invoke(app, ["--db", db, *args],
                                env={"LEDGER_DB": None, "LEDGER_ACTOR": None, "COLUMNS": "160"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def one_line_error(stderr: str) -> str:
    """A user error is one `error: ...` line on stderr, never a traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]
