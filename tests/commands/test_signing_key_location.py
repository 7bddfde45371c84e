"""The tests keep every signing key they make in their own directories.

On PostgreSQL a ledger's default signing key is `$XDG_CONFIG_HOME/ledger/signing-key`
(`~/.config/ledger/signing-key`): a `ledger` run by the tests, which passes no
LEDGER_* variable on, must find and make it in the test's config directory, never in
the user's.
"""

from __future__ import annotations

from pathlib import Path

from tests.commands.conftest import Ledger
from tests.conftest import real_config_home


def files_under(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Each file's name -> (content, modification time in ns); empty when none."""
    if not directory.is_dir():
        return {}
    return {path.name: (path.read_bytes(), path.stat().st_mtime_ns)
            for path in directory.iterdir() if path.is_file()}


def test_a_checkpoint_run_by_the_tests_signs_with_a_key_in_the_tests_config_not_the_users(
    run_ledger: Ledger, db_url: str, config_home: Path
) -> None:
    users = real_config_home() / "ledger"
    assert users != config_home / "ledger"
    before = files_under(users)
    assert run_ledger("practice", "register", "A81001", "--name", "Densham", "--list-size",
                      "4069", "--on", "2024-04-01", actor="allocator:Q71").code == 0
    done = run_ledger("checkpoint")
    assert done.code == 0, done.stderr
    if db_url.startswith("postgresql://"):
        assert (config_home / "ledger" / "signing-key").is_file()
    assert files_under(users) == before
