"""The SQLite side tables' layout: WITHOUT ROWID and leaves without an index of positions for
new ledgers, old ledgers as they were."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from ledger.application.commands import build_command
from ledger.audit.bundle import load_bundle, verify_bundle
from ledger.auditlog.proofs import make_checkpoint, prove_practice, store_signer
from ledger.auditlog.verify import verify_store
from ledger.bootstrap import Ledger, bootstrap
from ledger.domain.errors import RuleViolation

ALLOCATOR = "allocator:Q71"
PRACTICE = "A81001"
COMMITMENTS = 20  # more than 16 leaves: the tree stores a node at level 4

KEYED = ("ledger_refs", "ledger_affiliations", "ledger_budget_years", "ledger_event_kinds",
         "ledger_nodes", "ledger_witnesses", "ledger_keys")
"""Side tables of small rows keyed by text or by several columns."""

OLD_SCHEMA = (
    "CREATE TABLE ledger_refs (ref TEXT PRIMARY KEY, practice TEXT NOT NULL, "
    "year TEXT NOT NULL)",
    "CREATE TABLE ledger_affiliations (practice TEXT NOT NULL, consortium TEXT NOT NULL, "
    "PRIMARY KEY (practice, consortium))",
    "CREATE TABLE ledger_budget_years (practice TEXT NOT NULL, year TEXT NOT NULL, "
    "PRIMARY KEY (practice, year))",
    "CREATE TABLE ledger_event_kinds (topic TEXT NOT NULL, version INTEGER NOT NULL, "
    "first_position INTEGER NOT NULL, PRIMARY KEY (topic, version))",
    "CREATE TABLE ledger_nodes (level integer NOT NULL, node_index INTEGER NOT NULL, "
    "hash BLOB NOT NULL, PRIMARY KEY (level, node_index))",
    "CREATE TABLE ledger_witnesses (name text PRIMARY KEY, url text NOT NULL, "
    "vkey text NOT NULL, size INTEGER NOT NULL)",
    "CREATE TABLE ledger_keys (key_id text PRIMARY KEY, vkey text NOT NULL, "
    "valid_from text, valid_until text, retired_at text)",
    "CREATE TABLE ledger_leaves (leaf_index INTEGER PRIMARY KEY, position INTEGER NOT NULL "
    "UNIQUE, stream_id BLOB NOT NULL, version INTEGER NOT NULL, leaf_hash BLOB NOT NULL)",
)
"""The same tables as a ledger made before they were WITHOUT ROWID has them."""


def leaf_indexes(db: Path) -> list[str]:
    """The indexes SQLite keeps of ledger_leaves beside its rowid b-tree."""
    with sqlite3.connect(db) as conn:
        return [str(name) for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'ledger_leaves'")]


def without_rowid(db: Path) -> dict[str, bool]:
    """Each keyed side table: whether its CREATE statement makes it WITHOUT ROWID."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
    found = {str(name): str(text).upper().endswith("WITHOUT ROWID") for name, text in rows}
    return {name: found[name] for name in KEYED}


def run(ledger: Ledger, command: str, args: dict[str, object], actor: str = ALLOCATOR,
        command_id: str | None = None) -> str:
    return ledger.service.execute(build_command(command, args), actor, command_id).summary


def write_and_verify(db: Path) -> None:
    """Commands that write every keyed table, then a signed checkpoint and a verify."""
    with bootstrap(str(db)) as ledger:
        run(ledger, "practice register",
            {"practice": PRACTICE, "name": "Densham", "list_size": 4069, "on": "2024-04-01"})
        run(ledger, "consortium form", {"consortium": "16C", "name": "Tees", "officer": "J Smith",
                                        "on": "2024-04-01"})
        run(ledger, "consortium join", {"consortium": "16C", "practice": PRACTICE,
                                        "on": "2024-04-01"}, actor="consortium:16C")
        run(ledger, "budget allocate", {"practice": PRACTICE, "year": "2024-25",
                                        "element": {"acute": "1200000"}, "on": "2024-04-01"})
        for i in range(COMMITMENTS):
            run(ledger, "spend commit",
                {"practice": PRACTICE, "year": "2024-25", "element": "acute",
                 "ref": f"R-{i:04d}", "amount": "125.00", "provider": "RTR",
                 "service": "Hip replacement", "qs": ["QS3"], "on": "2024-06-01"},
                actor=f"practice:{PRACTICE}", command_id=f"commit-{i}")
        again = run(ledger, "spend commit",
                    {"practice": PRACTICE, "year": "2024-25", "element": "acute",
                     "ref": "R-0000", "amount": "125.00", "provider": "RTR",
                     "service": "Hip replacement", "qs": ["QS3"], "on": "2024-06-01"},
                    actor=f"practice:{PRACTICE}", command_id="commit-0")
        assert again.startswith("committed £125.00 as R-0000")
        with pytest.raises(RuleViolation):
            run(ledger, "spend commit",
                {"practice": PRACTICE, "year": "2024-25", "element": "acute",
                 "ref": "R-0003", "amount": "1.00", "provider": "RTR",
                 "service": "Hip replacement", "qs": ["QS3"], "on": "2024-06-01"},
                actor=f"practice:{PRACTICE}")
        make_checkpoint(ledger.store, datetime(2024, 7, 1, tzinfo=UTC))
        report = verify_store(ledger.store, store_signer(ledger.store, create=False).verifier)
        assert report.ok, report
        assert report.sealed == 4 + COMMITMENTS
        bundle = prove_practice(ledger.store, PRACTICE, datetime(2024, 7, 1, tzinfo=UTC))
        verifier = store_signer(ledger.store, create=False).verifier
    proven = verify_bundle(load_bundle(orjson.dumps(bundle)), verifier)
    assert len(proven.events) == 3 + COMMITMENTS  # registration, join, allocation
    with sqlite3.connect(db) as conn:
        nodes = conn.execute("SELECT count(*) FROM ledger_nodes").fetchone()[0]
        refs = conn.execute("SELECT count(*) FROM ledger_refs").fetchone()[0]
    assert (nodes, refs) == (1, COMMITMENTS)


def test_a_new_ledger_keeps_its_keyed_side_tables_without_rowid(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    write_and_verify(db)
    assert without_rowid(db) == dict.fromkeys(KEYED, True)
    assert leaf_indexes(db) == []


def test_a_ledger_made_with_rowid_side_tables_reads_writes_and_verifies(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    with sqlite3.connect(db) as conn:
        for statement in OLD_SCHEMA:
            conn.execute(statement)
    write_and_verify(db)
    assert without_rowid(db) == dict.fromkeys(KEYED, False)
    assert leaf_indexes(db) == ["sqlite_autoindex_ledger_leaves_1"]
