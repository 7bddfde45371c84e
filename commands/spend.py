"""`ledger spend`: commitments against an element, then varied, settled or cancelled."""

from __future__ import annotations

from typing import Annotated

import typer

from commands import options
from commands.run import write

app = typer.Typer(
    name="spend",
    help="Spending commitments: commit, vary, settle (partly or finally), cancel.",
    no_args_is_help=True,
)


@app.command(
    "commit",
    epilog="Examples:\n\nledger --actor practice:A81001 spend commit A81001 --year 2024-25 "
    '--element acute --ref R-0001 --amount 12500 --provider RTR --service "Hip replacement" '
    "--qs QS3",
)
def commit(
    ctx: typer.Context,
    *,
    practice: options.Practice,
    year: options.Year,
    element: options.Element,
    ref: Annotated[str, typer.Option(
        "--ref", metavar="REF",
        help="A reference unique in the ledger: 1 to 64 ASCII letters, digits and "
        ". _ - : / # @ + =.")],
    amount: options.Amount,
    provider: Annotated[str, typer.Option("--provider", metavar="PROVIDER",
                                          help="Provider, e.g. trust code RTR.")],
    service: Annotated[str, typer.Option("--service", metavar="SERVICE",
                                         help="What is commissioned.")],
    qs: Annotated[
        list[str] | None,
        typer.Option("--qs", metavar="QS",
                     help="NICE quality standard it meets (QS3); repeatable."),
    ] = None,
    on: options.On = None,
) -> None:
    """Commit spend against an element; only its current holder may.

    On a hard budget an overspend is refused; on an indicative one it is recorded
    and flagged.
    """
    write(ctx, "spend commit", {
        "practice": practice, "year": year, "element": element, "ref": ref, "amount": amount,
        "provider": provider, "service": service, "qs": qs or [], "on": on,
    })


@app.command(
    "vary", epilog="Examples:\n\nledger --actor practice:A81001 spend vary R-0001 --amount 13000"
)
def vary(
    ctx: typer.Context,
    *,
    ref: options.Ref,
    amount: Annotated[
        str, typer.Option("--amount", metavar="AMOUNT",
                          help="The commitment's new total in pounds (13000).")
    ],
    reason: options.OptionalReason = None,
    on: options.On = None,
) -> None:
    """Set a commitment's new total (not below what is already settled)."""
    write(ctx, "spend vary", {"ref": ref, "amount": amount, "reason": reason, "on": on})


@app.command(
    "settle",
    epilog="Examples:\n\nledger --actor practice:A81001 spend settle R-0001 --amount 6000\n\n"
    "ledger --actor practice:A81001 spend settle R-0001 --amount 7000 --final   (the last "
    "payment: closes it)",
)
def settle(
    ctx: typer.Context,
    *,
    ref: options.Ref,
    amount: options.Amount,
    final: Annotated[
        bool,
        typer.Option("--final", help="The last settlement: release whatever is left outstanding."),
    ] = False,
    reason: options.OptionalReason = None,
    on: options.On = None,
) -> None:
    """Settle part of a commitment, or finally."""
    write(ctx, "spend settle",
          {"ref": ref, "amount": amount, "final": final, "reason": reason, "on": on})


@app.command(
    "cancel",
    epilog='Examples:\n\nledger --actor practice:A81001 spend cancel R-0001 --reason "Not needed"',
)
def cancel(
    ctx: typer.Context,
    *,
    ref: options.Ref,
    reason: options.OptionalReason = None,
    on: options.On = None,
) -> None:
    """Cancel a commitment: release what is outstanding, keep what was settled."""
    write(ctx, "spend cancel", {"ref": ref, "reason": reason, "on": on})


def add_commands(parent: typer.Typer) -> None:
    """Add `ledger spend …` to the `ledger` app."""
    parent.add_typer(app)
