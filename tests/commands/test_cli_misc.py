"""The store unavailable, the demo, help text: what every user of `ledger` meets first."""

from __future__ import annotations

import shlex
import socket
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from commands.app import app
from commands.demo_ledger import build_demo
from commands.errors import EXIT_REFUSED, EXIT_STORE_UNAVAILABLE, EXIT_USAGE
from ledger.bootstrap import bootstrap
from tests.commands.conftest import clean_env, ledger_executable, topics
from tests.conftest import FakeClock

WRITES = {
    "practice": {"register", "import"},
    "consortium": {"form", "join", "leave", "risk-pool", "adopt"},
    "budget": {"allocate", "import", "adjust", "delegate", "revoke", "opt-out", "opt-in",
               "harden", "soften"},
    "spend": {"commit", "vary", "settle", "cancel"},
}


def write_commands() -> list[tuple[str, ...]]:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    found: list[tuple[str, ...]] = []
    for noun in WRITES:
        sub = group.commands[noun]
        assert isinstance(sub, TyperGroup)
        found.extend((noun, verb) for verb in sub.commands)
    return found


def test_every_write_command_of_the_design_exists() -> None:
    found = write_commands()
    for noun, verbs in WRITES.items():
        assert {verb for n, verb in found if n == noun} >= verbs


def every_command(group: TyperGroup | None = None) -> list[tuple[str, ...]]:
    """The words of every command registered on the app, sub-apps walked, none left out."""
    group = group or typer.main.get_command(app)  # type: ignore[assignment]
    assert isinstance(group, TyperGroup)
    found: list[tuple[str, ...]] = []
    for name, sub in group.commands.items():
        if isinstance(sub, TyperGroup):
            found += [(name, *rest) for rest in every_command(sub)]
        else:
            found.append((name,))
    return found


def test_the_commands_walked_include_every_kind_of_registration() -> None:
    walked = set(every_command())
    assert {("spend", "commit"), ("apply",), ("holders",), ("verify-bundle",), ("variation",),
            ("projections", "rebuild"), ("witness", "key"), ("key", "retire"),
            ("schema",)} <= walked
    assert len(walked) >= 50


@pytest.mark.parametrize("words", every_command(), ids=" ".join)
def test_every_command_has_help_with_examples_of_itself(words: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*words, "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    before, section, examples = result.stdout.partition("Examples:")
    assert section, f"ledger {' '.join(words)} --help has no Examples section"
    # One example a paragraph, wrapped to the terminal: each is a whole `ledger` command line.
    shown = [" ".join(p.split()) for p in examples.split("\n\n") if p.strip()]
    assert shown
    assert all(example.startswith("ledger ") for example in shown), shown
    assert any(f" {' '.join(words)}" in example for example in shown), shown
    if words[0] in WRITES:
        assert "--on" in before


@pytest.mark.e2e
def test_an_unreachable_postgres_exits_3_with_the_password_masked(tmp_path: Path) -> None:
    url = "postgresql://ledger:s3cret-pw@127.0.0.1:1/test?connect_timeout=2"
    done = subprocess.run(
        [*ledger_executable(), "--db", url, "--actor", "allocator:Q71", "practice",
         "register", "A81001", "--name", "X", "--list-size", "10"],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == EXIT_STORE_UNAVAILABLE, done.stderr
    assert "s3cret" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        "error: cannot reach PostgreSQL at postgresql://ledger:***@127.0.0.1:1/test"
    )
    assert "[rule: store]" in lines[0]


def test_a_sqlite_path_in_a_missing_directory_exits_3(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--db", str(tmp_path / "no" / "such" / "x.db"),
                                      "--actor", "allocator:Q71", "consortium", "form", "16C",
                                      "--name", "X", "--officer", "Y"])
    assert result.exit_code == EXIT_STORE_UNAVAILABLE
    assert "no directory" in result.stderr


@pytest.mark.e2e
def test_the_demo_builds_a_realistic_ledger_and_refuses_a_non_empty_one(tmp_path: Path) -> None:
    db = str(tmp_path / "demo.db")

    def demo() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*ledger_executable(), "--db", db, "demo"], cwd=tmp_path, env=clean_env(),
            capture_output=True, text=True, timeout=300, check=False,
        )

    first = demo()
    assert first.returncode == 0, first.stderr
    report = tmp_path / "demo-report.html"
    assert f"Open the report: {report.as_uri()}" in first.stdout.replace("\n", "")
    assert "<svg" in report.read_text()
    assert "5 consortia, 49 practices, year 2024-25" in first.stdout
    assert "refused [hard-budget]" in first.stdout
    shown = " ".join(first.stdout.split())
    assert "00P acute 2024-25: funnel against the national rate" in shown  # peer review
    assert "ABOVE 99.8%" in shown  # the scenario's outlier
    assert "IQR" not in shown  # by funnel plot only, the default method
    counts = topics(db)
    assert counts["SpendCommitted"] >= 300
    assert counts["PracticeRegistered"] == 49
    for topic in ("HoldingDelegated", "DelegationRevoked", "OptedOut", "OptedIn", "MadeHard",
                  "CommitmentVaried", "CommitmentSettled", "CommitmentCancelled",
                  "AllocationAdjusted", "RiskPoolAgreed", "QualityStandardsAdopted"):
        assert counts[topic] >= 1, topic
    assert f"│ total                   │ {sum(counts.values()):,} │" in first.stdout
    steps = [line[2:] for line in first.stdout.splitlines() if line.startswith("$ ledger ")]
    assert len(steps) == 6
    for step in steps[:-1]:  # the reads; the last writes the report again
        read = subprocess.run([*ledger_executable(), *shlex.split(step)[1:]], cwd=tmp_path,
                              env=clean_env(), capture_output=True, text=True, timeout=120,
                              check=False)
        assert read.returncode == 0, (step, read.stderr)
    assert "Trail of A85354 since 2024-07-01" in shown

    second = demo()
    assert second.returncode == EXIT_REFUSED
    assert "already holds" in second.stderr
    assert "[rule: demo]" in second.stderr
    assert topics(db) == counts


@pytest.mark.e2e
@pytest.mark.parametrize(("name", "suggested"), [("demo.db", "demo-2.db"),
                                                 ("ledger.db", "demo.db")])
def test_the_demo_on_a_ledger_in_use_suggests_another_file_than_the_one_given(
    tmp_path: Path, name: str, suggested: str,
) -> None:
    db = str(tmp_path / name)
    ledger = [*ledger_executable(), "--db", db]
    subprocess.run([*ledger, "--actor", "allocator:Q71", "consortium", "form", "16C",
                    "--name", "Tees Valley", "--officer", "Dr Jane Smith"], cwd=tmp_path,
                   env=clean_env(), capture_output=True, timeout=120, check=True)
    done = subprocess.run([*ledger, "demo"], cwd=tmp_path, env=clean_env(),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == EXIT_REFUSED
    assert f"the ledger at {db} already holds 1 event; the demo" in done.stderr
    assert f"give it a file that does not exist yet, e.g. ledger --db {suggested} demo" in (
        done.stderr)
    assert topics(db) == Counter({"ConsortiumFormed": 1})


def test_the_demo_is_deterministic_and_refuses_only_hard_overspends(
    db_url: str, tmp_path: Path
) -> None:
    other = str(tmp_path / "other.db")
    contents: list[list[tuple[str, str]]] = []
    for target in (db_url, other):
        with bootstrap(target, clock=FakeClock()) as ledger:
            summary = build_demo(ledger.service)
            assert set(summary.refused_by_rule) == {"hard-budget"}
            assert summary.flagged_overspends >= 3
            contents.append([
                (e.topic, e.model_dump_json(exclude={"recorded_at"}))
                for _, e in ledger.store.iter_events()
            ])
    assert contents[0] == contents[1]
    assert Counter(topic for topic, _ in contents[0])["SpendCommitted"] >= 300


@pytest.mark.e2e
def test_a_rebuild_piped_prints_its_one_line_and_nothing_before_it(tmp_path: Path) -> None:
    db = str(tmp_path / "ledger.db")
    ledger = [*ledger_executable(), "--db", db]
    subprocess.run([*ledger, "--actor", "allocator:Q71", "consortium", "form", "16C",
                    "--name", "Tees Valley", "--officer", "Dr Jane Smith"], cwd=tmp_path,
                   env=clean_env(), capture_output=True, timeout=120, check=True)
    done = subprocess.run([*ledger, "projections", "rebuild", "positions"], cwd=tmp_path,
                          env=clean_env(), capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("rebuilt positions from 1 events in "), repr(done.stdout)
    assert done.stdout.count("\n") == 1


@pytest.mark.e2e
def test_serve_on_a_port_another_process_listens_on_says_so_in_one_line(
    tmp_path: Path,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*ledger_executable(), "--db", str(tmp_path / "ledger.db"), "serve", "--port",
             str(port)], cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
            timeout=120, check=False)
    assert done.returncode == EXIT_USAGE, done.stderr
    assert done.stderr == (f"error: cannot listen on 127.0.0.1 port {port}: Address already "
                           "in use; give another --port [rule: port]\n")
    assert done.stdout == ""
