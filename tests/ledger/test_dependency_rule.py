"""DESIGN §7: `ledger` imports neither `projections` nor `commands`; the domain does no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LEDGER = Path(__file__).resolve().parents[2] / "ledger"
DOMAIN = LEDGER / "domain"

IO_MODULES = {
    "sqlite3", "psycopg", "psycopg2", "psycopg_pool", "eventsourcing", "os", "pathlib", "io",
    "shutil", "socket", "subprocess", "urllib", "http", "requests", "httpx", "tempfile",
    "glob", "fileinput", "logging", "typer", "rich", "click", "sys", "time", "asyncio",
    "threading", "multiprocessing",
}


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (inside functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
            found.update(a.value for a in node.args if isinstance(a, ast.Constant)
                         and isinstance(a.value, str))
    return found


def top(module: str) -> str:
    return module.split(".", maxsplit=1)[0]


LEDGER_FILES = sorted(LEDGER.rglob("*.py"))
DOMAIN_FILES = sorted(DOMAIN.rglob("*.py"))


def test_the_packages_are_where_the_rule_expects() -> None:
    assert LEDGER_FILES
    assert DOMAIN_FILES


@pytest.mark.parametrize("path", LEDGER_FILES, ids=lambda p: str(p.relative_to(LEDGER)))
def test_the_write_side_never_imports_the_read_side_or_the_command_line(path: Path) -> None:
    bad = {m for m in imports(path) if top(m) in {"projections", "commands"}}
    assert not bad, f"{path} imports {bad}"


@pytest.mark.parametrize("path", DOMAIN_FILES, ids=lambda p: str(p.relative_to(LEDGER)))
def test_the_domain_imports_no_io_modules(path: Path) -> None:
    found = imports(path)
    bad = {m for m in found if top(m) in IO_MODULES}
    assert not bad, f"{path} imports {bad}"
    outside = {m for m in found if top(m) == "ledger" and not m.startswith("ledger.domain")}
    assert not outside, f"the domain reaches out of its package: {outside}"


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    import sqlite3\n    from projections.x import y\n")
    assert imports(sample) == {"sqlite3", "projections.x"}


STORE_FILES = sorted((LEDGER / "store").rglob("*.py"))


@pytest.mark.parametrize("path", STORE_FILES, ids=lambda p: str(p.relative_to(LEDGER)))
def test_the_store_never_imports_the_audit_log(path: Path) -> None:
    """One direction only: the audit log reads the store; the store is given its hooks."""
    bad = {m for m in imports(path) if m.startswith(("ledger.auditlog", "ledger.application"))}
    assert not bad, f"{path} imports {bad}"
