"""Signed notes and checkpoints, against the golang.org/x/mod/sumdb/note vector."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.audit.note import (
    Checkpoint,
    NoteError,
    Signer,
    open_checkpoint,
    open_note,
    parse_checkpoint,
    parse_verifier_key,
    sign_checkpoint,
    split_note,
    unverified_checkpoint,
)

# golang.org/x/mod/sumdb/note note_test.go / doc example.
GO_SIGNER_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + "\n\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def go_signer() -> Signer:
    seed = base64.b64decode(GO_SIGNER_KEY.split("+", 4)[4])[1:]
    return Signer("PeterNeumann", Ed25519PrivateKey.from_private_bytes(seed))


def test_signing_reproduces_the_go_note_byte_for_byte() -> None:
    signer = go_signer()
    assert signer.verifier.vkey == GO_VERIFIER_KEY
    assert signer.sign(GO_TEXT) == GO_NOTE


def test_the_go_note_opens_with_the_go_verifier_key() -> None:
    assert open_note(GO_NOTE, parse_verifier_key(GO_VERIFIER_KEY)) == GO_TEXT


def test_an_edited_note_is_refused() -> None:
    with pytest.raises(NoteError, match="does not verify"):
        open_note(
            GO_NOTE.replace("cryptography", "cryptographY"), parse_verifier_key(GO_VERIFIER_KEY)
        )


def test_a_note_signed_by_another_key_is_refused() -> None:
    other = Signer("PeterNeumann", Ed25519PrivateKey.generate()).sign(GO_TEXT)
    with pytest.raises(NoteError, match="not signed by the key"):
        open_note(other, parse_verifier_key(GO_VERIFIER_KEY))


@pytest.mark.parametrize(
    "key",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
        "PeterNeumann+c74f20a3+AhpcQ2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  # wrong type
        "PeterNeumann+c74f20a3",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+!!!",
        "",
    ],
)
def test_malformed_verifier_keys_are_refused(key: str) -> None:
    with pytest.raises(NoteError):
        parse_verifier_key(key)


@pytest.mark.parametrize(
    "note",
    ["no newline", "text\n", "text\n\nnot a signature\n", "text\n\n\u2014 name !!!\n",
     "te\x01xt\n\n\u2014 name AAAAAAAA\n"],
)
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(NoteError):
        split_note(note)


def test_checkpoints_round_trip_and_verify() -> None:
    signer = Signer("commissioning-ledger/abc", Ed25519PrivateKey.generate())
    checkpoint = Checkpoint(
        "commissioning-ledger/abc", 1042, bytes(range(32)), datetime(2024, 7, 15, 9, 30, tzinfo=UTC)
    )
    signed = sign_checkpoint(checkpoint, signer)
    assert signed.note.startswith(
        "commissioning-ledger/abc\n1042\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
        "time 2024-07-15T09:30:00Z\n\n\u2014 commissioning-ledger/abc "
    )
    assert open_checkpoint(signed.note, signer.verifier) == checkpoint
    assert unverified_checkpoint(signed.note) == checkpoint
    tampered = signed.note.replace("\n1042\n", "\n1043\n")
    with pytest.raises(NoteError, match="does not verify"):
        open_checkpoint(tampered, signer.verifier)


def test_a_checkpoint_of_another_log_is_refused() -> None:
    signer = Signer("commissioning-ledger/abc", Ed25519PrivateKey.generate())
    signed = signer.sign(Checkpoint("commissioning-ledger/other", 1, bytes(32)).text())
    with pytest.raises(NoteError, match="from log"):
        open_checkpoint(signed, signer.verifier)


@pytest.mark.parametrize(
    "text",
    ["origin\n01\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", "origin\n1\nAAAA\n",
     "origin\n1\n", "\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
     "origin\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\ntime yesterday\n"],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(NoteError):
        parse_checkpoint(text)
