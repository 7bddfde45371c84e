"""`verify-bundle --public-key` repeated over a key rotation: evidence signed before the
rotation (an older bundle or checkpoint, an earlier checkpoint the bundle carries) and
after it are each checked with whichever given key signed them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.commands.conftest import Ledger

pytestmark = pytest.mark.usefixtures("signing_key")
ALLOCATOR = "allocator:Q71"


def _ok(invoke: Ledger, *args: str, actor: str | None = None) -> str:
    done = invoke(*args, actor=actor)
    assert done.code == 0, done.stderr
    return done.stdout


def _register(invoke: Ledger, code: str) -> None:
    _ok(invoke, "practice", "register", code, "--name", f"Surgery {code}", "--list-size", "4000",
        actor=ALLOCATOR)


@pytest.fixture
def rotated(invoke: Ledger, tmp_path: Path) -> dict[str, str]:
    """A bundle and a checkpoint signed by the first key, the key rotated, then a bundle
    of the grown log signed by the second; both public keys."""
    _register(invoke, "A81001")
    old_key = _ok(invoke, "checkpoint", "--public-key").strip()
    _ok(invoke, "prove", "A81001", "--out", str(tmp_path / "before.json"))
    _ok(invoke, "checkpoint", "--out", str(tmp_path / "before.txt"))
    _ok(invoke, "key", "rotate")
    new_key = _ok(invoke, "checkpoint", "--public-key").strip()
    assert new_key != old_key
    _register(invoke, "B82002")
    _ok(invoke, "prove", "A81001", "--out", str(tmp_path / "after.json"))
    return {"old": old_key, "new": new_key, "before.json": str(tmp_path / "before.json"),
            "before.txt": str(tmp_path / "before.txt"), "after": str(tmp_path / "after.json")}


@pytest.mark.parametrize("older", ["before.json", "before.txt"])
@pytest.mark.parametrize("order", ["new first", "old first"])
def test_evidence_from_before_a_rotation_is_consistent_with_both_keys_given(
    invoke: Ledger, rotated: dict[str, str], older: str, order: str
) -> None:
    keys = [rotated["new"], rotated["old"]]
    if order == "old first":
        keys.reverse()
    done = invoke("verify-bundle", rotated["after"], "--public-key", keys[0], "--public-key",
                  keys[1], "--against", rotated[older])
    assert done.code == 0, done.stderr
    assert f"by key {rotated['new'].split('+')[1]}" in done.stdout
    assert "consistent: the log at size 1 is a prefix of the log at size 2" in done.stdout


def test_evidence_from_before_a_rotation_without_its_key_is_not_taken_as_signed(
    invoke: Ledger, rotated: dict[str, str]
) -> None:
    done = invoke("verify-bundle", rotated["after"], "--public-key", rotated["new"],
                  "--against", rotated["before.txt"])
    assert done.code == 4, done.stdout
    done.one_line_error("verification failed", "not signed by the key")


def test_a_checkpoint_signed_by_neither_key_is_tampering(
    invoke: Ledger, rotated: dict[str, str], tmp_path: Path
) -> None:
    note = Path(rotated["before.txt"]).read_text().split("\n")
    note[-2] = note[-2][:-6] + ("AAAA==" if not note[-2].endswith("AAAA==") else "BBBB==")
    forged = tmp_path / "forged.txt"
    forged.write_text("\n".join(note))
    done = invoke("verify-bundle", rotated["after"], "--public-key", rotated["new"],
                  "--public-key", rotated["old"], "--against", str(forged))
    assert done.code == 4, done.stdout
    done.one_line_error("verification failed")
    assert "consistent" not in done.stdout


def test_an_earlier_checkpoint_the_bundle_carries_is_checked_with_the_old_key_given(
    invoke: Ledger, rotated: dict[str, str], tmp_path: Path
) -> None:
    data = json.loads(Path(rotated["after"]).read_text())
    entry = data["consistency"][0]
    lines = entry["checkpoint"].split("\n")
    lines[1] = "2"  # another size, the old key's signature kept
    entry["checkpoint"] = "\n".join(lines)
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))
    done = invoke("verify-bundle", str(edited), "--public-key", rotated["new"],
                  "--public-key", rotated["old"])
    assert done.code == 4, done.stdout
    done.one_line_error("verification failed", "consistency entry 1")
