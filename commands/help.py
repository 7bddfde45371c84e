"""How a sub-command's help shows its arguments: by name and what they take, not by type.

Typer writes an argument's Python type beside its name (`practice <str>`, `codes...
<list[str]>`), which tells a reader nothing the name and help do not. Every command is
registered through `commands.app` (COMMAND_MODULES), which gives each this class, so
the lazy build and Typer's own build show the same help.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand
from typer.models import CommandInfo

Click = Any  # typer's vendored click types are private; duck-typed here


class LedgerCommand(TyperCommand):
    """A sub-command whose Arguments section names each argument without its type."""

    def format_options(self, ctx: Click, formatter: Click) -> None:
        arguments: list[tuple[str, str]] = []
        options: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((_untyped(param, ctx, record[0]), record[1]))
            elif param.param_type_name == "option":
                options.append(record)
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        if options:
            with formatter.section("Options"):
                formatter.write_dl(options)


def _untyped(param: Click, ctx: Click, shown: str) -> str:
    """`practice <str>` as `practice`: the name column without the type Typer appends."""
    typed = param.display_type_rich(ctx)
    suffix = f" {typed}"
    return shown[: -len(suffix)] if typed and shown.endswith(suffix) else shown


def use_ledger_command(app: typer.Typer) -> None:
    """Give every command registered on `app`, and on its sub-apps, LedgerCommand."""
    for info in app.registered_commands:
        _give(info)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            use_ledger_command(group.typer_instance)


def _give(info: CommandInfo) -> None:
    if info.cls in (None, TyperCommand):  # Typer's default; a command's own class is kept
        info.cls = LedgerCommand
