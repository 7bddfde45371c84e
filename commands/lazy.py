"""Sub-commands built only when they are used, so `ledger` starts fast.

Typer turns every registered command into a click command (reading each
signature and evaluating its annotations) before it runs any one of them; with
three dozen commands that was most of the start-up time of `ledger --help`.

`command(app)` gives the app's global options at once and builds a sub-command
(or a sub-app such as `practice`) only when it is invoked or its own help is
shown. The top-level help lists the sub-commands from their names and help
texts alone. Commands are registered on the Typer app exactly as before; tests
that drive the app through `typer.testing.CliRunner` get Typer's own eager
build, and the two are checked to give the same help.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterator, MutableMapping
from typing import Any

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup
from typer.models import CommandInfo, TyperInfo

Click = Any  # typer's vendored click types are private; commands are duck-typed here


def _name_of(info: CommandInfo | TyperInfo) -> str:
    if isinstance(info, CommandInfo):
        assert info.callback is not None, "a command needs a function"
        return info.name or typer.main.get_command_name(info.callback.__name__)
    name = typer.main.solve_typer_info_defaults(info).name
    assert name, "a sub-app needs a name"
    return str(name)


class _OnDemand(MutableMapping[str, Click]):
    """Sub-commands by name; a registered one is built on first lookup, then kept."""

    def __init__(self, group: LazyGroup) -> None:
        self.group = group
        self.built: dict[str, Click] = {}
        self.pending: dict[str, CommandInfo | TyperInfo] = {}

    def __getitem__(self, name: str) -> Click:
        if name not in self.built:
            self.built[name] = self.group.build(self.pending.pop(name))
        return self.built[name]

    def __setitem__(self, name: str, command: Click) -> None:
        self.pending.pop(name, None)
        self.built[name] = command

    def __delitem__(self, name: str) -> None:
        self.pending.pop(name, None)
        self.built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        yield from self.built
        yield from self.pending

    def __len__(self) -> int:
        return len(self.built) + len(self.pending)


class LazyGroup(TyperGroup):
    """A Typer group whose sub-commands are built from their registrations on demand."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.on_demand = _OnDemand(self)
        self.on_demand.built.update(self.commands)
        self.commands = self.on_demand
        self.source = typer.Typer()
        self.listing = False

    def defer(self, source: typer.Typer) -> None:
        """Take the commands and sub-apps registered on `source`, to build when used."""
        self.source = source
        infos: list[CommandInfo | TyperInfo] = [*source.registered_commands]
        infos += source.registered_groups
        for info in infos:
            self.on_demand.pending[_name_of(info)] = info

    def build(self, info: CommandInfo | TyperInfo) -> Click:
        """The click command Typer would have built for this registration."""
        one = typer.Typer(
            add_completion=False,
            rich_markup_mode=self.rich_markup_mode,
            pretty_exceptions_short=self.source.pretty_exceptions_short,
        )
        if isinstance(info, CommandInfo):
            one.registered_commands.append(info)
        else:
            one.registered_groups.append(info)
        return typer.main.get_group(one).commands[_name_of(info)]

    def stand_in(self, name: str) -> Click:
        """What a help listing needs of a sub-command: its name and help texts."""
        info = self.on_demand.pending[name]
        if isinstance(info, CommandInfo):
            text = info.help
            text = inspect.getdoc(info.callback) if text is None else inspect.cleandoc(text)
            return TyperCommand(name, help=text, short_help=info.short_help,
                                hidden=info.hidden, deprecated=info.deprecated,
                                rich_markup_mode=self.rich_markup_mode,
                                rich_help_panel=info.rich_help_panel)
        solved = typer.main.solve_typer_info_defaults(info)
        return TyperCommand(name, help=solved.help, short_help=solved.short_help,
                            hidden=bool(solved.hidden), deprecated=bool(solved.deprecated),
                            rich_markup_mode=self.rich_markup_mode,
                            rich_help_panel=solved.rich_help_panel)

    def list_commands(self, ctx: Click) -> list[str]:  # noqa: ARG002 - click's signature
        return list(self.on_demand)

    def get_command(self, ctx: Click, cmd_name: str) -> Click | None:  # noqa: ARG002
        if self.listing and cmd_name in self.on_demand.pending:
            return self.stand_in(cmd_name)
        return self.on_demand.get(cmd_name)

    def format_help(self, ctx: Click, formatter: Click) -> None:
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False


def command(app: typer.Typer) -> Click:
    """The click command for `app`: its global options now, its sub-commands on use."""
    shell = copy.copy(app)
    shell.registered_commands = []
    shell.registered_groups = []
    shell.info = copy.copy(app.info)
    base = app.info.cls
    if isinstance(base, type) and issubclass(base, TyperGroup) and base is not TyperGroup:
        # The app's own group class keeps its behaviour; sub-commands come on demand.
        shell.info.cls = type(f"Lazy{base.__name__}", (LazyGroup, base), {})
    else:
        shell.info.cls = LazyGroup
    group = typer.main.get_command(shell)
    assert isinstance(group, LazyGroup)
    group.defer(app)
    return group
