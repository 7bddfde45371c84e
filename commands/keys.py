"""`ledger key`: the log's signing keys over time (list, rotate, retire a compromised one)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from commands import render
from commands.audit import audit_handled
from commands.run import state_of

app = typer.Typer(name="key", help="The log's signing keys: list, rotate, retire.",
                  no_args_is_help=True)


@app.command("list", epilog="Examples:\n\nledger key list")
def list_keys(ctx: typer.Context) -> None:
    """Every key the log has signed with: ID, verifier key, valid from/until, retired."""
    state = state_of(ctx)
    with audit_handled(state):
        from ledger.audit.note import format_time  # noqa: PLC0415
        from ledger.auditlog.rotation import key_ring  # noqa: PLC0415

        store = state.existing().store
        store.ensure_readable()  # a newer version's event stops this read as every other
        for key in key_ring(store, create=True).keys:
            since = format_time(key.valid_from) if key.valid_from else "the start"
            until = format_time(key.valid_until) if key.valid_until else "now"
            retired = f", RETIRED {format_time(key.retired_at)}" if key.retired_at else ""
            render.out.print(f"{key.key_id}  {since} .. {until}{retired}  "
                             f"{key.verifier.vkey}", markup=False)


@app.command(
    "rotate",
    epilog="Examples:\n\nledger key rotate   (then restart witnesses with a --log for the new "
    "key)",
)
def rotate(ctx: typer.Context) -> None:
    """Sign from now on with a new key; the old public key stays valid for what it signed."""
    state = state_of(ctx)
    with audit_handled(state):
        from ledger.auditlog.rotation import rotate_key  # noqa: PLC0415

        rotated = rotate_key(state.existing().store, datetime.now(UTC))
        render.out.print(rotated.new.verifier.vkey, markup=False)
        render.err.print(
            f"rotated: key {rotated.old.key_id} signs no more; key {rotated.new.key_id} signs "
            "from now on. Give witnesses and auditors the new public key above; destroy the "
            "old private key file (*.old) once nothing needs it.", markup=False,
        )


@app.command(
    "retire", epilog="Examples:\n\nledger key list\n\nledger key retire 0f2f0ae3"
)
def retire(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key's 8-hex-digit ID.")],
) -> None:
    """Declare a (rotated-out) key compromised: checkpoints it signs after now are refused."""
    state = state_of(ctx)
    with audit_handled(state):
        from ledger.audit.note import format_time  # noqa: PLC0415
        from ledger.auditlog.rotation import retire_key  # noqa: PLC0415

        key = retire_key(state.existing().store, key_id, datetime.now(UTC))
        assert key.retired_at is not None
        render.out.print(f"retired: key {key.key_id} from {format_time(key.retired_at)}",
                         markup=False)


def add_commands(parent: typer.Typer) -> None:
    """Add `ledger key …` to the `ledger` app."""
    parent.add_typer(app)
