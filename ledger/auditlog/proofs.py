"""Checkpoints of the sealed log and proof bundles for one practice (store side)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ledger.audit.bundle import ProvenEvent, build_bundle
from ledger.audit.leaf import EventRecord, state_bytes, stream_bytes
from ledger.audit.merkle import ProofError, consistency_proof, inclusion_proof, verify_consistency
from ledger.audit.note import (
    Checkpoint,
    NoteError,
    SignedCheckpoint,
    format_time,
    open_checkpoint,
    sign_checkpoint,
    unverified_checkpoint,
)
from ledger.auditlog.keys import KeyFileMissing, default_key_path, load_signer
from ledger.auditlog.reader import LogReader, StoreNodes, snapshot
from ledger.auditlog.seal import current_origin, lock_head, seal
from ledger.auditlog.tables import ensure_tables, fetch, transaction
from ledger.domain.errors import LedgerError, NotFound
from ledger.domain.events import practice_stream

if TYPE_CHECKING:
    from ledger.audit.note import Signer
    from ledger.store.eventstore import EventStore


class AuditFailed(LedgerError):  # noqa: N818 - a verdict, like RuleViolation
    """The stored log does not verify (exit 4: verification failed)."""


def key_path(store: EventStore) -> Path:
    return default_key_path(store.target.kind, store.target.location)


def store_signer(store: EventStore, *, create: bool = True) -> Signer:
    """The log's signer; without `create`, neither the key nor the log head is made."""
    dialect = ensure_tables(store)
    if not create:
        origin = current_origin(store)
        if origin is None:
            raise KeyFileMissing("signing-key",
                                 f"the log at {store.target.display} has no head yet")
        return load_signer(key_path(store), origin, create=False)
    with transaction(store, commit=True) as curs:
        origin = lock_head(curs, dialect).origin
    return load_signer(key_path(store), origin, create=create)


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    checkpoint_id: int
    signed: SignedCheckpoint
    new: bool


def make_checkpoint(
    store: EventStore, now: datetime, signer: Signer | None = None
) -> StoredCheckpoint:
    """Seal, then sign the head and keep the checkpoint (the latest is reused if current).

    A log must never sign a head inconsistent with one it signed before: the new head
    is first proved consistent with the latest stored checkpoint. Raises
    UnreadableEvent (nothing sealed or signed) when the log holds an event this
    version cannot read: the ledger never vouches for a log it cannot read.
    """
    from ledger.auditlog.rotation import usable_signer  # noqa: PLC0415 - it builds on this

    store.ensure_readable()
    seal(store)
    signer = usable_signer(store, now, signer)
    dialect = ensure_tables(store)
    with transaction(store, commit=True) as curs:
        head = lock_head(curs, dialect)
        curs.execute(
            dialect.sql(
                "SELECT checkpoint_id, size, root, note FROM {checkpoints} "
                "ORDER BY checkpoint_id DESC LIMIT 1"
            )
        )
        row = curs.fetchone()
        if row is not None:
            latest_id, size, root, note = tuple(row)
            try:
                latest = unverified_checkpoint(str(note))
            except NoteError as error:
                raise AuditFailed(
                    "audit", f"checkpoint #{latest_id} is damaged: {error}"
                ) from error
            if (
                latest.size == head.size
                and latest.root == head.root == bytes(root)
                and _signed_by(str(note), signer)
            ):
                parsed = unverified_checkpoint(str(note))
                return StoredCheckpoint(
                    int(latest_id), SignedCheckpoint(parsed, str(note)), new=False
                )
            _check_consistent(LogReader(curs, dialect), latest, head.size, head.root,
                              int(latest_id))
            del size
        signed = sign_checkpoint(Checkpoint(head.origin, head.size, head.root, now), signer)
        returning = " RETURNING checkpoint_id"
        curs.execute(
            dialect.sql(
                "INSERT INTO {checkpoints} (size, root, note, created_at) VALUES (?, ?, ?, ?)"
            )
            + returning,
            (head.size, head.root, signed.note, format_time(now)),
        )
        (new_id,) = tuple(curs.fetchone())
    return StoredCheckpoint(int(new_id), signed, new=True)


def _signed_by(note: str, signer: Signer) -> bool:
    try:
        open_checkpoint(note, signer.verifier)
    except NoteError:
        return False
    return True


def _check_consistent(
    reader: LogReader, latest: Checkpoint, size: int, root: bytes, latest_id: int
) -> None:
    if latest.size > size:
        raise AuditFailed("audit", f"the log has {size} leaves but checkpoint #{latest_id} "
                                   f"signed {latest.size}: run `ledger verify`")
    try:
        proof = consistency_proof(StoreNodes(reader), latest.size, size)
        verify_consistency(latest.size, size, latest.root, root, proof)
    except (ProofError, LookupError) as error:
        raise AuditFailed(
            "audit", f"the log is not consistent with checkpoint #{latest_id}: refusing to "
                     f"sign ({error}); run `ledger verify`"
        ) from error


def checkpoints(store: EventStore) -> list[tuple[int, str]]:
    with snapshot(store) as reader:
        return [(int(c[0]), str(c[3])) for c in reader.checkpoints()]


def _trail_rows(reader: LogReader, practice: str, upto: int) -> list[tuple[Any, ...]]:
    needle = f'"practice":"{practice}"'.encode()
    dialect = reader.dialect
    match = "instr(state, ?) > 0" if dialect.kind == "sqlite" else "position(? in state) > 0"
    reader.curs.execute(
        dialect.sql(
            "SELECT {position}, originator_id, originator_version, topic, state FROM {events} "  # noqa: S608 - fixed text
            f"WHERE {{position}} <= ? AND {match} ORDER BY {{position}}"
        ),
        (upto, needle),
    )
    return [tuple(r) for r in reader.curs.fetchall()]


def cosigned_note(store: EventStore, checkpoint_id: int) -> str | None:
    """The checkpoint's note with the witnesses' cosignatures, if any witness cosigned it."""
    dialect = ensure_tables(store)
    with transaction(store, commit=False) as curs:
        rows = fetch(curs, dialect.sql("SELECT note FROM {cosigned} WHERE checkpoint_id = ?"),
                     (checkpoint_id,))
    return str(rows[0][0]) if rows else None


def _witness_keys(store: EventStore, note: str) -> list[str]:
    """Verifier keys of the configured witnesses whose cosignature the note carries."""
    from ledger.audit.cosignature import parse_witness_key, valid_cosignatures  # noqa: PLC0415

    dialect = ensure_tables(store)
    with transaction(store, commit=False) as curs:
        rows = fetch(curs, dialect.sql("SELECT vkey FROM {witnesses} ORDER BY name"))
    keys = [parse_witness_key(str(row[0])) for row in rows]
    try:
        return [c.witness.vkey for c in valid_cosignatures(note, keys)]
    except NoteError:
        return []


def prove_practice(
    store: EventStore,
    practice: str,
    now: datetime,
    cosign: Callable[[StoredCheckpoint], object] | None = None,
) -> dict[str, Any]:
    """The practice's trail, each event with its inclusion proof, and a signed checkpoint.

    `cosign` (the witnesses' client) is called with the checkpoint before the bundle is
    made, so that the bundle carries every cosignature the checkpoint has. Raises
    NotFound (exit 1) for a practice the ledger has never registered: nothing is sealed,
    signed or written for it.
    """
    store.ensure_readable()
    if not store.stream(practice_stream(practice)):
        raise NotFound("practice", f"no practice {practice}")
    stored = make_checkpoint(store, now)
    if cosign is not None:
        cosign(stored)
    checkpoint = stored.signed.checkpoint
    cosigned = cosigned_note(store, stored.checkpoint_id) or stored.signed.note
    signer = store_signer(store)
    with snapshot(store) as reader:
        nodes = StoreNodes(reader)
        head = reader.head()
        upto = reader.leaf_at(checkpoint.size - 1)[1] if checkpoint.size else 0  # type: ignore[index]
        proven: list[ProvenEvent] = []
        for position, stream, version, topic, state in _trail_rows(reader, practice, upto):
            raw = state_bytes(state)
            decoded = orjson.loads(raw)
            if not isinstance(decoded, dict) or decoded.get("practice") != practice:
                continue
            record = EventRecord(int(position), stream_bytes(stream), int(version), str(topic), raw)
            leaf = reader.leaf_for_position(record.position)
            if leaf is None or bytes(leaf[4]) != record.leaf_hash():
                raise AuditFailed("audit", f"the event at position {record.position} does not "
                                           "match its sealed leaf: run `ledger verify`")
            proof = inclusion_proof(nodes, int(leaf[0]), checkpoint.size)
            proven.append(ProvenEvent(record, int(leaf[0]), proof))
        consistency: list[tuple[str, list[bytes]]] = []
        for _id, size, _root, note, _created in reader.checkpoints():
            if 0 < int(size) < checkpoint.size:
                consistency.append((str(note), consistency_proof(nodes, int(size),
                                                                 checkpoint.size)))
        del head
    return build_bundle(
        practice,
        checkpoint_note=cosigned,
        public_key=signer.verifier.vkey,
        events=proven,
        consistency=consistency,
        created_at=format_time(now),
        key_id=signer.verifier.key_id.hex(),
        witnesses=_witness_keys(store, cosigned),
    )
