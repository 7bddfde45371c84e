"""Joint accountability reads: quality standards and peer-review variation.

Built on the queries of projections/queries.py (`Reads`: catch-up, SQL on both
stores, consortium and year checks); rows are plain dicts with the field names
the commands print (money in `*_pence` integers).

quality — for each consortium and year, each adopted standard with the
commitments tagged with it and what they are worth now (`spend_pence`:
outstanding + settled); `gap` marks an adopted standard no live commitment is
tagged with. A commitment counts for the consortium(s) its practice was a
member of on the commitment's effective date; one cancelled with nothing paid
is worth nothing and does not count. Standards tagged but not adopted follow,
with `adopted` false.

variation — for each consortium and element, each member practice's
commitments and spend per 1,000 of its population against the members'
median, with outliers flagged by the rule in projections/variation.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from ledger.domain.budget import top_slice
from ledger.domain.errors import InvalidInput
from ledger.domain.values import (
    ELEMENTS,
    FinancialYear,
    format_weighted,
    parse_element,
    parse_qs_code,
)
from projections.queries import Reads, Row
from projections.variation import MIN_MEMBERS_FOR_OUTLIERS, Spread, per_1000, spread

if TYPE_CHECKING:
    from projections.funnel import Unit


def qs_number(code: str) -> int:
    return int(code.removeprefix("QS"))


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


def _rounded(rate: Fraction | None) -> float | None:
    return None if rate is None else round(float(rate), 2)


def _pence(rate: Fraction | None) -> int | None:
    return None if rate is None else round(rate)


@dataclass(frozen=True, slots=True)
class Population:
    """The population a practice's rates are per 1,000 of, and where it came from."""

    size: Decimal  # exact: a weighted population as published, or the list size
    basis: str  # "weighted" | "list size" | "none"
    on: date | None


class JointReads(Reads):
    """`Reads` with the risk pool, quality and variation questions."""

    # --- risk pools --------------------------------------------------------------------

    def pools(self, *, consortium: str | None = None, year: str | None = None,
              as_of: date | None = None) -> list[Row]:
        """Each consortium's risk pool for the year: capacity, drawn and headroom, in pence.

        Rows: consortium, year, as_of, top_slice_percent, members, capacity_pence,
        drawn_pence, draws (draws made, returns not subtracted), headroom_pence.
        Capacity is the sum of the top-slices (rounded down to the penny, per
        practice and element) of the consortium's members on the day: the date
        asked about, or today kept inside the year, as `position` does. With
        `as_of`, allocations and draws count only when effective by that date;
        without it, everything recorded counts (as `position` without a date).
        Raises InvalidInput for a malformed year or date, NotFound for an
        unknown consortium.
        """
        self._fresh("organisations", "positions", "pool_draws")
        fy, day = self._year_and_day(year, as_of)
        dated = as_of is not None
        code = self._consortium(consortium) if consortium is not None else None
        pools = self._q(
            f"SELECT consortium, basis_points FROM {self._t('org_risk_pools')} "  # noqa: S608
            "WHERE year = ? ORDER BY consortium", [str(fy)])
        params: list[Any] = [str(fy)]
        if dated:
            params.append(day.isoformat())
        drawn = {c: (int(d), int(n)) for c, d, n in self._q(
            "SELECT consortium, CAST(SUM(drawn) AS BIGINT), CAST(SUM(draws_made) AS BIGINT) "  # noqa: S608
            f"FROM {self._t('pool_days')} WHERE year = ? "
            f"{'AND effective_on <= ? ' if dated else ''}GROUP BY consortium", params)}
        rows: list[Row] = []
        for pool, basis_points in pools:
            if code is not None and pool != code:
                continue
            members = self._members(pool, day)
            allocated = self._q(*self._amounts_sql(fy, day, members, dated)) if members else []
            capacity = sum(top_slice(int(a), int(basis_points)) for _, _, a, *_ in allocated)
            taken, made = drawn.get(pool, (0, 0))
            rows.append({
                "consortium": pool, "year": str(fy), "as_of": day.isoformat(),
                "top_slice_percent": int(basis_points) / 100, "members": len(members),
                "capacity_pence": capacity, "drawn_pence": taken, "draws": made,
                "headroom_pence": capacity - taken,
            })
        return rows

    def through_year(self, *, consortium: str, year: str | None = None) -> list[Row]:
        """Budget against actual through the year for one consortium's members.

        One row per element and date: the first day of the year and each month's
        last day (up to today in the current year), with what `position --by
        consortium --as-of` gives on that date: `allocated_pence`,
        `committed_pence` (outstanding), `settled_pence` and `drawn_pence` (risk-pool
        draws), for the consortium's members on that date.
        """
        self._fresh("organisations", "positions")
        fy, _ = self._year_and_day(year, None)
        code = self._consortium(consortium)
        days = [fy.first_day]
        for month in range(12):
            y, m = fy.first_day.year + (fy.first_day.month - 1 + month) // 12, \
                (fy.first_day.month - 1 + month) % 12 + 1
            following = date(y + m // 12, m % 12 + 1, 1)
            days.append(following - timedelta(days=1))
        days = [d for d in days if d <= max(self.today, fy.first_day)] or [fy.first_day]
        rows: list[Row] = []
        for d in days:
            rows.extend({"consortium": code, "year": str(fy), "on": d, "element": r["element"],
                         "allocated_pence": r["allocated_pence"],
                         "committed_pence": r["committed_pence"],
                         "settled_pence": r["settled_pence"], "drawn_pence": r["drawn_pence"]}
                        for r in self.position(consortium=code, by="consortium", year=str(fy),
                                               as_of=d))
        rows.sort(key=lambda r: (ELEMENTS_ORDER.get(r["element"], 99), r["on"]))
        return rows

    def consortium_code(self, text: str) -> str:
        """The consortium's code as stored; NotFound when there is none."""
        self._fresh("organisations")
        return self._consortium(text)

    def require_budget_year(self, year: str) -> None:
        """NotFound (exit 1, HTTP 404, rule `year`) when no budget is allocated for the
        financial year `year`: nothing in it can be committed, so a review or report of
        it would show every practice within its limits, as if it had been looked at."""
        self._fresh("positions")
        self._require_year(FinancialYear.parse(year))

    def year_and_day(self, year: str | None) -> tuple[str, date]:
        """The financial year a read without --as-of covers, and the day it looks at."""
        self._fresh("organisations", "positions")
        fy, day = self._year_and_day(year, None)
        return str(fy), day

    def holdings_in_force(self, *, consortium: str | None = None,
                          year: str | None = None) -> list[Row]:
        """Elements held by someone other than the practice on the day: `holders` rows
        (practice, year, element, holder, since) with `kind` "opt-out" when the
        practice's last opt-out effective by then is not undone by an opt-in, else
        "delegation"."""
        held = self.holders(consortium=consortium, year=year)
        away = [r for r in held if r["holder"] != f"practice:{r['practice']}"]
        fy, day = self.year_and_day(year)
        kinds: dict[str, str] = {}
        for practice in dict.fromkeys(r["practice"] for r in away):
            steps = sorted((on, position, kind)
                           for position, _, on, kind in self.trail_kinds(practice, year=fy)
                           if kind in ("OptedOut", "OptedIn") and on <= day)
            kinds[practice] = "opt-out" if steps and steps[-1][2] == "OptedOut" \
                else "delegation"
        return [r | {"kind": kinds[r["practice"]]} for r in away]

    # --- quality -----------------------------------------------------------------------

    def quality(self, *, consortium: str | None = None, year: str | None = None,
                codes: Sequence[str] = ()) -> list[Row]:
        """Adopted standards with their tagged commitments; every year unless `year`."""
        fy = str(FinancialYear.parse(year)) if year is not None else None
        wanted = sorted({parse_qs_code(c) for c in codes}, key=qs_number)
        self._fresh("organisations", "positions", "quality")
        if fy is not None:
            self._require_year(FinancialYear.parse(fy))
        code = self._consortium(consortium) if consortium is not None else None
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if fy is not None:
            where.append("year = ?")
            params.append(fy)
        if wanted:
            where.append(f"qs_code IN ({_marks(wanted)})")
            params += wanted
        adopted_where = [*where]
        adopted_params = [*params]
        if code is not None:
            adopted_where.append("consortium = ?")
            adopted_params.append(code)
        adopted = self._q(
            f"SELECT consortium, year, qs_code, adopted_on FROM {self._t('quality_adopted')} "  # noqa: S608
            f"WHERE {' AND '.join(adopted_where)}", adopted_params)
        tagged_where = [f"t.{w}" if w != "1 = 1" else w for w in where]
        tagged_params = [*params]
        if code is not None:
            tagged_where.append("m.consortium = ?")
            tagged_params.append(code)
        tagged = self._q(
            "SELECT m.consortium, t.year, t.qs_code, "  # noqa: S608
            "SUM(CASE WHEN t.value > 0 THEN 1 ELSE 0 END), SUM(t.value) "
            f"FROM {self._t('quality_tags')} t JOIN {self._t('org_memberships')} m "
            "ON m.practice = t.practice AND m.joined_on <= t.effective_on "
            "AND (m.left_on IS NULL OR t.effective_on < m.left_on) "
            f"WHERE {' AND '.join(tagged_where)} GROUP BY m.consortium, t.year, t.qs_code",
            tagged_params)
        totals = {(c, y, q): (int(n), int(v)) for c, y, q, n, v in tagged}
        rows: list[Row] = []
        for c, y, q, on in adopted:
            count, value = totals.pop((c, y, q), (0, 0))
            rows.append({"consortium": c, "year": y, "qs_code": q, "adopted": True,
                         "adopted_on": date.fromisoformat(on), "commitments": count,
                         "spend_pence": value, "gap": count == 0})
        for (c, y, q), (count, value) in totals.items():
            if count:
                rows.append({"consortium": c, "year": y, "qs_code": q, "adopted": False,
                             "adopted_on": None, "commitments": count, "spend_pence": value,
                             "gap": False})
        rows.sort(key=lambda r: (r["consortium"], r["year"], not r["adopted"],
                                 qs_number(r["qs_code"])))
        return rows

    # --- variation ---------------------------------------------------------------------

    def variation(self, *, consortium: str | None = None, year: str | None = None,
                  element: str | None = None, as_of: date | None = None) -> list[Row]:
        """Members' commitments per 1,000 patients against their consortium's median.

        Members are those on `as_of` (default: today, kept inside the year); their
        commitments of the year effective by then count, at what they are worth now.
        """
        chosen, fy, day, consortia = self._peer_scope(consortium, year, element, as_of)
        rows: list[Row] = []
        for c in consortia:
            members = self._members(c, day)
            if members:
                rows += self._compare(c, members, fy, day, chosen)
        return rows

    def funnel(self, *, consortium: str | None = None, year: str | None = None,
               element: str | None = None, as_of: date | None = None,
               against: str = "consortium", overdispersion: bool = False) -> list[Row]:
        """Funnel-plot peer review: each member's commitments against a target rate.

        For each consortium and element, each member practice's commitments
        (observed), what it would have made at the target rate (expected = target
        per 1,000 x population / 1,000), its rate per 1,000, exact Poisson control
        limits at 95% and 99.8% for its population (or, with `overdispersion`,
        limits widened by the between-practice variance tau^2), its z-score and
        the band it falls in (projections/funnel.py has the method and sources).

        The target is the consortium's pooled rate (its members' commitments over
        their populations), or with `against="national"` every practice's in the
        ledger; tau^2 is estimated over the same practices. Members, dates and
        populations are as in `variation`. Raises InvalidInput for an unknown
        `against`, NotFound for an unknown consortium.
        """
        if against not in AGAINST:
            raise InvalidInput("against", f"unknown target {against!r}: consortium or national")
        chosen, fy, day, consortia = self._peer_scope(consortium, year, element, as_of)
        national: dict[str, list[Unit]] = {}
        rows: list[Row] = []
        for c in consortia:
            members = self._members(c, day)
            if not members:
                continue
            elements = [chosen] if chosen is not None else [str(e) for e in ELEMENTS]
            spent = self._spent(members, fy, day, elements)
            if chosen is None:
                elements = [e for e in elements if any((p, e) in spent for p in members)]
            populations = self._populations(members, day, elements)
            for e in elements:
                group = [(p, spent.get((p, e), (0, 0))[0],
                          populations.get((p, e), Population(Decimal(0), "none", None)))
                         for p in members]
                if against == "national" and e not in national:
                    national[e] = self._national_units(fy, day, e)
                rows += _funnel_rows(c, str(fy), e, group, national.get(e),
                                     overdispersion=overdispersion)
        return rows

    def _peer_scope(self, consortium: str | None, year: str | None, element: str | None,
                    as_of: date | None) -> tuple[str | None, FinancialYear, date, list[str]]:
        """What a peer review covers: the element (None: all), year, day and consortia."""
        chosen = str(parse_element(element)) if element is not None else None
        self._fresh("organisations", "positions", "variation")
        fy, day = self._year_and_day(year, as_of)
        if consortium is not None:
            return chosen, fy, day, [self._consortium(consortium)]
        return chosen, fy, day, [r[0] for r in self._q(
            f"SELECT consortium FROM {self._t('org_consortia')} ORDER BY consortium")]  # noqa: S608

    def _national_units(self, fy: FinancialYear, day: date, element: str) -> list[Unit]:
        """Every practice with a population for `element`: its commitments and size."""
        from projections.funnel import Unit  # noqa: PLC0415 - loads scipy

        practices = [r[0] for r in self._q(
            f"SELECT DISTINCT practice FROM {self._t('variation_population_figures')} "  # noqa: S608
            "ORDER BY practice")]
        if not practices:
            return []
        spent = self._spent(practices, fy, day, [element])
        populations = self._populations(practices, day, [element])
        return [Unit(spent.get((p, element), (0, 0))[0], Fraction(people.size))
                for (p, _), people in sorted(populations.items()) if people.size > 0]

    def _compare(self, consortium: str, members: list[str], fy: FinancialYear, day: date,
                 element: str | None) -> list[Row]:
        elements = [element] if element is not None else [str(e) for e in ELEMENTS]
        spent = self._spent(members, fy, day, elements)
        if element is None:  # only the elements someone committed against
            elements = [e for e in elements if any((p, e) in spent for p in members)]
        populations = self._populations(members, day, elements)
        rows: list[Row] = []
        for e in elements:
            group: list[Row] = []
            count_rates: list[Fraction] = []
            spend_rates: list[Fraction] = []
            for p in members:
                count, value = spent.get((p, e), (0, 0))
                people = populations.get((p, e), Population(Decimal(0), "none", None))
                rate = per_1000(count, people.size)
                spend_rate = per_1000(value, people.size)
                if rate is not None and spend_rate is not None:
                    count_rates.append(rate)
                    spend_rates.append(spend_rate)
                group.append({
                    "consortium": consortium, "year": str(fy), "element": e, "practice": p,
                    "weighted_population": format_weighted(people.size),
                    "population_basis": people.basis,
                    "commitments": count, "spend_pence": value,
                    "_rate": rate, "_spend_rate": spend_rate,
                })
            rows += _judge(group, spread(count_rates), spread(spend_rates))
        return rows

    def _spent(self, members: list[str], fy: FinancialYear, day: date, elements: list[str]
               ) -> dict[tuple[str, str], tuple[int, int]]:
        found = self._q(
            "SELECT practice, element, SUM(CASE WHEN value > 0 THEN 1 ELSE 0 END), "  # noqa: S608
            f"SUM(value) FROM {self._t('variation_commitments')} WHERE year = ? "
            f"AND effective_on <= ? AND practice IN ({_marks(members)}) "
            f"AND element IN ({_marks(elements)}) GROUP BY practice, element",
            [str(fy), day.isoformat(), *members, *elements])
        return {(p, e): (int(n), int(v)) for p, e, n, v in found}

    def _populations(self, members: list[str], day: date, elements: list[str]
                     ) -> dict[tuple[str, str], Population]:
        """Each member's population per element: the latest figure effective by `day`
        (the earliest, when none is yet); weighted, else the list size."""
        if not elements:
            return {}
        found = self._q(
            "SELECT practice, element, effective_on, weighted, list_size "  # noqa: S608
            f"FROM {self._t('variation_population_figures')} WHERE practice IN ({_marks(members)}) "
            f"AND element IN ({_marks(elements)}) ORDER BY practice, element, effective_on, "
            "position", [*members, *elements])
        chosen: dict[tuple[str, str], Population] = {}
        for p, e, on, weighted, list_size in found:
            effective = date.fromisoformat(on)
            current = chosen.get((p, e))
            if current is not None and effective > day:
                continue
            if weighted is not None:
                chosen[(p, e)] = Population(Decimal(weighted), "weighted", effective)
            else:
                chosen[(p, e)] = Population(Decimal(list_size), "list size", effective)
        return chosen


def _judge(group: list[Row], counts: Spread | None, spends: Spread | None) -> list[Row]:
    """Each member's rates against the group's medians and fences."""
    rated = sum(r["_rate"] is not None for r in group)
    for r in group:
        rate: Fraction | None = r.pop("_rate")
        spend_rate: Fraction | None = r.pop("_spend_rate")
        reasons: list[str] = []
        if rate is not None and counts is not None and counts.outside(rate):
            reasons.append(f"commitments {counts.outside(rate)}")
        if spend_rate is not None and spends is not None and spends.outside(spend_rate):
            reasons.append(f"spend {spends.outside(spend_rate)}")
        notes: list[str] = []
        if r["population_basis"] == "none":
            notes.append("no population recorded: not compared")
        elif r["population_basis"] == "list size":
            notes.append("no weighted population: per list size")
        if rated < MIN_MEMBERS_FOR_OUTLIERS:
            notes.append(f"{rated} member(s) with a population: fewer than "
                         f"{MIN_MEMBERS_FOR_OUTLIERS}, no outliers flagged")
        r.update({
            "per_1000": _rounded(rate),
            "spend_per_1000_pence": _pence(spend_rate),
            "median_per_1000": _rounded(counts.median if counts else None),
            "median_spend_per_1000_pence": _pence(spends.median if spends else None),
            "outlier": bool(reasons),
            "outlier_reason": ", ".join(reasons),
            "note": "; ".join(notes),
        })
    return group


# --- funnel rows ------------------------------------------------------------------------

ELEMENTS_ORDER = {str(e): i for i, e in enumerate(ELEMENTS)}
AGAINST = ("consortium", "national")


def _figure(value: float | None, places: int = 6) -> float | None:
    """A float for JSON: rounded to `places`; None for none or an unbounded limit."""
    if value is None or math.isinf(value) or math.isnan(value):
        return None
    return round(value, places)


def _funnel_rows(consortium: str, year: str, element: str,
                 group: list[tuple[str, int, Population]], national: list[Unit] | None,
                 *, overdispersion: bool) -> list[Row]:
    """One consortium's members for one element against the target (module docstring)."""
    from projections.funnel import NOT_COMPARED, Unit, judge, target_rate  # noqa: PLC0415

    compared = [(p, n, people) for p, n, people in group if people.size > 0]
    units = [Unit(n, Fraction(people.size)) for _, n, people in compared]
    basis = units if national is None else national
    target = target_rate(basis) if basis else None
    judged = {}
    phi = tau2 = None
    # Nothing committed by anyone compared: a target of zero, nothing to estimate an
    # overdispersion from; the exact Poisson limits (of nothing expected) stand.
    nothing_committed = target == 0
    adjusted = overdispersion and not nothing_committed
    if target is not None and units:
        found = judge(units, target, overdispersion=overdispersion,
                      estimate_from=None if national is None else national)
        judged = {p: j for (p, _, _), j in zip(compared, found.units, strict=True)}
        phi, tau2 = found.phi, found.tau2
    rows: list[Row] = []
    for p, n, people in group:
        j = judged.get(p)
        notes: list[str] = []
        if people.basis == "none":
            notes.append("no population recorded: not compared")
        elif people.basis == "list size":
            notes.append("no weighted population: per list size")
        if j is not None and n == 0 and j.band == "within" and j.limits.lower_95 > 0:
            notes.append("zero count: exp(-expected) not below the tail, not flagged")
        if j is not None and nothing_committed:
            notes.append("nothing committed to compare: a target of 0, limits of nothing "
                         "expected" + (" (overdispersion not estimated)" if overdispersion
                                       else ""))
        rows.append({
            "consortium": consortium, "year": year, "element": element, "practice": p,
            "weighted_population": format_weighted(people.size),
            "population_basis": people.basis,
            "commitments": n,
            "expected": _figure(j.expected) if j else None,
            "per_1000": _figure(j.rate) if j else None,
            "target_per_1000": _figure(float(target)) if target is not None else None,
            "target_basis": "national" if national is not None else "consortium",
            "lower_95": _figure(j.limits.lower_95) if j else None,
            "upper_95": _figure(j.limits.upper_95) if j else None,
            "lower_998": _figure(j.limits.lower_998) if j else None,
            "upper_998": _figure(j.limits.upper_998) if j else None,
            "z_score": _figure(j.z_score) if j else None,
            "band": j.band if j else NOT_COMPARED,
            "flagged": j is not None and j.band != "within",
            "overdispersion": adjusted,
            "phi": _figure(phi) if adjusted else None,
            "tau2": _figure(tau2, 9) if adjusted else None,
            "note": "; ".join(notes),
        })
    return rows
