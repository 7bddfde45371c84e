"""`ledger apply`: a JSON-lines file of commands, each atomic and idempotent."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from commands import options, render
from commands.errors import EXIT_INTERRUPTED, EXIT_REFUSED, exit_code, handled
from commands.run import state_of

DEFAULT_BATCH = 2_000


def read_lines(path: Path) -> list[str]:
    """The file's lines; a file that cannot be read at all is a usage error (exit 2)."""
    from ledger.application.files import read_text  # noqa: PLC0415 - fast --help

    # Only newlines end a line: JSON strings may hold other line separators. A byte-order
    # mark before the first line (as some editors save) is read as nothing.
    return read_text(path, encoding="utf-8-sig").split("\n")


def apply(
    ctx: typer.Context,
    file: options.JsonLinesFile,
    stop_on_error: Annotated[
        bool,
        typer.Option("--stop-on-error", help="Stop at the first refused line."),
    ] = False,
    batch_size: Annotated[
        int,
        typer.Option("--batch-size", metavar="LINES",
                     parser=options.whole_number("--batch-size", 1, 100_000),
                     help="Lines per transaction, 1 to 100000 (each keeps its own id)."),
    ] = DEFAULT_BATCH,
) -> None:
    """Apply a file of commands, one JSON object a line, each with its command_id.

    A line is {"command": "spend commit", "command_id": "c-17", "actor":
    "practice:A81001", "args": {...}} with the command's words and its arguments
    by name, as on the command line; --actor is the default actor. Each line is atomic and
    idempotent: a re-run after a crash or a kill answers "already applied" for
    what was recorded and applies only what is missing (Ctrl-C says how far it got and
    exits 130). With --server a file over 16 MiB goes in parts: when a later part fails
    or Ctrl-C comes, the outcomes of the parts already recorded are reported, then the
    failure, with its exit code. A refused line records
    nothing and the rest go on, unless --stop-on-error. Exit 0 when no line was
    refused; otherwise the code a refused line would get as a command of its
    own, the highest of them: 2 when a line is malformed (not JSON, an unknown
    command, a bad value), 1 when refused by a rule. 2 when the file cannot be read.
    """
    state = state_of(ctx)
    with handled(state):
        from ledger.application.batch import apply_lines  # noqa: PLC0415 - fast --help
        from ledger.application.files import input_path, source_name  # noqa: PLC0415

        path = input_path(file)
        lines = read_lines(path)
        source = source_name(path)
        total = sum(1 for line in lines if line.strip())
        if total == 0:
            render.nothing_to_apply(source)
            return
        if state.server:  # the service runs the file, every line as the token's actor
            from commands.client import PartlyApplied  # noqa: PLC0415

            try:
                report = state.client().apply(lines, stop_on_error=stop_on_error,
                                              batch_size=batch_size)
            except KeyboardInterrupt:
                render.apply_interrupted(source, None, total)
                raise typer.Exit(EXIT_INTERRUPTED) from None
            except PartlyApplied as partly:  # what the parts already sent recorded, then why
                render.apply_report(partly.report, source)
                if isinstance(partly.failure, KeyboardInterrupt):
                    render.apply_interrupted(source, partly.done, total,
                                             in_flight=partly.in_flight)
                    raise typer.Exit(EXIT_INTERRUPTED) from None
                render.apply_cut_short(source, partly.done, partly.in_flight, total)
                raise partly.failure from None
        else:
            done = 0

            def counted(lines_done: int) -> None:
                nonlocal done
                done += lines_done
                progress(lines_done)

            try:
                with render.apply_progress(total, batch_size) as progress:
                    report = apply_lines(
                        state.ledger().service,
                        lines,
                        default_actor=state.actor,
                        batch_size=batch_size,
                        stop_on_error=stop_on_error,
                        progress=counted,
                    )
            except KeyboardInterrupt:
                render.apply_interrupted(source, done, total)
                raise typer.Exit(EXIT_INTERRUPTED) from None
        render.apply_report(report, source)
        refused = len(report.refused)
        if refused:
            render.error(f"{refused:,} of {total:,} lines refused (listed above)")
            raise typer.Exit(max(exit_code(r.error) if r.error else EXIT_REFUSED
                                 for r in report.refused))


EPILOG = "Examples:\n\nledger --db ledger.db apply commands.jsonl --stop-on-error"


def add_commands(parent: typer.Typer) -> None:
    """Add `ledger apply` to the `ledger` app."""
    parent.command("apply", epilog=EPILOG)(apply)
