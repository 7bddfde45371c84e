"""Rotating and retiring the log's signing key, on both stores."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.audit.bundle import BundleInvalid, load_bundle, verify_bundle
from ledger.audit.note import Checkpoint, Signer, sign_checkpoint
from ledger.auditlog.proofs import AuditFailed, make_checkpoint, prove_practice, store_signer
from ledger.auditlog.rotation import key_ring, retire_key, rotate_key
from ledger.auditlog.seal import current_head
from ledger.auditlog.verify import BAD_SIGNATURE, verify_store
from ledger.bootstrap import Ledger
from ledger.domain.errors import InvalidInput, NotFound
from tests.ledger.audit.test_tampering import NOW, Db, write_history, write_history_more


@pytest.fixture(autouse=True)
def signing_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keys" / "signing-key"
    monkeypatch.setenv("LEDGER_SIGNING_KEY", str(path))
    return path


def bundle(ledger: Ledger, when: object = NOW) -> dict[str, object]:
    return load_bundle(orjson.dumps(prove_practice(ledger.store, "A81001", when)))  # type: ignore[arg-type]


def old_signer(signing_key: Path, key_id: str, origin: str) -> Signer:
    pem = signing_key.with_name(f"{signing_key.name}.{key_id}.old").read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return Signer(origin, key)


def test_checkpoints_signed_before_a_rotation_still_verify(
    ledger: Ledger, signing_key: Path,
) -> None:
    write_history(ledger)
    old_key = store_signer(ledger.store).verifier
    before = bundle(ledger)
    rotated = rotate_key(ledger.store, NOW + timedelta(hours=1))
    assert rotated.old.verifier == old_key
    assert rotated.old.valid_until == NOW + timedelta(hours=1)
    new_key = store_signer(ledger.store).verifier
    assert new_key != old_key
    assert signing_key.stat().st_mode & 0o777 == 0o600
    write_history_more(ledger)
    after = bundle(ledger, NOW + timedelta(hours=2))
    assert (before["key_id"], after["key_id"]) == (old_key.key_id.hex(), new_key.key_id.hex())
    verify_bundle(before, old_key)
    verify_bundle(after, new_key)
    with pytest.raises(BundleInvalid):
        verify_bundle(after, old_key)
    report = verify_store(ledger.store, key_ring(ledger.store))
    assert report.ok, report.damage
    assert report.checkpoints_checked == 2
    ring = key_ring(ledger.store)
    assert [k.verifier for k in ring.keys] == [old_key, new_key]


def test_a_rotated_out_key_signs_no_more(ledger: Ledger, signing_key: Path) -> None:
    write_history(ledger)
    make_checkpoint(ledger.store, NOW)
    rotated = rotate_key(ledger.store, NOW + timedelta(hours=1))
    origin = store_signer(ledger.store).name
    stale = old_signer(signing_key, rotated.old.key_id, origin)
    write_history_more(ledger)
    with pytest.raises(AuditFailed, match="rotated out"):
        make_checkpoint(ledger.store, NOW + timedelta(hours=2), stale)


def test_a_retired_key_is_refused_after_its_retirement(
    ledger: Ledger, signing_key: Path, db_url: str,
) -> None:
    write_history(ledger)
    make_checkpoint(ledger.store, NOW)
    rotated = rotate_key(ledger.store, NOW + timedelta(hours=1))
    with pytest.raises(InvalidInput, match="current signing key"):
        retire_key(ledger.store, rotated.new.key_id, NOW + timedelta(hours=2))
    with pytest.raises(NotFound):
        retire_key(ledger.store, "00000000", NOW + timedelta(hours=2))
    retired = retire_key(ledger.store, rotated.old.key_id, NOW + timedelta(hours=2))
    assert retired.retired_at == NOW + timedelta(hours=2)
    assert verify_store(ledger.store, key_ring(ledger.store)).ok  # signed before: still good
    # Whoever holds the compromised key signs a checkpoint of the log and slips it in.
    thief = old_signer(signing_key, rotated.old.key_id, store_signer(ledger.store).name)
    head = current_head(ledger.store)
    assert head is not None
    forged = sign_checkpoint(Checkpoint(head.origin, head.size, head.root,
                                        NOW + timedelta(hours=3)), thief)
    db = Db(db_url)
    db.run(f"INSERT INTO {db.table('ledger_checkpoints')} (size, root, note, created_at) "
           "VALUES (?, ?, ?, ?)", (head.size, head.root, forged.note, "2024-07-15T15:00:00Z"))
    report = verify_store(ledger.store, key_ring(ledger.store))
    assert not report.ok
    assert [d.kind for d in report.damage] == [BAD_SIGNATURE]
    assert "after it was retired" in report.damage[0].detail
