"""`ledger project`: bring every projection up to the head, once or continuously.

Beside `ledger serve --projected` this is the only writer of the projections, so
the service's reads never write and can run on a read-only role or a replica.
With `--follow` on PostgreSQL it waits on LISTEN for the NOTIFY of each commit
(ledger/store/commits.py) rather than polling.
"""

from __future__ import annotations

from typing import Annotated

import typer

from commands import render
from commands.errors import handled
from commands.options import seconds
from commands.run import state_of

POLL_SECONDS = 0.1  # between looks when no commit signal reaches the projector
LISTENING_SECONDS = 1.0  # between looks anyway while LISTENing, in case one was lost

EPILOG = (
    "Examples:\n\n"
    "ledger --db ledger.db project            (once, then exit)\n\n"
    "ledger --db ledger.db project --follow   (keep them current; stop with Ctrl-C)"
)


def project(
    ctx: typer.Context,
    follow: Annotated[bool, typer.Option("--follow", help="Keep catching up as events are "
                                         "committed, until stopped.")] = False,
    poll: Annotated[float | None, typer.Option(
        "--poll", metavar="SECONDS", parser=seconds("--poll", 0.01, 3600.0),
        help="With --follow, the longest wait between looks "
        "for new events [default: 0.1 on SQLite; on PostgreSQL each commit wakes the "
        "projector (LISTEN/NOTIFY) and it looks every 1 s anyway]")] = None,
) -> None:
    """Apply every event after each projection's position (what reads would otherwise do)."""
    state = state_of(ctx)
    with handled(state):
        from ledger.store.commits import commit_signal  # noqa: PLC0415 - fast --help
        from projections.materialise import Materialiser  # noqa: PLC0415

        store = state.ledger().store
        # LISTEN before the first catch-up: a commit after it is never missed.
        signal = commit_signal(store) if follow else None
        views = Materialiser(store)
        read = views.catch_up()
        render.done(f"projections at position {views.store.head()} ({read:,} events read)")
        if signal is None:
            return
        try:
            while True:
                if views.catch_up():
                    continue
                signal.wait(poll if poll is not None
                            else LISTENING_SECONDS if signal.listening else POLL_SECONDS)
        except KeyboardInterrupt:
            render.done(f"stopped at position {views.store.head()}")
        finally:
            signal.close()


def add_commands(parent: typer.Typer) -> None:
    """Add `ledger project` to the `ledger` app."""
    parent.command("project", epilog=EPILOG)(project)
