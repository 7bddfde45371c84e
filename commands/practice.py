"""`ledger practice`: register practices, one by one or from a CSV file."""

from __future__ import annotations

from typing import Annotated

import typer

from commands import options, render
from commands.errors import handled
from commands.run import pairs, state_of, write

app = typer.Typer(
    name="practice",
    help="GP practices: register, list sizes, close (the allocator's job).",
    no_args_is_help=True,
)


@app.command(
    "register",
    epilog="Examples:\n\nledger --actor allocator:Q71 practice register A81001 "
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
    epilog="Examples:\n\nledger --actor allocator:Q71 practice import practices.csv "
    "--on 2024-04-01\n\n"
    "ledger --actor allocator:Q71 practice import "
    "gp-practice-weighted-populations-2025-26.csv --mapping nhse-weighted-populations.toml "
    "--on 2025-04-01   (a published file as downloaded)\n\n"
    "ledger --actor allocator:Q71 practice import weighted.csv "
    '--map practice=Practice_Code --map name=GP_Practice_Name --map list_size=Registered '
    '--map acute="G&A WP" --ignore ICB   (naming columns one by one)\n\n'
    "ledger --actor allocator:Q71 practice import "
    "gp-reg-pat-prac-all.csv --list-sizes --mapping nhsd-registered-patients.toml "
    "--on 2025-10-01   (next month's list sizes)",
)
def import_(
    ctx: typer.Context,
    file: options.CsvFile,
    *,
    on: options.On = None,
    maps: options.PracticeColumnMap = None,
    mapping: options.MappingFile = None,
    ignore: options.IgnoredColumns = None,
    list_sizes: Annotated[
        bool,
        typer.Option(
            "--list-sizes",
            help="Record new list sizes (and weighted populations) of practices already "
            "registered, from --on (default today), instead of registering them.",
        ),
    ] = False,
) -> None:
    """Register every practice in a CSV file, all or nothing (or, with --list-sizes,
    record their new list sizes).

    Columns: practice,name,list_size; optionally consortium (an existing
    consortium the practice joins) and <element>_weighted (acute_weighted, ...).
    Column names compare case-insensitively, spaces, hyphens and underscores alike.
    A published file is read as downloaded by naming its columns with --map or
    --mapping; with a mapping, every other column must be skipped with --ignore.
    Without one, columns that are not fields are skipped, unless they look like
    one (an element's name, or weighted, WP, list, patients, population): those
    are refused, naming them. List sizes may be written 4069 or "4,069".
    Practices are registered, and join their consortium, on --on (default: the
    first day of the current financial year). Any bad row refuses the whole file,
    naming its line, and nothing is recorded. Each row gets the command id
    <id>:line<N> (the id is --command-id, or derived from the file's content), so
    importing the same file again records nothing new.
    """
    state = state_of(ctx)
    with handled(state):
        from ledger.application.files import input_path  # noqa: PLC0415 - fast --help
        from ledger.application.imports import (  # noqa: PLC0415
            import_list_sizes,
            import_practices,
        )
        from ledger.application.mapping import ColumnMap  # noqa: PLC0415

        columns = ColumnMap.build(maps or [], ignore or [], mapping)
        run = import_list_sizes if list_sizes else import_practices
        path = input_path(file)
        if state.server:  # the service runs the file, as the token's actor
            report = run(state.client().batches(), path, actor="", command_id=state.command_id,
                         on=on, mapping=columns)
        else:
            report = run(state.ledger().service, path, actor=state.require_actor(),
                         command_id=state.command_id, on=on, mapping=columns)
        render.import_report(report)


@app.command(
    "list-size",
    epilog="Examples:\n\nledger --actor allocator:Q71 practice list-size A81001 --list-size 4,105 "
    "--weighted acute=5061.204118 --on 2025-10-01",
)
def list_size(
    ctx: typer.Context,
    *,
    practice: options.Practice,
    list_size: options.ListSize,
    weighted: options.Weighted = None,
    on: options.On = None,
) -> None:
    """Record a practice's list size in force from --on (peer review and formula
    allocations use the figures in force on their date). Weighted populations given
    replace those elements' figures; the others stay as they were."""
    write(ctx, "practice list-size", lambda: {
        "practice": practice,
        "list_size": list_size,
        "weighted": pairs("--weighted", weighted),
        "on": on,
    })


@app.command(
    "close",
    epilog='Examples:\n\nledger --actor allocator:Q71 practice close A81001 --on 2025-01-01 '
    '--reason "Merged with A81002"',
)
def close(
    ctx: typer.Context,
    *,
    practice: options.Practice,
    reason: options.OptionalReason = None,
    on: options.On = None,
) -> None:
    """Close a practice from --on: nothing may be committed, allocated or delegated to it
    from that day (refused while it has commitments effective on or after it). Its
    budgets stay accountable and readable."""
    write(ctx, "practice close", {"practice": practice, "reason": reason, "on": on})


def add_commands(parent: typer.Typer) -> None:
    """Add `ledger practice …` to the `ledger` app."""
    parent.add_typer(app)
