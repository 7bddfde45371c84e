"""A key file whose writing fails (a full disk) is not left behind half written: the
command says why, and the next attempt, with room, makes a whole key. A truncated
signing key would stop every later checkpoint ("not a PEM private key"), and a truncated
witness key every later keygen ("exists: a witness keeps its key")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ledger.auditlog.keys import load_signer
from ledger.witness.keys import create_witness_key, load_witness_key

ROOM = 16
"""Bytes any file may grow to in `with_a_full_disk`: less than any key."""


def with_a_full_disk(call: str, refusal: str) -> str:
    """`call` run by Python where no file grows past ROOM bytes: each write past it fails
    (EFBIG), as on a full disk. Returns the rule and message of the `refusal` (a
    LedgerError class in ledger.domain.errors) it raised."""
    code = (
        "import resource, signal\n"
        "from pathlib import Path\n"
        "from ledger.auditlog.keys import load_signer\n"
        "from ledger.domain import errors\n"
        "from ledger.witness.keys import create_witness_key\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({ROOM}, {ROOM}))\n"
        "try:\n"
        f"    {call}\n"
        f"except errors.{refusal} as error:\n"
        "    print(error.rule, error.message)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False, cwd=Path(__file__).parents[3])
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_signing_key_that_cannot_be_written_is_not_left_half_written(
        tmp_path: Path) -> None:
    key = tmp_path / "signing-key"
    said = with_a_full_disk(f"load_signer(Path({str(key)!r}), 'ledger.example/log')",
                            "StoreUnavailable")
    assert said.startswith("signing-key cannot use the signing key"), said
    assert not key.exists()
    signer = load_signer(key, "ledger.example/log")
    assert load_signer(key, "ledger.example/log", create=False).verifier == signer.verifier


def test_a_witness_key_that_cannot_be_written_is_not_left_half_written(
        tmp_path: Path) -> None:
    key = tmp_path / "witness.key"
    said = with_a_full_disk(f"create_witness_key(Path({str(key)!r}), 'w.example.org/w1')",
                            "InvalidInput")
    assert said.startswith("witness-key cannot write"), said
    assert not key.exists()
    made = create_witness_key(key, "w.example.org/w1")
    assert load_witness_key(key).private_text() == made.private_text()
