"""`ledger demo`: build a realistic demo ledger, summarise it, then tour it."""

from __future__ import annotations

import shlex
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from commands import render
from commands.errors import handled
from commands.run import state_of
from commands.state import CliState

if TYPE_CHECKING:
    from commands.demo_ledger import DemoSummary
    from projections.joint_queries import JointReads

EPILOG = ("Examples:\n\nledger --db demo.db demo  (then open demo-report.html, written beside "
          "demo.db)")
DEMO_CONSORTIUM = "16C"
PEER_REVIEW_CONSORTIUM = "00P"  # where the demo scenario puts its peer-review outlier
TRAIL_ROWS = 8


def demo(ctx: typer.Context) -> None:
    """Build a realistic demo ledger (2024-25) on an empty store and summarise it.

    Five consortia, four dozen practices, a year of allocations per element,
    delegations, an opt-out and opt-in, hard budgets and several hundred
    commitments, some overspends refused and some flagged. Deterministic. A
    ledger that already holds events is refused: give the demo a new file.
    """
    state = state_of(ctx)
    with handled(state):
        from commands.demo_ledger import build_demo  # noqa: PLC0415 - fast --help

        summary = build_demo(state.ledger().service)
        render.demo_summary(summary)
        tour(state, summary)


def tour(state: CliState, summary: DemoSummary) -> None:
    """A short tour of the demo ledger through the read side, after its summary.

    Who held each element of the practice that opted out (as of a date inside the
    opt-out), its trail, the risk pools, then the quality standards with their gaps,
    peer review by funnel plot (the product's default method) for the consortium
    with the scenario's outlier, and last 16C's HTML report (the path is printed).
    Each step prints the command that shows the same on this ledger, `--db` included
    (a PostgreSQL URL with its password masked).
    """
    from commands.joint import show_funnel  # noqa: PLC0415 - fast --help
    from commands.reads import show_pools  # noqa: PLC0415
    from commands.reads_render import Format, rows  # noqa: PLC0415
    from commands.report import write_report  # noqa: PLC0415
    from ledger.store.eventstore import mask_password  # noqa: PLC0415
    from projections.joint_queries import JointReads  # noqa: PLC0415

    render.demo_highlights(summary)
    typed = f"ledger --db {shlex.quote(mask_password(state.db))}"
    reads = JointReads(state.ledger().store, today=datetime.now(UTC).date())
    picked = {what.split(" ")[0]: code for what, code in summary.highlights}
    opted = picked.get("opted", "")
    if opted:
        out_on = date(2024, 9, 1)
        render.tour_step(f"{typed} holders --practice {opted} --as-of {out_on}",
                         "who held each element while it was opted out")
        rows(reads.holders(practice=opted, year=summary.year, as_of=out_on), Format.table,
             title=f"Holders of {opted} on {out_on}")
        render.tour_step(f"{typed} trail {opted} --year {summary.year} --since 2024-07-01",
                         "its trail, in words")
        trail = reads.trail(opted, year=summary.year, since=date(2024, 7, 1))
        shown = "" if len(trail) <= TRAIL_ROWS else f", the first {TRAIL_ROWS} of {len(trail)}"
        rows(trail[:TRAIL_ROWS], Format.table,
             columns=["position", "effective_on", "actor", "summary"],
             title=f"Trail of {opted} since 2024-07-01{shown}")
    render.tour_step(f"{typed} pools --year {summary.year}",
                     "each risk pool: capacity, drawn, headroom (also under "
                     "`ledger position --by consortium`)")
    show_pools(reads.pools(year=summary.year), Format.table)
    render.tour_step(f"{typed} quality --year {summary.year}",
                     "the standards each consortium adopted, with their gaps")
    adopted_standards(reads, summary.year)
    render.tour_step(f"{typed} variation --consortium {PEER_REVIEW_CONSORTIUM} --element acute "
                     "--against national",
                     "peer review by funnel plot: limits for each practice's size")
    show_funnel(reads.funnel(consortium=PEER_REVIEW_CONSORTIUM, year=summary.year,
                             element="acute", against="national"), Format.table)
    path = report_path(state.db)
    render.tour_step(f"{typed} report --consortium {DEMO_CONSORTIUM} --year {summary.year} "
                     f"--out {shlex.quote(str(path))}",
                     "one consortium's positions, pool, standards and funnel plots, as one "
                     "HTML file an auditor can file, pinned to a signed checkpoint")
    written = write_report(state.ledger().store, consortium=DEMO_CONSORTIUM, allocator=None,
                           year=summary.year, path=path)
    render.out.print(f"Open the report: {written.as_uri()}", markup=False)


def adopted_standards(reads: JointReads, year: str) -> None:
    """The standards each consortium adopted for `year`, gaps listed under the table, and
    how many standards commitments were tagged with but nobody adopted."""
    from commands.joint import show_quality  # noqa: PLC0415 - fast --help
    from commands.reads_render import Format  # noqa: PLC0415

    standards = reads.quality(year=year)
    show_quality([r for r in standards if r["adopted"]], Format.table)
    others = sum(not r["adopted"] for r in standards)
    if others:
        render.out.print(f"{others} standard(s) tagged on commitments but not adopted: "
                         "`ledger quality` lists them too.", markup=False)


def report_path(db: str) -> Path:
    """Where the demo writes its report: beside a SQLite file, else here."""
    if "://" in db:
        return Path.cwd() / "demo-report.html"
    where = Path(db)
    return where.with_name(f"{where.stem}-report.html")


def add_commands(parent: typer.Typer) -> None:
    """Add `ledger demo` to the `ledger` app."""
    parent.command("demo", epilog=EPILOG)(demo)
