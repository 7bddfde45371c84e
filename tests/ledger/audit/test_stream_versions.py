"""`verify` holds every stream's versions to 1, 2, 3, ... in log order, on both stores.

A hole in a stream that was sealed as it is (an event deleted around the ledger and the
log sealed again over what is left) hashes soundly leaf by leaf; only the versions show
it. The chunk size is lowered so that one budget stream runs across several chunks, and
the worker threshold so that the same store is also checked on worker processes, which
see each chunk on its own and leave the main process to join the streams up.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.application.commands import build_command
from ledger.auditlog import verify
from ledger.auditlog.seal import seal
from ledger.auditlog.verify import VERSION_GAP, VerifyReport, verify_store
from ledger.bootstrap import Ledger, bootstrap
from ledger.domain.events import budget_stream
from tests.ledger.audit.test_verify_parallel import run_sql

CHUNK_LEVEL = 3  # chunks of 8 leaves: the budget stream's 23 events run over 3 or 4
COMMITMENTS = 20


@pytest.fixture
def history(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    """Two practices, one budget with COMMITMENTS commitments, sealed."""
    monkeypatch.setenv("LEDGER_SIGNING_KEY", str(tmp_path / "keys" / "signing-key"))
    monkeypatch.setattr(verify, "CHUNK", 1 << CHUNK_LEVEL)
    ledger = bootstrap(db_url)
    run = ledger.service.execute
    for practice in ("A81001", "A81002"):
        run(build_command("practice register",
                          {"practice": practice, "name": "Densham", "list_size": 4069,
                           "on": "2024-04-01"}), "allocator:Q71")
    run(build_command("budget allocate", {"practice": "A81001", "year": "2024-25",
                                          "element": {"acute": "1200000"}}), "allocator:Q71")
    for i in range(COMMITMENTS):
        run(build_command("spend commit", {
            "practice": "A81001", "year": "2024-25", "element": "acute", "ref": f"R-{i:04d}",
            "amount": "10.00", "provider": "RTR", "service": "Hip replacement"}),
            "practice:A81001")
    seal(ledger.store)
    yield ledger
    ledger.close()


def check(ledger: Ledger, monkeypatch: pytest.MonkeyPatch, *, parallel: bool) -> VerifyReport:
    monkeypatch.setattr(verify, "PARALLEL_MIN_LEAVES", 1 << 4 if parallel else 1 << 40)
    return verify_store(ledger.store)


def budget_positions(ledger: Ledger, db_url: str) -> list[tuple[int, int]]:
    """(position, version) of the budget stream's events, in log order."""
    stream = budget_stream("A81001", "2024-25")
    key: object = stream if ledger.store.target.kind == "postgres" else stream.hex
    rows = run_sql(ledger, db_url, "SELECT {position}, originator_version FROM {events} "
                                   "WHERE originator_id = ? ORDER BY {position}", [(key,)])
    return [(int(position), int(version)) for position, version in rows]


def reseal(ledger: Ledger, db_url: str) -> None:
    """Throw the audit tables away and seal the events as they now are."""
    for table in ("leaves", "nodes", "tree", "checkpoints"):
        run_sql(ledger, db_url, f"DELETE FROM {{{table}}}")
    seal(ledger.store)


@pytest.mark.parametrize("parallel", [False, True], ids=["one-process", "workers"])
def test_a_stream_running_across_chunks_verifies(
    history: Ledger, db_url: str, monkeypatch: pytest.MonkeyPatch, parallel: bool
) -> None:
    positions = budget_positions(history, db_url)
    assert [version for _, version in positions] == list(range(1, COMMITMENTS + 2))
    assert positions[0][0] >> CHUNK_LEVEL < positions[-1][0] >> CHUNK_LEVEL
    checked_here: list[int] = []
    main_check = verify._Chunks.check

    def spy(chunks: verify._Chunks, index: int, last_position: int
            ) -> tuple[int, int, list[bytes]] | None:
        found = main_check(chunks, index, last_position)
        if found is not None:
            checked_here.append(index)
        return found

    monkeypatch.setattr(verify._Chunks, "check", spy)
    report = check(history, monkeypatch, parallel=parallel)
    assert report.ok, report.damage
    assert report.sealed == report.events_checked == COMMITMENTS + 3
    chunks = -(-report.sealed >> CHUNK_LEVEL)
    assert len(checked_here) == (0 if parallel else chunks)


@pytest.mark.parametrize("parallel", [False, True], ids=["one-process", "workers"])
@pytest.mark.parametrize("which", [1, 2, 12, COMMITMENTS])
def test_a_stream_with_a_version_missing_is_refused_at_the_next_event(
    history: Ledger, db_url: str, monkeypatch: pytest.MonkeyPatch, parallel: bool,
    which: int,
) -> None:
    positions = budget_positions(history, db_url)
    gone, after = positions[which - 1], positions[which]
    run_sql(history, db_url, "DELETE FROM {events} WHERE {position} = ?", [(gone[0],)])
    reseal(history, db_url)
    report = check(history, monkeypatch, parallel=parallel)
    assert not report.ok
    first = report.first
    assert first is not None
    assert (first.kind, first.position) == (VERSION_GAP, after[0]), report.damage
    stream = budget_stream("A81001", "2024-25")
    assert f"stream {stream} has version {after[1]}" in first.detail
    assert report.damage_count == 1


@pytest.mark.parametrize("parallel", [False, True], ids=["one-process", "workers"])
def test_a_version_missing_from_the_unsealed_tail_is_refused(
    history: Ledger, db_url: str, monkeypatch: pytest.MonkeyPatch, parallel: bool
) -> None:
    positions = budget_positions(history, db_url)
    last_position, last_version = positions[-1]
    state = run_sql(history, db_url, "SELECT state FROM {events} WHERE {position} = ?",
                    [(last_position,)])[0][0]
    run_sql(history, db_url,
            "INSERT INTO {events} (originator_id, originator_version, topic, state, {position}) "
            "SELECT originator_id, ?, topic, ?, ? FROM {events} WHERE {position} = ?",
            [(last_version + 2, bytes(state), last_position + 1, last_position)])
    assert budget_positions(history, db_url)[-1] == (last_position + 1, last_version + 2)
    report = check(history, monkeypatch, parallel=parallel)
    assert report.unsealed == 1
    first = report.first
    assert first is not None
    assert (first.kind, first.position) == (VERSION_GAP, last_position + 1), report.damage


def test_a_chunk_whose_stream_begins_again_at_version_one_is_not_joined_on() -> None:
    versions = verify._Versions(VerifyReport())
    stream, other = uuid.uuid4().bytes, uuid.uuid4().bytes
    assert versions.stitch([], {stream: 3})
    assert versions.stitch([(9, stream, None, 4)], {stream: 5, other: 1})
    assert not versions.stitch([], {stream: 1})
    assert not versions.stitch([(20, stream, None, 7)], {stream: 7})
    assert not versions.stitch([(20, other, None, 3)], {other: 3})
    assert versions.last == {stream: 5, other: 1}
