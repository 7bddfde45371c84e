"""`ledger consortium`: form consortia, manage membership, risk pools and quality standards."""

from __future__ import annotations

from typing import Annotated

import typer

from commands import options
from commands.run import write

app = typer.Typer(
    name="consortium",
    help="Consortia of practices: membership over time, risk pools, quality standards.",
    no_args_is_help=True,
)


@app.command(
    "form",
    epilog="Examples:\n\nledger --actor allocator:Q71 consortium form 16C "
    '--name "Tees Valley" --officer "Dr A. Example"',
)
def form(
    ctx: typer.Context,
    *,
    consortium: options.Consortium,
    name: options.Name,
    officer: Annotated[str, typer.Option("--officer", metavar="NAME",
                                         help="The accountable officer's name.")],
    on: options.On = None,
) -> None:
    """Form a consortium with its accountable officer."""
    write(ctx, "consortium form",
          {"consortium": consortium, "name": name, "officer": officer, "on": on})


@app.command(
    "join",
    epilog="Examples:\n\nledger --actor consortium:16C consortium join 16C A81001 --on 2024-04-01",
)
def join(
    ctx: typer.Context,
    *,
    consortium: options.Consortium,
    practice: options.OtherPractice,
    on: options.On = None,
) -> None:
    """A practice joins the consortium from --on (a member of one consortium at a time: it
    leaves the other first, and may join from the day it leaves)."""
    write(ctx, "consortium join", {"consortium": consortium, "practice": practice, "on": on})


@app.command(
    "leave",
    epilog="Examples:\n\nledger --actor consortium:16C consortium leave 16C A81001 --on 2025-01-01",
)
def leave(
    ctx: typer.Context,
    *,
    consortium: options.Consortium,
    practice: options.OtherPractice,
    on: options.On = None,
) -> None:
    """A practice leaves the consortium from --on (revoke its delegations to it first)."""
    write(ctx, "consortium leave", {"consortium": consortium, "practice": practice, "on": on})


@app.command(
    "risk-pool",
    epilog="Examples:\n\nledger --actor consortium:16C consortium risk-pool 16C --year 2024-25 "
    "--top-slice 1%",
)
def risk_pool(
    ctx: typer.Context,
    *,
    consortium: options.Consortium,
    year: options.Year,
    top_slice: Annotated[
        str,
        typer.Option(
            "--top-slice", metavar="PERCENT", help="Share of members' allocations pooled (1%)."
        ),
    ],
    on: options.On = None,
) -> None:
    """Agree the consortium's risk pool for a year: a top-slice of members' allocations."""
    write(ctx, "consortium risk-pool",
          {"consortium": consortium, "year": year, "top_slice": top_slice, "on": on})


@app.command(
    "adopt",
    epilog="Examples:\n\nledger --actor consortium:16C consortium adopt 16C --year 2024-25 "
    "QS1 QS2 QS3",
)
def adopt(
    ctx: typer.Context,
    *,
    consortium: options.Consortium,
    codes: options.QsCodes,
    year: options.Year,
    on: options.On = None,
) -> None:
    """Adopt NICE quality standards for a year."""
    write(ctx, "consortium adopt",
          {"consortium": consortium, "year": year, "codes": codes, "on": on})


def add_commands(parent: typer.Typer) -> None:
    """Add `ledger consortium …` to the `ledger` app."""
    parent.add_typer(app)
