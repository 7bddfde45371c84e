"""The witness's key file: one line `PRIVATE+KEY+name+keyid+base64(0x04 || seed)`, mode 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.audit.cosignature import WitnessSigner, parse_witness_private_key
from ledger.audit.note import NoteError, check_name
from ledger.domain.errors import InvalidInput


def create_witness_key(path: Path, name: str) -> WitnessSigner:
    """A new witness key named `name` at `path` (never overwrites an existing file).

    InvalidInput (rule `witness-name`) for a malformed name; (rule `witness-key`) when
    `path` exists or cannot be created or written, leaving no file behind."""
    try:
        check_name(name)
    except NoteError as error:
        raise InvalidInput("witness-name", str(error)) from error
    signer = WitnessSigner(name, Ed25519PrivateKey.generate())
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as error:
        raise InvalidInput("witness-key", f"{path} exists: a witness keeps its key") from error
    except OSError as error:
        raise InvalidInput("witness-key", f"cannot create {path}: {error}") from error
    try:
        with os.fdopen(fd, "w") as out:
            out.write(signer.private_text() + "\n")
    except OSError as error:  # a full disk: no half-written key left to refuse the next
        path.unlink(missing_ok=True)
        raise InvalidInput("witness-key", f"cannot write {path}: {error.strerror or error}; "
                           "no key was made") from error
    return signer


def load_witness_key(path: Path) -> WitnessSigner:
    try:
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InvalidInput("witness-key", f"{path} is readable by others: chmod 600 it")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput("witness-key", f"cannot read the witness key {path}: {error}") from error
    try:
        return parse_witness_private_key(text)
    except NoteError as error:
        raise InvalidInput("witness-key", f"{path}: {error}") from error
