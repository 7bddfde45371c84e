"""Proof bundles: a practice's events with inclusion proofs and a signed checkpoint. No I/O.

Format `commissioning-ledger/proof-bundle`, version 2 (JSON; hashes and bytes base64):

    {
      "format": "commissioning-ledger/proof-bundle", "version": 2,
      "practice": "A81001", "created_at": "2024-07-15T09:30:00Z",
      "hash": "sha256/rfc6962", "leaf_encoding": "ledger-event-v1",
      "checkpoint": "<signed note: origin, size, root, time; the log's signature, then
                     any witnesses' cosignature/v1 lines>",
      "public_key": "<verifier key of the log (convenience only: trust your own copy)>",
      "key_id": "<hex ID of the log key that signed the checkpoint>",
      "witnesses": ["<verifier key of each witness that cosigned (convenience only)>"],
      "events": [{"position": 17, "leaf_index": 16, "stream_id": "<uuid>", "version": 3,
                  "topic": "SpendCommitted", "state": "<base64 of the stored bytes>",
                  "event": {<the same state, decoded, for reading>},
                  "inclusion_proof": ["<base64 hash>", ...]}],
      "consistency": [{"checkpoint": "<an earlier signed note>", "proof": ["<base64>", ...]}]
    }

To verify: check the checkpoint's Ed25519 signature with the log's key; for each
event rebuild the leaf (ledger/audit/leaf.py) from position, stream id, version,
topic and state, and check its RFC 6962 inclusion proof at `leaf_index` against the
checkpoint's size and root; the events of the practice's own streams (its practice
stream and each budget's) run 1, 2, 3, ... with none left out; `consistency` proves
each earlier checkpoint of this log is a prefix of this one. With witness keys, count
the valid cosignatures from them (c2sp.org/tlog-cosignature) and require a quorum.

Version 1 (no `key_id`, no `witnesses`, never cosigned) is still read and verified.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from ledger import strict_json
from ledger.audit.cosignature import Cosignature, WitnessVerifier, valid_cosignatures
from ledger.audit.leaf import LEAF_ENCODING, EventRecord
from ledger.audit.merkle import EMPTY_ROOT, ProofError, verify_consistency, verify_inclusion
from ledger.audit.note import (
    Checkpoint,
    NoteError,
    SignatureInvalid,
    Verifier,
    open_checkpoint,
    parse_verifier_key,
    split_note,
    unverified_checkpoint,
)
from ledger.domain.events import budget_stream, practice_stream
from ledger.domain.values import number_runs

FORMAT = "commissioning-ledger/proof-bundle"
VERSION = 2
READS = (1, 2)
HASH = "sha256/rfc6962"
MAX_NUMBER = 2**63 - 1
"""The largest position, stream version or leaf index a bundle may name (the log's own)."""
MAX_TOPIC = 0xFFFF
"""The longest topic, in UTF-8 bytes, a leaf can encode (ledger/audit/leaf.py)."""


class BundleError(ValueError):
    """The file is not a readable bundle of this format (corrupt, foreign, other version)."""


class BundleInvalid(ValueError):  # noqa: N818 - a verdict
    """The bundle reads, but does not verify: something in it was altered."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True, slots=True)
class ProvenEvent:
    record: EventRecord
    leaf_index: int
    proof: list[bytes]


def build_bundle(
    practice: str,
    *,
    checkpoint_note: str,
    public_key: str,
    events: list[ProvenEvent],
    consistency: list[tuple[str, list[bytes]]],
    created_at: str,
    key_id: str = "",
    witnesses: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "practice": practice,
        "created_at": created_at,
        "hash": HASH,
        "leaf_encoding": LEAF_ENCODING,
        "checkpoint": checkpoint_note,
        "public_key": public_key,
        "key_id": key_id,
        "witnesses": witnesses or [],
        "events": [
            {
                "position": e.record.position,
                "leaf_index": e.leaf_index,
                "stream_id": str(e.record.stream_uuid),
                "version": e.record.version,
                "topic": e.record.topic,
                "state": b64(e.record.state),
                "event": orjson.loads(e.record.state),
                "inclusion_proof": [b64(h) for h in e.proof],
            }
            for e in events
        ],
        "consistency": [
            {"checkpoint": note, "proof": [b64(h) for h in proof]} for note, proof in consistency
        ],
    }


def load_bundle(data: bytes) -> dict[str, Any]:
    try:
        parsed = strict_json.loads(data)
    except strict_json.StrictJsonError as error:
        raise BundleError(f"not JSON ({error}): the bundle is corrupt or not a bundle") from error
    if not isinstance(parsed, dict) or parsed.get("format") != FORMAT:
        raise BundleError(f"not a {FORMAT} file")
    version = parsed.get("version")
    if type(version) is not int or version not in READS:  # `true` and 2.0 are not versions
        raise BundleError(f"bundle version {_spelled(version)}; this tool reads "
                          f"{' and '.join(map(str, READS))}")
    for name, means in (("hash", HASH), ("leaf_encoding", LEAF_ENCODING)):
        if name in parsed and parsed[name] != means:
            raise BundleError(f"the bundle's {name} is {_spelled(parsed[name])}; this tool "
                              f"verifies {means} only")
    if "witnesses" in parsed and not (isinstance(parsed["witnesses"], list) and all(
            isinstance(w, str) for w in parsed["witnesses"])):
        raise BundleError("the bundle: 'witnesses' must list verifier keys (text)")
    for n, entry in enumerate(_field(parsed, "consistency", list, "the bundle")
                              if "consistency" in parsed else []):
        where = f"consistency entry {n + 1}"
        _field(entry, "checkpoint", str, where)
        if not all(isinstance(h, str) for h in _field(entry, "proof", list, where)):
            raise BundleError(f"{where} is not a list of hashes")
    return parsed


def _spelled(value: Any) -> str:
    """A bundle's value as its JSON wrote it (`true`, `2.0`), cut short when long."""
    text = str(value) if isinstance(value, Decimal) else json.dumps(value, default=str)
    return text if len(text) <= 40 else f"{text[:40]}…"


@dataclass
class BundleResult:
    practice: str
    checkpoint: Checkpoint
    verifier: Verifier
    key_from_bundle: bool
    events: list[dict[str, Any]] = field(default_factory=list)
    consistent_with: Checkpoint | None = None
    cosignatures: list[Cosignature] = field(default_factory=list)


def _field(obj: Any, name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or name not in obj:
        raise BundleError(f"{where} lacks {name!r}")
    value = obj[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BundleError(f"{where}: {name!r} has the wrong type")
    return value


def _hash_list(value: Any, where: str) -> list[bytes]:
    if not isinstance(value, list):
        raise BundleError(f"{where} is not a list of hashes")
    try:
        hashes = [base64.b64decode(str(h), validate=True) for h in value]
    except (binascii.Error, ValueError) as error:
        raise BundleError(f"{where} holds a hash that is not base64") from error
    return hashes


def bundle_checkpoint(bundle: dict[str, Any]) -> Checkpoint:
    """The bundle's checkpoint, unverified (its origin names the log)."""
    try:
        return unverified_checkpoint(_field(bundle, "checkpoint", str, "the bundle"))
    except NoteError as error:
        raise BundleError(f"the bundle's checkpoint cannot be read: {error}") from error


def signer_among(note: str, keys: Sequence[Verifier]) -> Verifier:
    """Of `keys` (the log's keys an auditor holds: one, or one a rotation), the one whose
    name and key ID a signature line of `note` carries; the first when none does (its
    check then fails, naming it). NoteError when the note cannot be read."""
    signed = {(s.name, s.key_id) for s in split_note(note)[1]}
    return next((k for k in keys if (k.name, k.key_id) in signed), keys[0])


def open_with_any(note: str, keys: Sequence[Verifier]) -> Checkpoint:
    """The checkpoint of `note`, its signature checked with whichever of `keys` signed it.
    NoteError (SignatureInvalid) when none did, naming them all."""
    try:
        return open_checkpoint(note, signer_among(note, keys))
    except SignatureInvalid as error:
        if len(keys) == 1:
            raise
        ids = ", ".join(k.key_id.hex() for k in keys)
        raise SignatureInvalid(f"not signed by any of the keys given ({ids})") from error


def _log_keys(bundle: dict[str, Any], trusted: Verifier | Sequence[Verifier] | None
              ) -> list[Verifier]:
    """The keys given of the bundle's log (the bundle's own key when none is given);
    BundleInvalid when none given is of its log, BundleError when none can be read."""
    if trusted is None:
        try:
            trusted = parse_verifier_key(_field(bundle, "public_key", str, "the bundle"))
        except NoteError as error:
            raise BundleError(f"the bundle's public key cannot be read: {error}") from error
    keys = [trusted] if isinstance(trusted, Verifier) else list(trusted)
    if not keys:
        raise BundleError("no key of the log to check the bundle with")
    claimed = bundle_checkpoint(bundle)
    if all(k.name != claimed.origin for k in keys):
        raise BundleInvalid(
            f"the bundle is from log {claimed.origin!r}; the key is for log {keys[0].name!r}"
        )
    return [k for k in keys if k.name == claimed.origin]


def verify_bundle(
    bundle: dict[str, Any],
    trusted: Verifier | Sequence[Verifier] | None = None,
    witnesses: Sequence[WitnessVerifier] = (),
    quorum: int = 0,
) -> BundleResult:
    """Check signature, cosignatures, every inclusion proof and every consistency entry;
    BundleInvalid names the first failure. With `witnesses`, at least `quorum` of them
    must have cosigned the checkpoint.

    `trusted` is the log's key, or its keys over a rotation: the checkpoint and each
    earlier one the bundle carries are checked with whichever of them signed it. None
    takes the key written in the bundle (which proves nothing about who signed)."""
    practice = _field(bundle, "practice", str, "the bundle")
    note = _field(bundle, "checkpoint", str, "the bundle")
    key_from_bundle = trusted is None
    keys = _log_keys(bundle, trusted)
    try:
        trusted = signer_among(note, keys)
        checkpoint = open_with_any(note, keys)
    except NoteError as error:
        raise BundleInvalid(f"checkpoint: {error}") from error
    result = BundleResult(practice, checkpoint, trusted, key_from_bundle)
    result.cosignatures = check_quorum(note, checkpoint, witnesses, quorum)
    events = _field(bundle, "events", list, "the bundle")
    seen: set[int] = set()
    own: dict[uuid.UUID, list[int]] = {}
    for n, item in enumerate(events):
        where = f"event {n + 1}"
        record = _record(item, where)
        leaf_index = _field(item, "leaf_index", int, where)
        if not 0 <= leaf_index <= MAX_NUMBER:
            raise BundleError(f"{where}: leaf index {leaf_index} is out of range")
        proof = _hash_list(_field(item, "inclusion_proof", list, where), f"{where}'s proof")
        if leaf_index in seen:
            raise BundleInvalid(f"{where}: leaf {leaf_index} appears twice")
        seen.add(leaf_index)
        try:
            verify_inclusion(leaf_index, checkpoint.size, record.leaf_hash(), proof,
                             checkpoint.root)
        except ProofError as error:
            raise BundleInvalid(
                f"{where} (position {record.position}) is not in the signed log: {error}"
            ) from error
        decoded = _decoded(record, where)
        if "event" in item and item["event"] != decoded:
            raise BundleInvalid(f"{where}: its readable copy differs from the signed bytes")
        if decoded.get("practice") != practice:
            raise BundleInvalid(f"{where} is not an event of practice {practice}")
        if _own_stream(practice, record.stream_uuid, decoded):
            own.setdefault(record.stream_uuid, []).append(record.version)
        result.events.append({"position": record.position, "topic": record.topic, **decoded})
    _check_own_streams_whole(practice, own)
    for n, entry in enumerate(_field(bundle, "consistency", list, "the bundle")
                              if "consistency" in bundle else []):
        _check_consistency_entry(entry, f"consistency entry {n + 1}", checkpoint, keys)
    return result


def _own_stream(practice: str, stream: uuid.UUID, decoded: dict[str, Any]) -> bool:
    """Whether `stream` is one only `practice`'s events are in: its practice stream, or
    the budget stream of the year the event names (ledger/domain/events.py)."""
    if stream == practice_stream(practice):
        return True
    year = decoded.get("year")
    return isinstance(year, str) and stream == budget_stream(practice, year)


def _check_own_streams_whole(practice: str, own: dict[uuid.UUID, list[int]]) -> None:
    """Every event of the practice's own streams up to the checkpoint is in a bundle
    `ledger prove` made, so each such stream's versions run 1, 2, 3, ... with none
    missing. BundleInvalid names the first version left out: an event removed from the
    bundle (a commitment, a settlement) that its inclusion proofs alone cannot show."""
    for stream, versions in own.items():
        ordered = sorted(versions)
        for expected, version in enumerate(ordered, start=1):
            if version != expected:
                raise BundleInvalid(
                    f"the bundle leaves out version {expected} of stream {stream}, one of "
                    f"practice {practice}'s own (it holds versions {number_runs(ordered)}): "
                    "an event of the practice was removed from the bundle"
                )


def _check_consistency_entry(entry: Any, where: str, checkpoint: Checkpoint,
                             keys: Sequence[Verifier]) -> None:
    """One earlier checkpoint of the bundle: of this log, smaller, its signature good when
    a key given signed it (one rotated out and not given is not known here), and its
    RFC 6962 consistency proof leading to the bundle's checkpoint. BundleInvalid
    otherwise."""
    note = _field(entry, "checkpoint", str, where)
    try:
        earlier = unverified_checkpoint(note)
        signed = {(s.name, s.key_id) for s in split_note(note)[1]}
        if any((k.name, k.key_id) in signed for k in keys):
            earlier = open_with_any(note, keys)
    except NoteError as error:
        raise BundleInvalid(f"{where}: {error}") from error
    if earlier.origin != checkpoint.origin:
        raise BundleInvalid(f"{where} is a checkpoint of another log ({earlier.origin!r})")
    if not 0 < earlier.size < checkpoint.size:
        raise BundleInvalid(f"{where} has size {earlier.size}, not one between 0 and the "
                            f"bundle's {checkpoint.size}")
    proof = _hash_list(_field(entry, "proof", list, where), where)
    try:
        verify_consistency(earlier.size, checkpoint.size, earlier.root, checkpoint.root,
                           proof)
    except ProofError as error:
        raise BundleInvalid(f"{where}: the checkpoint of size {earlier.size} is not a prefix "
                            f"of the signed log of size {checkpoint.size}: {error}") from error


def check_quorum(
    note: str, checkpoint: Checkpoint, witnesses: Sequence[WitnessVerifier], quorum: int
) -> list[Cosignature]:
    """The valid cosignatures from `witnesses`; BundleInvalid when fewer than `quorum`."""
    if quorum > len(witnesses):
        raise BundleError(f"a quorum of {quorum} needs at least {quorum} witness keys")
    try:
        found = valid_cosignatures(note, list(witnesses))
    except NoteError as error:
        raise BundleInvalid(f"checkpoint: {error}") from error
    if len(found) < quorum:
        names = ", ".join(w.name for w in witnesses)
        raise BundleInvalid(
            f"the checkpoint of size {checkpoint.size} carries {len(found)} valid "
            f"cosignature(s) from the witnesses given ({names}); {quorum} required"
        )
    return found


def _record(item: Any, where: str) -> EventRecord:
    position = _field(item, "position", int, where)
    version = _field(item, "version", int, where)
    topic = _field(item, "topic", str, where)
    try:
        stream = uuid.UUID(_field(item, "stream_id", str, where)).bytes
        state = base64.b64decode(_field(item, "state", str, where), validate=True)
    except (ValueError, binascii.Error) as error:
        raise BundleError(f"{where}: malformed stream id or state") from error
    if position < 1 or version < 1:
        raise BundleError(f"{where}: position and version start at 1")
    if position > MAX_NUMBER or version > MAX_NUMBER or len(topic.encode()) > MAX_TOPIC:
        raise BundleError(f"{where}: its position, version or topic is out of range (at most "
                          f"{MAX_NUMBER:,}, and {MAX_TOPIC:,} bytes of topic)")
    return EventRecord(position, stream, version, topic, state)


def _decoded(record: EventRecord, where: str) -> dict[str, Any]:
    try:
        decoded = orjson.loads(record.state)
    except orjson.JSONDecodeError as error:
        raise BundleInvalid(f"{where}: the stored state is not JSON") from error
    if not isinstance(decoded, dict):
        raise BundleInvalid(f"{where}: the stored state is not a JSON object")
    return decoded


def _signed_at(checkpoint: Checkpoint) -> str:
    return f" (signed {checkpoint.time.isoformat()})" if checkpoint.time else ""


def verify_consistency_between(
    newer: dict[str, Any], newer_checkpoint: Checkpoint, older: Checkpoint
) -> None:
    """Prove `older` (already verified) is a prefix of `newer_checkpoint` (already verified).

    Raises BundleInvalid when it is not: two logs, a fork (one size, two roots),
    or a log that shrank (the earlier evidence is larger). The empty log (size 0,
    the hash of the empty string) is a prefix of every log.
    """
    if older.origin != newer_checkpoint.origin:
        raise BundleInvalid(
            f"the checkpoints are of two logs ({older.origin!r}, {newer_checkpoint.origin!r})"
        )
    if older.size > newer_checkpoint.size:
        raise BundleInvalid(
            f"the log shrank: the earlier evidence has size {older.size}"
            f"{_signed_at(older)} and this bundle's checkpoint size "
            f"{newer_checkpoint.size}{_signed_at(newer_checkpoint)}: events were removed "
            "from the log since (or the two files are given the wrong way round)"
        )
    if older.size == 0:
        if older.root != EMPTY_ROOT:
            raise BundleInvalid("a checkpoint of size 0 whose root is not the empty tree's")
        return
    if older.size == newer_checkpoint.size:
        if older.root != newer_checkpoint.root:
            raise BundleInvalid(f"two different roots for the same size {older.size}: a fork")
        return
    entries = _field(newer, "consistency", list, "the bundle")
    for n, entry in enumerate(entries):
        note = _field(entry, "checkpoint", str, f"consistency entry {n + 1}")
        try:
            listed = unverified_checkpoint(note)
        except NoteError:
            continue
        if listed.size != older.size:
            continue
        proof = _hash_list(_field(entry, "proof", list, f"consistency entry {n + 1}"),
                           f"consistency entry {n + 1}")
        try:
            verify_consistency(older.size, newer_checkpoint.size, older.root,
                               newer_checkpoint.root, proof)
        except ProofError as error:
            raise BundleInvalid(
                f"checkpoint of size {older.size} is not a prefix of size "
                f"{newer_checkpoint.size}: {error}"
            ) from error
        return
    raise BundleInvalid(
        f"the newer bundle carries no consistency proof from size {older.size}"
    )
