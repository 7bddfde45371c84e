"""variation: commitments per 1,000 patients against the consortium's median, outliers flagged.

Pure folds and statistics first (no database), then the query on both stores
over a ledger written through the real service (joint_scenario.py), then the
real `ledger variation` command in a subprocess.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from commands.demo import adopted_standards
from ledger.bootstrap import Ledger, bootstrap
from ledger.domain.errors import InvalidInput, NotFound
from ledger.domain.values import ELEMENTS
from projections.core import fold, positioned
from projections.joint_queries import JointReads
from projections.variation import COMMITMENTS, POPULATIONS, VARIATION, per_1000, spread
from tests.projections import joint_scenario
from tests.projections.builders import append
from tests.projections.joint_scenario import JointHistory, invoke, one_line_error, run_ledger

D = date
F = Fraction
TODAY = D(2025, 6, 1)


# --- statistics, exactly -------------------------------------------------------------------


def test_per_1000_is_exact_and_needs_a_population() -> None:
    assert per_1000(2, 4000) == F(1, 2)
    assert per_1000(360_000, 4000) == 90_000
    assert per_1000(1, 3000) == F(1, 3)
    assert per_1000(5, 0) is None


def test_spread_median_and_tukey_fences() -> None:
    # 16C's acute commitments per 1,000 in the scenario: 0.5, 0.4, 6.0, 0.6, 0.5.
    rates = [F(1, 2), F(2, 5), F(6), F(3, 5), F(1, 2)]
    s = spread(rates)
    assert s is not None
    # sorted 0.4 0.5 0.5 0.6 6.0: Q1 = 0.5, Q3 = 0.6, IQR = 0.1, fences 0.35 and 0.75.
    assert (s.median, s.low, s.high) == (F(1, 2), F(7, 20), F(3, 4))
    assert s.outside(F(6)) == "high"
    assert s.outside(F(3, 4)) == ""  # on the fence is inside
    assert s.outside(F(34, 100)) == "low"
    # Four rates interpolate: 1 2 3 10 -> Q1 1.75, Q3 4.75, IQR 3, fences -2.75 and 9.25.
    four = spread([F(10), F(1), F(3), F(2)])
    assert four is not None
    assert (four.median, four.low, four.high) == (F(5, 2), F(-11, 4), F(37, 4))
    assert four.outside(F(10)) == "high"


def test_spread_flags_nothing_below_four_rates() -> None:
    s = spread([F(1), F(2), F(100)])
    assert s is not None
    assert (s.median, s.low, s.high) == (F(2), None, None)
    assert s.outside(F(100)) == ""
    assert spread([]) is None


# --- the fold, without a database --------------------------------------------------------


def test_fold_keeps_every_population_figure_and_commitments_current() -> None:
    h = JointHistory()
    h.register_weighted("A81001", 4100, {"acute": 4000, "prescribing": 4300})
    h.list_size("A81001", 4200, {"acute": 4050}, D(2024, 10, 1))
    h.tagged("A81001", "R1", 10_000, [], D(2024, 5, 1))
    h.tagged("A81001", "R2", 5_000, ["QS3"], D(2024, 5, 2), element="prescribing")
    h.vary("A81001", "R1", 12_000, D(2024, 6, 1))
    h.settle("A81001", "R1", 3_000, D(2024, 7, 1))
    h.cancel("A81001", "R1", D(2024, 8, 1))
    h.vary("A81001", "R9", 1, D(2024, 8, 1))  # never committed: ignored
    state = fold(VARIATION, positioned(h.events))

    populations = state.table(POPULATIONS)
    assert len(populations) == 2 * len(ELEMENTS)
    assert populations[("A81001", D(2024, 4, 1), 1, "acute")] == ("4000", 4100)
    assert populations[("A81001", D(2024, 4, 1), 1, "prescribing")] == ("4300", 4100)
    assert populations[("A81001", D(2024, 4, 1), 1, "maternity")] == (None, 4100)
    # A list size recorded later carries the whole weighted population again.
    assert populations[("A81001", D(2024, 10, 1), 2, "acute")] == ("4050", 4200)
    assert populations[("A81001", D(2024, 10, 1), 2, "prescribing")] == (None, 4200)

    assert state.table(COMMITMENTS) == {
        ("R1",): ("A81001", "2024-25", "acute", D(2024, 5, 1), 3_000, 3_000, False),
        ("R2",): ("A81001", "2024-25", "prescribing", D(2024, 5, 2), 5_000, 0, True),
    }


# --- the query, on both stores, through the real service ------------------------------------


@pytest.fixture
def reads(ledger: Ledger) -> JointReads:
    return JointReads(ledger.store, today=TODAY)


def vrow(practice: str, population: str, count: int, spend: int, rate: float,
         spend_rate: int, *, basis: str = "weighted", outlier: str = "", note: str = ""
         ) -> dict[str, Any]:
    return {"consortium": "16C", "year": "2024-25", "element": "acute", "practice": practice,
            "weighted_population": population, "population_basis": basis,
            "commitments": count, "spend_pence": spend, "per_1000": rate,
            "spend_per_1000_pence": spend_rate, "median_per_1000": 0.5,
            "median_spend_per_1000_pence": 100_000, "outlier": bool(outlier),
            "outlier_reason": outlier, "note": note}


# Hand-checked (joint_scenario.py's docstring). Commitments per 1,000: 2/4000 = 0.5,
# 2/5000 = 0.4, 12/2000 = 6.0, 6/10000 = 0.6, 4/8000 = 0.5 -> median 0.5, fences 0.35..0.75.
# Spend per 1,000 (pence): A81001 (600 + 3,000) / 4 = £900; A81002 (2,600 + 3,000) / 5 =
# £1,120; A81003 12,000 / 2 = £6,000; A81004 9,000 / 10 = £900; A81005 8,000 / 8 = £1,000
# -> sorted 900 900 1000 1120 6000: median £1,000, Q1 £900, Q3 £1,120, fences £570..£1,450.
EXPECTED_16C = [
    vrow("A81001", "4000", 2, 360_000, 0.5, 90_000),
    vrow("A81002", "5000", 2, 560_000, 0.4, 112_000),
    vrow("A81003", "2000", 12, 1_200_000, 6.0, 600_000, outlier="commitments high, spend high"),
    vrow("A81004", "10000", 6, 900_000, 0.6, 90_000),
    vrow("A81005", "8000", 4, 800_000, 0.5, 100_000, basis="list size",
         note="no weighted population: per list size"),
]
EXPECTED_00P = {
    "consortium": "00P", "year": "2024-25", "element": "acute", "practice": "A81006",
    "weighted_population": "3000", "population_basis": "weighted", "commitments": 2,
    "spend_pence": 140_000, "per_1000": 0.67, "spend_per_1000_pence": 46_667,
    "median_per_1000": 0.67, "median_spend_per_1000_pence": 46_667, "outlier": False,
    "outlier_reason": "",
    "note": "1 member(s) with a population: fewer than 4, no outliers flagged",
}


def test_variation_flags_the_outlier_against_the_median(ledger: Ledger,
                                                        reads: JointReads) -> None:
    joint_scenario.write(ledger)
    assert reads.variation() == [EXPECTED_00P, *EXPECTED_16C]
    assert reads.variation(consortium="16c", element="acute", year="2024-25") == EXPECTED_16C
    assert reads.variation(element="maternity", consortium="16C") == [
        r | {"element": "maternity", "commitments": 0, "spend_pence": 0, "per_1000": 0.0,
             "spend_per_1000_pence": 0, "median_per_1000": 0.0,
             "median_spend_per_1000_pence": 0, "outlier": False, "outlier_reason": "",
             "weighted_population": {"A81001": "4100", "A81002": "5100", "A81003": "2100",
                                     "A81004": "9800", "A81005": "8000"}[r["practice"]],
             "population_basis": "list size", "note": "no weighted population: per list size"}
        for r in EXPECTED_16C]


def test_members_and_commitments_on_a_date(ledger: Ledger, reads: JointReads) -> None:
    joint_scenario.write(ledger)
    # On 31 May A81006 has not joined 00P yet; every 16C commitment is effective by then.
    assert reads.variation(as_of=D(2024, 5, 31)) == EXPECTED_16C
    # On 30 April nothing is committed yet: every rate is zero, so nobody stands out.
    april = reads.variation(as_of=D(2024, 4, 30), element="acute", consortium="16C")
    assert [(r["commitments"], r["per_1000"], r["outlier"]) for r in april] == [(0, 0.0, False)] * 5


def test_a_later_population_figure_applies_from_its_date(ledger: Ledger,
                                                         reads: JointReads) -> None:
    h = JointHistory()
    h.register_weighted("A81001", 4100, {"acute": 4000})
    h.register_weighted("A81002", 2000, {})
    h.form("16C")
    h.join("16C", "A81001", D(2024, 4, 1))
    h.join("16C", "A81002", D(2024, 4, 1))
    h.allocate("A81001", D(2024, 4, 1), acute=10**8)
    h.tagged("A81001", "R1", 10_000, [], D(2024, 5, 1))
    h.list_size("A81001", 4200, {"acute": 2000}, D(2024, 10, 1))
    h.list_size("A81001", 4300, {}, D(2025, 5, 1))  # next year: not used for 2024-25
    append(ledger.store, h.events)

    def a81001(on: date) -> tuple[str, str, float | None]:
        r = reads.variation(as_of=on, element="acute")[0]
        return r["weighted_population"], r["population_basis"], r["per_1000"]

    assert a81001(D(2024, 9, 30)) == ("4000", "weighted", 0.25)
    assert a81001(D(2024, 10, 1)) == ("2000", "weighted", 0.5)
    assert a81001(D(2025, 3, 31)) == ("2000", "weighted", 0.5)
    rows = reads.variation(year="2024-25", element="acute")
    assert rows[1]["practice"] == "A81002"
    assert rows[1]["population_basis"] == "list size"
    assert "fewer than 4, no outliers flagged" in rows[1]["note"]


def test_variation_refuses_bad_input(ledger: Ledger, reads: JointReads) -> None:
    joint_scenario.write(ledger, upto=12)
    with pytest.raises(NotFound, match="no consortium 99C"):
        reads.variation(consortium="99C")
    with pytest.raises(InvalidInput, match="unknown element 'surgery'"):
        reads.variation(element="surgery")
    with pytest.raises(InvalidInput, match="financial year"):
        reads.variation(year="2024/25")
    with pytest.raises(InvalidInput, match="outside the financial year"):
        reads.variation(year="2024-25", as_of=D(2025, 4, 1))


# --- the real command ---------------------------------------------------------------------


@pytest.mark.e2e
def test_ledger_variation_command(ledger: Ledger, db_url: str, tmp_path: Path) -> None:
    joint_scenario.write(ledger)
    ledger.close()
    done = run_ledger(db_url, "variation", "--consortium", "16C", "--element", "acute",
                      "--year", "2024-25", "--method", "tukey", "--format", "json",
                      cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == EXPECTED_16C


def test_variation_table_csv_and_errors_in_process(
        sqlite_path: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # tables unwrapped, whatever the terminal
    # The rendering and the error mapping do not depend on the store: SQLite only.
    db_url = sqlite_path
    with bootstrap(db_url) as ledger:
        joint_scenario.write(ledger)
    done = invoke(db_url, "variation", "--method", "tukey", "--format", "csv")
    assert done.exit_code == 0, done.stderr
    table = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [(r["consortium"], r["practice"], r["per_1000"], r["outlier"]) for r in table] == [
        ("00P", "A81006", "0.67", "false"), ("16C", "A81001", "0.50", "false"),
        ("16C", "A81002", "0.40", "false"), ("16C", "A81003", "6.00", "true"),
        ("16C", "A81004", "0.60", "false"), ("16C", "A81005", "0.50", "false")]
    assert {r["median_per_1000"] for r in table} == {"0.67", "0.50"}

    done = invoke(db_url, "variation", "--method", "tukey")
    assert done.exit_code == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "16C acute 2024-25, per 1,000 patients: median 0.50 commitments, £1,000.00 spend" \
        in text
    rates = {line.split("│")[1].strip(): line.split("│")[4].strip()
             for line in done.stdout.splitlines() if line.startswith("│ A")}
    assert rates == {"A81006": "0.67", "A81001": "0.50", "A81002": "0.40", "A81003": "6.00",
                     "A81004": "0.60", "A81005": "0.50"}
    assert "OUTLIER: commitments high, spend high" in text
    assert "8,000 (list size)" in text
    assert "00P acute: 1 member(s) with a population: fewer than 4, no outliers flagged" in text
    assert "1 outlier(s)" in text

    help_text = " ".join(invoke(db_url, "variation", "--help").stdout.split())
    assert "Q1 - 1.5 x IQR ... Q3 + 1.5 x IQR" in help_text
    assert "fewer than 4 members" in help_text
    assert "ledger variation --consortium 16C --element acute" in help_text

    for args, code, message in [
        (["--consortium", "99C"], 1, "no consortium 99C"),
        (["--element", "surgery"], 2, "unknown element 'surgery'"),
        (["--year", "2024"], 2, "malformed financial year"),
        (["--as-of", "2024-13-01"], 2, "malformed date"),
    ]:
        done = invoke(db_url, "variation", "--method", "tukey", *args)
        assert done.exit_code == code, (args, done.stderr)
        assert message in one_line_error(done.stderr)


def test_the_demo_tour_shows_adopted_standards_with_their_gaps(
    sqlite_path: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with bootstrap(sqlite_path) as ledger:
        joint_scenario.write(ledger)
        adopted_standards(JointReads(ledger.store, today=TODAY), "2024-25")
    text = " ".join(capsys.readouterr().out.split())
    assert "2 adopted standard(s) with no commitments: 16C 2024-25 QS1, 16C 2024-25 QS9" in text
    assert "2 standard(s) tagged on commitments but not adopted" in text
    assert "QS10" not in text  # not adopted: left to `ledger quality`


def test_six_decimal_weighted_populations_are_used_exactly(ledger: Ledger,
                                                           reads: JointReads) -> None:
    h = JointHistory()
    # Truncated to 1,999 the rate would be £500.25 per 1,000; exactly it is £500.00.
    h.register_weighted("A81001", 2100, {"acute": "1999.999999"})
    h.form("16C")
    h.join("16C", "A81001", D(2024, 4, 1))
    h.allocate("A81001", D(2024, 4, 1), acute=10**8)
    h.tagged("A81001", "R1", 100_000, [], D(2024, 5, 1))
    append(ledger.store, h.events)
    row = reads.variation(element="acute", year="2024-25")[0]
    assert row["weighted_population"] == "1999.999999"  # as published
    assert row["population_basis"] == "weighted"
    assert row["spend_per_1000_pence"] == 50_000
    assert row["per_1000"] == 0.5
