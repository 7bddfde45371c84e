"""`ledger demo`: build a realistic demo ledger, summarise it, then tour it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from commands import render
from commands.errors import handled
from commands.run import state_of
from commands.state import CliState

if TYPE_CHECKING:
    from ledger.application.demo import DemoSummary

EPILOG = "Example: ledger --db demo.db demo"


def demo(ctx: typer.Context) -> None:
    """Build a realistic demo ledger (2024-25) on an empty store and summarise it.

    Five consortia, four dozen practices, a year of allocations per element,
    delegations, an opt-out and opt-in, hard budgets and several hundred
    commitments, some overspends refused and some flagged. Deterministic. A
    ledger that already holds events is refused: give the demo a new file.
    """
    state = state_of(ctx)
    with handled(state):
        from ledger.application.demo import build_demo  # noqa: PLC0415 - fast --help

        summary = build_demo(state.ledger().service)
        render.demo_summary(summary)
        tour(state, summary)


def tour(state: CliState, summary: DemoSummary) -> None:
    """The tour of the demo ledger, after its summary.

    Extension point for the read side: the holders, trail and position views
    (projections/) belong here, reading `state.ledger()` with the practices named
    in `summary.highlights`. Until they exist, the tour names those practices.
    """
    del state  # the read-side tour will query the store through it
    render.demo_highlights(summary)
