"""An empty or blank path, for every option or argument that names a file or folder to
read or write, is refused as a missing path (exit 2, rule `path`), never read as the
current folder that an empty path becomes; nothing is written or recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.commands.conftest import Ledger, head

ALLOCATOR = "allocator:Q71"

PATHS: list[tuple[list[str], str]] = [
    (["report", "--consortium", "16C", "--out"], "--out"),
    (["prove", "A81001", "--out"], "--out"),
    (["checkpoint", "--out"], "--out"),
    (["schema", "--out"], "--out"),
    (["apply"], "FILE"),
    (["practice", "import"], "FILE"),
    (["budget", "import", "--year", "2024-25"], "FILE"),
    (["practice", "import", "practices.csv", "--mapping"], "--mapping"),
    (["position", "--consortium", "16C", "--plot"], "--plot"),
    (["variation", "--plot"], "--plot"),
    (["verify-bundle"], "BUNDLE"),
    (["verify-bundle", "bundle.json", "--against"], "--against"),
    (["verify-bundle", "bundle.json", "--public-key"], "--public-key"),
    (["verify-bundle", "bundle.json", "--witness-key"], "--witness-key"),
    (["verify", "--public-key"], "--public-key"),
    (["witness", "keygen", "--name", "w.example/w", "--key"], "--key"),
    (["witness", "key", "--key"], "--key"),
    (["witness", "serve", "--key", "w.key", "--log", "a=b", "--state"], "--state"),
]


@pytest.mark.parametrize(("words", "option"), PATHS, ids=[" ".join(w) for w, _ in PATHS])
def test_an_empty_or_blank_path_is_refused_as_missing_with_nothing_written(
        invoke: Ledger, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        words: list[str], option: str) -> None:
    monkeypatch.chdir(tmp_path)
    assert invoke("practice", "register", "A81001", "--name", "Densham", "--list-size", "4069",
                  actor=ALLOCATOR).code == 0
    before = head(db_url)
    files = set(tmp_path.iterdir())
    for empty in ("", " "):
        done = invoke(*words, empty, actor=ALLOCATOR)
        assert done.code == 2, (words, done.stdout, done.stderr)
        done.one_line_error(f"missing path: {option} is empty", "[rule: path]")
    assert head(db_url) == before
    assert set(tmp_path.iterdir()) == files


def test_a_folder_where_a_file_is_wanted_or_a_file_where_a_folder_is_is_refused(
        invoke: Ledger, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x", encoding="utf-8")
    done = invoke("checkpoint", "--out", str(tmp_path))
    assert done.code == 2, (done.stdout, done.stderr)
    done.one_line_error("is a folder: name the file to write", "[rule: path]")
    done = invoke("schema", "--out", str(tmp_path / "a.txt"))
    assert done.code == 2, (done.stdout, done.stderr)
    done.one_line_error("is a file: name the folder to write in", "[rule: path]")
