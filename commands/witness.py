"""`ledger witness`: make a witness key, run a C2SP tlog-witness for ledgers' logs.

A witness runs on another machine from the ledger and needs no database: only its
key file and a state directory. Starlette and uvicorn are imported inside `serve`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from commands import render
from commands.errors import handled
from commands.options import path, whole_number

if TYPE_CHECKING:
    from ledger.audit.note import Verifier

app = typer.Typer(
    name="witness",
    help="Run a witness: an independent party that cosigns a ledger's checkpoints only "
    "while its log only grows.",
    no_args_is_help=True,
)

EPILOG = (
    "Examples:\n\n"
    "ledger witness keygen --name witness.example.org/w1 --key witness.key\n\n"
    "ledger witness serve --key witness.key --state witness-state --log "
    "'commissioning-ledger/4f0c…=commissioning-ledger/4f0c…+1a2b3c4d+AUt…' --port 7380"
)

KeyFile = Annotated[
    Path, typer.Option("--key", metavar="FILE", help="The witness's private key file (mode 0600).",
                       parser=path("--key", "the witness's key file", dir_okay=False))
]


@app.command("keygen", epilog=EPILOG)
def keygen(
    name: Annotated[
        str, typer.Option("--name", metavar="HOST/PATH",
                          help="The witness's name, a schema-less URL you control.")
    ],
    key: KeyFile,
) -> None:
    """Create the witness key file (never overwritten) and print its public verifier key."""
    with handled():
        from ledger.witness.keys import create_witness_key  # noqa: PLC0415 - fast --help

        render.out.print(create_witness_key(key, name).verifier.vkey, markup=False)


@app.command("key", epilog="Examples:\n\nledger witness key --key witness.key")
def show_key(key: KeyFile) -> None:
    """Print the witness's public verifier key (give it to the ledgers and their auditors)."""
    with handled():
        from ledger.witness.keys import load_witness_key  # noqa: PLC0415 - fast --help

        render.out.print(load_witness_key(key).verifier.vkey, markup=False)


@app.command("serve", epilog=EPILOG)
def serve(
    key: KeyFile,
    state: Annotated[
        Path, typer.Option("--state", metavar="DIR",
                           help="Directory of the witness's state (one file per "
                                           "log); created if absent.",
                           parser=path("--state", "the witness's state folder",
                                       file_okay=False))
    ],
    log: Annotated[
        list[str],
        typer.Option("--log", metavar="ORIGIN=VERIFIER_KEY",
                     help="A log to witness and its public key (`ledger checkpoint "
                          "--public-key`); repeat per log, or per key of a log."),
    ],
    host: Annotated[str, typer.Option("--host", metavar="ADDRESS",
                                      help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", metavar="PORT",
                                      parser=whole_number("--port", 1, 65535),
                                      help="Port to listen on, 1 to 65535.")] = 7380,
) -> None:
    """Serve `POST /add-checkpoint` (c2sp.org/tlog-witness) until stopped."""
    with handled():
        import time  # noqa: PLC0415

        import uvicorn  # noqa: PLC0415 - fast --help

        from ledger.witness.app import create_witness_app  # noqa: PLC0415
        from ledger.witness.keys import load_witness_key  # noqa: PLC0415
        from ledger.witness.state import StateDir, Witness  # noqa: PLC0415

        signer = load_witness_key(key)
        logs = parse_logs(log)
        witness = Witness(signer, logs, StateDir(state), lambda: int(time.time()))
        render.err.print(
            f"witness {signer.verifier.vkey} on http://{host}:{port}, following "
            f"{len(logs)} log(s)", markup=False,
        )
    uvicorn.run(create_witness_app(witness), host=host, port=port, log_level="warning")


def parse_logs(items: list[str]) -> dict[str, list[Verifier]]:
    """`ORIGIN=KEY` (or the bare key, whose name is the origin) as origin -> keys."""
    from ledger.audit.note import NoteError, parse_verifier_key  # noqa: PLC0415
    from ledger.domain.errors import InvalidInput  # noqa: PLC0415

    logs: dict[str, list[Verifier]] = {}
    for item in items:
        origin, sep, text = item.partition("=")
        if not sep or "+" in origin:
            origin, text = "", item
        try:
            verifier = parse_verifier_key(text)
        except NoteError as error:
            raise InvalidInput("log", f"--log {item[:60]!r}: {error}") from error
        if origin and verifier.name != origin:
            raise InvalidInput("log", f"the key for {origin!r} is named {verifier.name!r}")
        logs.setdefault(verifier.name, []).append(verifier)
    return logs


def add_commands(parent: typer.Typer) -> None:
    """Add `ledger witness …` to the `ledger` app."""
    parent.add_typer(app)
