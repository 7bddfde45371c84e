"""The log's Ed25519 signing key: where it lives, created on first use with mode 0600.

Location, first match wins:

1. `LEDGER_SIGNING_KEY` (a file path);
2. SQLite: next to the database file, `<db file>.signing-key` (`ledger.db.signing-key`);
3. PostgreSQL: `$XDG_CONFIG_HOME/ledger/signing-key` (default `~/.config/ledger/signing-key`).

The file is a PKCS#8 PEM private key. The public key is shared as a verifier key
(`ledger checkpoint --public-key`), which `ledger verify-bundle --public-key` takes.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.audit.note import NoteError, Signer, Verifier, parse_verifier_key
from ledger.domain.errors import InvalidInput, StoreUnavailable

KEY_ENV = "LEDGER_SIGNING_KEY"


class KeyFileMissing(InvalidInput):
    """No signing key where one was expected (and creating one was not asked for)."""


def default_key_path(kind: str, location: str, env: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if env is None else env
    override = environ.get(KEY_ENV)
    if override:
        return Path(override).expanduser()
    if kind == "sqlite":
        db = Path(location)
        return db.with_name(db.name + ".signing-key")
    config = environ.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return Path(config) / "ledger" / "signing-key"


def _read_private(path: Path) -> Ed25519PrivateKey:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InvalidInput(
            "signing-key", f"the signing key {path} is readable by others: chmod 600 it"
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as error:
        raise InvalidInput("signing-key", f"{path} is not a PEM private key") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput("signing-key", f"{path} is not an Ed25519 key")
    return key


def _create(path: Path) -> Ed25519PrivateKey:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return _read_private(path)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
    except OSError:  # a full disk: no half-written key to stop every later checkpoint
        path.unlink(missing_ok=True)
        raise
    return key


def load_signer(path: Path, origin: str, *, create: bool = True) -> Signer:
    """The log's signer, named after its origin; the key file is created if absent."""
    try:
        if path.exists():
            return Signer(origin, _read_private(path))
        if not create:
            raise KeyFileMissing("signing-key", f"no signing key at {path}")
        return Signer(origin, _create(path))
    except OSError as error:  # permissions, a missing directory, a full disk: exit 3
        raise StoreUnavailable("signing-key",
                               f"cannot use the signing key {path}: {error}") from error


def public_key_from(text_or_path: str, origin: str) -> Verifier:
    """A verifier from a verifier-key string, or a file holding one, a PEM public or private key.

    A bare key (PEM) takes `origin` as its name: the checkpoint's origin.
    """
    candidate = Path(text_or_path).expanduser()
    text = text_or_path
    try:
        if candidate.is_file():
            text = candidate.read_text(encoding="utf-8").strip()
        elif "/" in text_or_path and "+" not in text_or_path:
            raise KeyFileMissing("public-key", f"no key file {text_or_path}")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput("public-key", f"cannot read the key {text_or_path}: {error}") from error
    if text.startswith("-----BEGIN"):
        return Verifier(origin, _pem_public(text))
    try:
        return parse_verifier_key(text)
    except NoteError as error:
        raise InvalidInput("public-key", f"unusable public key: {error}") from error


def _pem_public(pem: str) -> bytes:
    data = pem.encode()
    try:
        if "PRIVATE KEY" in pem.splitlines()[0]:
            private = serialization.load_pem_private_key(data, password=None)
            if not isinstance(private, Ed25519PrivateKey):
                raise InvalidInput("public-key", "the key is not an Ed25519 key")
            public = private.public_key()
        else:
            loaded = serialization.load_pem_public_key(data)
            if not isinstance(loaded, Ed25519PublicKey):
                raise InvalidInput("public-key", "the key is not an Ed25519 key")
            public = loaded
    except (ValueError, TypeError) as error:
        raise InvalidInput("public-key", "the PEM key cannot be read") from error
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
