"""Where a test run keeps its temporary files (tests/conftest.py): in memory (/dev/shm)
only where that has room for a run, else where TMPDIR or the system says. A memory
filesystem as small as Docker's default (64 MB), or one already full, would fail the
run on ENOSPC, and go on failing while earlier runs' files stay."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import MEMORY_TMP_ROOM, free_bytes, memory_has_room


def test_a_memory_directory_as_small_as_dockers_default_is_not_used(tmp_path: Path) -> None:
    assert not memory_has_room(tmp_path, free=lambda _: 64 * 1024 * 1024)


def test_a_full_memory_directory_is_not_used(tmp_path: Path) -> None:
    assert not memory_has_room(tmp_path, free=lambda _: 0)


def test_a_memory_directory_with_room_for_a_run_is_used(tmp_path: Path) -> None:
    assert memory_has_room(tmp_path, free=lambda _: MEMORY_TMP_ROOM)


def test_a_directory_whose_room_cannot_be_asked_or_that_is_missing_is_not_used(
        tmp_path: Path) -> None:
    def unknown(directory: Path) -> int:
        raise OSError(f"statvfs {directory}: not supported")

    assert not memory_has_room(tmp_path, free=unknown)
    assert not memory_has_room(tmp_path / "absent", free=lambda _: MEMORY_TMP_ROOM)


def test_free_bytes_reads_the_filesystem_of_the_directory(tmp_path: Path) -> None:
    (tmp_path / "probe").write_bytes(b"x")
    assert free_bytes(tmp_path) > 0
