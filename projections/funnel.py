"""Funnel plots for peer review: exact Poisson control limits and overdispersion.

Pure statistics over counts and populations (no database, no I/O); imported
only when a funnel is asked for, since it loads scipy and numpy.

The indicator is a rate: observed commitments O per 1,000 of a practice's
(weighted) population N, compared with a target rate T per 1,000. The practice
is expected to make E = T x N / 1,000 commitments. Sources:

- Spiegelhalter DJ (2005), "Funnel plots for comparing institutional
  performance", Statistics in Medicine 24:1185-1202: control limits around the
  target as a function of the precision (here the expected count), 95% and
  99.8% (about 2 and 3 standard deviations).
- Spiegelhalter DJ (2005), "Handling over-dispersion of performance
  indicators", Quality and Safety in Health Care 14:347-351: z-scores on a
  variance-stabilising scale, Winsorised at 10% each end, the dispersion ratio
  phi = mean of their squares, and the additive random-effects
  (DerSimonian-Laird) between-practice variance tau^2.
- FunnelPlotR (NHS-R community, 0.6.0), R/calculate_limits.R and
  R/od_adjustment.R, whose formulas these follow for an indirectly
  standardised ratio O/E (its "SR" data type, `sr_method = "CQC"`):

  * exact Poisson limits of the count: lower_p = chi2_{2E}^{-1}(p) / 2 and
    upper_p = chi2_{2(E+1)}^{-1}(1 - p) / 2 (that is, Gamma quantiles with shape
    E and E + 1), as rates per 1,000: count / (N / 1,000);
  * z-score on the square-root scale: Y = sqrt(O/E), s = 1 / (2 sqrt(E)),
    z = (Y - 1) / s = 2 (sqrt(O) - sqrt(E)); "CQC" rather than "SHMI" because
    the SHMI log scale is undefined for a zero count, which small practices
    have, and SHMI truncates where the 10% Winsorising asked for here applies;
  * tau^2 = max(0, (n phi - (n - 1)) / (sum w - sum w^2 / sum w)), w = 1 / s^2,
    zero when n phi < n - 1;
  * overdispersed limits Y = 1 -/+ z_p sqrt(s^2 + tau^2). FunnelPlotR draws
    these on the ratio axis without undoing the square root; here they are
    squared back to the ratio scale, target x max(0, 1 -/+ z_p sqrt(s^2 +
    tau^2))^2, so that a practice is outside a limit exactly when its adjusted
    z-score is beyond +/- z_p (Spiegelhalter's back-transformation).

Quantiles come from scipy.special, the functions behind scipy.stats's gamma and norm
(gammaincinv and gammainccinv for the Poisson limits, ndtri for z_p: 1.959964... and
3.090232..., where FunnelPlotR writes 1.959964 and 3.090232); scipy.special loads in
about a third of the time scipy.stats takes, which every funnel, chart and report
command would otherwise spend at start.

Edge cases:

- no population (zero or none recorded): not compared (the caller says so);
- a target of zero (nothing committed by anyone compared): E = 0 for all, the
  lower limits are 0 and the upper limits those of E -> 0 (3.69 and 6.91
  commitments); every practice then has O = 0 and lies within. Overdispersion
  cannot be estimated then (no unit has E > 0, and its limits would be 0 ..
  infinity): the exact Poisson limits stand, with or without `overdispersion`;
- a zero count lies below the continuous lower limit whenever E > 0; it is
  flagged below only when seeing none is itself that unlikely, i.e.
  P(O = 0) = exp(-E) < 2.5% (E > 3.69) for 95% and < 0.1% (E > 6.91) for
  99.8%; a tiny practice expecting less than that is within;
- tiny populations give wide limits (an expected count under 1 has an upper
  95% limit above 5.57 / E times the target), so they are rarely flagged:
  that is the point of the funnel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

TAIL_95 = 0.025
TAIL_998 = 0.001
WINSOR = 0.1

WITHIN = "within"
NOT_COMPARED = "not compared"
BANDS = (WITHIN, "above 95%", "above 99.8%", "below 95%", "below 99.8%")


@dataclass(frozen=True, slots=True)
class Limits:
    """Control limits as rates per 1,000 of the population: 95% and 99.8%."""

    lower_95: float
    upper_95: float
    lower_998: float
    upper_998: float


@dataclass(frozen=True, slots=True)
class Unit:
    """One practice for one element: commitments made, and its population (> 0)."""

    observed: int
    population: Fraction


@dataclass(frozen=True, slots=True)
class Judged:
    """A unit against the target: E, its rate, the limits in use, z-score and band."""

    observed: int
    expected: float
    rate: float
    target: float
    limits: Limits
    z_score: float
    band: str


@dataclass(frozen=True, slots=True)
class Funnel:
    """The judged units in input order, and the overdispersion used (0 when none)."""

    units: list[Judged]
    phi: float | None
    tau2: float


def target_rate(units: Sequence[Unit]) -> Fraction:
    """Pooled rate per 1,000: sum of counts / sum of populations x 1,000, exactly.

    Raises ValueError when `units` have no population between them.
    """
    people = sum((u.population for u in units), Fraction(0))
    if people <= 0:
        raise ValueError("no population to take a target rate over")
    return Fraction(sum(u.observed for u in units) * 1000) / people


def expected(target: Fraction, population: Fraction) -> Fraction:
    """E = target (per 1,000) x population / 1,000, exactly."""
    return target * population / 1000


def z_critical(tail: float) -> float:
    """The standard normal quantile leaving `tail` above it (1.96 for 0.025)."""
    from scipy.special import ndtri  # noqa: PLC0415 - heavy import, funnels only

    return float(-ndtri(tail))


def poisson_count_limits(e: float, tail: float) -> tuple[float, float]:
    """Exact Poisson limits of a count expected to be `e` (>= 0), `tail` each side.

    lower = Gamma^{-1}(tail; shape e) = chi2^{-1}(tail; 2e) / 2 (0 when e = 0);
    upper = Gamma^{-1}(1 - tail; shape e + 1) = chi2^{-1}(1 - tail; 2(e + 1)) / 2.
    The inverses are scipy.special's regularised incomplete gamma inverses, which
    scipy.stats.gamma's ppf and isf call.
    """
    from scipy.special import (  # noqa: PLC0415 - heavy import, funnels only
        gammainccinv,
        gammaincinv,
    )

    if e < 0:
        raise ValueError(f"an expected count cannot be negative: {e}")
    lower = float(gammaincinv(e, tail)) if e > 0 else 0.0
    return lower, float(gammainccinv(e + 1, tail))


def poisson_limits(target: Fraction, population: Fraction) -> Limits:
    """Exact Poisson control limits (rates per 1,000) for a practice of `population`."""
    e = float(expected(target, population))
    per = float(population) / 1000
    lo95, hi95 = poisson_count_limits(e, TAIL_95)
    lo998, hi998 = poisson_count_limits(e, TAIL_998)
    return Limits(lo95 / per, hi95 / per, lo998 / per, hi998 / per)


def z_score(observed: int, e: float) -> float:
    """Unadjusted z on the square-root scale: (sqrt(O/E) - 1) / (1 / (2 sqrt E))."""
    return 2 * (math.sqrt(observed) - math.sqrt(e))


def winsorised(z: Sequence[float], fraction: float = WINSOR) -> list[float]:
    """z-scores pulled in to their `fraction` and 1 - `fraction` quantiles.

    Quantiles interpolate linearly between order statistics (R's type 7,
    numpy's default), as FunnelPlotR's `quantile()` call does.
    """
    import numpy as np  # noqa: PLC0415 - heavy import, funnels only

    if not z:
        return []
    low, high = (float(q) for q in np.quantile(np.asarray(z, dtype=float),
                                               [fraction, 1 - fraction]))
    return [min(max(v, low), high) for v in z]


def dispersion(observed: Sequence[int], expected_counts: Sequence[float]
               ) -> tuple[float | None, float]:
    """phi and the DerSimonian-Laird tau^2 of units with E > 0 (others are ignored).

    phi = mean of the squared Winsorised z-scores; tau^2 = max(0, (n phi - (n - 1))
    / (sum w - sum w^2 / sum w)) with w = 1 / s^2 = 4E, and 0 when n phi < n - 1.
    phi is None (and tau^2 0) without any unit to estimate from.
    """
    pairs = [(o, e) for o, e in zip(observed, expected_counts, strict=True) if e > 0]
    if not pairs:
        return None, 0.0
    n = len(pairs)
    z = winsorised([z_score(o, e) for o, e in pairs])
    phi = sum(v * v for v in z) / n
    if n * phi < n - 1:
        return phi, 0.0
    w = [4 * e for _, e in pairs]
    spread = sum(w) - sum(x * x for x in w) / sum(w)
    if spread <= 0:
        return phi, 0.0
    return phi, max(0.0, (n * phi - (n - 1)) / spread)


def overdispersed_limits(target: Fraction, e: float, tau2: float) -> Limits:
    """Limits (rates per 1,000) widened by tau^2: target x max(0, 1 -/+ z_p sd)^2.

    sd = sqrt(1 / (4E) + tau^2), the square-root scale's standard error plus the
    between-practice variance. With E = 0 the limits are 0 .. infinity.
    """
    t = float(target)
    if e <= 0:
        return Limits(0.0, math.inf, 0.0, math.inf)
    sd = math.sqrt(1 / (4 * e) + tau2)
    z95, z998 = z_critical(TAIL_95), z_critical(TAIL_998)

    def low(z: float) -> float:
        return t * max(0.0, 1 - z * sd) ** 2

    def high(z: float) -> float:
        return t * (1 + z * sd) ** 2

    return Limits(low(z95), high(z95), low(z998), high(z998))


def overdispersed_z(observed: int, e: float, tau2: float) -> float:
    """z adjusted for overdispersion: (sqrt(O/E) - 1) / sqrt(1 / (4E) + tau^2)."""
    if e <= 0:
        return 0.0
    return (math.sqrt(observed / e) - 1) / math.sqrt(1 / (4 * e) + tau2)


def band(observed: int, population: Fraction, e: float, limits: Limits) -> str:
    """Where the practice's rate falls against the limits (on a limit is within).

    A zero count is below a lower limit only when exp(-E) is below that
    limit's tail (2.5% or 0.1%), whatever the drawn limit.
    """
    rate = Fraction(observed * 1000) / population if population > 0 else Fraction(0)
    value = float(rate)
    if value > limits.upper_998:
        return "above 99.8%"
    if value > limits.upper_95:
        return "above 95%"
    zero_unlikely_998 = observed > 0 or math.exp(-e) < TAIL_998
    zero_unlikely_95 = observed > 0 or math.exp(-e) < TAIL_95
    if value < limits.lower_998 and zero_unlikely_998:
        return "below 99.8%"
    if value < limits.lower_95 and zero_unlikely_95:
        return "below 95%"
    return WITHIN


def judge(units: Sequence[Unit], target: Fraction, *, overdispersion: bool = False,
          estimate_from: Sequence[Unit] | None = None) -> Funnel:
    """Each unit against `target` (per 1,000): exact Poisson limits, or with
    `overdispersion` the limits widened by tau^2 estimated from `estimate_from`
    (default: `units` themselves) around the same target.

    Every unit needs a population > 0 (ValueError otherwise); the target must
    not be negative. A target of zero has nothing to estimate tau^2 from: the units
    get the exact Poisson limits (phi None, tau^2 0) even with `overdispersion`.
    """
    if target < 0:
        raise ValueError(f"a target rate cannot be negative: {target}")
    if any(u.population <= 0 for u in units):
        raise ValueError("every practice judged needs a population above zero")
    phi: float | None = None
    tau2 = 0.0
    overdispersion = overdispersion and target > 0
    if overdispersion:
        basis = units if estimate_from is None else estimate_from
        basis = [u for u in basis if u.population > 0]
        phi, tau2 = dispersion([u.observed for u in basis],
                               [float(expected(target, u.population)) for u in basis])
    judged: list[Judged] = []
    for u in units:
        e = float(expected(target, u.population))
        if overdispersion:
            limits = overdispersed_limits(target, e, tau2)
            z = overdispersed_z(u.observed, e, tau2)
        else:
            limits = poisson_limits(target, u.population)
            z = z_score(u.observed, e)
        judged.append(Judged(
            observed=u.observed, expected=e,
            rate=float(Fraction(u.observed * 1000) / u.population), target=float(target),
            limits=limits, z_score=z, band=band(u.observed, u.population, e, limits)))
    return Funnel(judged, phi, tau2)


def curve(target: Fraction, populations: Sequence[float], *, tau2: float = 0.0,
          overdispersion: bool = False) -> list[Limits]:
    """Limits along a range of populations, for drawing the funnel's lines (the exact
    Poisson ones for a target of zero, as `judge` gives)."""
    out: list[Limits] = []
    for people in populations:
        size = Fraction(people)
        if overdispersion and target > 0:
            out.append(overdispersed_limits(target, float(expected(target, size)), tau2))
        else:
            out.append(poisson_limits(target, size))
    return out
