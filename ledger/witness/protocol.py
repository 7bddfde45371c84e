"""The tlog-witness `add-checkpoint` call (c2sp.org/tlog-witness): the rules, no I/O.

Request body (every line ends in a newline):

    old <size the client believes this witness last cosigned>
    <base64 hash>          zero to 63 lines: RFC 6962 consistency proof old -> new
    <blank line>
    <signed checkpoint>

Answers, checked in the specification's order:

    400  malformed body or checkpoint, more than 63 proof lines, old size > new size
    404  the checkpoint's origin is not a log this witness is configured for
    403  no valid signature from a configured key of that log, or a configured
         key's signature fails to verify
    409  old size is not the size this witness last cosigned (0 if never): the body
         is that size and a newline, Content-Type text/x.tlog.size
    422  a size-0 checkpoint without the empty root, a proof sent from size 0, an
         equal size with another root, or a consistency proof that does not verify
    200  one cosignature/v1 line, timestamped now; the new checkpoint is persisted
         before answering
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ledger.audit.cosignature import WitnessSigner
from ledger.audit.merkle import EMPTY_ROOT, ProofError, verify_consistency
from ledger.audit.note import (
    Checkpoint,
    NoteError,
    Verifier,
    b64decode,
    parse_checkpoint,
    split_note,
)

MAX_PROOF_LINES = 63
MAX_BODY_BYTES = 16 << 10
SIZE_CONTENT_TYPE = "text/x.tlog.size"
_OLD = re.compile(r"old (0|[1-9][0-9]{0,18})")  # a 64-bit size: no int() of a huge number
_SIG_PREFIX = "\u2014 "


@dataclass(frozen=True, slots=True)
class AddCheckpoint:
    old_size: int
    proof: list[bytes]
    note: str  # the signed checkpoint as sent


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


class Refused(Exception):  # noqa: N818 - a verdict
    """The witness will not cosign: the protocol's status and a one-line reason."""

    def __init__(self, status: int, reason: str, body: str | None = None,
                 content_type: str = "text/plain; charset=utf-8") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.answer = Answer(status, reason + "\n" if body is None else body, content_type)


def format_request(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    import base64  # noqa: PLC0415

    lines = [f"old {old_size}"] + [base64.b64encode(h).decode() for h in proof]
    return ("\n".join(lines) + "\n\n" + note).encode()


def parse_request(body: bytes) -> AddCheckpoint:
    """The request's parts; Refused(400) when it is not a well-formed request."""
    if len(body) > MAX_BODY_BYTES:
        raise Refused(400, f"request body over {MAX_BODY_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Refused(400, f"request body is not UTF-8 (byte {error.start} cannot be read)"
                      ) from error
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise Refused(400, "request lacks the blank line before the checkpoint")
    lines = head.split("\n")
    matched = _OLD.fullmatch(lines[0])
    if matched is None:
        raise Refused(400, "request must start with `old <size>`")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise Refused(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
    try:
        proof = [b64decode(line, "a consistency proof line") for line in lines[1:]]
    except NoteError as error:
        raise Refused(400, str(error)) from error
    return AddCheckpoint(int(matched.group(1)), proof, note)


@dataclass(frozen=True, slots=True)
class Stored:
    """What the witness keeps per log: the latest checkpoint it cosigned, as a note."""

    checkpoint: Checkpoint
    note: str


def read_checkpoint(
    request: AddCheckpoint, logs: Mapping[str, Sequence[Verifier]]
) -> tuple[Checkpoint, str, list[str]]:
    """Parse and verify the submitted checkpoint: (checkpoint, text, log signature lines)."""
    try:
        text, signatures = split_note(request.note)
        checkpoint = parse_checkpoint(text)
    except NoteError as error:
        raise Refused(400, f"malformed checkpoint: {error}") from error
    keys = logs.get(checkpoint.origin)
    if not keys:
        raise Refused(404, f"unknown log {checkpoint.origin!r}")
    lines = request.note[len(text) + 1 :].splitlines(keepends=True)
    verified: list[str] = []
    for signature, line in zip(signatures, lines, strict=True):
        for key in keys:
            if signature.name == key.name and signature.key_id == key.key_id:
                if not key.verify(text.encode(), signature.signature):
                    raise Refused(403, f"the signature of {key.name}+{key.key_id.hex()} "
                                       "does not verify")
                verified.append(line)
    if not verified:
        raise Refused(403, f"no signature from a known key of log {checkpoint.origin!r}")
    return checkpoint, text, verified


def check_extends(request: AddCheckpoint, checkpoint: Checkpoint, stored: Stored | None) -> None:
    """The rules between the stored checkpoint and the new one (Refused otherwise)."""
    if request.old_size > checkpoint.size:
        raise Refused(400, f"old size {request.old_size} is larger than the checkpoint's "
                           f"{checkpoint.size}")
    known = stored.checkpoint.size if stored is not None else 0
    if request.old_size != known:
        raise Refused(409, f"this witness last cosigned size {known}",
                      body=f"{known}\n", content_type=SIZE_CONTENT_TYPE)
    if checkpoint.size == 0 and checkpoint.root != EMPTY_ROOT:
        raise Refused(422, "a checkpoint of size 0 must carry the empty tree's root")
    if request.old_size == 0 and request.proof:
        raise Refused(422, "a proof from size 0 must be empty")
    if stored is None or known == 0:
        return
    try:
        verify_consistency(known, checkpoint.size, stored.checkpoint.root, checkpoint.root,
                           request.proof)
    except ProofError as error:
        raise Refused(422, f"not consistent with the checkpoint of size {known} this "
                           f"witness cosigned: {error}") from error


def cosign(
    signer: WitnessSigner, text: str, log_lines: list[str], timestamp: int
) -> tuple[str, str]:
    """(the answer's cosignature line, the note to keep: text, log signatures, cosignature)."""
    line = signer.cosign(text, timestamp)
    return line, text + "\n" + "".join(log_lines) + line
