"""`ledger project`: bring every projection up to the head, once or continuously.

Beside `ledger serve --projected` this is the only writer of the projections, so
the service's reads never write and can run on a read-only role or a replica.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from commands import render
from commands.errors import handled
from commands.run import state_of

EPILOG = (
    "Examples:\n\n"
    "ledger --db ledger.db project            (once, then exit)\n\n"
    "ledger --db ledger.db project --follow   (keep them current; stop with Ctrl-C)"
)


def project(
    ctx: typer.Context,
    follow: Annotated[bool, typer.Option("--follow", help="Keep catching up as events are "
                                         "committed, until stopped.")] = False,
    poll: Annotated[float, typer.Option("--poll", min=0.01, help="Seconds between looks for "
                                        "new events with --follow.")] = 0.1,
) -> None:
    """Apply every event after each projection's position (what reads would otherwise do)."""
    state = state_of(ctx)
    with handled(state):
        from projections.materialise import Materialiser  # noqa: PLC0415 - fast --help

        views = Materialiser(state.ledger().store)
        read = views.catch_up()
        render.done(f"projections at position {views.store.head()} ({read:,} events read)")
        if not follow:
            return
        try:
            while True:
                if views.catch_up():
                    continue
                time.sleep(poll)
        except KeyboardInterrupt:
            render.done(f"stopped at position {views.store.head()}")
