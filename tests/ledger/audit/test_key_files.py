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


def with_a_full_disk(code: str) -> subprocess.CompletedProcess[str]:
    """`code` run by Python where no file grows past ROOM bytes: each write past it fails
    (EFBIG), as on a full disk."""
    limited = (
        "import resource, signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({ROOM}, {ROOM}))\n"
    )
    return subprocess.run([sys.executable, "-c", limited + code], capture_output=True,
                          text=True, timeout=60, check=False, cwd=Path(__file__).parents[3])


def test_a_signing_key_that_cannot_be_written_is_not_left_half_written(
        tmp_path: Path) -> None:
    key = tmp_path / "signing-key"
    done = with_a_full_disk(
        "from pathlib import Path\n"
        "from ledger.auditlog.keys import load_signer\n"
        "from ledger.domain.errors import StoreUnavailable\n"
        "try:\n"
        f"    load_signer(Path({str(key)!r}), 'ledger.example/log')\n"
        "except StoreUnavailable as error:\n"
        "    print(error.rule, error.message)\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("signing-key cannot use the signing key"), done.stdout
    assert not key.exists()
    signer = load_signer(key, "ledger.example/log")
    assert load_signer(key, "ledger.example/log", create=False).verifier == signer.verifier


def test_a_witness_key_that_cannot_be_written_is_not_left_half_written(
        tmp_path: Path) -> None:
    key = tmp_path / "witness.key"
    done = with_a_full_disk(
        "from pathlib import Path\n"
        "from ledger.domain.errors import InvalidInput\n"
        "from ledger.witness.keys import create_witness_key\n"
        "try:\n"
        f"    create_witness_key(Path({str(key)!r}), 'w.example.org/w1')\n"
        "except InvalidInput as error:\n"
        "    print(error.rule, error.message)\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("witness-key cannot write"), done.stdout
    assert not key.exists()
    made = create_witness_key(key, "w.example.org/w1")
    assert load_witness_key(key).private_text() == made.private_text()
