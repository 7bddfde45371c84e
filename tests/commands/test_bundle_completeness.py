"""`verify-bundle` refuses a bundle with an event of the practice's own streams left out.

A bundle holds every event of the practice's own streams (its practice stream and each
budget's) up to its checkpoint, so their versions run 1, 2, 3, ...: an event removed
from the middle (a commitment, a settlement) is tampering (exit 4), while the events of
streams shared with other practices (the consortium's) are rightly a selection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ledger.domain.events import budget_stream, consortium_stream, practice_stream
from ledger.domain.values import number_runs
from tests.commands.conftest import Ledger

pytestmark = pytest.mark.usefixtures("signing_key")
ALLOCATOR = "allocator:Q71"


def _ok(invoke: Ledger, *args: str, actor: str | None = None) -> None:
    done = invoke(*args, actor=actor)
    assert done.code == 0, done.stderr


@pytest.fixture
def bundle(invoke: Ledger, tmp_path: Path) -> Path:
    """A81002's bundle: registered, joined 16C after A81001 did, a new list size, funded
    (budget version 1), two commitments (2, 3), the second settled (4), a third (5)."""
    _ok(invoke, "consortium", "form", "16C", "--name", "Tees Valley", "--officer", "Dr Smith",
        "--on", "2024-04-01", actor=ALLOCATOR)
    for code in ("A81001", "A81002"):
        _ok(invoke, "practice", "register", code, "--name", f"Surgery {code}", "--list-size",
            "4000", "--on", "2024-04-01", actor=ALLOCATOR)
        _ok(invoke, "consortium", "join", "16C", code, "--on", "2024-04-01",
            actor="consortium:16C")
    _ok(invoke, "practice", "list-size", "A81002", "--list-size", "4100", "--on", "2024-05-01",
        actor=ALLOCATOR)
    _ok(invoke, "budget", "allocate", "A81002", "--year", "2024-25", "--element", "acute=100000",
        "--on", "2024-04-01", actor=ALLOCATOR)
    for n in (1, 2, 3):
        _ok(invoke, "spend", "commit", "A81002", "--year", "2024-25", "--element", "acute",
            "--ref", f"R-{n}", "--amount", "1000", "--provider", "RTR", "--service", "Hips",
            "--on", "2024-06-01", actor="practice:A81002")
        if n == 2:
            _ok(invoke, "spend", "settle", "R-2", "--amount", "1000", "--final", "--on",
                "2024-06-01", actor="practice:A81002")
    path = tmp_path / "bundle.json"
    _ok(invoke, "prove", "A81002", "--out", str(path))
    return path


def _events(path: Path) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = json.loads(path.read_text())["events"]
    return events


def _without(path: Path, out: Path, stream: str, version: int) -> Path:
    data = json.loads(path.read_text())
    kept = [e for e in data["events"] if not (e["stream_id"] == stream and e["version"] == version)]
    assert len(kept) == len(data["events"]) - 1, "the event to remove is in the bundle"
    data["events"] = kept
    out.write_text(json.dumps(data))
    return out


def test_a_whole_bundle_with_a_shared_streams_event_verifies(invoke: Ledger,
                                                            bundle: Path) -> None:
    joined = [e for e in _events(bundle) if e["stream_id"] == str(consortium_stream("16C"))]
    assert [e["version"] for e in joined] == [3], "A81002 joining is 16C's third event"
    done = invoke("verify-bundle", str(bundle))
    assert done.code == 0, done.stderr
    assert "verified: 8 event(s) of A81002" in done.stdout


@pytest.mark.parametrize(("stream", "version", "kind"), [
    ("budget", 3, "a commitment"),
    ("budget", 4, "a settlement"),
    ("budget", 1, "the allocation"),
    ("practice", 1, "the registration"),
])
def test_a_bundle_with_an_event_of_the_practice_left_out_is_tampering(
    invoke: Ledger, bundle: Path, tmp_path: Path, stream: str, version: int, kind: str
) -> None:
    stream_id = str(budget_stream("A81002", "2024-25") if stream == "budget"
                    else practice_stream("A81002"))
    edited = _without(bundle, tmp_path / "edited.json", stream_id, version)
    done = invoke("verify-bundle", str(edited))
    assert done.code == 4, (kind, done.stdout)
    done.one_line_error("verification failed", f"leaves out version {version} of stream "
                        f"{stream_id}", "practice A81002")
    assert "verified" not in done.stdout


def test_the_refusal_names_the_versions_held_as_runs_in_one_short_line(
    invoke: Ledger, bundle: Path, tmp_path: Path
) -> None:
    """A budget of thousands of events with one left out is named in a few characters
    (`1-2, 4-5`), not one number each."""
    stream_id = str(budget_stream("A81002", "2024-25"))
    edited = _without(bundle, tmp_path / "edited.json", stream_id, 3)
    done = invoke("verify-bundle", str(edited))
    assert done.code == 4, done.stdout
    done.one_line_error(f"leaves out version 3 of stream {stream_id}",
                        "(it holds versions 1-2, 4-5)")
    assert number_runs([*range(1, 100), *range(101, 6002)]) == "1-99, 101-6001"
