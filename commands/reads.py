"""The read commands: holders, trail, position, replay, projections, events.

Each parses its options, calls one query of projections/queries.py and prints
the rows (commands/reads_render.py). Reads need no actor. The projections are
imported inside the functions, so `ledger --help` does not load them.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer

from commands.errors import handled
from commands.options import MAX_POSITION, path, seconds, whole_number
from commands.reads_render import Format, Row, json_lines, rows
from commands.run import state_of
from ledger.domain.errors import InvalidInput

FormatOption = Annotated[
    Format, typer.Option("--format", case_sensitive=False,
                         help="table for people; json or csv for programs.")
]
YearOption = Annotated[
    str | None, typer.Option("--year", metavar="YYYY-YY", help="Financial year (2024-25).")
]
AsOf = Annotated[
    str | None,
    typer.Option("--as-of", metavar="DATE",
                 help="Business date YYYY-MM-DD (default: today, kept inside the year)."),
]
PracticeOption = Annotated[
    str | None, typer.Option("--practice", metavar="ODS_CODE", help="One practice (A81001).")
]
ConsortiumOption = Annotated[
    str | None, typer.Option("--consortium", metavar="CODE",
                             help="The member practices of a consortium (16C).")
]


def _day(text: str | None, option: str) -> date | None:
    from projections.queries import parse_day  # noqa: PLC0415

    return parse_day(text, option) if text is not None else None


def holders(
    ctx: typer.Context,
    *,
    practice: PracticeOption = None,
    consortium: ConsortiumOption = None,
    holder: Annotated[
        str | None, typer.Option("--holder", metavar="HOLDER",
                                 help="What one holder holds (consortium:16C).")
    ] = None,
    year: YearOption = None,
    as_of: AsOf = None,
    known_at: Annotated[
        str | None,
        typer.Option("--known-at", metavar="INSTANT",
                     help="What the ledger knew at this instant: later records are ignored. "
                          "Written with its zone (2024-07-15T09:30:00Z or "
                          "2024-07-15T10:30:00+01:00; a time without a zone is refused), "
                          "or a date, meaning the end of that day, UTC. "
                          "Instants are recorded to the microsecond: digits finer than that "
                          "are dropped, which changes no answer. Without --as-of, its day "
                          "is the business date, kept inside the year as today is."),
    ] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Who holds each element of each budget, on a date, as known now or at an instant.

    A budget's elements are those allocated (a zero allocation too), adjusted or
    delegated by then; an element nobody allocated is not listed."""
    with handled(state_of(ctx)):
        from projections.queries import parse_known_at  # noqa: PLC0415

        instant = parse_known_at(known_at) if known_at is not None else None
        found = state_of(ctx).reads().holders(
            practice=practice, consortium=consortium, holder=holder, year=year,
            as_of=_day(as_of, "--as-of"), known_at=instant)
        rows(found, fmt, title="Holders", empty=_no_holders(known_at))


def _no_holders(known_at: str | None) -> str:
    """What an empty holders read says; with --known-at, that it counts recorded instants."""
    if known_at is None:
        return "no budgets in scope"
    return (f"no budgets in scope as known at {known_at}: it counts when each command was "
            "recorded (UTC), not its --on date")


def trail(
    ctx: typer.Context,
    *,
    code: Annotated[str, typer.Argument(
        help="A practice's ODS code (A81001) or a consortium's code (16C).")],
    year: YearOption = None,
    since: Annotated[str | None, typer.Option("--since", metavar="DATE",
                                              help="Effective on or after this date.")] = None,
    until: Annotated[str | None, typer.Option("--until", metavar="DATE",
                                              help="Effective on or before this date.")] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Every event that touched a practice or a consortium, in order, in words.

    A practice's trail holds its own events, its budgets', holdings handed to it, and
    the risk pools and quality standards of its consortia while a member; a
    consortium's, its forming, members joining and leaving, risk pools and their draws,
    quality standards, and holdings delegated to it."""
    with handled(state_of(ctx)):
        found = state_of(ctx).reads().trail(code, year=year, since=_day(since, "--since"),
                                            until=_day(until, "--until"))
        columns = ["position", "recorded_at", "effective_on", "actor", "event", "summary"]
        if fmt is not Format.table:
            found = [{k: r[k] for k in [*columns, "year"]} for r in found]
        rows(found, fmt, columns=columns, title=f"Trail of {code.strip().upper()}")


POSITION_EPILOG = (
    "Each row adds up: remaining = available + drawn - committed - settled (drawn: what "
    "the consortium's risk pool paid for an overspend on a hard budget). JSON and CSV "
    "carry the rows only; the risk pools shown under --by consortium are `ledger pools`."
    "\n\nExamples:\n\n"
    "ledger position --practice A81001 --year 2024-25\n\n"
    "ledger position --by consortium --year 2024-25 --as-of 2024-12-31\n\n"
    "ledger position --by allocator --format csv"
)


def position(
    ctx: typer.Context,
    *,
    practice: PracticeOption = None,
    consortium: ConsortiumOption = None,
    by: Annotated[str, typer.Option("--by", metavar="practice|consortium|allocator",
                                    help="Group by practice, consortium or allocator."
                                    )] = "practice",
    year: YearOption = None,
    as_of: AsOf = None,
    fmt: FormatOption = Format.table,
    plot: Annotated[
        Path | None, typer.Option("--plot", metavar="FILE",
                                  help="With --consortium: also draw budget against actual "
                                       "through the year per element to FILE (.svg/.png).",
                                  parser=path("--plot", "the file to draw to", dir_okay=False))
    ] = None,
) -> None:
    """Budget against actual: allocated, available, drawn, committed, settled, remaining."""
    with handled(state_of(ctx)):
        if plot is not None:
            _plot_position(ctx, consortium, year, plot)
        reads = state_of(ctx).reads()
        found = reads.position(practice=practice, consortium=consortium, by=by,
                               year=year, as_of=_day(as_of, "--as-of"))
        key = by if by in ("consortium", "allocator") else "practice"
        columns = [key, "year", "element", "allocated_pence", "available_pence",
                   "drawn_pence", "committed_pence", "settled_pence", "remaining_pence",
                   "used_percent", "hard", "overspent"]
        if key != "practice":
            columns.insert(1, "practices")
        rows(found, fmt, columns=columns, title=f"Position by {key}",
             droppable=["year", "used_percent", "practices", "hard", "allocated_pence",
                        "overspent"])
        if key == "consortium" and fmt is Format.table:
            found_pools = reads.pools(consortium=consortium, year=year,
                                      as_of=_day(as_of, "--as-of"))
            if found_pools:
                show_pools(found_pools, fmt)


POOL_COLUMNS = ["consortium", "year", "as_of", "top_slice_percent", "members",
                "capacity_pence", "drawn_pence", "draws", "headroom_pence"]
POOLS_EPILOG = (
    "capacity is the members' top-slices on the day; drawn what the pool has paid for "
    "overspends on hard budgets (draws less returns); headroom = capacity - drawn. With "
    "--as-of, only allocations and draws effective by that date count.\n\n"
    "Examples:\n\n"
    "ledger pools --year 2024-25\n\n"
    "ledger pools --consortium 16C --as-of 2024-09-30\n\n"
    "ledger pools --year 2024-25 --format json"
)


def _plot_position(ctx: typer.Context, consortium: str | None, year: str | None,
                   plot: Path) -> None:
    """`position --plot`: the consortium's budget against actual, month by month."""
    from commands.charts import budget_chart, check_plot_path  # noqa: PLC0415 - matplotlib
    from projections.joint_queries import JointReads  # noqa: PLC0415 - fast --help

    check_plot_path(plot)
    if consortium is None:
        raise InvalidInput("options", "--plot draws one consortium: give --consortium")
    if state_of(ctx).server:
        raise InvalidInput("server", "position --plot needs direct access to the store "
                                     "(--db); position itself works with --server")
    # Drawn from the store itself (the service has no route for it), never creating one.
    reads = JointReads(state_of(ctx).existing().store, today=datetime.now(UTC).date())
    timeline = reads.through_year(consortium=consortium, year=year)
    first = timeline[0] if timeline else None
    title = (f"{first['consortium']} {first['year']}: budget against actual"
             if first else "budget against actual")
    written = budget_chart(timeline, title, plot)
    from rich.text import Text  # noqa: PLC0415 - rich only when printing

    from commands import render  # noqa: PLC0415

    render.out.print(Text(f"Budget chart written to {written}"))




def pools(
    ctx: typer.Context,
    *,
    consortium: Annotated[
        str | None, typer.Option("--consortium", metavar="CODE",
                                 help="One consortium (16C); default: all.")
    ] = None,
    year: YearOption = None,
    as_of: AsOf = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Each consortium's risk pool: top-slice, members, capacity, drawn and headroom."""
    with handled(state_of(ctx)):
        found = state_of(ctx).reads().pools(consortium=consortium, year=year,
                                            as_of=_day(as_of, "--as-of"))
        show_pools(found, fmt)


def show_pools(found: list[Row], fmt: Format) -> None:
    rows(found, fmt, columns=POOL_COLUMNS, title="Risk pools",
         empty="no consortium has a risk pool for the year",
         droppable=["year", "as_of", "draws", "members", "top_slice_percent"])


def replay(
    ctx: typer.Context,
    *,
    practice: Annotated[str, typer.Argument(help="ODS code of the practice (A81001).")],
    year: Annotated[str, typer.Option("--year", metavar="YYYY-YY", help="Financial year.")],
    until: Annotated[str | None, typer.Option(
        "--until", metavar="DATE", help="Only events effective on or before this date.")] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Step through one budget: each event and the state after it. Writes nothing."""
    with handled(state_of(ctx)):
        steps = state_of(ctx).reads().replay(practice, year, _day(until, "--until"))
        if fmt is Format.table:
            for step in steps:
                owner = f"practice:{practice.upper()}"
                moved = {k: v for k, v in step["holders"].items() if v != owner}
                step["holders"] = moved or {"all": "the practice"}
        columns = ["version", "effective_on", "actor", "summary", "holders",
                   "allocated_pence", "committed_pence", "settled_pence", "remaining_pence"]
        rows(steps, fmt, columns=columns, title=f"Replay of {practice.upper()} {year}")


projections_app = typer.Typer(
    name="projections", help="The read models: their positions, and rebuilding them.",
    no_args_is_help=True,
)


@projections_app.command(
    "status",
    epilog="Examples:\n\nledger projections status\n\nledger projections status --format json",
)
def projections_status(ctx: typer.Context, fmt: FormatOption = Format.table) -> None:
    """Each projection's position in the log and how far it lags the head."""
    with handled(state_of(ctx)):
        from projections.materialise import Materialiser  # noqa: PLC0415

        views = Materialiser(state_of(ctx).existing().store)
        found = [{"projection": s.name, "position": s.position, "head": s.head, "lag": s.lag,
                  "holds": s.description} for s in views.status()]
        rows(found, fmt, title="Projections")


@projections_app.command(
    "rebuild",
    epilog="Examples:\n\nledger projections rebuild\n\nledger projections rebuild positions",
)
def projections_rebuild(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="One projection (default: all).")] = None,
) -> None:
    """Rebuild from position zero (the result equals incremental catch-up)."""
    with handled(state_of(ctx)):
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        from commands.render import out  # noqa: PLC0415
        from projections.materialise import Materialiser  # noqa: PLC0415

        views = Materialiser(state_of(ctx).existing().store)
        chosen = views.select([name] if name else None)
        head = views.store.head()
        started = time.perf_counter()
        # Drawn on a terminal only: piped or redirected, the answer is its one line.
        with Progress(TextColumn("rebuilding"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=out, transient=True,
                      disable=not out.is_terminal) as bar:
            task = bar.add_task("rebuild", total=head)
            read = views.rebuild([p.name for p in chosen],
                                 lambda n: bar.advance(task, n))
        seconds = max(time.perf_counter() - started, 1e-9)
        out.print(f"rebuilt {', '.join(p.name for p in chosen)} from {read:,} events "
                  f"in {seconds:.2f} s ({read / seconds:,.0f} events/s)")


def events(
    ctx: typer.Context,
    after: Annotated[int, typer.Option(
        "--after", metavar="POSITION",
        parser=whole_number("--after", 0, MAX_POSITION),
        help="Start after this position (0 or more, in the digits 0-9).")] = 0,
    follow: Annotated[bool, typer.Option("--follow", help="Keep waiting for new events.")] = False,
    poll: Annotated[float, typer.Option(
        "--poll", metavar="SECONDS", parser=seconds("--poll", 0.05, 3600.0),
        help="Seconds between looks for new events (on PostgreSQL each commit wakes "
        "--follow at once, LISTEN/NOTIFY).")] = 1.0,
) -> None:
    """The event feed as JSON lines, in log order; resume with --after POSITION."""
    state = state_of(ctx)
    with handled(state):
        from ledger.store.commits import CommitSignal, commit_signal  # noqa: PLC0415

        reads = state.reads()
        if not state.server:  # the service refuses it itself
            from projections.queries import refuse_past_head  # noqa: PLC0415

            refuse_past_head(after, reads.store.head())
        # LISTEN before the first read: a commit after it is never missed.
        signal = (commit_signal(reads.store) if follow and not state.server
                  else CommitSignal())
        last = after
        try:
            while True:
                for row in reads.events(last):
                    last = row["position"]
                    json_lines([row])
                if not follow:
                    return
                signal.wait(poll)
        except KeyboardInterrupt:
            return
        finally:
            signal.close()


HOLDERS_EPILOG = (
    "Examples:\n\n"
    "ledger holders --practice A81001 --year 2024-25 --as-of 2024-09-01\n\n"
    "ledger holders --practice A81001 --known-at 2024-07-15T09:30:00Z\n\n"
    "ledger holders --holder consortium:16C --format json\n\n"
    "ledger holders --consortium 16C --year 2024-25 --format csv"
)
TRAIL_EPILOG = (
    "Examples:\n\n"
    "ledger trail A81001 --year 2024-25 --since 2024-06-01\n\n"
    "ledger trail A81001 --until 2024-09-30 --format csv\n\n"
    "ledger trail 16C --year 2024-25   (a consortium: members, risk pool, standards)"
)
REPLAY_EPILOG = (
    "Examples:\n\n"
    "ledger replay A81001 --year 2024-25 --until 2024-10-01\n\n"
    "ledger replay A81001 --year 2024-25 --format json"
)
EVENTS_EPILOG = (
    "Examples:\n\n"
    "ledger events --after 1200 > events.jsonl\n\n"
    "ledger events --after 1200 --follow   (keeps printing new events; stop with Ctrl-C)"
)


def add_commands(parent: typer.Typer) -> None:
    """Add the read commands to the `ledger` app."""
    parent.command("holders", epilog=HOLDERS_EPILOG)(holders)
    parent.command("trail", epilog=TRAIL_EPILOG)(trail)
    parent.command("position", epilog=POSITION_EPILOG)(position)
    parent.command("pools", epilog=POOLS_EPILOG)(pools)
    parent.command("replay", epilog=REPLAY_EPILOG)(replay)
    parent.add_typer(projections_app)
    parent.command("events", epilog=EVENTS_EPILOG)(events)
