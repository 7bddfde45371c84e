"""A year on the national file: NHS England's weighted populations imported as downloaded,
budgets allocated from them by formula, a year of commitments through `ledger apply`, and
every position equal to a calculation made here from the file alone (integers, csv)."""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from tests.commands.conftest import REPO, Ledger

ALLOCATOR = "allocator:Q71"
NHS = REPO / "examples" / "nhs"
FILE = NHS / "gp-practice-weighted-populations-2025-26.csv"
MAPPING = NHS / "nhse-weighted-populations.toml"
RATES_PENCE = {"acute": 78_000, "prescribing": 17_025, "community": 9_950}
COLUMNS = {"acute": "G&A WP", "prescribing": "Prescr WP", "community": "CS WP"}
MEMBERS = ("A81001", "A81002", "A81004", "A81005", "A81006", "A81007")


def micro(text: str) -> int:
    units, _, fraction = text.partition(".")
    return int(units) * 1_000_000 + int(fraction.ljust(6, "0"))


def expected_allocations() -> dict[tuple[str, str], int]:
    """From the CSV: weighted population x rate, half up to the penny."""
    with FILE.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return {(row["Practice_Code"], element): (micro(row[COLUMNS[element]]) * rate + 500_000)
            // 1_000_000
            for row in rows for element, rate in RATES_PENCE.items()}


Totals = dict[tuple[str, str], list[int]]


def a_year_of_commitments(seed: int) -> tuple[list[dict[str, Any]], Totals]:
    """Commit, vary, settle and cancel across the year; the expected (committed, settled)
    per practice and element, kept by hand."""
    rng = random.Random(seed)
    lines: list[dict[str, Any]] = []
    state: dict[str, dict[str, Any]] = {}
    totals: Totals = defaultdict(lambda: [0, 0])
    for month in range(12):
        year, mon = (2025, 4 + month) if month < 9 else (2026, month - 8)
        for n in range(12):
            day = f"{year}-{mon:02d}-{1 + n * 2:02d}"
            practice = rng.choice(MEMBERS)
            element = rng.choice(list(RATES_PENCE))
            ref = f"R-{month:02d}{n:02d}"
            pence = rng.randrange(10_000, 5_000_000)
            lines.append({"command": "spend commit", "command_id": f"c-{ref}",
                          "actor": f"practice:{practice}",
                          "args": {"practice": practice, "year": "2025-26", "element": element,
                                   "ref": ref, "amount": f"{pence // 100}.{pence % 100:02d}",
                                   "provider": "RTR", "service": "Elective care",
                                   "on": day}})
            state[ref] = {"practice": practice, "element": element, "amount": pence,
                          "settled": 0, "open": True}
            open_refs = [r for r, c in state.items() if c["open"] and r != ref]
            if not open_refs:
                continue
            other = rng.choice(open_refs)
            c = state[other]
            action = rng.choice(["vary", "settle", "settle-final", "cancel", "none"])
            who = f"practice:{c['practice']}"
            if action == "vary":
                new = max(c["settled"] + 1, c["amount"] + rng.randrange(-5_000, 50_000))
                lines.append({"command": "spend vary", "command_id": f"v-{ref}", "actor": who,
                              "args": {"ref": other, "amount": f"{new // 100}.{new % 100:02d}",
                                       "on": day}})
                c["amount"] = new
            elif action.startswith("settle"):
                left = c["amount"] - c["settled"]
                part = left if action == "settle-final" else rng.randrange(1, left + 1)
                final = action == "settle-final" or part == left
                lines.append({"command": "spend settle", "command_id": f"s-{ref}", "actor": who,
                              "args": {"ref": other,
                                       "amount": f"{part // 100}.{part % 100:02d}",
                                       "final": final, "on": day}})
                c["settled"] += part
                if final:
                    c["open"] = False
            elif action == "cancel":
                lines.append({"command": "spend cancel", "command_id": f"x-{ref}", "actor": who,
                              "args": {"ref": other, "reason": "Not needed", "on": day}})
                c["open"] = False
    for c in state.values():
        key = (c["practice"], c["element"])
        totals[key][0] += c["amount"] - c["settled"] if c["open"] else 0
        totals[key][1] += c["settled"]
    return lines, totals


def test_a_year_on_the_national_file_matches_an_independent_calculation(
    invoke: Ledger, tmp_path: Path
) -> None:
    done = invoke("practice", "import", str(FILE), "--mapping", str(MAPPING), "--on",
                  "2025-04-01", actor=ALLOCATOR)
    assert done.code == 0, done.stderr
    assert invoke("consortium", "form", "16C", "--name", "Tees Valley", "--officer", "Dr A",
                  "--on", "2025-04-01", actor=ALLOCATOR).code == 0
    for code in MEMBERS:
        assert invoke("consortium", "join", "16C", code, "--on", "2025-04-01",
                      actor=ALLOCATOR).code == 0
    rates = [arg for element, pence in RATES_PENCE.items()
             for arg in ("--rate", f"{element}={pence // 100}.{pence % 100:02d}")]
    done = invoke("budget", "allocate-formula", "--year", "2025-26", *rates, "--on",
                  "2025-04-01", actor=ALLOCATOR)
    assert done.code == 0, done.stderr
    assert "done: allocated 30 practices" in done.stdout

    lines, totals = a_year_of_commitments(seed=9)
    file = tmp_path / "year.jsonl"
    file.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    applied = invoke("apply", str(file))
    assert applied.code == 0, applied.stdout + applied.stderr

    allocated = expected_allocations()
    rows = json.loads(invoke("position", "--year", "2025-26", "--as-of", "2026-03-31",
                             "--format", "json").stdout)
    got = {(r["practice"], r["element"]): r for r in rows}
    assert {k for k, r in got.items() if r["allocated_pence"]} == set(allocated)
    for key, amount in allocated.items():
        committed, settled = totals.get(key, [0, 0])
        row = got[key]
        assert (row["allocated_pence"], row["available_pence"], row["committed_pence"],
                row["settled_pence"], row["remaining_pence"]) == (
            amount, amount, committed, settled, amount - committed - settled), key
    by_consortium = json.loads(invoke("position", "--by", "consortium", "--year", "2025-26",
                                      "--as-of", "2026-03-31", "--format", "json").stdout)
    acute = next(r for r in by_consortium if r["consortium"] == "16C" and r["element"] == "acute")
    assert acute["allocated_pence"] == sum(allocated[(p, "acute")] for p in MEMBERS)
    assert acute["settled_pence"] == sum(totals.get((p, "acute"), [0, 0])[1] for p in MEMBERS)
