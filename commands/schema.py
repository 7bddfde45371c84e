"""`ledger schema`: every event's JSON Schema, exactly as the feed serves events."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from commands import options, render
from commands.errors import handled

EPILOG = (
    "Examples:\n\n"
    "ledger schema > events.schema.json\n\n"
    "ledger schema --out schemas/   (one file a type: schemas/SpendCommitted.v1.json)"
)


def schema(
    out: Annotated[Path | None, typer.Option(
        "--out", metavar="DIR",
        parser=options.path("--out", "the folder to write in", file_okay=False),
        help="Write one file per event type and version into DIR (created if missing).",
    )] = None,
) -> None:
    """Print (or write) each event type's JSON Schema as a row of `ledger events` and the
    service's feed: position, event, schema_version, stream, version, then its fields."""
    with handled():
        import orjson  # noqa: PLC0415 - fast --help

        from projections.contract import feed_event_schemas  # noqa: PLC0415

        schemas = feed_event_schemas()
        if out is None:
            render.raw(orjson.dumps(schemas, option=orjson.OPT_INDENT_2).decode())
            return
        from commands.outputs import writing  # noqa: PLC0415

        with writing(out):
            out.mkdir(parents=True, exist_ok=True)
        for name, body in schemas.items():
            with writing(out / f"{name}.json"):
                (out / f"{name}.json").write_bytes(
                    orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n")
        render.done(f"wrote {len(schemas)} event schemas to {out}")


def add_commands(parent: typer.Typer) -> None:
    """Add `ledger schema` to the `ledger` app."""
    parent.command("schema", epilog=EPILOG)(schema)
