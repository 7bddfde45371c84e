"""Events sealed one a transaction as they are written give the very log that sealing
them all at once gives (the follower, `seal`), on both stores: the same leaves, the
same stored nodes, and the same tree head (size, last position, compact range, root)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.auditlog.seal import seal
from ledger.bootstrap import Ledger, bootstrap
from tests.ledger.audit.test_tampering import write_history
from tests.ledger.audit.test_verify_parallel import run_sql

COMMITMENTS = 44
LEAVES = COMMITMENTS + 3  # two registrations and an allocation: 47, two nodes at level 4


@pytest.fixture
def written(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    """Two practices, a budget and COMMITMENTS commitments, one command a transaction."""
    monkeypatch.setenv("LEDGER_SIGNING_KEY", str(tmp_path / "keys" / "signing-key"))
    ledger = bootstrap(db_url)
    write_history(ledger, COMMITMENTS)
    yield ledger
    ledger.close()


def sealed_log(ledger: Ledger, db_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """The leaves, nodes and tree head as stored, in key order, bytes as bytes."""
    def rows(statement: str) -> list[tuple[Any, ...]]:
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                for row in run_sql(ledger, db_url, statement)]
    return {
        "leaves": rows("SELECT leaf_index, position, stream_id, version, leaf_hash "
                       "FROM {leaves} ORDER BY leaf_index"),
        "nodes": rows("SELECT level, node_index, hash FROM {nodes} ORDER BY level, node_index"),
        "head": rows("SELECT size, last_position, frontier, root FROM {tree}"),
    }


def test_sealing_each_write_gives_the_log_sealing_them_all_at_once_gives(
    written: Ledger, db_url: str
) -> None:
    as_written = sealed_log(written, db_url)
    assert as_written["head"][0][0] == LEAVES == 47
    assert [row[:2] for row in as_written["nodes"]] == [(4, 0), (4, 1)]
    for table in ("leaves", "nodes", "tree"):
        run_sql(written, db_url, f"DELETE FROM {{{table}}}")
    assert seal(written.store).sealed == LEAVES
    assert sealed_log(written, db_url) == as_written
