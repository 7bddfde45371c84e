"""The log's signing keys over time (`ledger_keys`): rotation and retirement.

Every key that ever signed a checkpoint stays listed with its public key and when it
could sign: from `valid_from` until `valid_until` (when it was rotated out). A key
declared compromised gets `retired_at`: checkpoints it signs claiming a later time
are refused by `verify`, and the log will not sign with it again. Keys are listed
on first use, so a ledger from before rotation gets its one key listed as valid
from the start.

Rotating writes the new private key over the key file (a temporary file, fsynced,
then renamed) and keeps the old one beside it as `<key file>.<key id>.old` (mode
0600) for its owner to destroy; the log, its checkpoints and witnesses carry on:
witnesses must be told the new public key (`ledger witness serve --log` once per key).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.audit.note import (
    KeyRing,
    LogKey,
    Signer,
    Verifier,
    format_time,
    parse_verifier_key,
)
from ledger.auditlog.proofs import AuditFailed, key_path, store_signer
from ledger.auditlog.tables import ensure_tables, fetch, transaction
from ledger.domain.errors import InvalidInput, NotFound, StoreUnavailable

if TYPE_CHECKING:
    from ledger.store.dialect import Cursor, Dialect
    from ledger.store.eventstore import EventStore


def _parse(text: object) -> datetime | None:
    return None if text in (None, "") else datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def _list(curs: Cursor, dialect: Dialect) -> list[LogKey]:
    rows = fetch(curs, dialect.sql("SELECT vkey, valid_from, valid_until, retired_at FROM {keys} "
                                   "ORDER BY valid_from IS NOT NULL, valid_from, key_id"))
    return [LogKey(parse_verifier_key(str(v)), _parse(f), _parse(u), _parse(r))
            for v, f, u, r in rows]


def _register(curs: Cursor, dialect: Dialect, signer: Signer, now: datetime | None) -> None:
    verifier = signer.verifier
    found = fetch(curs, dialect.sql("SELECT key_id FROM {keys} WHERE key_id = ?"),
                  (verifier.key_id.hex(),))
    if not found:
        first = not fetch(curs, dialect.sql("SELECT key_id FROM {keys}"))
        curs.execute(dialect.sql("INSERT INTO {keys} (key_id, vkey, valid_from) VALUES (?, ?, ?)"),
                     (verifier.key_id.hex(), verifier.vkey,
                      None if first or now is None else format_time(now)))


def key_ring(store: EventStore, *, create: bool = False) -> KeyRing:
    """Every key of the log. Read only unless `create`, which also makes the key file and
    lists the current key if it is new (a read lists it in memory only).

    KeyFileMissing when there is no key file (and `create` is false)."""
    signer = store_signer(store, create=create)
    dialect = ensure_tables(store)
    with transaction(store, commit=create) as curs:
        if create:
            _register(curs, dialect, signer, None)
        keys = _list(curs, dialect)
    if signer.verifier.key_id.hex() not in {k.key_id for k in keys}:
        keys.append(LogKey(signer.verifier))
    return KeyRing(tuple(keys))


def trusted_ring(store: EventStore, trusted: list[Verifier]) -> KeyRing:
    """Only the `trusted` keys, each with the validity the log lists for it (if listed).

    A checkpoint is checked against whichever of them signed it; one signed by any
    other key fails to open (NoteError). Needs no key file: an auditor holds only
    public keys."""
    dialect = ensure_tables(store)
    with transaction(store, commit=False) as curs:
        listed = {k.key_id: k for k in _list(curs, dialect)}
    keys: list[LogKey] = []
    for verifier in dict.fromkeys(trusted):
        known = listed.get(verifier.key_id.hex())
        keys.append(LogKey(verifier) if known is None or known.verifier != verifier else known)
    return KeyRing(tuple(keys), "any of the given keys")


def usable_signer(store: EventStore, now: datetime, signer: Signer | None = None) -> Signer:
    """The signing key (the key file's, unless given), listed if new; AuditFailed if it was
    rotated out or retired."""
    signer = signer or store_signer(store)
    dialect = ensure_tables(store)
    with transaction(store, commit=True) as curs:
        _register(curs, dialect, signer, now)
        keys = {k.key_id: k for k in _list(curs, dialect)}
    key = keys[signer.verifier.key_id.hex()]
    if key.retired_at is not None:
        raise AuditFailed("signing-key", f"the signing key {key.key_id} was retired at "
                                         f"{format_time(key.retired_at)}: it signs no more")
    if key.valid_until is not None:
        raise AuditFailed("signing-key", f"the signing key {key.key_id} was rotated out at "
                                         f"{format_time(key.valid_until)}: restore the new key")
    return signer


@dataclass(frozen=True, slots=True)
class Rotated:
    old: LogKey
    new: LogKey


def require_writable(store: EventStore) -> None:
    """StoreUnavailable (exit 3) when the ledger is only an in-memory copy of a read-only
    SQLite file: what is written there would be lost."""
    if getattr(store, "read_only_copy", False):
        from ledger.store.faults import why_read_only  # noqa: PLC0415

        raise StoreUnavailable(
            "store-read-only", f"the ledger at {store.target.display} is read-only: "
            f"{why_read_only(Path(store.target.location))}; nothing was changed")


def _write_new_key(temporary: Path, pem: bytes) -> None:
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)


def rotate_key(store: EventStore, now: datetime) -> Rotated:
    """A new signing key from `now`; the old one stays listed, valid until `now`.

    The new key is written beside the key file, the rotation recorded in the
    database (one transaction), and only then the key file replaced (the old key
    kept as `<key file>.<key id>.old`). StoreUnavailable (exit 3) when the ledger or
    the key's directory cannot be written; nothing is recorded and the key file is
    untouched, unless the very last step fails (then the message names the new key's
    file to move into place). UnreadableEvent (exit 5) when the log holds an event this
    code cannot read, as every other write: nothing is changed."""
    require_writable(store)
    store.ensure_readable()
    old = usable_signer(store, now)
    path = key_path(store)
    fresh = Ed25519PrivateKey.generate()
    new = Signer(old.name, fresh)
    temporary = path.with_name(path.name + ".new")
    kept = path.with_name(f"{path.name}.{old.verifier.key_id.hex()}.old")
    pem = fresh.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    try:
        _write_new_key(temporary, pem)
    except OSError as error:
        raise StoreUnavailable("signing-key", f"cannot write a new key beside {path}: "
                                              f"{error}; nothing was changed") from error
    try:
        dialect = ensure_tables(store)
        with transaction(store, commit=True) as curs:
            curs.execute(dialect.sql("UPDATE {keys} SET valid_until = ? WHERE key_id = ?"),
                         (format_time(now), old.verifier.key_id.hex()))
            _register(curs, dialect, new, now)
            keys = {k.key_id: k for k in _list(curs, dialect)}
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    try:
        os.link(path, kept)
        temporary.replace(path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as error:
        raise StoreUnavailable(
            "signing-key", f"the rotation is recorded but the key file {path} could not be "
            f"replaced ({error}): move {temporary} over it") from error
    return Rotated(keys[old.verifier.key_id.hex()], keys[new.verifier.key_id.hex()])


def retire_key(store: EventStore, key_id: str, now: datetime) -> LogKey:
    """Declare a key compromised from `now`: what it signs claiming a later time is refused.
    UnreadableEvent (exit 5) when the log holds an event this code cannot read."""
    require_writable(store)
    store.ensure_readable()
    current = store_signer(store).verifier.key_id.hex()
    wanted = key_id.strip().lower()
    if wanted == current:
        raise InvalidInput("key-id", f"{wanted} is the current signing key: `ledger key rotate` "
                                     "first, then retire it")
    ring = key_ring(store, create=True)
    if wanted not in {k.key_id for k in ring.keys}:
        raise NotFound("key-id", f"no signing key {wanted!r} in this log")
    dialect = ensure_tables(store)
    with transaction(store, commit=True) as curs:
        curs.execute(dialect.sql("UPDATE {keys} SET retired_at = COALESCE(retired_at, ?) "
                                 "WHERE key_id = ?"), (format_time(now), wanted))
        return {k.key_id: k for k in _list(curs, dialect)}[wanted]
