"""`ledger report`: one self-contained HTML file an auditor can file.

Parses the options, reads the report at a freshly signed checkpoint
(projections/report.py) and writes it as HTML (commands/report_html.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from commands import options, render
from commands.errors import handled
from commands.reads import YearOption
from commands.run import state_of
from ledger.domain.errors import InvalidInput

if TYPE_CHECKING:
    from ledger.store.eventstore import EventStore

EPILOG = (
    "The report holds the positions (rolled up and per member practice), budget against "
    "actual through the year as charts, the risk pool, the quality standards and their "
    "gaps, the funnel plots of peer review, the opt-outs and delegations in force, and the "
    "signed checkpoint (size, root hash, note) every figure was read at. It opens "
    "anywhere: CSS and SVG charts are inline, nothing is fetched.\n\n"
    "Examples:\n\n"
    "ledger report --consortium 16C --year 2024-25 --out report.html\n\n"
    "ledger report --allocator Q71 --year 2024-25 --out q71.html"
)


def report(
    ctx: typer.Context,
    *,
    consortium: Annotated[
        str | None, typer.Option("--consortium", metavar="CODE",
                                 help="Report on one consortium (16C).")
    ] = None,
    allocator: Annotated[
        str | None, typer.Option("--allocator", metavar="CODE",
                                 help="Report on what one allocator funds "
                                                     "(Q71): every consortium.")
    ] = None,
    year: YearOption = None,
    out_file: Annotated[
        Path, typer.Option("--out", metavar="FILE", help="Where to write the report (.html).",
                           parser=options.path("--out", "the file to write", dir_okay=False))
    ] = Path("report.html"),
) -> None:
    """Write an HTML report of a consortium's (or an allocator's) year, pinned to a signed
    checkpoint of the ledger."""
    state = state_of(ctx)
    with handled(state):
        written = write_report(state.ledger().store, consortium=consortium,
                               allocator=allocator, year=year, path=out_file)
        from rich.text import Text  # noqa: PLC0415 - rich only when printing

        render.out.print(Text(f"Report written to {written}"))


def write_report(store: EventStore, *, consortium: str | None, allocator: str | None,
                 year: str | None, path: Path) -> Path:
    """Gather, render and write the report; returns the absolute path written."""
    from commands.outputs import refuse_ledger_file, writing  # noqa: PLC0415
    from commands.report_html import render  # noqa: PLC0415 - loads matplotlib, scipy
    from projections.report import gather  # noqa: PLC0415

    if path.suffix.lower() not in (".html", ".htm"):
        raise InvalidInput("out", f"a report file must end in .html, not {path.name!r}")
    if not path.parent.is_dir():
        raise InvalidInput("out", f"no folder {str(path.parent)!r} to write {path.name} in")
    refuse_ledger_file(path, store)
    data = gather(store, consortium=consortium, allocator=allocator, year=year,
                  now=datetime.now(UTC))
    page = render(data)
    with writing(path):
        path.write_text(page, encoding="utf-8")
    return path.resolve()


def add_commands(parent: typer.Typer) -> None:
    """Add `ledger report` to the `ledger` app."""
    parent.command("report", epilog=EPILOG)(report)
