"""The one path every write command takes: parse, one call into the application, render."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from commands import render
from commands.errors import handled
from commands.state import CliState
from ledger.domain.errors import InvalidInput


def state_of(ctx: typer.Context) -> CliState:
    state = ctx.find_object(CliState)
    if state is None:  # a sub-app run on its own, without the global options
        state = CliState(db="ledger.db", actor=None, command_id=None)
        ctx.obj = state
    return state


def pairs(option: str, items: list[str] | None) -> dict[str, str]:
    """`--weighted acute=4100` options as {"acute": "4100"}."""
    from ledger.domain.values import shown  # noqa: PLC0415 - fast --help

    result: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InvalidInput(option.lstrip("-"),
                               f"write {option} NAME=VALUE, not {shown(item)}")
        if key.strip() in result:  # the first value would be lost without a word
            raise InvalidInput(option.lstrip("-"),
                               f"{option} {shown(key.strip())} is given twice: give it once")
        result[key.strip()] = value.strip()
    return result


Args = dict[str, Any] | Callable[[], dict[str, Any]]


def write(ctx: typer.Context, name: str, args: Args) -> None:
    """Build the command `name` from its arguments, execute it, print the answer.

    The arguments use the same names as a `ledger apply` line, so both routes
    give the same command (and the same idempotency fingerprint). `args` may be a
    function, when building them can itself fail on bad input.
    """
    state = state_of(ctx)
    with handled(state):
        from ledger.application.commands import build_command  # noqa: PLC0415 - fast --help

        given = args() if callable(args) else args
        present = {k: v for k, v in given.items() if v is not None}
        command = build_command(name, present)
        if state.server:
            render.answer(state.client().execute(name, present, state.command_id))
            return
        actor = state.require_actor()
        render.answer(state.ledger().service.execute(command, actor, state.command_id))
