"""The witness's memory: per log, the latest checkpoint it cosigned, one file each.

`<state dir>/<sha256(origin) hex>.checkpoint` holds the note (checkpoint text, the
log signatures the witness verified, its own cosignature). A new one is written to
a temporary file in the same directory, flushed and fsynced, renamed over the old
one, and the directory fsynced: after a crash (kill -9, power loss) the file is the
old checkpoint or the new one, never a mix, and a cosignature is only answered
after its checkpoint is on disk.

Checking a request against the stored checkpoint and storing the new one happen
under one lock per directory (a thread lock, and an flock on `<dir>/.lock` for other
processes), so two requests can never both pass the check and roll the log back.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ledger.audit.cosignature import WitnessSigner
from ledger.audit.note import NoteError, Verifier, parse_checkpoint, split_note
from ledger.witness.protocol import (
    Answer,
    Refused,
    Stored,
    check_extends,
    cosign,
    parse_request,
    read_checkpoint,
)


class StateDamaged(RuntimeError):  # noqa: N818 - a verdict
    """A state file cannot be read: the witness refuses to cosign that log until fixed."""


def origin_file(origin: str) -> str:
    return hashlib.sha256(origin.encode()).hexdigest() + ".checkpoint"


class StateDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._thread_lock = threading.Lock()

    @contextmanager
    def locked(self) -> Iterator[None]:
        with self._thread_lock, (self.path / ".lock").open("a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def read(self, origin: str) -> Stored | None:
        file = self.path / origin_file(origin)
        try:
            note = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            raise StateDamaged(f"cannot read {file}: {error}") from error
        try:
            checkpoint = parse_checkpoint(split_note(note)[0])
        except NoteError as error:
            raise StateDamaged(f"{file} is damaged: {error}") from error
        if checkpoint.origin != origin:
            raise StateDamaged(f"{file} holds log {checkpoint.origin!r}, not {origin!r}")
        return Stored(checkpoint, note)

    def read_hash(self, origin_hash: str) -> str | None:
        if len(origin_hash) != 64 or any(c not in "0123456789abcdef" for c in origin_hash):
            return None
        try:
            return (self.path / f"{origin_hash}.checkpoint").read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def write(self, origin: str, note: str) -> None:
        """Replace the log's checkpoint durably (temp file, fsync, rename, fsync dir)."""
        name = origin_file(origin)
        temporary = self.path / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, note.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        temporary.replace(self.path / name)
        directory = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


@dataclass
class Witness:
    """A witness: its key, the logs it follows (origin -> keys), its state, its clock."""

    signer: WitnessSigner
    logs: Mapping[str, Sequence[Verifier]]
    state: StateDir
    clock: Callable[[], int]

    def add_checkpoint(self, body: bytes) -> Answer:
        """Handle one add-checkpoint request body; the answer to send back."""
        try:
            request = parse_request(body)
            checkpoint, text, log_lines = read_checkpoint(request, self.logs)
            with self.state.locked():
                stored = self.state.read(checkpoint.origin)
                check_extends(request, checkpoint, stored)
                line, note = cosign(self.signer, text, log_lines, self.clock())
                self.state.write(checkpoint.origin, note)
        except Refused as refused:
            return refused.answer
        except StateDamaged as error:
            return Answer(500, f"{error}\n")
        return Answer(200, line)

    def latest(self, origin_hash: str) -> str | None:
        return self.state.read_hash(origin_hash)
