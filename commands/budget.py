"""`ledger budget`: allocations, adjustments, who holds which element, hard or indicative."""

from __future__ import annotations

from typing import Annotated

import typer

from commands import options, render
from commands.errors import handled
from commands.run import state_of, write

app = typer.Typer(
    name="budget",
    help="A practice's budget for a financial year: allocation, holding, status.",
    no_args_is_help=True,
)


@app.command(
    "allocate",
    epilog="Examples:\n\nledger --actor allocator:Q71 budget allocate A81001 --year 2024-25 "
    "--element acute=1200000 --element prescribing=310000.50",
)
def allocate(
    ctx: typer.Context,
    *,
    practice: options.Practice,
    year: options.Year,
    element: options.ElementAmounts,
    basis: Annotated[
        str | None,
        typer.Option("--basis", metavar="BASIS",
                     help="How the amounts were set (formula, weighting).",
                     show_default=False),
    ] = None,
    on: options.On = None,
) -> None:
    """Allocate amounts per element (an allocation may be zero)."""
    write(ctx, "budget allocate",
          {"practice": practice, "year": year, "element": element, "basis": basis, "on": on})


@app.command(
    "allocate-formula",
    epilog="Examples:\n\nledger --actor allocator:Q71 budget allocate-formula --year 2025-26 "
    "--rate acute=780 --rate prescribing=170.25 --consortium 16C --on 2025-04-01 --dry-run",
)
def allocate_formula(
    ctx: typer.Context,
    *,
    year: options.Year,
    rate: Annotated[
        list[str],
        typer.Option(
            "--rate",
            metavar="ELEMENT=POUNDS",
            help="Pounds per weighted head for an element, at most two decimals "
            "(acute=780 or acute=780.25); repeat per element.",
            callback=options.name_values("acute=780"),
        ),
    ],
    consortium: Annotated[
        str | None,
        typer.Option("--consortium", metavar="CODE", help="Only the consortium's members on --on "
                     "(default: every practice the acting allocator registered).",
                     show_default=False),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show what would be allocated, or refuse as the run "
                                       "would; record nothing."),
    ] = False,
    on: options.On = None,
) -> None:
    """Allocate budgets by formula: weighted population x pounds per weighted head.

    For each practice in scope and each rated element: its weighted population in
    force on --on, times the rate, rounded half up to the penny (exactly, no floating
    point). Practices not registered yet or closed on --on are left out (and listed).
    Each practice is one idempotent command, id <run id>:<practice> (the run id is
    --command-id, or derived from the year, rates, scope and date), so a re-run
    records nothing twice. The weighted population and rate are recorded on each
    allocation and shown in the trail. All or nothing: a practice without a weighted
    population for a rated element refuses the run, naming it.
    """
    state = state_of(ctx)
    with handled(state):
        from ledger.application.formula import allocate_by_formula  # noqa: PLC0415

        actor = state.require_actor()
        run = allocate_by_formula(
            state.ledger().service, actor=actor, year=year, rates=rate,
            consortium=consortium, on=on, command_id=state.command_id, dry_run=dry_run,
        )
        render.formula_run(run)


@app.command(
    "import",
    epilog="Examples:\n\nledger --actor allocator:Q71 budget import allocations.csv --year 2024-25"
    "\n\nledger --actor allocator:Q71 budget import published.csv --year 2024-25 "
    '--map practice="Practice Code" --map element=Element --map amount="Allocation (GBP)" '
    "--ignore ICB   (a published file as downloaded, naming its columns)\n\n"
    "ledger --actor allocator:Q71 budget import published.csv --year 2024-25 "
    "--mapping allocations.toml   (the same names kept in a mapping file)",
)
def import_(
    ctx: typer.Context,
    file: options.CsvFile,
    *,
    year: options.Year,
    on: options.On = None,
    maps: options.AllocationColumnMap = None,
    mapping: options.MappingFile = None,
    ignore: options.IgnoredColumns = None,
) -> None:
    """Allocate from a CSV file with columns practice,element,amount, all or nothing.

    Amounts are written as on the command line (1200000, £1,200,000.00). Column
    names compare case-insensitively, spaces, hyphens and underscores alike. A
    published file is read as downloaded by naming its columns with --map or
    --mapping, as `practice import` does; with a mapping, every other column must
    be skipped with --ignore. Any bad row refuses the whole file, naming its line,
    and nothing is recorded. Each row gets the command id <id>:line<N> (the id is
    --command-id, or derived from the file's content), so importing the same file
    again records nothing new.
    """
    state = state_of(ctx)
    with handled(state):
        from ledger.application.files import input_path  # noqa: PLC0415 - fast --help
        from ledger.application.imports import import_allocations  # noqa: PLC0415
        from ledger.application.mapping import ColumnMap  # noqa: PLC0415

        columns = ColumnMap.build(maps or [], ignore or [], mapping)
        # With --server the service runs the file, as the token's actor.
        report = import_allocations(
            state.client().batches() if state.server else state.ledger().service,
            input_path(file),
            actor="" if state.server else state.require_actor(), year=year,
            command_id=state.command_id, on=on, mapping=columns,
        )
        render.import_report(report)


@app.command(
    "adjust",
    epilog="Examples:\n\nledger --actor allocator:Q71 budget adjust A81001 --year 2024-25 "
    '--element acute --by -5000 --reason "List cleansing"',
)
def adjust(
    ctx: typer.Context,
    *,
    practice: options.Practice,
    year: options.Year,
    element: options.Element,
    by: Annotated[
        str,
        typer.Option("--by", metavar="AMOUNT",
                     help="Signed change in pounds, not zero: -5000 or 2500.50."),
    ],
    reason: options.Reason,
    on: options.On = None,
) -> None:
    """Adjust one element's allocation up or down, with a reason."""
    write(ctx, "budget adjust", {"practice": practice, "year": year, "element": element,
                                 "by": by, "reason": reason, "on": on})


@app.command(
    "delegate",
    epilog="Examples:\n\nledger --actor practice:A81001 budget delegate A81001 --year 2024-25 "
    "--element prescribing --to consortium:16C --on 2024-06-01",
)
def delegate(
    ctx: typer.Context,
    *,
    practice: options.Practice,
    year: options.Year,
    element: options.Elements,
    to: options.Holder,
    on: options.On = None,
) -> None:
    """Hand the holding of some elements to a consortium or another practice.

    The practice stays accountable; the holder commissions against the elements.
    """
    write(ctx, "budget delegate",
          {"practice": practice, "year": year, "element": element, "to": to, "on": on})


@app.command(
    "revoke",
    epilog="Examples:\n\nledger --actor practice:A81001 budget revoke A81001 --year 2024-25 "
    "--element prescribing --on 2024-09-01",
)
def revoke(
    ctx: typer.Context,
    *,
    practice: options.Practice,
    year: options.Year,
    element: options.Elements,
    on: options.On = None,
) -> None:
    """Take delegated elements back to the practice."""
    write(ctx, "budget revoke", {"practice": practice, "year": year, "element": element, "on": on})


@app.command(
    "opt-out",
    epilog="Examples:\n\nledger --actor practice:A81001 budget opt-out A81001 --year 2024-25 "
    '--to practice:A81002 --on 2024-05-01 --reason "Partner retiring"',
)
def opt_out(
    ctx: typer.Context,
    *,
    practice: options.Practice,
    year: options.Year,
    to: options.Holder,
    reason: options.Reason,
    on: options.On = None,
) -> None:
    """Hand the holding of every element to one nominated third party; accountability stays."""
    write(ctx, "budget opt-out",
          {"practice": practice, "year": year, "to": to, "reason": reason, "on": on})


@app.command(
    "opt-in",
    epilog="Examples:\n\nledger --actor practice:A81001 budget opt-in A81001 --year 2024-25 "
    "--on 2024-10-01",
)
def opt_in(
    ctx: typer.Context,
    *,
    practice: options.Practice,
    year: options.Year,
    reason: options.OptionalReason = None,
    on: options.On = None,
) -> None:
    """Return every element to the practice (earlier delegations are not restored)."""
    write(ctx, "budget opt-in",
          {"practice": practice, "year": year, "reason": reason, "on": on})


@app.command(
    "harden",
    epilog="Examples:\n\nledger --actor allocator:Q71 budget harden A81001 --year 2024-25 "
    "--on 2024-07-01",
)
def harden(
    ctx: typer.Context,
    *,
    practice: options.Practice,
    year: options.Year,
    reason: options.OptionalReason = None,
    on: options.On = None,
) -> None:
    """Make the budget hard (competence assured): overspend is refused from --on."""
    write(ctx, "budget harden", {"practice": practice, "year": year, "reason": reason, "on": on})


@app.command(
    "soften",
    epilog="Examples:\n\nledger --actor allocator:Q71 budget soften A81001 --year 2024-25 "
    "--on 2025-01-01",
)
def soften(
    ctx: typer.Context,
    *,
    practice: options.Practice,
    year: options.Year,
    reason: options.OptionalReason = None,
    on: options.On = None,
) -> None:
    """Make the budget indicative: overspend is recorded and flagged, not refused."""
    write(ctx, "budget soften", {"practice": practice, "year": year, "reason": reason, "on": on})


def add_commands(parent: typer.Typer) -> None:
    """Add `ledger budget …` to the `ledger` app."""
    parent.add_typer(app)
