"""The `ledger` command: global options, sub-apps per noun, one error mapping.

Building infrastructure happens only inside `CliState.ledger()` (through the
composition root), never at import time, so `ledger --help` stays fast: the
command modules import the application only inside their functions.
"""

from __future__ import annotations

from typing import Annotated, Protocol

import typer

from commands import (
    apply,
    audit,
    budget,
    consortium,
    demo,
    joint,
    keys,
    practice,
    project,
    reads,
    render,
    report,
    schema,
    serve,
    spend,
    token,
    witness,
)
from commands.errors import EXIT_USAGE
from commands.global_options import LedgerGroup
from commands.help import use_ledger_command
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


def _print_version(given: bool) -> None:
    """`--version`: the installed package's version, then exit 0."""
    if not given:
        return
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        found = version("commissioning-ledger")
    except PackageNotFoundError:  # run from a checkout that was never installed
        found = "(not installed)"
    typer.echo(f"ledger {found}")
    raise typer.Exit(0)


@app.callback()
def main_options(
    ctx: typer.Context,
    *,
    show_version: Annotated[  # noqa: ARG001 - acted on by its eager callback
        bool,
        typer.Option("--version", is_eager=True, callback=_print_version,
                     help="Print the ledger's version and exit."),
    ] = False,
    db: Annotated[
        str,
        typer.Option(
            envvar="LEDGER_DB",
            metavar="PATH|URL",
            help="SQLite file path, or a postgresql:// URL (add ?schema=NAME for a schema).",
        ),
    ] = "ledger.db",
    actor: Annotated[
        str | None,
        typer.Option(
            envvar="LEDGER_ACTOR",
            metavar="ROLE:CODE",
            help="Who issues writes: allocator:Q71, practice:A81001, consortium:16C/Name, "
            "auditor:NAME, service:NAME.",
        ),
    ] = None,
    command_id: Annotated[
        str | None,
        typer.Option(metavar="ID",
                     help="Idempotency key: the same id twice records once. 1 to 128 of "
                     "A-Z a-z 0-9 . _ - : / # @ + =; an empty or blank id is refused."),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(envvar="LEDGER_SERVER", metavar="URL",
                     help="Be a client of the ledger service at this "
                     "URL (https://ledger.example.org): no database access needed; the "
                     "token's actor acts, so --actor is refused."),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="LEDGER_TOKEN", metavar="TOKEN",
                     help="Bearer token for --server (ledger token "
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
    source = ctx.get_parameter_source("db")  # DEFAULT: neither --db nor LEDGER_DB given
    ctx.obj = CliState(db=db, actor=actor, command_id=command_id, server=server, token=token,
                       db_by_default=source is not None and source.name == "DEFAULT")


# --- sub-commands ----------------------------------------------------------------------


class CommandModule(Protocol):
    """A module of commands: it adds them (a sub-app per noun, or single commands)."""

    def add_commands(self, parent: typer.Typer) -> None: ...


# Every command module, each adding its commands in this order (`ledger --help` lists the
# single commands in it, then the sub-apps). A new module goes here and nowhere else.
COMMAND_MODULES: tuple[CommandModule, ...] = (
    practice, consortium, budget, spend, token, apply, demo,  # writes
    audit, reads, joint,  # audit and reads
    serve, witness, keys, report, project, schema,  # the service, evidence, contract
)
for module in COMMAND_MODULES:
    module.add_commands(app)
use_ledger_command(app)


def main() -> None:
    """The `ledger` entry point: sub-commands are built only when used (commands/lazy.py)."""
    from commands.lazy import command  # noqa: PLC0415 - only the entry point needs it

    command(app)()
