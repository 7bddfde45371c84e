"""`verify-bundle --witness-key`: each witness counts once toward `--quorum`, so the same
witness's key given twice is a usage error (exit 2), not a second witness wanted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.commands.conftest import Ledger

pytestmark = [pytest.mark.usefixtures("signing_key"),
              pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


def test_the_same_witness_key_given_twice_is_refused(invoke: Ledger, tmp_path: Path) -> None:
    assert invoke("practice", "register", "A81001", "--name", "Densham", "--list-size", "4069",
                  actor="allocator:Q71").code == 0
    bundle = tmp_path / "bundle.json"
    assert invoke("prove", "A81001", "--out", str(bundle)).code == 0
    made = invoke("witness", "keygen", "--name", "witness.test/w1", "--key",
                  str(tmp_path / "w1.key"))
    assert made.code == 0, made.stderr
    key = made.stdout.strip()
    key_file = tmp_path / "w1.pub"
    key_file.write_text(key + "\n")
    for second in (key, str(key_file)):
        done = invoke("verify-bundle", str(bundle), "--witness-key", key, "--witness-key",
                      second)
        assert done.code == 2, done.stdout
        done.one_line_error("--witness-key of witness witness.test/w1 given twice",
                            "[rule: witness-key]")
        assert "verified" not in done.stdout
