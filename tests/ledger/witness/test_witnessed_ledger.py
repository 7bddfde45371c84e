"""A witnessed ledger on both stores: an honest log is cosigned as it grows; a dishonest
operator (database access, the log's own signing key) is caught by the witness refusing
or by `verify-bundle --witness-key` refusing.

The witness runs in-process (Starlette's test client, real state files with fsync).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest
from starlette.testclient import TestClient

from ledger.audit.bundle import (
    BundleInvalid,
    load_bundle,
    verify_bundle,
    verify_consistency_between,
)
from ledger.audit.cosignature import WitnessSigner, valid_cosignatures
from ledger.audit.merkle import EMPTY_ROOT
from ledger.auditlog.proofs import make_checkpoint, prove_practice, store_signer
from ledger.auditlog.seal import seal
from ledger.auditlog.verify import verify_store
from ledger.auditlog.witnesses import (
    Post,
    WitnessRefused,
    configure_witnesses,
    configured_witnesses,
    request_cosignatures,
)
from ledger.bootstrap import Ledger
from tests.ledger.audit.test_tampering import NOW, Db, write_history, write_history_more
from tests.ledger.witness.conftest import WitnessClient

WITNESS_URL = "http://witness-1.test"


@pytest.fixture(autouse=True)
def signing_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keys" / "signing-key"
    monkeypatch.setenv("LEDGER_SIGNING_KEY", str(path))
    return path


def in_process(clients: dict[str, TestClient]) -> Post:
    """Post to the witness app whose URL host matches, without sockets."""

    def post(url: str, body: bytes) -> tuple[int, str, str]:
        parts = urlsplit(url)
        client = clients[f"{parts.scheme}://{parts.netloc}"]
        response = client.post(parts.path, content=body)
        return response.status_code, response.text, response.headers.get("content-type", "")

    return post


class Rig:
    def __init__(self, ledger: Ledger, client: TestClient, signer: WitnessSigner) -> None:
        self.ledger = ledger
        self.store = ledger.store
        self.witness = signer.verifier
        self.post = in_process({WITNESS_URL: client})
        configure_witnesses(self.store, [(WITNESS_URL, self.witness)])

    def checkpoint(self) -> str:
        stored = make_checkpoint(self.store, NOW)
        return request_cosignatures(self.store, stored, self.post).note

    def bundle(self, cosign: bool = True) -> dict[str, object]:
        def ask(stored: object) -> None:
            request_cosignatures(self.store, stored, self.post)  # type: ignore[arg-type]

        made = prove_practice(self.store, "A81001", NOW, cosign=ask if cosign else None)
        return load_bundle(orjson.dumps(made))


@pytest.fixture
def rig(ledger: Ledger, make_witness: WitnessClient, witness_signer: WitnessSigner) -> Rig:
    write_history(ledger)
    vkey = store_signer(ledger.store).verifier.vkey
    return Rig(ledger, make_witness(vkey), witness_signer)


def rebuild_audit_tables(db: Db, *, keep_cosigned: bool = False) -> None:
    """What an operator hiding a change does: empty the log (keeping its origin) and its
    checkpoints; `seal` then rebuilds leaves, nodes and head from the events as they are."""
    tables = ["ledger_leaves", "ledger_nodes", "ledger_checkpoints"]
    for table in tables if keep_cosigned else [*tables, "ledger_cosigned"]:
        db.run(f"DELETE FROM {db.table(table)}")
    db.run(f"UPDATE {db.table('ledger_tree')} SET size = 0, last_position = 0, frontier = ?, "
           "root = ?", (b"", EMPTY_ROOT))


def commit(ledger: Ledger, ref: str) -> None:
    from ledger.application.commands import build_command  # noqa: PLC0415

    ledger.service.execute(build_command("spend commit", {
        "practice": "A81001", "year": "2024-25", "element": "acute", "ref": ref,
        "amount": "1.00", "provider": "RTR", "service": "Hip"}), "practice:A81001")


def test_an_honest_log_is_cosigned_at_every_checkpoint(rig: Rig) -> None:
    sizes = []
    for n in range(60):
        commit(rig.ledger, f"H-{n}")
        note = rig.checkpoint()
        found = valid_cosignatures(note, [rig.witness])
        assert len(found) == 1
        sizes.append(int(note.splitlines()[1]))
    assert sizes == list(range(12, 72))
    assert [w.size for w in configured_witnesses(rig.store)] == [71]
    report = verify_store(rig.store, store_signer(rig.store).verifier)
    assert report.ok, report.damage
    assert (report.cosigned_size, report.cosigned_extended) == (71, True)
    assert report.cosigned_by == ["witness"]
    result = verify_bundle(rig.bundle(), store_signer(rig.store).verifier, [rig.witness], 1)
    assert [c.witness for c in result.cosignatures] == [rig.witness]


def test_a_checkpoint_already_cosigned_is_not_sent_again(rig: Rig) -> None:
    first = rig.checkpoint()
    calls: list[str] = []
    post = rig.post
    rig.post = lambda url, body: calls.append(url) or post(url, body)  # type: ignore[func-returns-value]
    assert rig.checkpoint() == first
    assert calls == []


def test_a_witness_that_lost_track_is_answered_from_the_size_it_names(rig: Rig, db_url: str
                                                                      ) -> None:
    rig.checkpoint()
    commit(rig.ledger, "X-1")
    Db(db_url).run(f"UPDATE {Db(db_url).table('ledger_witnesses')} SET size = 3")
    note = rig.checkpoint()  # 409 "11", then the proof from 11
    assert valid_cosignatures(note, [rig.witness])
    assert [w.size for w in configured_witnesses(rig.store)] == [12]


def test_truncating_the_log_and_rebuilding_it_is_refused(rig: Rig, db_url: str) -> None:
    rig.checkpoint()  # the witness holds size 11
    db = Db(db_url)
    db.run(f"DELETE FROM {db.events} WHERE {db.pos} >= ?", (9,))
    rebuild_audit_tables(db)
    db.run(f"UPDATE {db.table('ledger_witnesses')} SET size = 0")  # hide that too
    seal(rig.store)
    assert verify_store(rig.store, store_signer(rig.store).verifier).ok  # locally clean
    with pytest.raises(WitnessRefused, match=r"witness witness \(http://witness-1.test\) refused "
                                             r"the checkpoint of size 8: it has cosigned size 11"):
        rig.checkpoint()
    # Grown past the old size again, the rebuilt log still cannot prove it extends it.
    for n in range(5):
        commit(rig.ledger, f"T-{n}")
    with pytest.raises(WitnessRefused, match="HTTP 422"):
        rig.checkpoint()
    with pytest.raises(WitnessRefused):
        rig.bundle()
    forged = rig.bundle(cosign=False)
    with pytest.raises(BundleInvalid, match="0 valid cosignature"):
        verify_bundle(forged, store_signer(rig.store).verifier, [rig.witness], 1)


def test_rewriting_an_old_event_and_everything_above_it_is_refused(rig: Rig, db_url: str
                                                                   ) -> None:
    rig.checkpoint()
    db = Db(db_url)
    state = db.state(6)
    db.set_state(6, state.replace(b'"amount_pence":1000,', b'"amount_pence":100,'))
    assert state != db.state(6)
    rebuild_audit_tables(db)
    db.run(f"UPDATE {db.table('ledger_witnesses')} SET size = 0")  # hide that too
    seal(rig.store)
    write_history_more(rig.ledger)
    assert verify_store(rig.store, store_signer(rig.store).verifier).ok  # locally clean
    with pytest.raises(WitnessRefused, match=r"HTTP 422.*not consistent"):
        rig.checkpoint()
    forged = rig.bundle(cosign=False)
    with pytest.raises(BundleInvalid, match="cosignature"):
        verify_bundle(forged, store_signer(rig.store).verifier, [rig.witness], 1)


def test_a_fork_shown_to_two_auditors_is_caught(rig: Rig, db_url: str) -> None:
    honest = rig.bundle()  # auditor 1: size 11, cosigned
    key = store_signer(rig.store).verifier
    verify_bundle(honest, key, [rig.witness], 1)
    db = Db(db_url)
    state = db.state(5)
    db.set_state(5, state.replace(b'"amount_pence":1000,', b'"amount_pence":2000,'))
    rebuild_audit_tables(db)
    seal(rig.store)
    with pytest.raises(WitnessRefused, match="HTTP 422"):
        rig.bundle()  # the witness will not cosign another root at size 11
    forked = rig.bundle(cosign=False)  # auditor 2: size 11, another root, log-signed only
    fork_checkpoint = verify_bundle(forked, key).checkpoint
    assert fork_checkpoint.size == 11
    with pytest.raises(BundleInvalid, match="cosignature"):
        verify_bundle(forked, key, [rig.witness], 1)
    with pytest.raises(BundleInvalid, match="a fork"):
        verify_consistency_between(forked, fork_checkpoint,
                                   verify_bundle(honest, key).checkpoint)


def test_verify_reports_a_store_that_no_longer_extends_the_cosigned_checkpoint(
    rig: Rig, db_url: str,
) -> None:
    rig.checkpoint()
    db = Db(db_url)
    # Rewrite as above but keep the cosigned note: `verify` holds the log to it.
    state = db.state(6)
    db.set_state(6, state.replace(b'"amount_pence":1000,', b'"amount_pence":100,'))
    rebuild_audit_tables(db, keep_cosigned=True)
    seal(rig.store)
    report = verify_store(rig.store, store_signer(rig.store).verifier)
    assert (report.cosigned_size, report.cosigned_extended) == (11, False)
    assert "inconsistent-with-cosigned" in {d.kind for d in report.damage}


@pytest.mark.parametrize("removed", ["every cosigned checkpoint", "the largest"])
def test_verify_reports_a_cosigned_checkpoint_removed_while_its_witness_remembers_it(
    rig: Rig, db_url: str, removed: str,
) -> None:
    rig.checkpoint()  # the witness holds size 11
    commit(rig.ledger, "R-12")
    rig.checkpoint()  # and now 12
    key = store_signer(rig.store).verifier
    assert verify_store(rig.store, key).ok
    db = Db(db_url)
    db.run(f"DELETE FROM {db.table('ledger_cosigned')}"
           + (" WHERE size = 12" if removed == "the largest" else ""))
    report = verify_store(rig.store, key)
    assert not report.ok
    [damage] = [d for d in report.damage if d.kind == "inconsistent-with-cosigned"]
    kept = "the largest kept is of size 11" if removed == "the largest" else "none is kept"
    assert damage.detail == (f"witness witness cosigned the checkpoint of size 12, but {kept}: "
                             "the record of what it cosigned was removed")




def test_a_cosigned_checkpoint_signed_by_a_key_not_given_is_reported_as_such_not_as_removed(
    rig: Rig,
) -> None:
    from ledger.auditlog.rotation import rotate_key  # noqa: PLC0415

    rig.checkpoint()  # cosigned at size 11, signed by the key rotated out next
    rotated = rotate_key(rig.store, NOW)
    report = verify_store(rig.store, rotated.new.verifier)
    assert {(d.kind, d.detail.partition(":")[0]) for d in report.damage} == {
        ("bad-checkpoint-signature", "checkpoint #1"),
        ("bad-checkpoint-signature", "cosigned checkpoint #1")}, report.damage
    assert verify_store(rig.store, None).ok  # every key the log lists


def test_a_rotated_log_key_keeps_the_witness_cosigning(
    rig: Rig, make_witness: WitnessClient, tmp_path: Path,
) -> None:
    from ledger.auditlog.rotation import rotate_key  # noqa: PLC0415

    rig.checkpoint()
    old_key = store_signer(rig.store).verifier.vkey
    rotated = rotate_key(rig.store, NOW)
    # The witness is restarted knowing both keys of the log (same state directory).
    restarted = make_witness(old_key, rotated.new.verifier.vkey, state=tmp_path / "state")
    rig.post = in_process({WITNESS_URL: restarted})
    commit(rig.ledger, "K-1")
    note = rig.checkpoint()
    assert valid_cosignatures(note, [rig.witness])
    assert f"\u2014 {store_signer(rig.store).name} " in note
    result = verify_bundle(rig.bundle(), rotated.new.verifier, [rig.witness], 1)
    assert result.checkpoint.size == 12


def test_a_version_1_bundle_still_verifies(rig: Rig) -> None:
    """As the tool wrote bundles before witnesses: version 1, no key ID, no cosignature."""
    made = rig.bundle(cosign=False)
    old = {k: v for k, v in made.items() if k not in ("key_id", "witnesses")}
    old["version"] = 1
    loaded = load_bundle(orjson.dumps(old))
    key = store_signer(rig.store).verifier
    assert verify_bundle(loaded, key).checkpoint.size == 11
    with pytest.raises(BundleInvalid, match="0 valid cosignature"):
        verify_bundle(loaded, key, [rig.witness], 1)
