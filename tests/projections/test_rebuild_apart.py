"""How a parallel SQLite rebuild splits its work and leaves the ledger's own settings."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ledger.bootstrap import bootstrap
from projections import materialise
from projections.materialise import REBUILD_COST, SCRATCH_PAGE_SIZE, Materialiser
from projections.registry import PROJECTIONS
from tests.projections.builders import append, random_history


def test_two_rebuild_processes_get_the_two_costliest_projections_and_the_evenest_shares(
        sqlite_path: str) -> None:
    ledger = bootstrap(sqlite_path)
    views = Materialiser(ledger.store)
    groups = views._groups(list(PROJECTIONS), 2)
    costliest = sorted(REBUILD_COST, key=REBUILD_COST.__getitem__)[-2:]
    assert [sum(name in g for name in costliest) for g in groups] == [1, 1]
    shares = [sum(REBUILD_COST[name] for name in g) for g in groups]
    # The rebuild ends when its busier process does: no split of the projections between
    # two processes leaves the busier one less to do.
    assert max(shares) == min(max(share, sum(REBUILD_COST.values()) - share)
                              for share in _split_costs(list(REBUILD_COST.values())))
    ledger.close()


def _split_costs(costs: list[int]) -> list[int]:
    """The cost of one side of every way of splitting `costs` in two."""
    return [sum(cost for i, cost in enumerate(costs) if side >> i & 1)
            for side in range(1 << len(costs))]


def test_a_build_apart_leaves_the_ledger_writable_meanwhile_and_in_its_journal_mode(
        sqlite_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = bootstrap(sqlite_path)
    append(ledger.store, random_history(11, 200).events)
    views = Materialiser(ledger.store)
    views.rebuild(["positions"], workers=1)
    with views.db.cursor(write=True) as c:  # emptied at position 0, as a rebuild leaves it
        c.execute("UPDATE tracking SET notification_id = 0 "
                  "WHERE application_name = 'projection:positions'")
        for table in views.projections["positions"].tables:
            c.execute(f"DELETE FROM {table.name}")
    build_in = Materialiser._build_in
    seen: list[str] = []

    def written_meanwhile(self: Materialiser, *args: Any) -> Any:
        built = build_in(self, *args)
        # Another connection writes to the ledger after the fold, before the copy-in.
        other = sqlite3.connect(sqlite_path, timeout=1)
        try:
            seen.append(other.execute("PRAGMA journal_mode").fetchone()[0])
            other.execute("CREATE TABLE written_meanwhile (n INTEGER)")
            other.commit()
        finally:
            other.close()
        return built

    monkeypatch.setattr(Materialiser, "_build_in", written_meanwhile)
    assert views.build_apart(["positions"]) == 200
    assert seen == ["wal"]
    check = sqlite3.connect(sqlite_path)
    try:
        assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert check.execute("SELECT count(*) FROM position_days").fetchone()[0] > 0
    finally:
        check.close()
    assert views.positions()["positions"] == 200
    ledger.close()


def test_tables_a_rebuild_drops_free_their_pages_without_writing_each_of_them(
        sqlite_path: str) -> None:
    ledger = bootstrap(sqlite_path)
    views = Materialiser(ledger.store)
    with views.db.cursor(write=True) as c:
        c.execute("CREATE TABLE dropped (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID")
        c.executemany("INSERT INTO dropped VALUES (?, ?)",
                      ((f"k{i:06d}", "x" * 200) for i in range(20_000)))
    other = sqlite3.connect(sqlite_path)
    try:
        pages = other.execute("SELECT count(*) FROM dbstat WHERE name = 'dropped'"
                              ).fetchone()[0]
        other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        other.close()
    wal = Path(sqlite_path + "-wal")
    assert wal.stat().st_size == 0
    with views.db.cursor(write=True) as c:
        with views._pages_freed_as_they_are(c):
            c.execute("DROP TABLE dropped")
        c.execute("PRAGMA secure_delete")
        assert c.fetchone()[0] == 1  # the connection's own setting again
    frames = wal.stat().st_size // 4096
    assert pages > 1_000
    assert frames < pages // 10
    ledger.close()


def test_a_scratch_file_has_pages_of_its_own_size_and_the_ledger_keeps_its_own(
        sqlite_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = bootstrap(sqlite_path)
    history = random_history(12, 300)
    append(ledger.store, history.events)
    views = Materialiser(ledger.store)
    views.catch_up()
    before = {table.name: views.db.query(f"SELECT * FROM {table.name} ORDER BY 1, 2")
              for name in ("trail", "positions")
              for table in views.projections[name].tables}
    with views.db.cursor(write=True) as c:
        for name in ("trail", "positions"):
            c.execute("UPDATE tracking SET notification_id = 0 WHERE application_name = ?",
                      (f"projection:{name}",))
            for table in views.projections[name].tables:
                c.execute(f"DELETE FROM {table.name}")
    build_in = Materialiser._build_in
    sizes: list[int] = []

    def measured(self: Materialiser, connection: sqlite3.Connection, *args: Any) -> Any:
        built = build_in(self, connection, *args)
        sizes.append(connection.execute("PRAGMA main.page_size").fetchone()[0])
        sizes.append(connection.execute("PRAGMA ledger.page_size").fetchone()[0])
        return built

    monkeypatch.setattr(Materialiser, "_build_in", measured)
    assert views.build_apart(["trail", "positions"]) == len(history.events)
    assert sizes == [SCRATCH_PAGE_SIZE, 4096]
    after = {table.name: views.db.query(f"SELECT * FROM {table.name} ORDER BY 1, 2")
             for name in ("trail", "positions")
             for table in views.projections[name].tables}
    assert after == before
    ledger.close()


def test_a_build_apart_copies_in_the_indexes_it_built_beside_the_rows(
        sqlite_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The secondary indexes are built in the scratch file, and the copy-in, holding the
    ledger's write lock, builds none: the ledger's indexes hold every row, as sorted."""
    ledger = bootstrap(sqlite_path)
    append(ledger.store, random_history(12, 300).events)
    views = Materialiser(ledger.store)
    views.catch_up()
    names = ["positions", "variation", "quality", "holders", "portfolio"]
    indexed = [t for n in names for t in views.projections[n].tables if t.indexes]
    def in_index_order(table: Any, indexed_by: str = "") -> list[tuple[Any, ...]]:
        return views.db.query(
            f"SELECT * FROM {table.name} {indexed_by} ORDER BY {', '.join(table.indexes[0])}, "
            f"{', '.join(c.name for c in table.key)}")

    expected = {t.name: in_index_order(t) for t in indexed}
    views.rebuild(names, workers=1)
    _emptied_as_at_position_0(views, names)
    statements: list[str] = []
    connect = Materialiser._scratch_connection

    def traced(self: Materialiser, scratch: Path) -> sqlite3.Connection:
        connection = connect(self, scratch)
        connection.set_trace_callback(statements.append)
        return connection

    monkeypatch.setattr(Materialiser, "_scratch_connection", traced)
    views.build_apart(names)
    copy_in = statements[next(i for i, s in enumerate(statements) if s == "BEGIN IMMEDIATE"):]
    created = [s for s in copy_in if s.startswith("CREATE INDEX")]
    assert created
    assert all("ledger." in s for s in created)
    first_insert = next(i for i, s in enumerate(copy_in) if s.startswith("INSERT INTO ledger."))
    assert any(s.startswith("CREATE INDEX") for s in copy_in[:first_insert])
    built = [s for s in statements[:len(statements) - len(copy_in)]
             if s.startswith("CREATE INDEX")]
    assert {s.split(" ON ")[0].split(".")[-1] for s in built} == {
        s.split(" ON ")[0].split(".")[-1] for s in created}
    for table in indexed:
        by_index = in_index_order(
            table, f"INDEXED BY {table.name}_by_{'_'.join(table.indexes[0])}")
        assert by_index == expected[table.name], table.name
    assert views.db.query("PRAGMA integrity_check") == [("ok",)]
    ledger.close()


@pytest.mark.parametrize("held", [1, 500])
def test_a_build_apart_writing_its_rows_out_part_way_builds_what_catch_up_builds(
        sqlite_path: str, monkeypatch: pytest.MonkeyPatch, held: int) -> None:
    """Rows held over many batches and written out whenever `held` are reached (adds to
    rows already written included) are the rows an incremental catch-up writes."""
    ledger = bootstrap(sqlite_path)
    append(ledger.store, random_history(13, 400).events)
    views = Materialiser(ledger.store)
    views.catch_up()
    names = [p.name for p in PROJECTIONS if p.bulk is not None]

    def snapshot() -> dict[str, list[tuple[Any, ...]]]:
        return {t.name: sorted(views.db.query(f"SELECT * FROM {t.name}"), key=repr)
                for n in names for t in views.projections[n].tables}

    incremental = snapshot()
    _emptied_as_at_position_0(views, names)
    monkeypatch.setattr(materialise, "REBUILD_BATCH", 37)
    monkeypatch.setattr(materialise, "SCRATCH_HELD_ROWS", held)
    views.build_apart(names)
    assert snapshot() == incremental


def _emptied_as_at_position_0(views: Materialiser, names: list[str]) -> None:
    """The projections `names` with their tables made again empty and their tracked
    positions at 0, as before their first event."""
    with views.db.cursor(write=True) as c:
        c.execute("UPDATE tracking SET notification_id = 0 "
                  "WHERE application_name LIKE 'projection:%'")
        for name in names:
            for table in views.projections[name].tables:
                c.execute(f"DROP TABLE {table.name}")
                c.execute(views._create_sql(table)[0])
