"""Witness cosignatures (c2sp.org/tlog-cosignature, Ed25519 `cosignature/v1`). No I/O.

A witness that has checked a checkpoint is consistent with everything it saw of
the log before adds one note signature line to it:

    — <witness name> base64(key ID || uint64 timestamp || Ed25519 signature)

- key ID    = SHA-256(name || 0x0A || 0x04 || 32-byte public key)[:4]
- timestamp = POSIX seconds when it cosigned, big-endian
- signature = Ed25519 over "cosignature/v1\\ntime <timestamp>\\n" || the checkpoint
              text (every line, extension lines included, up to the blank line)

A witness key is shared as a verifier key `name+keyid+base64(0x04 || key)`; a plain
Ed25519 note key (`0x01`) names the same key and is read as its cosignature form,
as golang.org/x/mod/sumdb/note tooling and transparency-dev/formats do. The witness's
private key is kept as `PRIVATE+KEY+name+keyid+base64(0x04 || 32-byte seed)`.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.audit.note import (
    ED25519,
    SIGNATURE_PREFIX,
    NoteError,
    Verifier,
    b64decode,
    check_name,
    check_text,
    format_vkey,
    key_id,
    split_note,
    split_vkey,
)

COSIGNATURE_V1 = 0x04
_TIMESTAMP = struct.Struct(">Q")
_BLOB_SIZE = 4 + 8 + 64
MAX_TIMESTAMP = 2**63 - 1


def cosigned_message(text: str, timestamp: int) -> bytes:
    """What a cosignature/v1 signs: header, time line, then the checkpoint text."""
    check_text(text)
    if text.count("\n") < 3:
        raise NoteError("a cosigned checkpoint has at least an origin, a size and a root")
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


@dataclass(frozen=True, slots=True)
class WitnessVerifier:
    """A witness's public key, as a verifier of its cosignatures."""

    name: str
    public_key: bytes  # 32 raw Ed25519 bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, COSIGNATURE_V1, self.public_key)

    @property
    def vkey(self) -> str:
        return format_vkey(self.name, self.key_id, COSIGNATURE_V1, self.public_key)

    def verify(self, text: str, blob: bytes) -> int | None:
        """The cosignature's timestamp if `blob` (timestamp || signature) is valid for text."""
        if len(blob) != _BLOB_SIZE - 4:
            return None
        (timestamp,) = _TIMESTAMP.unpack(blob[:8])
        if timestamp > MAX_TIMESTAMP:
            return None
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                blob[8:], cosigned_message(text, timestamp)
            )
        except (InvalidSignature, NoteError):
            return None
        return int(timestamp)


def parse_witness_key(text: str) -> WitnessVerifier:
    """A witness verifier key: `name+keyid+base64(0x04 || key)` (or the 0x01 note form)."""
    name, hex_id, algorithm, public_key = split_vkey(text, "the witness key")
    if algorithm == ED25519:
        expected = Verifier(name, public_key).key_id
    elif algorithm == COSIGNATURE_V1:
        expected = key_id(name, COSIGNATURE_V1, public_key)
    else:
        raise NoteError("the witness key is not an Ed25519 cosignature key")
    if expected.hex() != hex_id:
        raise NoteError("the witness key's ID does not match its name and key")
    return WitnessVerifier(name, public_key)


@dataclass(frozen=True, slots=True)
class WitnessSigner:
    name: str
    private_key: Ed25519PrivateKey

    @property
    def verifier(self) -> WitnessVerifier:
        return WitnessVerifier(self.name, self.private_key.public_key().public_bytes_raw())

    def cosign(self, text: str, timestamp: int) -> str:
        """One signature line (ending in a newline) cosigning the checkpoint text."""
        check_name(self.name)
        if not 0 < timestamp <= MAX_TIMESTAMP:
            raise NoteError("a cosignature needs a timestamp after 1970")
        signature = self.private_key.sign(cosigned_message(text, timestamp))
        blob = self.verifier.key_id + _TIMESTAMP.pack(timestamp) + signature
        return f"{SIGNATURE_PREFIX}{self.name} {base64.b64encode(blob).decode()}\n"

    def private_text(self) -> str:
        seed = self.private_key.private_bytes_raw()
        material = base64.b64encode(bytes([COSIGNATURE_V1]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{material}"


def parse_witness_private_key(text: str) -> WitnessSigner:
    """`PRIVATE+KEY+name+keyid+base64(0x04 or 0x01 || 32-byte seed)`."""
    parts = text.strip().split("+", 4)
    if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
        raise NoteError("a witness private key reads PRIVATE+KEY+NAME+KEYID+BASE64SEED")
    name, hex_id, material = parts[2:]
    check_name(name)
    raw = b64decode(material, "the witness private key")
    if len(raw) != 33 or raw[0] not in (COSIGNATURE_V1, ED25519) or len(hex_id) != 8:
        raise NoteError("the witness private key is not an Ed25519 key")
    return WitnessSigner(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))


def cosignature_time(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


@dataclass(frozen=True, slots=True)
class Cosignature:
    witness: WitnessVerifier
    timestamp: int
    line: str  # the signature line, with its newline


def valid_cosignatures(note: str, witnesses: list[WitnessVerifier]) -> list[Cosignature]:
    """The valid cosignatures in `note` from the given witnesses, one per witness key.

    Lines from other keys are ignored (signed-note); a line naming one of the
    witnesses' key but failing to verify makes the note invalid (NoteError).
    """
    text, signatures = split_note(note)
    lines = note[len(text) + 1 :].splitlines(keepends=True)
    found: dict[bytes, Cosignature] = {}
    for signature, line in zip(signatures, lines, strict=True):
        for witness in witnesses:
            if signature.name != witness.name or signature.key_id != witness.key_id:
                continue
            timestamp = witness.verify(text, signature.signature)
            if timestamp is None:
                raise NoteError(
                    f"the cosignature of witness {witness.name} does not verify: "
                    "the checkpoint was altered"
                )
            # A public key counts once, whatever names it is given under.
            found.setdefault(witness.public_key, Cosignature(witness, timestamp, line))
    return list(found.values())


def add_cosignatures(note: str, lines: list[str]) -> str:
    """The note with signature lines added (lines already present are not repeated)."""
    present = set(note.splitlines(keepends=True))
    return note + "".join(line for line in lines if line not in present)


def signature_lines(body: str) -> list[str]:
    """A witness's answer: one or more note signature lines, each ending in a newline."""
    if not body.endswith("\n"):
        raise NoteError("a cosignature answer ends with a newline")
    lines = body.splitlines(keepends=True)
    for line in lines:
        if (not line.startswith(SIGNATURE_PREFIX)
                or " " not in line[len(SIGNATURE_PREFIX) :].strip()):
            raise NoteError(f"not a signature line: {line[:40]!r}")
    if not lines:
        raise NoteError("the answer holds no cosignature")
    return lines
