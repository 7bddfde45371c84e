"""Signed notes (c2sp.org/signed-note) and checkpoints (c2sp.org/tlog-checkpoint). No I/O.

A checkpoint is the log's origin, tree size and base64 root hash, one per line,
plus one extension line `time <UTC instant>` (when it was signed), then a blank
line and Ed25519 signature lines:

    commissioning-ledger/4f0c...e2
    1042
    CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=
    time 2024-07-15T09:30:00Z

    — commissioning-ledger/4f0c...e2 Az3grlgtzPICa5OS8npVmf1...

The key name is the origin; the key ID is SHA-256(name || 0x0A || 0x01 || public
key)[:4]; the public key is shared as a verifier key `name+keyid+base64(0x01 ||
key)`, the form Go's golang.org/x/mod/sumdb/note reads.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "  # em dash, space: how every signed-note signature line begins
_NAME = re.compile(r"[^\s+]+")


class NoteError(ValueError):
    """A note, key or checkpoint that cannot be read or does not verify."""


class SignatureInvalid(NoteError):  # noqa: N818 - a verdict
    """A well-formed note that the trusted key did not sign (or not as it reads now)."""


def key_id(name: str, algorithm: int, public_key: bytes) -> bytes:
    """The signed-note key ID: SHA-256(name || 0x0A || algorithm byte || key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([algorithm]) + public_key).digest()[:4]


def check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise NoteError(f"key name {name!r} must be non-empty, without spaces or '+'")


def b64decode(text: str, what: str) -> bytes:
    """Strict base64; NoteError naming `what` otherwise."""
    try:
        return base64.b64decode(text.encode(), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as error:
        raise NoteError(f"{what} is not valid base64") from error


@dataclass(frozen=True, slots=True)
class Verifier:
    name: str
    public_key: bytes  # 32 raw Ed25519 bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, ED25519, self.public_key)

    @property
    def vkey(self) -> str:
        """The verifier key text: name+hexid+base64(0x01 || key)."""
        return format_vkey(self.name, self.key_id, ED25519, self.public_key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


def format_vkey(name: str, key_id: bytes, algorithm: int, public_key: bytes) -> str:
    """A signed-note verifier key: name+hex key ID+base64(algorithm byte || key)."""
    material = base64.b64encode(bytes([algorithm]) + public_key).decode()
    return f"{name}+{key_id.hex()}+{material}"


def split_vkey(text: str, what: str) -> tuple[str, str, int, bytes]:
    """(name, hex key ID, algorithm byte, 32-byte Ed25519 key) of a verifier key text."""
    parts = text.strip().split("+", 2)
    if len(parts) != 3:
        raise NoteError(f"{what} reads NAME+KEYID+BASE64KEY")
    name, hex_id, material = parts
    check_name(name)
    raw = b64decode(material, what)
    if len(raw) != 33 or len(hex_id) != 8:
        raise NoteError(f"{what} is not an Ed25519 key")
    return name, hex_id.lower(), raw[0], raw[1:]


def parse_verifier_key(text: str) -> Verifier:
    name, hex_id, algorithm, public_key = split_vkey(text, "the verifier key")
    if algorithm != ED25519:
        raise NoteError("the verifier key is not an Ed25519 key")
    verifier = Verifier(name, public_key)
    if verifier.key_id.hex() != hex_id:
        raise NoteError("the verifier key's ID does not match its name and key")
    return verifier


@dataclass(frozen=True, slots=True)
class Signer:
    name: str
    private_key: Ed25519PrivateKey

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.private_key.public_key().public_bytes_raw())

    def sign(self, text: str) -> str:
        """The signed note: text (ending in a newline), a blank line, one signature line."""
        check_name(self.name)
        check_text(text)
        signature = self.private_key.sign(text.encode())
        blob = base64.b64encode(self.verifier.key_id + signature).decode()
        return f"{text}\n{SIGNATURE_PREFIX}{self.name} {blob}\n"


def check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("note text holds control characters")


@dataclass(frozen=True, slots=True)
class Signature:
    name: str
    key_id: bytes
    signature: bytes


def split_note(note: str) -> tuple[str, list[Signature]]:
    """Text and signature lines of a signed note (signatures not yet checked).

    C2SP signed-note: valid UTF-8, no ASCII control character but newline. A note
    re-saved with Windows line endings (CR LF) is therefore not a signed note:
    refused here, naming why, rather than silently normalised.
    """
    if "\r" in note:
        raise NoteError("it holds carriage returns (Windows line endings), and a signed "
                        "note ends its lines with newline only (C2SP signed-note): save "
                        "it again with LF line endings")
    if not note.endswith("\n"):
        raise NoteError("a signed note ends with a newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise NoteError("a signed note needs a blank line before its signatures")
    text, sig_block = note[: cut + 1], note[cut + 2 :]
    check_text(text)
    signatures: list[Signature] = []
    for line in sig_block.splitlines():
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"malformed signature line {line[:40]!r}")
        name, _, blob = line[len(SIGNATURE_PREFIX) :].partition(" ")
        check_name(name)
        raw = b64decode(blob, "a signature")
        if len(raw) < 5:
            raise NoteError("a signature is too short")
        signatures.append(Signature(name, raw[:4], raw[4:]))
    if not signatures:
        raise NoteError("the note carries no signature")
    return text, signatures


def open_note(note: str, verifier: Verifier) -> str:
    """The note's text, if `verifier`'s key signed it; NoteError otherwise."""
    text, signatures = split_note(note)
    known = [s for s in signatures if s.name == verifier.name and s.key_id == verifier.key_id]
    if not known:
        raise SignatureInvalid(
            f"not signed by the key {verifier.name}+{verifier.key_id.hex()}")
    for s in known:
        if not verifier.verify(text.encode(), s.signature):
            raise SignatureInvalid("the signature does not verify: the checkpoint was altered")
    return text


# --- checkpoints --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    time: datetime | None = None

    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        if self.time is not None:
            lines.append("time " + format_time(self.time))
        return "\n".join(lines) + "\n"


def format_time(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


MAX_SIZE = 2**63 - 1
"""The largest log size a checkpoint may claim: the log's positions are 64-bit."""


def parse_checkpoint(text: str) -> Checkpoint:
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("a checkpoint has an origin, a size and a root hash, one per line")
    origin, size_text, root_text, *extensions = lines[:-1]
    if not origin:
        raise NoteError("the checkpoint has no origin")
    if not re.fullmatch(r"0|[1-9][0-9]*", size_text):
        raise NoteError(f"the checkpoint size {size_text[:20]!r} is not a number")
    # Counted before int(): a size of thousands of digits is out of range, not a fault.
    if len(size_text) > 19 or int(size_text) > MAX_SIZE:
        raise NoteError(f"the checkpoint size {size_text[:20]!r}… is out of range (at most "
                        f"{MAX_SIZE:,} events)" if len(size_text) > 20 else
                        f"the checkpoint size {size_text} is out of range (at most "
                        f"{MAX_SIZE:,} events)")
    root = b64decode(root_text, "the checkpoint root hash")
    if len(root) != 32:
        raise NoteError("the checkpoint root hash is not 32 bytes")
    time: datetime | None = None
    for line in extensions:
        if not line:
            raise NoteError("empty extension line in the checkpoint")
        if line.startswith("time "):
            try:
                time = datetime.strptime(line[5:], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            except ValueError as error:
                raise NoteError(f"malformed checkpoint time {line[5:40]!r}") from error
    return Checkpoint(origin, int(size_text), root, time)


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    note: str


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> SignedCheckpoint:
    return SignedCheckpoint(checkpoint, signer.sign(checkpoint.text()))


def open_checkpoint(note: str, verifier: Verifier) -> Checkpoint:
    """Verify the signature, then parse; the origin must be the key's name."""
    checkpoint = parse_checkpoint(open_note(note, verifier))
    if checkpoint.origin != verifier.name:
        raise SignatureInvalid(
            f"the checkpoint is from log {checkpoint.origin!r}, the key from {verifier.name!r}"
        )
    return checkpoint


def unverified_checkpoint(note: str) -> Checkpoint:
    """Parse a note's checkpoint without checking any signature (to find its origin)."""
    text, _ = split_note(note)
    return parse_checkpoint(text)


# --- the log's keys over time -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogKey:
    """One signing key of the log and when it may sign.

    `valid_until` is when it was rotated out, `retired_at` when it was declared
    compromised; a checkpoint claiming a time after either is refused.
    """

    verifier: Verifier
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    retired_at: datetime | None = None

    @property
    def key_id(self) -> str:
        return self.verifier.key_id.hex()


@dataclass(frozen=True, slots=True)
class KeyRing:
    """Every key the log has signed with; a checkpoint opens with the key that signed it."""

    keys: tuple[LogKey, ...]
    described: str = "any key of the log"  # how the error names these keys

    def open(self, note: str) -> tuple[Checkpoint, LogKey]:
        """The checkpoint and the key that signed it; NoteError if none may have."""
        _text, signatures = split_note(note)
        for key in self.keys:
            verifier = key.verifier
            if not any(s.name == verifier.name and s.key_id == verifier.key_id
                       for s in signatures):
                continue
            checkpoint = open_checkpoint(note, verifier)
            when = checkpoint.time
            # A checkpoint's time has whole seconds: one signed in the second of the
            # retirement may have come before it, so only a later second is refused.
            if key.retired_at is not None and (
                when is None or when > key.retired_at.replace(microsecond=0)
            ):
                raise NoteError(f"signed by key {key.key_id} at {_when(when)}, after it was "
                                f"retired at {format_time(key.retired_at)}")
            if key.valid_until is not None and (when is None or when > key.valid_until):
                raise NoteError(f"signed by key {key.key_id} at {_when(when)}, after it was "
                                f"rotated out at {format_time(key.valid_until)}")
            return checkpoint, key
        known = ", ".join(k.key_id for k in self.keys)
        raise NoteError(f"not signed by {self.described} ({known})")


def _when(instant: datetime | None) -> str:
    return format_time(instant) if instant is not None else "an unstated time"
