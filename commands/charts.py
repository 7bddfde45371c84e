"""Charts: the funnel plot of peer review and budget against actual through the year.

Drawn with matplotlib's object API (a `Figure` of its own, no pyplot state),
imported inside the functions so `ledger --help` never loads it. Each chart is
written to a file (.svg or .png, by its suffix) or returned as SVG text for the
HTML report. SVG output is deterministic: no date in the metadata, a fixed hash
salt for element ids.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.domain.errors import InvalidInput

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Row = dict[str, Any]
SUFFIXES = (".svg", ".png")
TARGET_COLOUR = "#1f2937"
LIMIT_95 = "#d97706"
LIMIT_998 = "#7c3aed"
POINT = "#2563eb"
FLAGGED = "#dc2626"
SERIES = {  # budget chart: field -> (label, colour, style)
    "allocated_pence": ("allocated", "#1f2937", "-"),
    "spent_pence": ("committed + settled", "#2563eb", "-"),
    "settled_pence": ("settled", "#059669", "--"),
    "drawn_pence": ("risk-pool draws", "#dc2626", ":"),
}


def check_plot_path(path: Path) -> None:
    """Refuse (InvalidInput, exit 2) a plot file that is not .svg/.png or has no folder."""
    if path.suffix.lower() not in SUFFIXES:
        raise InvalidInput("plot", f"a plot file must end in .svg or .png, not {path.name!r}")
    if not path.parent.is_dir():
        raise InvalidInput("plot", f"no folder {str(path.parent)!r} to write {path.name} in")


def _figure(width: float, height: float) -> Figure:
    import matplotlib as mpl  # noqa: PLC0415 - heavy import, charts only

    mpl.use("Agg")
    mpl.rcParams["svg.hashsalt"] = "commissioning-ledger"
    mpl.rcParams["font.family"] = "DejaVu Sans"
    mpl.rcParams["svg.fonttype"] = "none"  # text stays text: searchable, selectable
    from matplotlib.figure import Figure  # noqa: PLC0415

    return Figure(figsize=(width, height), layout="constrained")


def save(fig: Figure, path: Path) -> Path:
    """Write `fig` to `path` (.svg or .png by suffix); returns the path."""
    from commands.outputs import writing  # noqa: PLC0415

    check_plot_path(path)
    kind = path.suffix.lower().lstrip(".")
    metadata = {"Date": None} if kind == "svg" else {}
    with writing(path, "plot"):
        fig.savefig(path, format=kind, dpi=110, metadata=metadata)
    return path


def svg_text(fig: Figure, *, salt: str = "commissioning-ledger") -> str:
    """The figure as an inline SVG element (no XML prolog, no DOCTYPE).

    `salt` seeds the SVG's element ids: give each chart of one page its own, so
    ids (clip paths) never collide between charts inlined together.
    """
    import matplotlib as mpl  # noqa: PLC0415 - heavy import, charts only

    mpl.rcParams["svg.hashsalt"] = salt
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _panels(count: int, columns: int, size: tuple[float, float], empty: str
            ) -> tuple[Figure, list[Axes]]:
    """A figure with `count` panels in rows of `columns` (spares hidden), each about
    `size` inches; with none, one panel saying `empty`."""
    rows_needed = max(1, -(-count // columns))
    fig = _figure(max(7.0, size[0] * columns), size[1] * rows_needed + 0.4)
    grid = fig.subplots(rows_needed, columns, squeeze=False)
    axes = [grid[i // columns][i % columns] for i in range(rows_needed * columns)]
    for ax in axes[count:]:
        ax.set_visible(False)
    if not count:
        axes[0].set_visible(True)
        axes[0].text(0.5, 0.5, empty, ha="center")
    return fig, axes[:count]


# --- funnel -------------------------------------------------------------------------------


def by_group(found: Sequence[Row]) -> dict[tuple[str, str, str], list[Row]]:
    """Peer-review rows by (consortium, element, year), in their order."""
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for r in found:
        groups.setdefault((r["consortium"], r["element"], r["year"]), []).append(r)
    return groups


def draw_funnel(ax: Axes, members: Sequence[Row]) -> None:
    """One funnel on `ax`: target line, 95% and 99.8% limits, practices as points."""
    from projections.funnel import curve  # noqa: PLC0415 - loads scipy

    first = members[0]
    compared = [r for r in members if r["per_1000"] is not None]
    ax.set_title(f"{first['consortium']} {first['element']} {first['year']}, against the "
                 f"{first['target_basis']} rate", fontsize=11)
    ax.set_xlabel("population (weighted)")
    ax.set_ylabel("commitments per 1,000")
    if not compared or first["target_per_1000"] is None:
        ax.text(0.5, 0.5, "no practice with a population", ha="center",
                transform=ax.transAxes)
        return
    target = Fraction(first["target_per_1000"]).limit_denominator(10**9)
    sizes = [float(r["weighted_population"]) for r in compared]
    # Populations under one (weighted ones may be) keep the axis the right way up.
    positive = [s for s in sizes if s > 0]
    low = min(positive) * 0.6 if positive else 1.0
    high = max(max(sizes) * 1.15, low * 2)
    steps = 240
    xs = [low + (high - low) * i / (steps - 1) for i in range(steps)]
    tau2 = first["tau2"] or 0.0
    lines = curve(target, xs, tau2=tau2, overdispersion=bool(first["overdispersion"]))
    rates = [float(r["per_1000"]) for r in compared]
    # Nothing committed by anyone: every rate and the target are 0; still a real axis.
    top = max([*rates, float(target) * 1.5]) * 1.15 or 1.0
    ax.axhline(float(target), color=TARGET_COLOUR, linewidth=1.2,
               label=f"target {float(target):,.2f}")
    for attr, colour, style, label in [
        ("upper_95", LIMIT_95, "--", "95% limits"), ("lower_95", LIMIT_95, "--", None),
        ("upper_998", LIMIT_998, "-", "99.8% limits"), ("lower_998", LIMIT_998, "-", None),
    ]:
        ax.plot(xs, [min(getattr(limit, attr), top * 2) for limit in lines], color=colour,
                linestyle=style, linewidth=1.1, label=label)
    plain = [r for r in compared if not r["flagged"]]
    flagged = [r for r in compared if r["flagged"]]
    ax.scatter([float(r["weighted_population"]) for r in plain],
               [float(r["per_1000"]) for r in plain], s=22, color=POINT, zorder=3,
               label="practice")
    if flagged:
        ax.scatter([float(r["weighted_population"]) for r in flagged],
                   [float(r["per_1000"]) for r in flagged], s=34, color=FLAGGED, zorder=4,
                   marker="D", label="outside 95%")
        for r in flagged:
            ax.annotate(f"{r['practice']} ({r['band']})",
                        (float(r["weighted_population"]), float(r["per_1000"])),
                        textcoords="offset points", xytext=(5, 5), fontsize=8,
                        color=FLAGGED)
    ax.set_xlim(low, high)
    ax.set_ylim(0, top)
    ax.grid(alpha=0.25)
    ax.legend(fontsize=7, loc="upper right")


def funnel_figure(found: Sequence[Row]) -> Figure:
    """A figure with one funnel per consortium and element in `found`."""
    groups = list(by_group(found).values())
    columns = 1 if len(groups) == 1 else 2
    fig, panels = _panels(len(groups), columns, (7.0, 4.6),
                          "no commitments by member practices in scope: nothing to compare")
    for ax, members in zip(panels, groups, strict=False):
        draw_funnel(ax, members)
    return fig


def funnel_chart(found: Sequence[Row], path: Path) -> Path:
    """Draw every funnel in `found` to `path` (.svg or .png)."""
    return save(funnel_figure(found), path)


# --- budget against actual ----------------------------------------------------------------


def budget_figure(timeline: Sequence[Row], title: str) -> Figure:
    """Per element: allocated, committed + settled, settled and risk-pool draws by date.

    Each panel's date axis spans its financial year (1 April to 31 March), whatever
    dates the rows reach: a year not begun has one point, which matplotlib would
    otherwise widen by two years either side (past its year 9999 for 9998-99).
    """
    from matplotlib.ticker import FuncFormatter  # noqa: PLC0415 - heavy import

    from ledger.domain.values import FinancialYear  # noqa: PLC0415

    elements = list(dict.fromkeys(r["element"] for r in timeline))
    columns = max(1, min(3, len(elements)))
    fig, panels = _panels(len(elements), columns, (4.6, 3.2), "no budgets in scope")
    fig.suptitle(title, fontsize=12)
    pounds = FuncFormatter(lambda value, _pos: f"£{value:,.0f}")
    for ax, element in zip(panels, elements, strict=True):
        points = [r for r in timeline if r["element"] == element]
        days: list[Any] = [r["on"] for r in points]  # dates: matplotlib converts them
        for field, (label, colour, style) in SERIES.items():
            values = [(r["committed_pence"] + r["settled_pence"] if field == "spent_pence"
                       else r[field]) / 100 for r in points]
            ax.plot(days, values, color=colour, linestyle=style, linewidth=1.4,
                    label=label, drawstyle="steps-post" if field == "allocated_pence"
                    else "default")
        ax.set_title(element, fontsize=10)
        year = FinancialYear.parse(points[0]["year"])
        ax.set_xlim(year.first_day, year.last_day)  # type: ignore[arg-type]
        ax.yaxis.set_major_formatter(pounds)
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.25)
        ax.legend(fontsize=7, loc="upper left")
    return fig


def budget_chart(timeline: Sequence[Row], title: str, path: Path) -> Path:
    """Draw budget against actual through the year to `path` (.svg or .png)."""
    return save(budget_figure(timeline, title), path)
