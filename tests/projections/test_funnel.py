"""Funnel-plot statistics against figures derived independently of scipy and numpy.

Every expected value is computed here from the published formulas with mpmath
at 50 significant digits (or in closed form), never with the module under test:

- a Poisson count expected to be E has exact limits lower_p = chi2^{-1}(p; 2E) / 2
  and upper_p = chi2^{-1}(1 - p; 2(E + 1)) / 2 (FunnelPlotR's calculate_limits.R).
  The chi-square CDF with k degrees of freedom at x is the regularised lower
  incomplete gamma P(k/2, x/2), so lower_p solves P(E, x) = p; for a whole E it
  also solves the Poisson sum 1 - sum_{j<E} exp(-x) x^j / j! = p (the
  gamma-Poisson relation), which is how the small cases are derived below;
- E = 1: P(1, x) = 1 - exp(-x), so lower_0.025 = -ln(0.975); shape 2:
  P(2, x) = 1 - exp(-x)(1 + x), so upper_0.025 for E = 1 is -1 - W_{-1}(-0.025 / e)
  (Lambert W, lower branch);
- the overdispersion steps (Spiegelhalter 2005, FunnelPlotR od_adjustment.R)
  are redone with the standard library: z = 2 (sqrt(O) - sqrt(E)), Winsorised at
  the 10% and 90% quantiles (statistics.quantiles' "inclusive" method is R's
  type 7), phi = mean z^2, tau^2 = (n phi - (n - 1)) / (sum w - sum w^2 / sum w),
  w = 4E, limits target x (1 -/+ z_p sqrt(1/(4E) + tau^2))^2.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from fractions import Fraction

import mpmath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.funnel import (
    WITHIN,
    Unit,
    band,
    dispersion,
    judge,
    overdispersed_limits,
    poisson_count_limits,
    poisson_limits,
    target_rate,
    winsorised,
    z_critical,
    z_score,
)

F = Fraction
TOL = 1e-9
mpmath.mp.dps = 50


def bisect(cdf: Callable[[mpmath.mpf], mpmath.mpf], p: float, around: float) -> float:
    """x with cdf(x) = p for an increasing cdf, by bisection at 50 digits.

    The bracket starts at `around` +/- 12 sqrt(around) + 20 (a gamma quantile of
    shape `around` lies well inside) and grows if it must.
    """
    target = mpmath.mpf(p)
    reach = 12 * math.sqrt(around) + 20
    lo, hi = mpmath.mpf(max(0.0, around - reach)), mpmath.mpf(around + reach)
    while lo > 0 and cdf(lo) > target:
        lo = lo / 2
    while cdf(hi) < target:
        lo, hi = hi, hi * 2
    for _ in range(120):  # 2^-120 of the bracket: far below 1e-9
        mid = (lo + hi) / 2
        if cdf(mid) < target:
            lo = mid
        else:
            hi = mid
    return float((lo + hi) / 2)


def gamma_quantile(shape: float, p: float) -> float:
    """x with P(shape, x) = p, i.e. chi2^{-1}(p; 2 shape) / 2 (regularised gamma)."""
    a = mpmath.mpf(shape)
    return bisect(lambda x: mpmath.gammainc(a, 0, x, regularized=True), p, shape)


def poisson_sum_quantile(whole: int, p: float) -> float:
    """x with 1 - sum_{j < whole} exp(-x) x^j / j! = p: the Poisson-sum route."""
    return bisect(lambda x: 1 - mpmath.fsum(mpmath.exp(-x) * x**j / mpmath.factorial(j)
                                            for j in range(whole)), p, whole)


# --- exact Poisson limits ------------------------------------------------------------------


def test_limits_for_one_expected_commitment_in_closed_form() -> None:
    lower, upper = poisson_count_limits(1.0, 0.025)
    assert lower == pytest.approx(-math.log(0.975), abs=TOL)  # 0.0253178...
    w = mpmath.lambertw(-mpmath.mpf("0.025") / mpmath.e, -1)
    assert upper == pytest.approx(float(-1 - w.real), abs=TOL)  # 5.5716...
    assert upper == pytest.approx(5.571643390938, abs=1e-9)


@pytest.mark.parametrize("e", [1, 2, 3, 5, 8, 13, 40])
@pytest.mark.parametrize("tail", [0.025, 0.001])
def test_limits_at_small_whole_expected_counts_match_the_poisson_sums(e: int,
                                                                      tail: float) -> None:
    lower, upper = poisson_count_limits(float(e), tail)
    assert lower == pytest.approx(poisson_sum_quantile(e, tail), abs=TOL)
    assert upper == pytest.approx(poisson_sum_quantile(e + 1, 1 - tail), abs=TOL)


@pytest.mark.parametrize("e", [0.05, 0.3, 0.9999, 2.5, 7.25, 123.456, 5_000.0, 30_000.5])
@pytest.mark.parametrize("tail", [0.025, 0.001])
def test_limits_at_fractional_and_large_expected_counts(e: float, tail: float) -> None:
    lower, upper = poisson_count_limits(e, tail)
    scale = max(1.0, e / 1000)  # 1e-9 relative beyond a thousand
    assert lower == pytest.approx(gamma_quantile(e, tail), abs=TOL * scale)
    assert upper == pytest.approx(gamma_quantile(e + 1, 1 - tail), abs=TOL * scale)


def test_limits_as_rates_per_1000_of_a_practice() -> None:
    # Target 25 per 1,000 and 6,000 patients: E = 150 commitments.
    limits = poisson_limits(F(25), F(6000))
    per = 6.0
    assert limits.lower_95 == pytest.approx(gamma_quantile(150, 0.025) / per, abs=TOL)
    assert limits.upper_95 == pytest.approx(gamma_quantile(151, 0.975) / per, abs=TOL)
    assert limits.lower_998 == pytest.approx(gamma_quantile(150, 0.001) / per, abs=TOL)
    assert limits.upper_998 == pytest.approx(gamma_quantile(151, 0.999) / per, abs=TOL)
    assert limits.lower_998 < limits.lower_95 < 25 < limits.upper_95 < limits.upper_998


def test_a_zero_target_has_zero_lower_limits_and_the_upper_of_nothing_expected() -> None:
    limits = poisson_limits(F(0), F(2000))
    assert (limits.lower_95, limits.lower_998) == (0.0, 0.0)
    # Shape 1: upper_p solves exp(-x) = p, so x = -ln p commitments among 2,000 patients.
    assert limits.upper_95 == pytest.approx(-math.log(0.025) / 2, abs=TOL)
    assert limits.upper_998 == pytest.approx(-math.log(0.001) / 2, abs=TOL)


def test_a_zero_target_keeps_the_exact_limits_when_overdispersion_is_asked() -> None:
    """Nothing committed: no tau^2 to estimate, so the limits are the exact Poisson ones
    of nothing expected, never 0 .. infinity."""
    units = [Unit(0, F(2000)), Unit(0, F(5000))]
    found = judge(units, F(0), overdispersion=True)
    assert (found.phi, found.tau2) == (None, 0.0)
    assert [j.limits for j in found.units] == [poisson_limits(F(0), u.population)
                                               for u in units]
    assert all(math.isfinite(j.limits.upper_998) for j in found.units)
    assert {j.band for j in found.units} == {WITHIN}


def test_critical_values_are_the_normal_quantiles() -> None:
    assert z_critical(0.025) == pytest.approx(float(mpmath.sqrt(2) * mpmath.erfinv(0.95)),
                                              abs=TOL)
    assert z_critical(0.001) == pytest.approx(float(mpmath.sqrt(2) * mpmath.erfinv(0.998)),
                                              abs=TOL)
    # FunnelPlotR's rounded constants.
    assert round(z_critical(0.025), 6) == 1.959964
    assert round(z_critical(0.001), 6) == 3.090232


# --- bands and the edge cases ---------------------------------------------------------------


def test_bands_against_the_limits() -> None:
    counts = (20, 32, 40, 11, 3, 20)
    units = [Unit(o, F(1000)) for o in counts]
    # E = 20 for each (target 20 per 1,000 of 1,000 patients).
    found = judge(units, F(20))
    e = 20.0
    lo95, hi95 = gamma_quantile(e, 0.025), gamma_quantile(e + 1, 0.975)
    lo998, hi998 = gamma_quantile(e, 0.001), gamma_quantile(e + 1, 0.999)
    assert (lo998, lo95, hi95, hi998) == pytest.approx((8.958, 12.217, 30.888, 38.042),
                                                       abs=1e-3)
    assert [j.band for j in found.units] == [
        WITHIN, "above 95%", "above 99.8%", "below 95%", "below 99.8%", WITHIN]
    assert [j.z_score for j in found.units] == pytest.approx(
        [2 * (math.sqrt(o) - math.sqrt(e)) for o in counts], abs=TOL)
    assert found.phi is None
    assert found.tau2 == 0.0


def test_a_zero_count_is_flagged_only_when_seeing_none_is_unlikely() -> None:
    def zero_band(expected: float) -> str:
        population = F(1000)
        target = F(expected).limit_denominator(10**9) * 1000 / population
        e = float(target * population / 1000)
        return band(0, population, e, poisson_limits(target, population))

    assert zero_band(0.2) == WITHIN        # exp(-0.2) = 82% chance of none
    assert zero_band(3.6) == WITHIN        # exp(-3.6) = 2.7% >= 2.5%
    assert zero_band(3.8) == "below 95%"   # exp(-3.8) = 2.2%
    assert zero_band(6.8) == "below 95%"   # exp(-6.8) = 0.11% >= 0.1%
    assert zero_band(7.0) == "below 99.8%"  # exp(-7) = 0.09%


def test_tiny_populations_have_wide_limits_and_are_rarely_flagged() -> None:
    found = judge([Unit(2, F(50)), Unit(300, F(10_000))], F(30))
    tiny, big = found.units
    assert tiny.expected == pytest.approx(1.5)
    assert tiny.rate == 40.0
    assert tiny.band == WITHIN  # 2 commitments where 1.5 were expected
    assert tiny.limits.upper_95 / 30 > 3
    assert big.limits.upper_95 / 30 < 1.12


def test_judge_refuses_units_without_a_population() -> None:
    with pytest.raises(ValueError, match="population above zero"):
        judge([Unit(1, F(0))], F(1))
    with pytest.raises(ValueError, match="no population"):
        target_rate([Unit(1, F(0))])
    with pytest.raises(ValueError, match="negative"):
        judge([Unit(1, F(10))], F(-1))


# --- overdispersion ------------------------------------------------------------------------

# Twelve practices whose rates spread far more than Poisson noise allows.
Quad = tuple[float, float, float, float]
OVERDISPERSED = [
    (3100, 41), (5200, 96), (8400, 130), (12000, 260), (2500, 30), (7600, 190),
    (9900, 150), (4300, 88), (15800, 300), (6100, 60), (11000, 280), (1800, 45),
]


def independent_od(data: list[tuple[int, int]]) -> tuple[float, float, list[Quad],
                                                         list[float]]:
    """phi, tau^2, limits and adjusted z, by the published steps, standard library only."""
    target = F(sum(o for _, o in data) * 1000, sum(n for n, _ in data))
    es = [float(target * n / 1000) for n, _ in data]
    z = [2 * (math.sqrt(o) - math.sqrt(e)) for (_, o), e in zip(data, es, strict=True)]
    deciles = statistics.quantiles(z, n=10, method="inclusive")
    low, high = deciles[0], deciles[-1]
    wz = [min(max(v, low), high) for v in z]
    n = len(data)
    phi = sum(v * v for v in wz) / n
    w = [4 * e for e in es]
    tau2 = max(0.0, (n * phi - (n - 1)) / (sum(w) - sum(x * x for x in w) / sum(w)))
    z95 = float(mpmath.sqrt(2) * mpmath.erfinv(0.95))
    z998 = float(mpmath.sqrt(2) * mpmath.erfinv(0.998))
    t = float(target)
    limits: list[Quad] = []
    adjusted = []
    for (_, o), e in zip(data, es, strict=True):
        sd = math.sqrt(1 / (4 * e) + tau2)
        limits.append((t * max(0, 1 - z95 * sd) ** 2, t * (1 + z95 * sd) ** 2,
                       t * max(0, 1 - z998 * sd) ** 2, t * (1 + z998 * sd) ** 2))
        adjusted.append((math.sqrt(o / e) - 1) / sd)
    return phi, tau2, limits, adjusted


def test_overdispersed_set_matches_the_published_steps() -> None:
    units = [Unit(o, F(n)) for n, o in OVERDISPERSED]
    target = target_rate(units)
    assert target == F(1670 * 1000, 87700)
    phi, tau2, limits, adjusted = independent_od(OVERDISPERSED)
    assert phi > 3  # clearly overdispersed
    found = judge(units, target, overdispersion=True)
    assert found.phi == pytest.approx(phi, abs=TOL)
    assert found.tau2 == pytest.approx(tau2, abs=TOL)
    assert found.tau2 > 0
    for j, want, z in zip(found.units, limits, adjusted, strict=True):
        got = (j.limits.lower_95, j.limits.upper_95, j.limits.lower_998, j.limits.upper_998)
        assert got == pytest.approx(want, abs=TOL)
        assert j.z_score == pytest.approx(z, abs=TOL)
        # Outside a limit exactly when the adjusted z is beyond the normal quantile.
        if abs(z) > 3.0903 and j.observed > 0:
            assert j.band.endswith("99.8%")
        elif abs(z) < 1.9599:
            assert j.band == WITHIN
    # The widened limits flag fewer practices than the plain Poisson ones.
    plain = judge(units, target)
    assert sum(j.band != WITHIN for j in found.units) < sum(
        j.band != WITHIN for j in plain.units)


def test_winsorising_pulls_in_the_tenth_at_each_end() -> None:
    z = [float(v) for v in range(1, 11)]  # type 7: 10% -> 1.9, 90% -> 9.1
    assert winsorised(z) == pytest.approx([1.9, 2, 3, 4, 5, 6, 7, 8, 9, 9.1], abs=TOL)
    assert winsorised([]) == []


def test_no_overdispersion_when_the_spread_is_poisson() -> None:
    # Every practice exactly at its expected count: phi = 0 < (n - 1) / n, tau^2 = 0.
    phi, tau2 = dispersion([10, 20, 30], [10.0, 20.0, 30.0])
    assert (phi, tau2) == (0.0, 0.0)
    assert dispersion([], []) == (None, 0.0)
    # A target of zero: nothing to estimate from, limits 0 .. infinity.
    assert dispersion([0, 0], [0.0, 0.0]) == (None, 0.0)
    assert overdispersed_limits(F(0), 0.0, 0.0).upper_95 == math.inf


def test_z_scores_handle_zero_counts() -> None:
    assert z_score(0, 4.0) == -4.0
    assert z_score(9, 4.0) == 2.0


# --- properties ----------------------------------------------------------------------------

targets = st.fractions(min_value=F(1, 10), max_value=F(400), max_denominator=1000)
sizes = st.integers(min_value=1, max_value=200_000)


@settings(max_examples=80, deadline=None)
@given(target=targets, small=sizes, extra=st.integers(min_value=1, max_value=100_000),
       tau2=st.sampled_from([0.0, 0.001, 0.02]))
def test_limits_narrow_as_the_population_grows(target: Fraction, small: int, extra: int,
                                               tau2: float) -> None:
    big = small + extra
    for a, b in [(poisson_limits(target, F(small)), poisson_limits(target, F(big))),
                 (overdispersed_limits(target, float(target * small / 1000), tau2),
                  overdispersed_limits(target, float(target * big / 1000), tau2))]:
        slack = 1e-12 * float(target)
        assert b.upper_95 <= a.upper_95 + slack
        assert b.upper_998 <= a.upper_998 + slack
        assert b.lower_95 >= a.lower_95 - slack
        assert b.lower_998 >= a.lower_998 - slack


@settings(max_examples=80, deadline=None)
@given(observed=st.integers(min_value=0, max_value=50_000), population=sizes,
       others=st.lists(st.tuples(st.integers(0, 5000), sizes), max_size=12),
       overdispersion=st.booleans())
def test_a_practice_exactly_at_target_is_never_flagged(observed: int, population: int,
                                                       others: list[tuple[int, int]],
                                                       overdispersion: bool) -> None:
    target = F(observed * 1000, population)  # its own rate is the target
    units = [Unit(observed, F(population)), *(Unit(o, F(n)) for o, n in others)]
    found = judge(units, target, overdispersion=overdispersion)
    at_target = found.units[0]
    assert at_target.band == WITHIN
    assert at_target.rate == at_target.target
