"""The one mapping from errors to exit codes.

    0  done
    1  refused by a domain rule: RuleViolation and its kinds (NotFound,
       NotAuthorised, IdempotencyConflict); nothing recorded
    2  usage error: the command line, or malformed input the ledger cannot even
       read as a value (InvalidInput: a bad code, amount, date, element, actor,
       free text holding an NHS number or a control or invisible character, a
       blank name, an empty or malformed command id or ref, a CSV row or missing
       column); nothing recorded
    3  store unavailable (the URL is shown with its password masked), no ledger
       at the path, or a store fault (read-only, disk full) named as such
    4  verification failed (`ledger verify`), or a write found the stored events
       no longer match their Merkle log (LogDamaged); nothing recorded
    5  the log holds an event this version cannot read (an unknown topic or a
       newer schema version: a newer version of the ledger wrote it): upgrade;
       UnreadableEvent; nothing read, nothing recorded
   74  the output could not be written (standard output, or a file the command writes
       (--out, --plot), on a full disk, or its device failing: EX_IOERR of
       sysexits.h): one line on stderr naming which; a write had already recorded
       what it answers
  130  `apply` stopped by Ctrl-C, saying how far it got
  141  the output was closed before the command finished writing it (a pipe to
       `head`): as a command ended by SIGPIPE, with no message; a write had
       already recorded what it answers

Every user error ends as one line on stderr naming the problem and its rule,
never a traceback; the store is closed on the way out, whatever happened.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer

from commands import render
from commands.state import CliState
from ledger.domain.errors import LedgerError, outcome_of

EXIT_DONE = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_STORE_UNAVAILABLE = 3
EXIT_VERIFICATION_FAILED = 4
EXIT_UNREADABLE_EVENT = 5
EXIT_OUTPUT_FAILED = 74
"""EX_IOERR (sysexits.h): the output could not be written."""
OUTPUT_FAULTS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})
"""Why writing an output may fail other than by a closed pipe: a full disk or quota, a
file grown past its limit, a failing device. An OSError carrying a file name (as
commands/outputs.py `writing` gives one) is that file's; one without, standard
output's."""
EXIT_INTERRUPTED = 130
"""128 + SIGINT: a command stopped by Ctrl-C, as a shell shows it."""
EXIT_OUTPUT_CLOSED = 141
"""128 + SIGPIPE, what a shell shows for a command the closed pipe ended."""



def _discard_output() -> None:
    """Point standard output at the null device, so what is still buffered for the
    closed pipe is not written (and refused again) as the interpreter exits; as the
    Python documentation's note on SIGPIPE advises (signal module)."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, sys.stdout.fileno())
    finally:
        os.close(null)


def _output_failed(error: OSError) -> NoReturn:
    """An output cannot be written: say which on stderr, and exit EXIT_OUTPUT_FAILED.
    Standard output (an error with no file name): drop what is still buffered for it.
    A file the command was writing (the error's file name): name it; standard output
    still works, and what the command printed before stays printed."""
    what = error.strerror or str(error)
    if error.filename is not None:
        sys.stdout.flush()
        render.error(f"cannot write {error.filename}: {what}. The ledger lost nothing: "
                     "anything this command recorded stays recorded (ledger events shows "
                     "it); write the file again where there is room [rule: output]")
        raise typer.Exit(EXIT_OUTPUT_FAILED) from None
    _discard_output()
    render.error(f"cannot write the output: {what}. The ledger lost "
                 "nothing: anything this command recorded stays recorded (ledger events "
                 "shows it); run a read again where its output has room [rule: output]")
    raise typer.Exit(EXIT_OUTPUT_FAILED) from None


def exit_code(error: LedgerError) -> int:
    """The exit code of an error, from the one mapping the HTTP service shares."""
    return outcome_of(error)[0]


def store_fault(error: Exception, state: CliState | None) -> LedgerError | None:
    """A database error from any command, named by its cause (ledger/store/faults.py)."""
    from ledger.store.eventstore import mask_password  # noqa: PLC0415 - fast --help
    from ledger.store.faults import fault  # noqa: PLC0415

    return fault(error, mask_password(state.db) if state is not None else "the ledger")


@contextmanager
def handled(state: CliState | None = None) -> Iterator[None]:
    """Run a command body: a LedgerError becomes one stderr line and its exit code."""
    try:
        try:
            yield
        except typer.Exit:
            sys.stdout.flush()  # what is buffered fails here, not as the interpreter exits
            raise
        sys.stdout.flush()
    except LedgerError as error:
        render.error(error)
        raise typer.Exit(exit_code(error)) from None
    except BrokenPipeError:
        _discard_output()
        raise typer.Exit(EXIT_OUTPUT_CLOSED) from None
    except Exception as error:
        fault = store_fault(error, state)
        if fault is None and isinstance(error, OSError) and error.errno in OUTPUT_FAULTS:
            _output_failed(error)
        if fault is None:
            raise
        render.error(fault)
        raise typer.Exit(EXIT_STORE_UNAVAILABLE) from None
    finally:
        if state is not None:
            state.close()
