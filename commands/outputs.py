"""Files the command line writes where it is told (`prove --out`, `checkpoint --out`,
`report --out`): never over the ledger's own files.

A mistyped `--out ledger.db` (for `--db ledger.db`) would otherwise replace the ledger's
database with a bundle, and `--out ledger.db.signing-key` its signing key, which cannot
be made again. Refused (InvalidInput, rule `out`, exit 2; nothing written): the ledger's
database file and SQLite's files beside it (`-wal`, `-shm`, `-journal`), its signing key
(ledger/auditlog/keys.py), and any file that already holds a SQLite database (another
ledger) or a private key (a rotated-out signing key, a witness's key). A file that
cannot be written there (no such folder, or one this process may not write in) is refused
the same way before anything is signed, so a refusal never leaves a checkpoint behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from commands.errors import OUTPUT_FAULTS
from ledger.domain.errors import InvalidInput

if TYPE_CHECKING:
    from ledger.store.eventstore import EventStore

SQLITE_HEADER = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file (sqlite.org/fileformat.html, 1.3)."""

SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
"""The files SQLite keeps beside a database, named after it."""

PRIVATE_KEY_MARKS = (b"-----BEGIN PRIVATE KEY-----", b"-----BEGIN OPENSSH PRIVATE KEY-----",
                     b"-----BEGIN ENCRYPTED PRIVATE KEY-----", b"PRIVATE+KEY+")
"""How the files holding a private key begin: PKCS#8 PEM (the log's signing keys), and the
note form `PRIVATE+KEY+name+id+key` (a witness's key)."""


def ledger_files(store: EventStore) -> dict[Path, str]:
    """The ledger's own files, each with what it is: its signing key and, on SQLite, its
    database and the files beside it."""
    from ledger.auditlog.proofs import key_path  # noqa: PLC0415 - fast --help

    files = {key_path(store): "signing key"}
    if store.target.kind == "sqlite":
        db = Path(store.target.location)
        files[db] = "database"
        for suffix in SQLITE_COMPANIONS:
            files[db.with_name(db.name + suffix)] = f"database's {suffix[1:]} file"
    return files


def refuse_ledger_file(path: Path, store: EventStore) -> None:
    """InvalidInput (rule `out`) when `path` is one of the ledger's own files, or an
    existing file holding a SQLite database or a private key."""
    for own, what in ledger_files(store).items():
        if _same_file(path, own):
            raise InvalidInput("out", f"{path} is the ledger's {what}: write to another file "
                               "(nothing was written)")
    start = _first_bytes(path)
    if start.startswith(SQLITE_HEADER):
        raise InvalidInput("out", f"{path} holds a SQLite database (a ledger?): write to "
                           "another file (nothing was written)")
    if start.lstrip().startswith(PRIVATE_KEY_MARKS):
        raise InvalidInput("out", f"{path} holds a private key: write to another file "
                           "(nothing was written)")


def refuse_output(path: Path, store: EventStore) -> None:
    """InvalidInput (rule `out`, exit 2) when `path` is refused by `refuse_ledger_file` or
    cannot be written: its folder is missing, or the file (or, when it does not exist
    yet, its folder) is not writable by this process. Called before a checkpoint is
    signed or recorded; `write_output` still reports what fails while writing."""
    refuse_ledger_file(path, store)
    folder = path.parent
    if not folder.is_dir():
        raise InvalidInput("out", f"no folder {str(folder)!r} to write {path.name} in "
                           "(nothing was written)")
    if not os.access(path if path.exists() else folder, os.W_OK):
        raise InvalidInput("out", f"cannot write {path}: permission denied "
                           "(nothing was written)")


def write_output(path: Path, data: bytes, store: EventStore) -> None:
    """Write `data` to `path` unless `refuse_ledger_file` refuses it; as `writing` says
    when the file cannot be written."""
    refuse_ledger_file(path, store)
    with writing(path):
        path.write_bytes(data)


@contextmanager
def writing(path: Path, rule: str = "out") -> Iterator[None]:
    """Run the writing of the file `path` (every file a command writes goes through
    this), so a failure names that file, never standard output: a full disk or failing
    device is raised again as an OSError carrying `path` as its file name (exit 74 in
    commands/errors.py, naming it); any other failure (no folder, no permission) is
    InvalidInput (rule `rule`, exit 2) naming it."""
    try:
        yield
    except OSError as error:
        if error.errno in OUTPUT_FAULTS:
            raise OSError(error.errno, error.strerror or str(error), str(path)) from error
        raise InvalidInput(rule, f"cannot write {path}: {error.strerror or error}") from error


def _same_file(path: Path, other: Path) -> bool:
    try:
        return path.samefile(other)
    except OSError:  # either is missing: compare where they would be
        return path.expanduser().resolve() == other.expanduser().resolve()


def _first_bytes(path: Path) -> bytes:
    """The start of an existing regular file; nothing for anything else."""
    try:
        if not path.is_file():
            return b""
        with path.open("rb") as file:
            return file.read(64)
    except OSError:
        return b""
