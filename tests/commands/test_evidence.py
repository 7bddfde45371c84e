"""`verify-bundle --against`: consistent only when it is; shrinkage and tampering exit 4."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger.bootstrap import bootstrap
from tests.commands.conftest import Ledger

pytestmark = pytest.mark.usefixtures("signing_key")
ALLOCATOR = "allocator:Q71"


def register(invoke: Ledger, code: str) -> None:
    done = invoke("practice", "register", code, "--name", f"Surgery {code}", "--list-size",
                  "4000", actor=ALLOCATOR)
    assert done.code == 0, done.stderr


def prove(invoke: Ledger, path: Path) -> Path:
    done = invoke("prove", "A81001", "--out", str(path))
    assert done.code == 0, done.stderr
    return path


def checkpoint(invoke: Ledger, path: Path) -> Path:
    done = invoke("checkpoint", "--out", str(path))
    assert done.code == 0, done.stderr
    return path


@pytest.fixture
def grown(invoke: Ledger, tmp_path: Path) -> dict[str, Path]:
    """A bundle and a checkpoint at size 1, then the same at size 3."""
    register(invoke, "A81001")
    small = {"bundle": prove(invoke, tmp_path / "small.json"),
             "checkpoint": checkpoint(invoke, tmp_path / "small.txt")}
    register(invoke, "B82002")
    register(invoke, "C83003")
    return {"small bundle": small["bundle"], "small checkpoint": small["checkpoint"],
            "large bundle": prove(invoke, tmp_path / "large.json"),
            "large checkpoint": checkpoint(invoke, tmp_path / "large.txt")}


@pytest.mark.parametrize("older", ["small bundle", "small checkpoint"])
def test_a_log_that_grew_is_consistent(invoke: Ledger, grown: dict[str, Path],
                                       older: str) -> None:
    done = invoke("verify-bundle", str(grown["large bundle"]), "--against", str(grown[older]))
    assert done.code == 0, done.stderr
    assert "consistent: the log at size 1 is a prefix of the log at size 3" in done.stdout


@pytest.mark.parametrize("older", ["large bundle", "large checkpoint"])
def test_earlier_evidence_of_a_larger_log_says_the_log_shrank(
    invoke: Ledger, grown: dict[str, Path], older: str
) -> None:
    done = invoke("verify-bundle", str(grown["small bundle"]), "--against", str(grown[older]))
    assert done.code == 4, done.stdout
    line = done.one_line_error("verification failed", "the log shrank", "size 3", "size 1")
    assert "consistent" not in done.stdout + line


def test_the_empty_log_is_a_prefix_of_every_log(
    invoke: Ledger, db_url: str, tmp_path: Path
) -> None:
    bootstrap(db_url).close()  # a ledger with no events
    empty = checkpoint(invoke, tmp_path / "empty.txt")
    assert empty.read_text().splitlines()[1] == "0"
    register(invoke, "A81001")
    bundle = prove(invoke, tmp_path / "bundle.json")
    done = invoke("verify-bundle", str(bundle), "--against", str(empty))
    assert done.code == 0, done.stderr
    assert "consistent: the log at size 0 is a prefix of the log at size 1" in done.stdout


def test_a_checkpoint_saved_with_windows_line_endings_is_unreadable_not_tampered(
    invoke: Ledger, grown: dict[str, Path], tmp_path: Path
) -> None:
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(grown["small checkpoint"].read_bytes().replace(b"\n", b"\r\n"))
    done = invoke("verify-bundle", str(grown["large bundle"]), "--against", str(crlf))
    assert done.code == 2, done.stdout
    done.one_line_error("cannot be read as a checkpoint", "carriage returns",
                        "C2SP signed-note")


def test_a_checkpoint_altered_after_signing_is_tampering(
    invoke: Ledger, grown: dict[str, Path], tmp_path: Path
) -> None:
    lines = grown["small checkpoint"].read_text().split("\n")
    lines[1] = "2"
    altered = tmp_path / "altered.txt"
    altered.write_text("\n".join(lines))
    done = invoke("verify-bundle", str(grown["large bundle"]), "--against", str(altered))
    assert done.code == 4, done.stdout
    done.one_line_error("verification failed", "signature does not verify")


def test_a_file_that_is_no_checkpoint_is_malformed_input(
    invoke: Ledger, grown: dict[str, Path], tmp_path: Path
) -> None:
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\n")
    done = invoke("verify-bundle", str(grown["large bundle"]), "--against", str(junk))
    assert done.code == 2, done.stdout
    done.one_line_error("cannot be read as a checkpoint")


def _edited_consistency(bundle: Path, out: Path, edit: str) -> Path:
    """The bundle with its first consistency entry edited by one character: in its proof's
    first hash, in the earlier checkpoint's root, or in its signature."""
    data = json.loads(bundle.read_text())
    entry = data["consistency"][0]
    if edit == "proof":
        entry["proof"][0] = _flip(entry["proof"][0], 0)
    else:
        lines = entry["checkpoint"].split("\n")
        at = 2 if edit == "root" else -2
        lines[at] = _flip(lines[at], len(lines[at]) - 5)
        entry["checkpoint"] = "\n".join(lines)
    out.write_text(json.dumps(data))
    return out


def _flip(text: str, at: int) -> str:
    return text[:at] + ("B" if text[at] == "A" else "A") + text[at + 1:]


@pytest.mark.parametrize("edit", ["proof", "root", "signature"])
def test_a_bundle_whose_consistency_entry_was_edited_is_tampering(
    invoke: Ledger, grown: dict[str, Path], tmp_path: Path, edit: str
) -> None:
    bundle = grown["large bundle"]
    assert json.loads(bundle.read_text())["consistency"], "the bundle proves an earlier size"
    edited = _edited_consistency(bundle, tmp_path / "edited.json", edit)
    done = invoke("verify-bundle", str(edited))
    assert done.code == 4, done.stdout
    done.one_line_error("verification failed", "consistency entry 1")
    assert "verified" not in done.stdout
