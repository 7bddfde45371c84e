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

Typer coerces each parameter's value through a pydantic TypeAdapter, built for
the parameter's first value even when that needs none: an option not given
(None), or text for a text option, which its adapter gives back as it is. The
first adapter imports pydantic, so `ledger holders --help` loaded it for the
default of `--db`. Here an adapter is built only for a value that needs one.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import typer
import typer.main
from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
from typer._param_types import coerce_cli_choice
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption
from typer.models import CommandInfo, TyperInfo

Click = Any  # typer's vendored click types are private; commands are duck-typed here


def _name_of(info: CommandInfo | TyperInfo) -> str:
    if isinstance(info, CommandInfo):
        assert info.callback is not None, "a command needs a function"
        return info.name or typer.main.get_command_name(info.callback.__name__)
    name = typer.main.solve_typer_info_defaults(info).name
    assert name, "a sub-app needs a name"
    return str(name)


@dataclass(frozen=True)
class Coercion(RuntimeParam):
    """A parameter's coercion: Typer's own, built when a value first needs it. Text
    (`str`, `list[str]`) already text is taken as given, and a choice of an Enum is
    matched by the function Typer's adapter calls: what Typer's gives, without the
    adapter; a value Typer's coercion refuses still goes to it, for its message."""

    descriptor: TypeDescriptor

    @functools.cached_property
    def typers(self) -> RuntimeParam:
        return build_runtime_param(self.descriptor)

    @functools.cached_property
    def members(self) -> tuple[Enum, ...]:
        """The choices of an option of an Enum type (none for any other type)."""
        annotation = self.descriptor.annotation
        is_enum = isinstance(annotation, type) and issubclass(annotation, Enum)
        return tuple(annotation) if is_enum and not self.descriptor.is_list else ()

    @functools.cached_property
    def text(self) -> bool:
        descriptor = self.descriptor
        return (descriptor.file_annotation is None and descriptor.parameter_info.parser is None
                and (descriptor.annotation is str or descriptor.annotation == list[str]))

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        if self.members:
            with contextlib.suppress(ValueError):  # refused: Typer's coercion says how
                return coerce_cli_choice(value, choices=self.members,
                                         case_sensitive=self.descriptor.case_sensitive, ctx=ctx)
        if self.text:
            if not self.descriptor.is_list:
                if type(value) is str:
                    return value
            elif isinstance(value, list | tuple) and all(type(item) is str for item in value):
                return list(value)
        return self.typers._coerce_value(value, param=param, ctx=ctx)


def coerce_on_first_use(command: Click, ctx: Click) -> None:
    """Give `command`'s parameters, its help option and those of the commands of a group
    Typer built, a Coercion each: no TypeAdapter for an option not given or given as text.
    `ctx` is a context for `command`, as it is invoked (its help option's names)."""
    help_option = command.get_help_option(ctx)  # made now rather than when parsing; kept
    for param in [*command.params, *([help_option] if help_option else [])]:
        if isinstance(param, TyperArgument | TyperOption):
            # Where Typer keeps a parameter's coercion, built on first use when unset.
            param._runtime_param = Coercion(
                parameter_info=param.type_descriptor.parameter_info,
                annotation=param.type_descriptor.annotation,
                descriptor=param.type_descriptor)
    if isinstance(command, TyperGroup) and not isinstance(command, LazyGroup):
        for name, sub in command.commands.items():
            coerce_on_first_use(sub, context_for(sub, name, ctx))


def context_for(command: Click, name: str, parent: Click | None) -> Click:
    """A context for `command` as invoking it makes one, without parsing anything."""
    return command.context_class(command, info_name=name, parent=parent,
                                 **command.context_settings)


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
        self.coerced: set[str] = set()

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

    def get_command(self, ctx: Click, cmd_name: str) -> Click | None:
        if self.listing and cmd_name in self.on_demand.pending:
            return self.stand_in(cmd_name)
        found = self.on_demand.get(cmd_name)
        if found is not None and cmd_name not in self.coerced:
            coerce_on_first_use(found, context_for(found, cmd_name, ctx))
            self.coerced.add(cmd_name)
        return found

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
    coerce_on_first_use(group, context_for(group, str(group.name), None))
    return group
