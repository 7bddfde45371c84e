"""`ledger token`: bearer tokens for the ledger service (`ledger serve`).

Each token acts as one actor. Only the allocator grants and revokes them
(`--actor allocator:Q71`); the very first token, the allocator's own, is made
with `--bootstrap` by whoever has direct access to the store, and only while no
token exists.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from commands import render
from commands.errors import handled
from commands.reads import FormatOption
from commands.reads_render import Format, rows
from commands.run import state_of

app = typer.Typer(
    name="token", help="Bearer tokens for the ledger service: create, list, revoke.",
    no_args_is_help=True,
)


@app.command(
    "create",
    epilog="Examples:\n\n"
    "ledger token create --actor allocator:Q71 --bootstrap   (the first token only)\n\n"
    "ledger --actor allocator:Q71 token create --actor consortium:16C --name 'finance team' "
    "--expires 2099-03-31",
)
def create(
    ctx: typer.Context,
    *,
    actor: Annotated[str, typer.Option(
        "--actor", metavar="ROLE:CODE",
        help="Who the token acts as: allocator:Q71, practice:A81001, "
        "consortium:16C/Name, auditor:NAME or service:NAME (read-only). A practice must be "
        "registered, a consortium formed, first.")],
    name: Annotated[str | None, typer.Option(
        "--name", metavar="LABEL", help="What the token is for (shown by token list).")] = None,
    expires: Annotated[str | None, typer.Option(
        "--expires", metavar="DATE|INSTANT",
        help="When it stops working: a date means the end of that day, UTC (--expires "
        "2099-03-31 works through 31 March and expires at 00:00 UTC on 1 April); an "
        "instant written with its zone is exact, to the microsecond at most "
        "(2099-03-31T17:00:00Z or 2099-03-31T18:00:00+01:00; a time without a zone is "
        "refused, a finer one is refused, not cut).",
    )] = None,
    read_only: Annotated[bool, typer.Option(
        "--read-only", help="Reads only (always so for auditor and service).")] = False,
    bootstrap: Annotated[bool, typer.Option(
        "--bootstrap", help="The first token of the ledger, the allocator's: allowed only "
        "while no token exists, with direct access to the store.")] = False,
) -> None:
    """Create a token and print its secret once: it is stored only as a SHA-256 digest."""
    state = state_of(ctx)
    with handled(state):
        from ledger.application.access import new_token  # noqa: PLC0415 - fast --help
        from ledger.application.commands import build_command  # noqa: PLC0415
        from ledger.domain.errors import InvalidInput  # noqa: PLC0415

        if state.server and bootstrap:
            raise InvalidInput("token-bootstrap", "--bootstrap needs direct access to the "
                               "store (--db), not --server")
        if state.server:
            answer, token_id, secret = state.client().create_token(
                {"actor": actor, "name": name, "expires": expires, "read_only": read_only},
                state.command_id)
            render.answer(answer)
            if token_id and secret:
                render.token_secret(token_id, secret)
            return
        token = new_token()
        command = build_command("token create", {
            "actor": actor, "label": name, "expires": expires, "read_only": read_only,
            "bootstrap": bootstrap, "token_id": token.token_id,
            "secret_sha256": token.digest,
        })
        issuer = state.actor or (actor if bootstrap else None) or state.require_actor()
        answer = state.ledger().service.execute(command, issuer, state.command_id)
        render.answer(answer)
        if not answer.already_applied:
            render.token_secret(token.token_id, token.secret)


@app.command("list", epilog="Examples:\n\nledger token list --format json")
def list_(ctx: typer.Context, fmt: FormatOption = Format.table) -> None:
    """Every token ever granted: id, actor, status, who granted it and when (no secrets)."""
    state = state_of(ctx)
    with handled(state):
        from projections.access import load_register, token_rows  # noqa: PLC0415

        store = state.existing().store
        store.ensure_readable()  # a newer version's event stops this read as every other
        found = token_rows(load_register(store), datetime.now(UTC))
        rows(found, fmt, title="Tokens", empty="none granted yet")


@app.command("revoke", epilog="Examples:\n\nledger --actor allocator:Q71 token revoke 3f9a0c12be47")
def revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="The token's id (token list).")],
) -> None:
    """Stop a token at once: the service refuses it from its next request."""
    from commands.run import write  # noqa: PLC0415

    write(ctx, "token revoke", {"token_id": token_id})


def add_commands(parent: typer.Typer) -> None:
    """Add `ledger token …` to the `ledger` app."""
    parent.add_typer(app)
