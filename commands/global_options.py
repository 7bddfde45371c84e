"""Global options anywhere on the command line, with one meaning.

`--db`, `--actor` and `--command-id` belong to the `ledger` command itself, but
people append them where they think of them: `ledger spend commit A81001 …
--command-id c-1`. `LedgerGroup` (the `ledger` command's class) moves every
global option it finds after the command words to the front before anything is
parsed, so both places mean the same.

The walk follows the command tree, so it knows which options of the command
take a value: in `--reason --db` the `--db` is the reason, not an option, and
`budget adjust --by -5000` keeps its negative amount. Nothing after `--` is
touched. An option of the command that shares a global option's name keeps
its own meaning there. A global option given twice with different values is a
usage error (exit 2); the same value twice is accepted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import typer
from typer.core import TyperGroup

# Typer's click objects are used through their public attributes only (`params`,
# `opts`, `is_flag`, `get_command`, `Context.fail`), so this works whether Typer
# ships its own copy of click or uses the package.


def _value_options(params: Iterable[Any]) -> dict[str, int]:
    """Option name -> how many values follow it (0 for flags)."""
    found: dict[str, int] = {}
    for param in params:
        if getattr(param, "param_type_name", "") != "option":
            continue
        takes = 0 if param.is_flag or param.count else max(param.nargs, 1)
        for name in [*param.opts, *param.secondary_opts]:
            found[name] = takes
    return found


@dataclass
class _Hoisted:
    """The global options taken out of the argument list, in the order given."""

    given: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, value: str) -> None:
        self.given.setdefault(name, []).append(value)

    def front(self, ctx: Any) -> list[str]:
        args: list[str] = []
        for name, values in self.given.items():
            distinct = list(dict.fromkeys(values))
            if len(distinct) > 1:
                shown = " and ".join(repr(v) for v in distinct)
                ctx.fail(f"{name} given twice with different values: {shown}")
            args += [name, distinct[0]]
        return args


def hoist(group: Any, ctx: Any, args: list[str]) -> list[str]:
    """`args` with the group's own value options moved to the front, each once."""
    globals_ = {n: k for n, k in _value_options(group.params).items() if k == 1}
    hoisted = _Hoisted()
    kept: list[str] = []
    command: Any = group
    local = _value_options(group.params)
    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if word == "--":
            kept += args[i - 1:]
            break
        name, eq, value = word.partition("=")
        if word.startswith("--") and name in globals_ and (command is group or name not in local):
            if eq:
                if name == "--actor":
                    _check_split_actor(group, ctx, value, args[i:i + 1])
                hoisted.add(name, value)
            elif i < len(args):
                if name == "--actor":
                    _check_split_actor(group, ctx, args[i], args[i + 1:i + 2])
                hoisted.add(name, args[i])
                i += 1
            else:
                ctx.fail(f"Option '{name}' requires an argument.")
            continue
        kept.append(word)
        if word.startswith("-") and len(word) > 1:
            takes = 0 if eq else local.get(word, 0)
            kept += args[i:i + takes]
            i += takes
        elif hasattr(command, "get_command"):
            # A command word: go down the tree and learn that command's options.
            command = command.get_command(ctx, word)
            if command is None:  # unknown: click reports it
                kept += args[i:]
                break
            local = _value_options(command.params)
    return hoisted.front(ctx) + kept


_ROLES = ("allocator", "practice", "consortium", "auditor", "service")


def _check_split_actor(group: Any, ctx: Any, value: str, after: list[str]) -> None:
    """`--actor practice A81001`, the role and code written with a space, would leave the
    code to be read as a command word ("No such command 'A81001'"): say how to write it."""
    if value.strip().lower() not in _ROLES:
        return
    example = f"{value.strip()}:{after[0]}" if after and group.get_command(
        ctx, after[0]) is None and not after[0].startswith("-") else "practice:A81001"
    ctx.fail(f"--actor takes ROLE:CODE, joined by a colon: write --actor {example}")


class LedgerGroup(TyperGroup):
    """The `ledger` command: global options before or after the command words."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        with _printable_usage_errors():
            return super().parse_args(ctx, hoist(self, ctx, list(args)))

    def invoke(self, ctx: Any) -> Any:
        with _printable_usage_errors():
            return super().invoke(ctx)


# Click's base error class, reached through the public `typer.BadParameter`.
_CLICK_ERROR: type[Exception] = next(
    cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException")


@contextmanager
def _printable_usage_errors() -> Iterator[None]:
    """Usage errors quote what was typed (an unknown option, a bad value); Python's
    repr leaves invisible marks such as U+034F as they are, so they are escaped here
    like stored text, and nothing unprintable reaches the terminal. A value typer
    refused through pydantic (a choice such as --format) is told in typer's own words,
    without pydantic's "Value error," before them."""
    try:
        yield
    except _CLICK_ERROR as error:
        from ledger.domain.characters import escaped  # noqa: PLC0415 - errors only

        message = _refusal(error.__cause__)
        if message is None:
            message = getattr(error, "message", None)
        if isinstance(message, str):
            error.message = escaped(message)  # type: ignore[attr-defined]
        raise


def _refusal(cause: BaseException | None) -> str | None:
    """The message of the ValueError behind a pydantic ValidationError that typer turned
    into a usage error (a value not among an option's choices), or None."""
    if cause is None:
        return None
    from pydantic import ValidationError  # noqa: PLC0415 - only for an error with a cause

    if not isinstance(cause, ValidationError) or not cause.errors():
        return None
    refused = cause.errors()[0].get("ctx", {}).get("error")
    return str(refused) if isinstance(refused, ValueError) else None
