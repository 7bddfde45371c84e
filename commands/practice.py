"""`ledger practice`: register practices, one by one or from a CSV file."""

from __future__ import annotations

import typer

from commands import options, render
from commands.errors import handled
from commands.run import pairs, state_of, write

app = typer.Typer(
    name="practice", help="Register GP practices (the allocator's job).", no_args_is_help=True
)


@app.command(
    "register",
    epilog="Example: ledger --actor allocator:Q71 practice register A81001 "
    '--name "The Densham Surgery" --list-size 4069 --weighted acute=5044.162762 --on 2024-04-01',
)
def register(
    ctx: typer.Context,
    *,
    practice: options.Practice,
    name: options.Name,
    list_size: options.ListSize,
    weighted: options.Weighted = None,
    on: options.On = None,
) -> None:
    """Register a practice under the acting allocator, who alone may then fund it."""
    write(ctx, "practice register", lambda: {
        "practice": practice,
        "name": name,
        "list_size": list_size,
        "weighted": pairs("--weighted", weighted),
        "on": on,
    })


@app.command(
    "import",
    epilog="Example: ledger --actor allocator:Q71 practice import practices.csv --on 2024-04-01",
)
def import_(ctx: typer.Context, file: options.CsvFile, on: options.On = None) -> None:
    """Register every practice in a CSV file, all or nothing.

    Columns: practice,name,list_size; optionally consortium (an existing
    consortium the practice joins) and <element>_weighted (acute_weighted, ...).
    Practices are registered, and join their consortium, on --on (default: the
    first day of the current financial year). Any bad row refuses the whole file,
    naming its line, and nothing is recorded. Each row gets the command id
    <id>:line<N> (the id is --command-id, or derived from the file's content), so
    importing the same file again records nothing new.
    """
    state = state_of(ctx)
    with handled(state):
        from ledger.application.imports import import_practices  # noqa: PLC0415 - fast --help

        actor = state.require_actor()
        report = import_practices(
            state.ledger().service, file, actor=actor, command_id=state.command_id, on=on
        )
        render.import_report(report)
