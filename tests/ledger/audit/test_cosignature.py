"""cosignature/v1 lines, against transparency-dev/formats vectors and an independent reader."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.audit.cosignature import (
    WitnessSigner,
    cosigned_message,
    parse_witness_key,
    parse_witness_private_key,
    valid_cosignatures,
)
from ledger.audit.note import NoteError
from tests.ledger.witness.logs import (
    GO_INIT,
    GO_WITNESS_KEY,
    GO_WITNESS_PRIVATE,
    MemoryLog,
)

TEXT = GO_INIT.split("\n\n")[0] + "\n"


def go_witness() -> WitnessSigner:
    return parse_witness_private_key(GO_WITNESS_PRIVATE)


def test_published_cosignature_keys_read_with_their_ids() -> None:
    # transparency-dev/formats note/note_cosigv1_test.go TestCoSigV1NewVerifier.
    remora = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
    assert parse_witness_key(remora).vkey == remora
    converted = parse_witness_key("TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6")
    assert converted.name == "TEST"
    for bad in ("bananas.sigstore.dev+12344556", "rekor.sigstore.dev+12345678+THIS_IS_NOT_BASE64!",
                "rekor.sigstore.dev+12345678+AwEB",
                "remora.n621.de+00000000+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"):
        with pytest.raises(NoteError):
            parse_witness_key(bad)


def test_a_plain_note_key_names_the_same_witness_as_its_cosignature_form() -> None:
    signer = go_witness()
    assert parse_witness_key(GO_WITNESS_KEY) == signer.verifier
    # The 0x04 key ID differs from the 0x01 one (f13a86db), as VKeyToCosignatureV1 gives.
    assert signer.verifier.vkey.startswith("witness+24b37851+BNYV1Ztajd9")
    assert parse_witness_private_key(signer.private_text()).verifier == signer.verifier


def test_the_published_cosignature_timestamp_reads() -> None:
    # formats TestCoSigV1Timestamp: key ID, then the 8-byte big-endian time.
    blob = base64.b64decode("ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9u"
                            "L+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA==")
    assert int.from_bytes(blob[4:12], "big") == 1727964367


def test_the_signed_message_is_header_time_then_the_checkpoint() -> None:
    assert cosigned_message(TEXT, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\nmonkeys\n5\n"
        b"41smjBUiAU70EtKlT6lIOIYtRTYxYXsDB+XHfcvu/BE=\n")


def test_a_cosigned_note_carries_the_line_and_verifies() -> None:
    signer = go_witness()
    line = signer.cosign(TEXT, 1700000000)
    raw = base64.b64decode(line.split(" ")[2])
    assert line.startswith("\u2014 witness ")
    assert line.endswith("\n")
    assert raw[:4].hex() == "24b37851"
    assert len(raw) == 76
    assert int.from_bytes(raw[4:12], "big") == 1700000000
    found = valid_cosignatures(GO_INIT + line, [signer.verifier])
    assert [(c.witness, c.timestamp) for c in found] == [(signer.verifier, 1700000000)]


def test_cosignatures_from_unknown_keys_are_ignored_and_altered_ones_refused() -> None:
    signer = go_witness()
    other = MemoryLog(seed=b"other").signer
    stranger = WitnessSigner("stranger", other.private_key)
    note = GO_INIT + stranger.cosign(TEXT, 1700000000)
    assert valid_cosignatures(note, [signer.verifier]) == []
    line = signer.cosign(TEXT, 1700000000)
    altered = GO_INIT.replace("\n5\n", "\n6\n") + line
    with pytest.raises(NoteError, match="does not verify"):
        valid_cosignatures(altered, [signer.verifier])


@given(timestamp=st.integers(1, 2**63 - 1), shift=st.integers(1, 1000))
def test_a_cosignature_holds_only_for_its_own_time(timestamp: int, shift: int) -> None:
    signer = go_witness()
    blob = base64.b64decode(signer.cosign(TEXT, timestamp).split(" ")[2])[4:]
    assert signer.verifier.verify(TEXT, blob) == timestamp
    moved = ((timestamp + shift) % 2**63).to_bytes(8, "big") + blob[8:]
    assert signer.verifier.verify(TEXT, moved) is None


def test_an_independent_implementation_verifies_our_cosignatures() -> None:
    aics = pytest.importorskip("aics_tlog", reason="aics-tlog is installed by `make`")
    log = MemoryLog(origin="example.org/log")
    log.grow(9)
    note = log.checkpoint()
    signer = go_witness()
    cosigned = note + signer.cosign(note.split("\n\n")[0] + "\n", 1700000000)
    result = aics.verify_checkpoint(
        aics.parse_note(cosigned), aics.parse_vkey(log.vkey),
        [aics.parse_vkey(signer.verifier.vkey)], quorum=1)
    assert result.ok, result
    tampered = cosigned.replace("\n9\n", "\n8\n")
    assert not aics.verify_checkpoint(
        aics.parse_note(tampered), aics.parse_vkey(log.vkey),
        [aics.parse_vkey(signer.verifier.vkey)], quorum=1).ok


def test_one_key_under_two_names_counts_once() -> None:
    signer = go_witness()
    alias = WitnessSigner("alias", signer.private_key)
    note = GO_INIT + signer.cosign(TEXT, 1700000000) + alias.cosign(TEXT, 1700000001)
    assert len(valid_cosignatures(note, [signer.verifier, alias.verifier])) == 1
