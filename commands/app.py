"""The `ledger` command: global options, sub-apps per noun, one error mapping.

Building infrastructure happens only inside `CliState.ledger()` (through the
composition root), never at import time, so `ledger --help` stays fast: the
command modules import the application only inside their functions.
"""

from __future__ import annotations

from typing import Annotated

import typer

from commands import apply, budget, consortium, demo, practice, reads, render, spend, token
from commands.errors import EXIT_USAGE
from commands.global_options import LedgerGroup
from commands.joint import register as register_joint
from commands.state import CliState

app = typer.Typer(
    name="ledger",
    cls=LedgerGroup,
    help="Event-sourced ledger of GP commissioning budgets: who holds what, who is "
    "accountable, and every commitment against it.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


@app.callback()
def main_options(
    ctx: typer.Context,
    *,
    db: Annotated[
        str,
        typer.Option(
            envvar="LEDGER_DB",
            help="SQLite file path, or a postgresql:// URL (add ?schema=NAME for a schema).",
        ),
    ] = "ledger.db",
    actor: Annotated[
        str | None,
        typer.Option(
            envvar="LEDGER_ACTOR",
            help="Who issues writes: allocator:Q71, practice:A81001, consortium:16C/Name, "
            "auditor:NAME.",
        ),
    ] = None,
    command_id: Annotated[
        str | None,
        typer.Option(help="Idempotency key: the same id twice records once. 1 to 128 of "
                     "A-Z a-z 0-9 . _ - : / # @ + =; an empty or blank id is refused."),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(envvar="LEDGER_SERVER", help="Be a client of the ledger service at this "
                     "URL (https://ledger.example.org): no database access needed; the "
                     "token's actor acts, so --actor is refused."),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="LEDGER_TOKEN", help="Bearer token for --server (ledger token "
                     "create)."),
    ] = None,
) -> None:
    if server and actor:
        render.error("--actor is refused with --server: the token's actor acts "
                     "[rule: server]")
        raise typer.Exit(EXIT_USAGE)
    if command_id is not None:
        from ledger.domain.characters import parse_command_id  # noqa: PLC0415 - fast --help
        from ledger.domain.errors import InvalidInput  # noqa: PLC0415

        try:
            command_id = parse_command_id(command_id)
        except InvalidInput as refused:
            render.error(refused)
            raise typer.Exit(EXIT_USAGE) from None
    ctx.obj = CliState(db=db, actor=actor, command_id=command_id, server=server, token=token)


# --- sub-commands: one sub-app per noun; add new ones to these lists -------------------

# Writes.
app.add_typer(practice.app)
app.add_typer(consortium.app)
app.add_typer(budget.app)
app.add_typer(spend.app)
app.add_typer(token.app)
app.command("apply", epilog=apply.EPILOG)(apply.apply)
app.command("demo", epilog=demo.EPILOG)(demo.demo)

# Reads (projections/): registered here by commands/reads.py's author.

# Audit: verify, checkpoint, prove, verify-bundle — commands/audit.py.
from commands import audit  # noqa: E402 - kept with its registration

audit.register(app)
reads.register(app)  # reads: holders, trail, position, replay, projections, events
register_joint(app)

# ledger serve: the read API for other services (commands/serve.py, projections/api.py).
from commands import serve  # noqa: E402 - kept with its registration

app.command("serve", epilog=serve.EPILOG)(serve.serve)

# ledger witness: an independent cosigner of checkpoints (commands/witness.py).
from commands import witness  # noqa: E402 - kept with its registration

app.add_typer(witness.app)

# ledger key: rotation and retirement of the log's signing key (commands/keys.py).
from commands import keys  # noqa: E402 - kept with its registration

app.add_typer(keys.app)

# ledger report: one self-contained HTML report (commands/report.py).
from commands import report  # noqa: E402 - kept with its registration

app.command("report", epilog=report.EPILOG)(report.report)

# ledger project: the projector the service's reads can rely on (commands/project.py).
from commands import project  # noqa: E402 - kept with its registration

app.command("project", epilog=project.EPILOG)(project.project)

# ledger schema: the events' JSON Schemas as the feed serves them (commands/schema.py).
from commands import schema  # noqa: E402 - kept with its registration

app.command("schema", epilog=schema.EPILOG)(schema.schema)


def main() -> None:
    """The `ledger` entry point: sub-commands are built only when used (commands/lazy.py)."""
    from commands.lazy import command  # noqa: PLC0415 - only the entry point needs it

    command(app)()
