"""`ledger serve`: the read API for other services (projections/api.py) under uvicorn.

FastAPI and uvicorn are imported inside the command, so `ledger --help` stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from commands.run import state_of

EPILOG = (
    "Examples:\n\n"
    "ledger --db ledger.db serve --port 8000\n\n"
    "curl 'http://127.0.0.1:8000/holders?practice=A81001&as_of=2024-09-01'\n\n"
    "curl 'http://127.0.0.1:8000/events?after=1200&limit=500'\n\n"
    "The OpenAPI schema is at /openapi.json, its pages at /docs."
)


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on."
                                      )] = 8000,
) -> None:
    """Serve the read API (holders, trail, position, pools, quality, variation, events) over
    HTTP, read-only, as JSON with the fields of `--format json`. Stop with Ctrl-C."""
    import uvicorn  # noqa: PLC0415 - fast --help

    from projections.api import create_app  # noqa: PLC0415 - fast --help

    uvicorn.run(create_app(state_of(ctx).db), host=host, port=port, log_level="info")
