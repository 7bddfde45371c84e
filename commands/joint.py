"""Joint accountability reads: `ledger quality` and `ledger variation`.

Each parses its options, calls one query of projections/joint_queries.py and
prints the rows with commands/reads_render.py. Reads need no actor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from commands import options, render
from commands.charts import by_group, check_plot_path
from commands.errors import handled
from commands.reads import AsOf, FormatOption, YearOption
from commands.reads_render import Format, rows, two_decimals
from commands.run import state_of
from ledger.domain.errors import InvalidInput

Row = dict[str, Any]

QUALITY_FIELDS = ["consortium", "year", "qs_code", "adopted", "adopted_on", "commitments",
                  "spend_pence", "gap"]
VARIATION_FIELDS = ["consortium", "year", "element", "practice", "weighted_population",
                    "population_basis", "commitments", "spend_pence", "per_1000",
                    "spend_per_1000_pence", "median_per_1000", "median_spend_per_1000_pence",
                    "outlier", "outlier_reason", "note"]
VARIATION_TABLE = ["practice", "population", "commitments", "per_1000",
                   "spend_per_1000_pence", "outlier"]
QUALITY_TABLE = ["consortium", "year", "qs_code", "adopted", "commitments", "spend_pence",
                 "gap"]

QUALITY_EPILOG = (
    "Examples:\n\n"
    "ledger quality\n\n"
    "ledger quality --consortium 16C --year 2024-25\n\n"
    "ledger quality --year 2024-25 --qs QS1 --qs QS3 --format csv"
)
VARIATION_EPILOG = (
    "Tukey rule (--method tukey): a practice is flagged when its commitments per 1,000 "
    "patients, or its spend per 1,000, lies outside Q1 - 1.5 x IQR ... Q3 + 1.5 x IQR of the "
    "rates of its consortium's members for that element (quartiles interpolated linearly "
    "between the sorted rates). With fewer than 4 members that have a population no outliers are "
    "flagged: the quartiles of 3 rates say nothing.\n\n"
    "Funnel (default): expected = target rate x population / 1,000; the limits are exact "
    "Poisson (chi-square) quantiles of that count at 95% and 99.8%; a zero count is flagged "
    "below only when seeing none is itself that unlikely (exp(-expected) under 2.5% or "
    "0.1%). Practices without a population are not compared.\n\n"
    "Examples:\n\n"
    "ledger variation --consortium 16C --element acute\n\n"
    "ledger variation --consortium 16C --element acute --against national --overdispersion "
    "--plot funnel.svg\n\n"
    "ledger variation --method tukey --consortium 16C\n\n"
    "ledger variation --year 2024-25 --format json\n\n"
    "ledger variation --consortium 16C --as-of 2024-09-30 --format csv"
)


def quality(
    ctx: typer.Context,
    *,
    consortium: Annotated[
        str | None, typer.Option("--consortium", metavar="CODE", help="One consortium (16C).")
    ] = None,
    year: YearOption = None,
    qs: Annotated[
        list[str] | None,
        typer.Option("--qs", metavar="QS", help="Only these standards (QS1); repeatable."),
    ] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Quality standards per consortium and year: commitments and spend tagged with each.

    Each adopted NICE standard with the number of commitments tagged with it and
    what they are worth (outstanding + settled, in pence for programs). An
    adopted standard with no commitment is a GAP. A commitment counts for the
    consortium its practice belonged to on the commitment's effective date; one
    cancelled with nothing paid does not count. Standards tagged but not
    adopted are listed after, as not adopted. Every year unless --year.
    """
    with handled(state_of(ctx)):
        found = state_of(ctx).reads().quality(consortium=consortium, year=year, codes=qs or [])
        show_quality(found, fmt)


class Method(StrEnum):
    funnel = "funnel"
    tukey = "tukey"


class Against(StrEnum):
    consortium = "consortium"
    national = "national"


def variation(
    ctx: typer.Context,
    *,
    consortium: Annotated[
        str | None, typer.Option("--consortium", metavar="CODE",
                                 help="One consortium (16C); default: all.")
    ] = None,
    year: YearOption = None,
    element: Annotated[
        str | None,
        typer.Option("--element", metavar="ELEMENT",
                     help="One element (acute); default: every element with "
                                       "commitments."),
    ] = None,
    as_of: AsOf = None,
    method: Annotated[
        Method, typer.Option("--method", help="funnel: exact Poisson control limits for each "
                                              "practice's size; tukey: IQR fences on rates."),
    ] = Method.funnel,
    against: Annotated[
        Against, typer.Option("--against", help="Funnel target: the consortium's pooled rate "
                                                "or every practice's (national)."),
    ] = Against.consortium,
    overdispersion: Annotated[
        bool, typer.Option("--overdispersion",
                           help="Funnel limits widened by the between-practice variance "
                                "(10% Winsorised z-scores, DerSimonian-Laird tau^2)."),
    ] = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", metavar="FILE",
                                  help="Also draw the funnel to FILE (.svg or .png).",
                                  parser=options.path("--plot", "the file to draw to",
                                                      dir_okay=False))
    ] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Peer review: members' commitments per 1,000 patients, flagged by a funnel or by Tukey.

    Funnel (default): each practice's commitments against what it would have made
    at the target rate, with exact Poisson 95% and 99.8% control limits for its
    population: a small practice needs a bigger departure to be flagged than a
    large one. Tukey: the IQR rule below, against the consortium's median.

    Rates are per 1,000 of the practice's weighted population for the element
    (its latest figure effective by the date), or of its list size when it has
    no weighted figure (the row says so). Members are those on --as-of; their
    commitments of the year effective by then count, at what they are worth now.
    """
    with handled(state_of(ctx)):
        from projections.queries import parse_day  # noqa: PLC0415 - fast --help

        day = parse_day(as_of, "--as-of") if as_of is not None else None
        if plot is not None:
            check_plot_path(plot)
        if method is Method.tukey:
            if plot is not None or overdispersion or against is not Against.consortium:
                raise InvalidInput("options", "--plot, --against and --overdispersion go "
                                              "with --method funnel")
            found = state_of(ctx).reads().variation(consortium=consortium, year=year,
                                                    element=element, as_of=day)
            show_variation(found, fmt)
            return
        found = state_of(ctx).reads().funnel(consortium=consortium, year=year, element=element,
                                             as_of=day, against=str(against),
                                             overdispersion=overdispersion)
        show_funnel(found, fmt)
        if plot is not None:
            from rich.text import Text  # noqa: PLC0415 - rich only when printing

            from commands.charts import funnel_chart  # noqa: PLC0415 - loads matplotlib

            written = funnel_chart(found, plot)
            render.out.print(Text(f"Funnel plot written to {written}"))


# --- rendering -----------------------------------------------------------------------


def show_quality(found: Sequence[Row], fmt: Format) -> None:
    from rich.text import Text  # noqa: PLC0415 - rich only when printing

    if fmt is not Format.table:
        rows([{k: r[k] for k in QUALITY_FIELDS} for r in found], fmt, columns=QUALITY_FIELDS)
        return
    shown = [r | {"adopted": "yes" if r["adopted"] else "no",
                  "gap": "GAP" if r["gap"] else ""} for r in found]
    rows(shown, fmt, columns=QUALITY_TABLE, title="Quality standards",
         empty="no adopted standards and no tagged commitments")
    gaps = [r for r in found if r["gap"]]
    if gaps:
        named = ", ".join(f"{r['consortium']} {r['year']} {r['qs_code']}" for r in gaps)
        render.out.print(Text(f"{len(gaps)} adopted standard(s) with no commitments: {named}",
                       style="bold red"))


def _population(r: Row) -> Any:
    """A member's population as a table shows it: weighted, a list size, or none."""
    people, basis = r["weighted_population"], r["population_basis"]
    if basis == "weighted":
        return people
    return f"{int(people):,} (list size)" if basis == "list size" else "none"


def _peer_review(found: Sequence[Row], fmt: Format, *, fields: list[str], columns: list[str],
                 title: Callable[[str, str, str, Row], str],
                 cells: Callable[[Row], Row],
                 after: Callable[[str, str, list[Row]], None] | None = None) -> bool:
    """Peer-review rows (funnel or Tukey) in `fmt`: JSON/CSV carry `fields` of every row;
    a table per consortium, element and year, titled by `title(consortium, element, year,
    first row)`, shows `columns` of each row with `cells(row)` laid over it, followed by
    `after(consortium, element, rows)`. True when tables were printed (the caller adds
    its summary line under them)."""
    if fmt is not Format.table:
        rows([{k: r[k] for k in fields} for r in found], fmt, columns=fields)
        return False
    if not found:
        rows([], fmt, title="Variation",
             empty="no commitments by member practices in scope: nothing to compare")
        return False
    for (consortium, element, year), members in by_group(found).items():
        shown = [r | {"population": _population(r)} | cells(r) for r in members]
        rows(shown, fmt, columns=columns, title=title(consortium, element, year, members[0]))
        if after is not None:
            after(consortium, element, members)
    return True


def _tukey_title(consortium: str, element: str, year: str, first: Row) -> str:
    from ledger.domain.values import format_pence  # noqa: PLC0415 - keeps --help fast

    median, median_spend = first["median_per_1000"], first["median_spend_per_1000_pence"]
    return (f"{consortium} {element} {year}, per 1,000 patients: median "
            f"{two_decimals(median)} commitments, "
            f"{'-' if median_spend is None else format_pence(median_spend)} spend")


def _tukey_notes(consortium: str, element: str, members: list[Row]) -> None:
    from rich.text import Text  # noqa: PLC0415 - rich only when printing

    notes = {n for r in members for n in r["note"].split("; ") if "no outliers" in n}
    for note in sorted(notes):
        render.out.print(Text(f"{consortium} {element}: {note}"))


def show_variation(found: Sequence[Row], fmt: Format) -> None:
    """Tukey rows: JSON/CSV as they are; tables per consortium and element, outliers named."""
    from rich.text import Text  # noqa: PLC0415 - rich only when printing

    if not _peer_review(found, fmt, fields=VARIATION_FIELDS, columns=VARIATION_TABLE,
                        title=_tukey_title,
                        cells=lambda r: {"outlier": f"OUTLIER: {r['outlier_reason']}"
                                         if r["outlier"] else ""},
                        after=_tukey_notes):
        return
    flagged = sum(r["outlier"] for r in found)
    render.out.print(Text(f"{flagged} outlier(s). Rule: outside Q1 - 1.5 x IQR ... Q3 + 1.5 x IQR "
                   "of the members' rates; none with fewer than 4 members.",
                   style="bold red" if flagged else ""))


FUNNEL_FIELDS = ["consortium", "year", "element", "practice", "weighted_population",
                 "population_basis", "commitments", "expected", "per_1000", "target_per_1000",
                 "target_basis", "lower_95", "upper_95", "lower_998", "upper_998", "z_score",
                 "band", "flagged", "overdispersion", "phi", "tau2", "note"]
FUNNEL_TABLE = ["practice", "population", "commitments", "expected", "per_1000", "95% limits",
                "99.8% limits", "z_score", "band"]


def _funnel_title(consortium: str, element: str, year: str, first: Row) -> str:
    if first["target_per_1000"] == 0:
        return (f"{consortium} {element} {year}: nothing committed to compare (the "
                f"{first['target_basis']} rate is 0 per 1,000); the limits are those of "
                "nothing expected, exact Poisson")
    adjusted = (f", overdispersion tau^2 {first['tau2']:.6f}"
                if first["overdispersion"] and first["tau2"] is not None else "")
    return (f"{consortium} {element} {year}: funnel against the {first['target_basis']} "
            f"rate of {two_decimals(first['target_per_1000'])} per 1,000{adjusted}")


def _funnel_cells(r: Row) -> Row:
    return {
        "expected": two_decimals(r["expected"]), "per_1000": two_decimals(r["per_1000"]),
        "95% limits": f"{two_decimals(r['lower_95'])} .. {two_decimals(r['upper_95'])}",
        "99.8% limits": f"{two_decimals(r['lower_998'])} .. {two_decimals(r['upper_998'])}",
        "z_score": two_decimals(r["z_score"]),
        "band": r["band"].upper() if r["flagged"] else r["band"],
    }


def show_funnel(found: Sequence[Row], fmt: Format) -> None:
    """Funnel rows: JSON/CSV as they are; tables per consortium and element."""
    from rich.text import Text  # noqa: PLC0415 - rich only when printing

    if not _peer_review(found, fmt, fields=FUNNEL_FIELDS, columns=FUNNEL_TABLE,
                        title=_funnel_title, cells=_funnel_cells):
        return
    flagged = sum(r["flagged"] for r in found)
    render.out.print(Text(f"{flagged} practice(s) outside the 95% limits. Limits are exact Poisson "
                   "for each practice's expected count; rates per 1,000 patients.",
                   style="bold red" if flagged else ""))


def add_commands(parent: typer.Typer) -> None:
    """Add `quality` and `variation` to the `ledger` app."""
    parent.command("quality", epilog=QUALITY_EPILOG)(quality)
    parent.command("variation", epilog=VARIATION_EPILOG)(variation)
