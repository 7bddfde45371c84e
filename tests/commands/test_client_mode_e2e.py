"""The real `ledger` command as a client of a real `ledger serve`, on both stores: a file
of commands and peer review by funnel give the answers and exit codes of direct access."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from commands.errors import EXIT_REFUSED, EXIT_USAGE
from ledger.application.files import MAX_APPLY_REQUEST_BYTES
from ledger.bootstrap import Ledger
from tests.commands.conftest import Run, clean_env, ledger_executable
from tests.ledger.application.scenario import ALLOCATOR, grant_token
from tests.projections.live_server import ledger_serve
from tests.projections.test_api import write_ledger

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(ledger: Ledger, db_url: str, tmp_path: Path) -> Iterator[str]:
    write_ledger(ledger)
    with ledger_serve(db_url, tmp_path) as base:
        yield base


def ledger_cmd(*args: str, cwd: Path) -> Run:
    done = subprocess.run([*ledger_executable(), *args], cwd=cwd, env=clean_env(),
                          capture_output=True, text=True, timeout=300, check=False)
    return Run(done.returncode, done.stdout, done.stderr)


def commit_line(command_id: str, ref: str, amount: str, **extra: str) -> str:
    return json.dumps({"command": "spend commit", "command_id": command_id, **extra,
                       "args": {"practice": "A81002", "year": "2024-25", "element": "acute",
                                "ref": ref, "amount": amount, "provider": "RTR",
                                "service": "Clinic", "on": "2024-07-02"}})


def test_a_file_of_commands_applies_through_the_service_as_directly(
        server: str, ledger: Ledger, db_url: str, tmp_path: Path) -> None:
    token = grant_token(ledger, "practice:A81002")
    commands = tmp_path / "commands.jsonl"
    commands.write_text("\n".join([
        commit_line("c-1", "R-A1", "10"),
        commit_line("c-2", "R-A2", "12.5", actor="practice:A81002"),
        "{not json",
        commit_line("c-3", "R-A3", "1.234"),  # malformed amount: exit 2 on its own
        json.dumps({"command": "spend commit", "command_id": "c-4", "args": {
            "practice": "A81001", "year": "2024-25", "element": "acute", "ref": "R-A4",
            "amount": "5", "provider": "RTR", "service": "Clinic", "on": "2024-07-02"}}),
        "",
    ]) + "\n")
    remote = ["--server", server, "--token", token]
    first = ledger_cmd(*remote, "apply", str(commands), cwd=tmp_path)
    assert first.code == EXIT_USAGE, first.stderr  # the highest of the refused lines' codes
    assert "2 applied, 0 already applied, 3 refused" in first.stdout, first.stdout
    direct = ledger_cmd("--db", db_url, "--actor", "practice:A81002", "apply", str(commands),
                        cwd=tmp_path)
    again = ledger_cmd(*remote, "apply", str(commands), cwd=tmp_path)
    assert (direct.code, direct.stdout, direct.stderr) == (again.code, again.stdout,
                                                           again.stderr)
    assert "0 applied, 2 already applied, 3 refused" in again.stdout
    # The refusals are those of the first run, line by line.
    def refusals(run: Run) -> list[str]:
        return [line for line in run.stdout.splitlines()
                if line.startswith("line ") and "refused" in line]

    assert len(refusals(first)) == 3
    assert refusals(first) == refusals(again)
    assert sum(1 for _ in ledger.store.iter_events()) == ledger.store.head()
    refs = {e.__dict__["ref"] for _, e in ledger.store.iter_events()
            if e.topic == "SpendCommitted"}
    assert {"R-A1", "R-A2"} <= refs
    assert not {"R-A3", "R-A4"} & refs


def test_apply_through_the_service_acts_only_as_the_tokens_actor(
        server: str, ledger: Ledger, tmp_path: Path) -> None:
    token = grant_token(ledger, "practice:A81002")
    commands = tmp_path / "as-another.jsonl"
    commands.write_text(commit_line("c-9", "R-B1", "10", actor="practice:A81001") + "\n"
                        + commit_line("c-10", "R-B2", "10") + "\n")
    done = ledger_cmd("--server", server, "--token", token, "apply", "--stop-on-error",
                      str(commands), cwd=tmp_path)
    assert done.code == EXIT_REFUSED
    assert "the token acts as practice:A81002; a line may not act as practice:A81001" in (
        done.stdout)
    assert "0 applied" in done.stdout
    head = ledger.store.head()
    auditor = grant_token(ledger, "auditor:audit")
    read_only = ledger_cmd("--server", server, "--token", auditor, "apply", str(commands),
                           cwd=tmp_path)
    assert read_only.code == EXIT_REFUSED
    assert "read-only token" in read_only.stderr
    assert ledger.store.head() == head + 1  # the auditor's token alone was recorded


def test_peer_review_by_funnel_through_the_service_prints_what_direct_access_prints(
        server: str, ledger: Ledger, db_url: str, tmp_path: Path) -> None:
    remote = ["--server", server, "--token", grant_token(ledger, "consortium:16C")]
    for options in ([], ["--format", "json"], ["--format", "csv"],
                    ["--against", "national", "--overdispersion", "--format", "json"],
                    ["--element", "community"]):
        read = ["variation", "--consortium", "16C", "--year", "2024-25", *options]
        direct = ledger_cmd("--db", db_url, *read, cwd=tmp_path)
        via = ledger_cmd(*remote, *read, cwd=tmp_path)
        assert direct.code == via.code == 0, (options, direct.stderr, via.stderr)
        assert via.stdout == direct.stdout, options
        assert via.stdout.strip()


def test_the_event_feed_through_the_service_is_the_tokens_part_of_direct_events(
        server: str, ledger: Ledger, db_url: str, tmp_path: Path) -> None:
    auditor = grant_token(ledger, "auditor:audit")
    consortium = grant_token(ledger, "consortium:16C")
    direct = ledger_cmd("--db", db_url, "events", cwd=tmp_path)
    everything = ledger_cmd("--server", server, "--token", auditor, "events", cwd=tmp_path)
    assert direct.code == everything.code == 0, everything.stderr
    assert everything.stdout == direct.stdout
    rows = {r["position"]: r for r in map(json.loads, direct.stdout.splitlines())}
    part = ledger_cmd("--server", server, "--token", consortium, "events", "--after", "3",
                      cwd=tmp_path)
    assert part.code == 0, part.stderr
    seen = [json.loads(line) for line in part.stdout.splitlines()]
    assert seen == [rows[r["position"]] for r in seen]
    assert all(r["position"] > 3 for r in seen)
    wanted = [p for p, r in rows.items() if p > 3 and not r["event"].startswith("Access")]
    assert [r["position"] for r in seen] == wanted


def test_csv_imports_through_the_service_answer_as_direct_ones(
        server: str, ledger: Ledger, db_url: str, tmp_path: Path) -> None:
    remote = ["--server", server, "--token", grant_token(ledger, ALLOCATOR)]
    direct = ["--db", db_url, "--actor", ALLOCATOR]
    practices = tmp_path / "practices.csv"
    practices.write_text("practice,name,list_size,consortium,acute_weighted\n"
                         "A81011,Eleventh Surgery,3412,16C,2948.207315\n"
                         "A81012,Twelfth Surgery,\"14,108\",,\n")
    allocations = tmp_path / "allocations.csv"
    allocations.write_text("practice,element,amount\nA81011,acute,\"£1,200.50\"\n"
                           "A81012,community,300\n")
    for words, path in ((["practice", "import", "--on", "2024-04-01"], practices),
                        (["budget", "import", "--year", "2024-25", "--on", "2024-04-01"],
                         allocations)):
        first = ledger_cmd(*remote, *words, str(path), cwd=tmp_path)
        assert first.code == 0, first.stderr
        assert first.stdout.startswith("done: imported 2 "), first.stdout
        by_hand = ledger_cmd(*direct, *words, str(path), cwd=tmp_path)
        again = ledger_cmd(*remote, *words, str(path), cwd=tmp_path)
        assert (again.code, again.stdout, again.stderr) == (
            by_hand.code, by_hand.stdout, by_hand.stderr)
        assert again.stdout.startswith("already applied: imported 2 ")
    # A file with a row the ledger refuses: the same refusal, naming its line; nothing.
    bad = tmp_path / "bad.csv"
    bad.write_text("practice,element,amount\nA81011,community,10\nA89999,acute,10\n")
    head = ledger.store.head()
    words = ["budget", "import", "--year", "2024-25", "--on", "2024-05-01", str(bad)]
    via, by_hand = ledger_cmd(*remote, *words, cwd=tmp_path), ledger_cmd(*direct, *words,
                                                                          cwd=tmp_path)
    assert via.code == by_hand.code == EXIT_REFUSED, (via.stderr, by_hand.stderr)
    assert via.stderr == by_hand.stderr
    assert "line 3" in via.stderr
    assert ledger.store.head() == head


def test_replay_through_the_service_prints_what_direct_access_prints(
        server: str, ledger: Ledger, db_url: str, tmp_path: Path) -> None:
    consortium = ["--server", server, "--token", grant_token(ledger, "consortium:16C")]
    for options in ([], ["--format", "json"], ["--until", "2024-07-15", "--format", "csv"]):
        read = ["replay", "A81001", "--year", "2024-25", *options]
        direct = ledger_cmd("--db", db_url, *read, cwd=tmp_path)
        via = ledger_cmd(*consortium, *read, cwd=tmp_path)
        assert direct.code == via.code == 0, (options, via.stderr)
        assert via.stdout == direct.stdout, options
        assert "BudgetAllocated" in direct.stdout or "allocated" in direct.stdout
    other = ledger_cmd("--server", server, "--token", grant_token(ledger, "practice:A81002"),
                       "replay", "A81001", "--year", "2024-25", cwd=tmp_path)
    assert other.code == EXIT_REFUSED
    assert "may not read practice A81001" in other.stderr
    missing = ["replay", "A81001", "--year", "2031-32"]
    direct = ledger_cmd("--db", db_url, *missing, cwd=tmp_path)
    via = ledger_cmd(*consortium, *missing, cwd=tmp_path)
    assert direct.code == via.code == EXIT_REFUSED
    assert direct.stderr == via.stderr


def test_a_trail_through_the_service_prints_what_direct_access_prints(
        server: str, ledger: Ledger, db_url: str, tmp_path: Path) -> None:
    consortium = ["--server", server, "--token", grant_token(ledger, "consortium:16C")]
    for code in ("A81001", "16C"):
        for options in ([], ["--format", "json"], ["--format", "csv"]):
            read = ["trail", code, "--year", "2024-25", *options]
            direct = ledger_cmd("--db", db_url, *read, cwd=tmp_path)
            via = ledger_cmd(*consortium, *read, cwd=tmp_path)
            assert direct.code == via.code == 0, (code, options, via.stderr)
            assert via.stdout == direct.stdout, (code, options)
    table = ledger_cmd(*consortium, "trail", "A81001", cwd=tmp_path).stdout
    assert "recorded at" in table
    assert "Z " not in table  # each instant as a table shows one: 2024-07-15 09:30:00


def test_a_file_larger_than_one_request_is_applied_in_parts_with_its_own_line_numbers(
        server: str, ledger: Ledger, tmp_path: Path) -> None:
    token = grant_token(ledger, "practice:A81002")
    pad = " " * (MAX_APPLY_REQUEST_BYTES // 2 - 1000)  # two lines a request at most
    commands = tmp_path / "large.jsonl"
    commands.write_text("\n".join([
        commit_line("p-1", "R-P1", "10") + pad,
        commit_line("p-2", "R-P2", "10") + pad,
        commit_line("p-3", "R-P3", "1.234") + pad,  # malformed amount: refused
        commit_line("p-4", "R-P4", "10") + pad,
        commit_line("p-5", "R-P5", "10"),
    ]) + "\n")
    assert commands.stat().st_size > MAX_APPLY_REQUEST_BYTES
    head = ledger.store.head()
    done = ledger_cmd("--server", server, "--token", token, "apply", str(commands),
                      cwd=tmp_path)
    assert done.code == EXIT_USAGE, done.stderr
    assert "4 applied, 0 already applied, 1 refused" in done.stdout, done.stdout
    refused = [line for line in done.stdout.splitlines() if "refused" in line
               and line.startswith("line ")]
    assert len(refused) == 1, done.stdout
    assert refused[0].startswith("line 3"), done.stdout
    assert ledger.store.head() == head + 4
    refs = {e.__dict__["ref"] for _, e in ledger.store.iter_events()
            if e.topic == "SpendCommitted"}
    assert {"R-P1", "R-P2", "R-P4", "R-P5"} <= refs
    assert "R-P3" not in refs
    stopped = ledger_cmd("--server", server, "--token", token, "apply", "--stop-on-error",
                         str(commands), cwd=tmp_path)
    assert stopped.code == EXIT_USAGE, stopped.stderr
    assert "0 applied, 2 already applied, 1 refused" in stopped.stdout, stopped.stdout
    assert ledger.store.head() == head + 4


def test_a_line_longer_than_one_request_is_refused_before_anything_is_sent(
        server: str, ledger: Ledger, tmp_path: Path) -> None:
    token = grant_token(ledger, "practice:A81002")
    commands = tmp_path / "long-line.jsonl"
    commands.write_text(commit_line("l-1", "R-L1", "10") + "\n"
                        + commit_line("l-2", "R-L2", "10") + " " * MAX_APPLY_REQUEST_BYTES
                        + "\n")
    head = ledger.store.head()
    done = ledger_cmd("--server", server, "--token", token, "apply", str(commands),
                      cwd=tmp_path)
    assert done.code == EXIT_USAGE, (done.stdout, done.stderr)
    done.one_line_error("line 2 is", f"than the service reads in one request "
                        f"({MAX_APPLY_REQUEST_BYTES:,})", "nothing was sent")
    assert ledger.store.head() == head


# The bound and its answer are the service's, whatever the store.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_import_too_large_for_one_request_is_refused_as_malformed_input_recording_nothing(
        server: str, ledger: Ledger, tmp_path: Path) -> None:
    token = grant_token(ledger, ALLOCATOR)
    practices = tmp_path / "practices.csv"
    rows = [f"B{n:05d},{'N' * 200},3000" for n in range(60_000)]
    practices.write_text("practice,name,list_size\n" + "\n".join(rows) + "\n")
    head = ledger.store.head()
    done = ledger_cmd("--server", server, "--token", token, "practice", "import",
                      str(practices), cwd=tmp_path)
    assert done.code == EXIT_USAGE, (done.stdout[-500:], done.stderr)
    done.one_line_error(f"over {MAX_APPLY_REQUEST_BYTES:,} bytes", "nothing was recorded",
                        "must fit in one", "[rule: request-size]")
    assert ledger.store.head() == head
