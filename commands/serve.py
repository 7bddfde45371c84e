"""`ledger serve`: the read API for other services (projections/api.py) under uvicorn.

FastAPI and uvicorn are imported inside the command, so `ledger --help` stays fast.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from typing import Annotated

import typer

from commands.errors import handled
from commands.options import whole_number
from commands.run import state_of
from ledger.domain.errors import InvalidInput

# Workers are separate processes: each builds the app from these.
APP_FACTORY = "projections.api:app_from_environment"
ENV_DB = "LEDGER_SERVE_DB"
ENV_PROJECTED = "LEDGER_SERVE_PROJECTED"
ENV_ONE_BY_ONE = "LEDGER_SERVE_ONE_BY_ONE"

EPILOG = (
    "Ask it with a token (ledger token create --help): curl -H 'Authorization: Bearer "
    "<token>' 'http://127.0.0.1:8000/holders?practice=A81001&as_of=2024-09-01'. The "
    "OpenAPI schema is at /openapi.json, its pages at /docs.\n\n"
    "Examples:\n\n"
    "ledger --db ledger.db serve --port 8000\n\n"
    "ledger --db \"$URL\" serve --projected --workers 4 --host 10.0.0.5 --port 8000"
)


def serve(  # noqa: PLR0917 - one parameter per CLI option
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", metavar="ADDRESS",
                                      help="Address to listen on; beyond loopback "
                                      "only once a token exists.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", metavar="PORT",
                                      parser=whole_number("--port", 1, 65535),
                                      help="Port to listen on, 1 to 65535.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", metavar="N",
                                         parser=whole_number("--workers", 1, 64),
                                         help="Worker processes, 1 to 64 "
                                         "(each with its own connections).")] = 1,
    projected: Annotated[bool, typer.Option("--projected", help="Reads answer from the "
                                            "projections as `ledger project --follow` keeps "
                                            "them and never write; /ready reports the lag."
                                            )] = False,
    group_commit: Annotated[bool, typer.Option(
        "--group-commit/--no-group-commit",
        help="Commit writes that arrive together in one transaction (each command still "
             "its own atomic, idempotent unit, refused alone); --no-group-commit commits "
             "each in its own.")] = True,
) -> None:
    """Serve the ledger over HTTP to holders of a token: reads, writes, the live feed, as
    JSON with the fields of `--format json`. Stop with Ctrl-C. Put it behind a reverse
    proxy that terminates TLS when it is reached beyond this machine."""
    state = state_of(ctx)
    with handled(state):
        import uvicorn  # noqa: PLC0415 - fast --help

        if not _loopback(host):
            from projections.access import Gatekeeper  # noqa: PLC0415 - fast --help

            if not Gatekeeper().any_granted(state.ledger().store):
                raise InvalidInput(
                    "host", f"refusing to listen on {host}, beyond this machine, while no "
                    "token exists: grant one first (ledger token create --bootstrap)")
        _can_listen(host, port)
        # An IPv6 address may be written as in a URL, [::1]: the server takes it bare.
        host = host.strip("[]")
        state.close()
        os.environ[ENV_DB] = state.db
        os.environ[ENV_PROJECTED] = "1" if projected else ""
        os.environ[ENV_ONE_BY_ONE] = "" if group_commit else "1"
        uvicorn.run(APP_FACTORY, factory=True, host=host, port=port, workers=workers,
                    log_level="info", proxy_headers=True)


def _can_listen(host: str, port: int) -> None:
    """InvalidInput (exit 2, rule `port`) when `host`:`port` cannot be listened on (another
    process listens there, or a port below 1024 without the right; rule `host` for a name
    that resolves to no address, or an address no interface of this machine has): said in
    one line before the service starts, rather than by the server's log after it has."""
    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        try:
            probe.bind((address, port))
        except socket.gaierror as unknown:
            raise InvalidInput("host", f"cannot listen on {host}: {unknown.strerror or unknown}"
                               "; give another --host") from None
        except OSError as refused:
            if refused.errno == errno.EADDRNOTAVAIL:  # no interface of this machine has it
                raise InvalidInput("host", f"cannot listen on {host}: "
                                   f"{refused.strerror or refused}: no network interface of "
                                   "this machine has that address; give another --host"
                                   ) from None
            raise InvalidInput("port", f"cannot listen on {host} port {port}: "
                               f"{refused.strerror or refused}; give another --port"
                               ) from None


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def add_commands(parent: typer.Typer) -> None:
    """Add `ledger serve` to the `ledger` app."""
    parent.command("serve", epilog=EPILOG)(serve)
