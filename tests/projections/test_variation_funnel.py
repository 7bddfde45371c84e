"""`ledger variation` by funnel: the query on both stores, the command, the charts.

The ledger is joint_scenario.py's (hand-checked counts in its docstring). Expected
limits are derived with test_funnel.py's mpmath helpers, not with scipy.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from commands.render import out
from ledger.bootstrap import Ledger, bootstrap
from ledger.domain.errors import InvalidInput
from projections.joint_queries import JointReads
from tests.projections import joint_scenario
from tests.projections.joint_scenario import invoke, one_line_error, run_ledger
from tests.projections.test_funnel import gamma_quantile
from tests.projections.test_variation import TODAY

F = Fraction
TOL = 1e-6  # the rows round to 6 places

# 16C acute: (practice, population, commitments); A81005 is per its list size.
MEMBERS_16C = [("A81001", 4000, 2), ("A81002", 5000, 2), ("A81003", 2000, 12),
               ("A81004", 10000, 6), ("A81005", 8000, 4)]
TARGET_16C = F(26 * 1000, 29000)  # 26 commitments among 29,000 patients
# Every practice with a population: 16C's, A81006 (2 of 3,000) and A81007 (1 of 3,000).
TARGET_NATIONAL = F(29 * 1000, 35000)


@pytest.fixture
def reads(ledger: Ledger) -> JointReads:
    return JointReads(ledger.store, today=TODAY)


def independent(population: int, observed: int, target: Fraction) -> dict[str, Any]:
    """Expected, rate, limits, z and band from the chi-square relations (mpmath)."""
    e = float(target * population / 1000)
    per = population / 1000
    limits = {
        "lower_95": gamma_quantile(e, 0.025) / per, "upper_95": gamma_quantile(e + 1, 0.975) / per,
        "lower_998": gamma_quantile(e, 0.001) / per,
        "upper_998": gamma_quantile(e + 1, 0.999) / per,
    }
    rate = observed / per
    if rate > limits["upper_998"]:
        band = "above 99.8%"
    elif rate > limits["upper_95"]:
        band = "above 95%"
    elif rate < limits["lower_998"]:
        band = "below 99.8%"
    elif rate < limits["lower_95"]:
        band = "below 95%"
    else:
        band = "within"
    return {"expected": e, "per_1000": rate, "target_per_1000": float(target), **limits,
            "z_score": 2 * (math.sqrt(observed) - math.sqrt(e)), "band": band}


def check(row: dict[str, Any], population: int, observed: int, target: Fraction) -> None:
    want = independent(population, observed, target)
    for key, value in want.items():
        if key == "band":
            assert row[key] == value, row["practice"]
        else:
            assert row[key] == pytest.approx(value, abs=TOL), (row["practice"], key)
    assert row["flagged"] is (want["band"] != "within")


def test_funnel_against_the_consortium_rate(ledger: Ledger, reads: JointReads) -> None:
    joint_scenario.write(ledger)
    found = reads.funnel(consortium="16C", element="acute", year="2024-25")
    assert [r["practice"] for r in found] == [p for p, _, _ in MEMBERS_16C]
    for row, (_, population, observed) in zip(found, MEMBERS_16C, strict=True):
        assert row["commitments"] == observed
        assert row["target_basis"] == "consortium"
        assert row["overdispersion"] is False
        assert (row["phi"], row["tau2"]) == (None, None)
        check(row, population, observed, TARGET_16C)
    bands = {r["practice"]: r["band"] for r in found}
    # 12 commitments where 1.79 were expected: far above; the rest within.
    assert bands == {"A81001": "within", "A81002": "within", "A81003": "above 99.8%",
                     "A81004": "within", "A81005": "within"}
    assert found[4]["population_basis"] == "list size"
    assert found[4]["note"] == "no weighted population: per list size"


def test_funnel_against_every_practice(ledger: Ledger, reads: JointReads) -> None:
    joint_scenario.write(ledger)
    found = reads.funnel(consortium="16C", element="acute", against="national")
    for row, (_, population, observed) in zip(found, MEMBERS_16C, strict=True):
        assert row["target_basis"] == "national"
        check(row, population, observed, TARGET_NATIONAL)
    whole = reads.funnel(element="acute", against="national")
    assert [(r["consortium"], r["practice"]) for r in whole] == [
        ("00P", "A81006"), *(("16C", p) for p, _, _ in MEMBERS_16C)]
    check(whole[0], 3000, 2, TARGET_NATIONAL)


def test_funnel_with_overdispersion_estimates_tau2_over_the_compared(
        ledger: Ledger, reads: JointReads) -> None:
    joint_scenario.write(ledger)
    found = reads.funnel(consortium="16C", element="acute", overdispersion=True)
    # The published steps, by hand: z = 2(sqrt O - sqrt E), 10% Winsorised (type 7), phi,
    # DerSimonian-Laird tau^2 with w = 4E.
    es = [float(TARGET_16C * n / 1000) for _, n, _ in MEMBERS_16C]
    z = [2 * (math.sqrt(o) - math.sqrt(e)) for (_, _, o), e in zip(MEMBERS_16C, es, strict=True)]
    ordered = sorted(z)

    def type7(p: float) -> float:
        h = (len(ordered) - 1) * p
        return ordered[int(h)] + (h - int(h)) * (ordered[min(int(h) + 1, 4)] - ordered[int(h)])

    wz = [min(max(v, type7(0.1)), type7(0.9)) for v in z]
    phi = sum(v * v for v in wz) / 5
    w = [4 * e for e in es]
    tau2 = max(0.0, (5 * phi - 4) / (sum(w) - sum(x * x for x in w) / sum(w)))
    assert found[0]["phi"] == pytest.approx(phi, abs=TOL)
    assert found[0]["tau2"] == pytest.approx(tau2, abs=1e-9)
    assert tau2 > 0
    z95 = 1.959963984540054
    for row, e, (_, _, o) in zip(found, es, MEMBERS_16C, strict=True):
        sd = math.sqrt(1 / (4 * e) + tau2)
        assert row["upper_95"] == pytest.approx(float(TARGET_16C) * (1 + z95 * sd) ** 2,
                                                abs=TOL)
        assert row["z_score"] == pytest.approx((math.sqrt(o / e) - 1) / sd, abs=TOL)
    # With overdispersion a practice is outside a limit exactly when its adjusted z is.
    for row in found:
        z_row = row["z_score"]
        want = ("above 99.8%" if z_row > 3.090232 else "above 95%" if z_row > z95
                else "below 99.8%" if z_row < -3.090232 else "below 95%" if z_row < -z95
                else "within")
        assert row["band"] == want, row


def test_funnel_edge_cases(ledger: Ledger, reads: JointReads) -> None:
    joint_scenario.write(ledger)
    # Nobody committed for maternity: a zero target, zero counts, nobody flagged.
    found = reads.funnel(consortium="16C", element="maternity")
    assert {r["band"] for r in found} == {"within"}
    assert {r["target_per_1000"] for r in found} == {0.0}
    assert {(r["lower_95"], r["lower_998"]) for r in found} == {(0.0, 0.0)}
    a81003 = found[2]  # 2,100 patients: the upper limit of E -> 0 is -ln(0.025) commitments
    assert a81003["upper_95"] == pytest.approx(-math.log(0.025) / 2.1, abs=TOL)
    # Before anything is committed, every count is zero and nothing stands out.
    april = reads.funnel(consortium="16C", element="acute", as_of=TODAY.replace(2024, 4, 30))
    assert [(r["commitments"], r["band"]) for r in april] == [(0, "within")] * 5
    with pytest.raises(InvalidInput, match="unknown target 'regional'"):
        reads.funnel(against="regional")


# --- the command and the charts --------------------------------------------------------------


@pytest.mark.e2e
def test_ledger_variation_funnel_command_and_plot(ledger: Ledger, db_url: str,
                                                 tmp_path: Path) -> None:
    joint_scenario.write(ledger)
    expected = JointReads(ledger.store, today=TODAY).funnel(consortium="16C", element="acute",
                                                           year="2024-25")
    ledger.close()
    chart = tmp_path / "funnel.svg"
    done = run_ledger(db_url, "variation", "--consortium", "16C", "--element", "acute",
                      "--year", "2024-25", "--format", "json", "--plot", str(chart),
                      cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.split("\nFunnel plot written")[0]) == json.loads(
        json.dumps(expected))
    svg = chart.read_text()
    assert svg.startswith("<?xml")
    assert "<svg" in svg
    assert "A81003 (above 99.8%)" in svg  # flagged practices are labelled
    assert "A81001" not in svg
    assert "95% limits" in svg
    assert "99.8% limits" in svg
    assert "target 0.90" in svg


def test_variation_funnel_table_png_and_usage_errors(sqlite_path: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(out, "width", 200)
    with bootstrap(sqlite_path) as ledger:
        joint_scenario.write(ledger)
    done = invoke(sqlite_path, "variation", "--consortium", "16C", "--year", "2024-25")
    assert done.exit_code == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "16C acute 2024-25: funnel against the consortium rate of 0.90 per 1,000" in text
    assert "ABOVE 99.8%" in text
    assert "1 practice(s) outside the 95% limits" in text

    png = tmp_path / "funnel.png"
    done = invoke(sqlite_path, "variation", "--year", "2024-25", "--overdispersion",
                  "--against", "national", "--plot", str(png))
    assert done.exit_code == 0, done.stderr
    assert "overdispersion tau^2" in " ".join(done.stdout.split())
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    help_text = " ".join(invoke(sqlite_path, "variation", "--help").stdout.split())
    assert "exact Poisson" in help_text
    assert "--overdispersion" in help_text

    for args, message in [
        (["--plot", str(tmp_path / "funnel.pdf")], "must end in .svg or .png"),
        (["--plot", str(tmp_path / "nowhere" / "f.svg")], "no folder"),
        (["--method", "tukey", "--overdispersion"], "go with --method funnel"),
        (["--against", "regional"], "regional"),
    ]:
        done = invoke(sqlite_path, "variation", *args)
        assert done.exit_code == 2, (args, done.stdout, done.stderr)
        assert message in done.stderr, (args, done.stderr)
    done = invoke(sqlite_path, "variation", "--plot", str(tmp_path / "f.pdf"))
    one_line_error(done.stderr)


def test_position_plot_draws_budget_against_actual(sqlite_path: str, tmp_path: Path) -> None:
    with bootstrap(sqlite_path) as ledger:
        joint_scenario.write(ledger)
        timeline = JointReads(ledger.store, today=TODAY).through_year(consortium="16C",
                                                                      year="2024-25")
    # The first day and 12 month ends, for the one element with budgets.
    assert [r["on"].isoformat() for r in timeline][:3] == ["2024-04-01", "2024-04-30",
                                                          "2024-05-31"]
    assert len(timeline) == 13
    assert {r["element"] for r in timeline} == {"acute"}
    last = timeline[-1]
    assert last["allocated_pence"] == 5 * 100_000 * 100
    # What is worth something at the end: 26 commitments' value (R-103 cancelled unpaid).
    assert last["committed_pence"] + last["settled_pence"] == (
        600 + 3000 + 2600 + 3000 + 12 * 1000 + 6 * 1500 + 4 * 2000) * 100
    chart = tmp_path / "budget.svg"
    done = invoke(sqlite_path, "position", "--consortium", "16C", "--year", "2024-25",
                  "--plot", str(chart))
    assert done.exit_code == 0, done.stderr
    svg = chart.read_text()
    for label in ("allocated", "committed + settled", "settled", "risk-pool draws",
                  "16C 2024-25: budget against actual"):
        assert label in svg
    done = invoke(sqlite_path, "position", "--year", "2024-25", "--plot", str(chart))
    assert done.exit_code == 2
    assert "give --consortium" in one_line_error(done.stderr)


@pytest.mark.e2e
def test_funnel_plot_of_members_with_nothing_committed_or_a_tiny_population_is_drawn_quietly(
        sqlite_path: str, tmp_path: Path) -> None:
    """All rates zero (a year's first day) and a population under one: the plot is written
    with its axes the right way up and nothing but its path on the terminal, no matplotlib
    warning about a singular axis."""
    from matplotlib import pyplot  # noqa: PLC0415

    from commands.charts import funnel_figure  # noqa: PLC0415

    allocator = "allocator:Q71"
    steps = [
        (allocator, "consortium", "form", "16C", "--name", "Tees", "--officer", "Dr J"),
        (allocator, "practice", "register", "A81001", "--name", "Big", "--list-size",
         "1000000", "--weighted", "acute=10000000"),
        (allocator, "practice", "register", "A81002", "--name", "Tiny", "--list-size", "1",
         "--weighted", "acute=0.25"),
        ("consortium:16C", "consortium", "join", "16C", "A81001"),
        ("consortium:16C", "consortium", "join", "16C", "A81002"),
        *[(allocator, "budget", "allocate", code, "--year", "2024-25", "--element",
           "acute=1000") for code in ("A81001", "A81002")],
    ]
    for actor, *words in steps:
        made = invoke(sqlite_path, "--actor", actor, *words, "--on", "2024-04-01")
        assert made.exit_code == 0, (words, made.stderr)
    chart = tmp_path / "funnel.svg"
    done = run_ledger(sqlite_path, "variation", "--consortium", "16C", "--element", "acute",
                      "--year", "2024-25", "--plot", str(chart), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "<svg" in chart.read_text()
    rows = JointReads(bootstrap(sqlite_path).store, today=TODAY).funnel(
        consortium="16C", element="acute", year="2024-25")
    figure = funnel_figure(rows)
    try:
        ax = figure.axes[0]
        (left, right), (bottom, top) = ax.get_xlim(), ax.get_ylim()
        assert left < 0.25 * 0.7, left
        assert right > 10_000_000, right
        assert bottom == 0 < top
    finally:
        pyplot.close(figure)
