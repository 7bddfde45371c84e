"""Funnel limits against Tukey fences on practices that all share one true referral rate.

Every simulated practice refers at the same true rate, so any practice flagged
is flagged by chance. A fair rule flags about its nominal share (5% outside the
95% limits, 0.2% outside 99.8%) whatever the practice's size. Tukey fences on
rates per 1,000 ignore size: small practices' rates swing more by chance, so
they are flagged far more often than large ones.

Practice sizes follow a log-normal shape like England's GP list sizes (median
about 8,500 patients, most between 2,000 and 25,000; clipped to 600..45,000);
practices are grouped into consortia of `--members`; each consortium's funnel
target is its pooled rate and its Tukey fences its members' quartiles, exactly
as `ledger variation` computes them (projections/funnel.py, projections/variation.py).

    python bench/funnel_vs_tukey.py [--rate 12] [--practices 1000] [--members 25]
                                    [--runs 20] [--seed 7] [--overdispersion]
"""

from __future__ import annotations

import argparse
import time
from fractions import Fraction

import numpy as np

from projections.funnel import WITHIN, Unit, judge, target_rate
from projections.variation import per_1000, spread

BANDS = [(0, 3000), (3000, 6000), (6000, 10000), (10000, 20000), (20000, 10**9)]


def band_name(low: int, high: int) -> str:
    if low == 0:
        return f"under {high:,}"
    if high >= 10**9:
        return f"{low:,} and over"
    return f"{low:,} to {high - 1:,}"


def sizes(rng: np.random.Generator, count: int) -> list[int]:
    """Real-looking list sizes: log-normal, median 8,500, clipped to 600..45,000."""
    drawn = rng.lognormal(mean=np.log(8500), sigma=0.6, size=count)
    return [int(v) for v in np.clip(drawn, 600, 45_000)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=12.0,
                        help="true commitments per 1,000 patients a year (default 12)")
    parser.add_argument("--practices", type=int, default=1000)
    parser.add_argument("--members", type=int, default=25, help="practices per consortium")
    parser.add_argument("--runs", type=int, default=20, help="simulated years")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--overdispersion", action="store_true",
                        help="also judge with the overdispersion adjustment")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    population = sizes(rng, args.practices)
    counts = {name: {"n": 0, "funnel95": 0, "funnel998": 0, "tukey": 0, "od95": 0}
              for name in (band_name(*b) for b in BANDS)}

    def where(size: int) -> str:
        return next(band_name(lo, hi) for lo, hi in BANDS if lo <= size < hi)

    started = time.perf_counter()
    for _ in range(args.runs):
        observed = rng.poisson(args.rate * np.asarray(population) / 1000)
        for start in range(0, args.practices, args.members):
            group = range(start, min(start + args.members, args.practices))
            units = [Unit(int(observed[i]), Fraction(population[i])) for i in group]
            target = target_rate(units)
            found = judge(units, target)
            adjusted = judge(units, target, overdispersion=True) if args.overdispersion \
                else None
            rates = [per_1000(u.observed, population[i]) for u, i in zip(units, group,
                                                                           strict=True)]
            fences = spread([r for r in rates if r is not None])
            for k, i in enumerate(group):
                tally = counts[where(population[i])]
                tally["n"] += 1
                judged = found.units[k]
                tally["funnel95"] += judged.band != WITHIN
                tally["funnel998"] += judged.band.endswith("99.8%")
                rate = rates[k]
                tally["tukey"] += bool(fences and rate is not None and fences.outside(rate))
                if adjusted is not None:
                    tally["od95"] += adjusted.units[k].band != WITHIN
    elapsed = time.perf_counter() - started

    print(f"{args.practices:,} practices in consortia of {args.members}, one true rate of "
          f"{args.rate:g} commitments per 1,000 patients, {args.runs} simulated years "
          f"(seed {args.seed}); {elapsed:.1f} s")
    print("Share of practices flagged (every flag is a false alarm: nominal 5.0% outside "
          "95%, 0.2% outside 99.8%)")
    header = f"{'practice size':<18}{'practices':>10}{'funnel 95%':>12}{'funnel 99.8%':>14}"
    if args.overdispersion:
        header += f"{'funnel+OD 95%':>15}"
    header += f"{'Tukey fences':>14}"
    print(header)
    total = {"n": 0, "funnel95": 0, "funnel998": 0, "tukey": 0, "od95": 0}
    for name, tally in counts.items():
        for key in total:
            total[key] += tally[key]
        print(line(name, tally, overdispersion=args.overdispersion))
    print(line("all sizes", total, overdispersion=args.overdispersion))


def line(name: str, tally: dict[str, int], *, overdispersion: bool) -> str:
    n = max(tally["n"], 1)
    text = (f"{name:<18}{tally['n']:>10,}{100 * tally['funnel95'] / n:>11.1f}%"
            f"{100 * tally['funnel998'] / n:>13.2f}%")
    if overdispersion:
        text += f"{100 * tally['od95'] / n:>14.1f}%"
    return text + f"{100 * tally['tukey'] / n:>13.1f}%"


if __name__ == "__main__":
    main()
