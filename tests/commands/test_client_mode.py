"""`ledger --server URL --token T`: the command line as a client of the service, same
answers and exit codes as with direct access, on both stores."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from commands.app import app
from commands.errors import EXIT_REFUSED, EXIT_STORE_UNAVAILABLE, EXIT_USAGE
from ledger.bootstrap import Ledger
from tests.commands.conftest import Run
from tests.ledger.application.scenario import ALLOCATOR, grant_token
from tests.projections.live_server import free_port, live_server
from tests.projections.test_api import write_ledger


@pytest.fixture
def server(ledger: Ledger, db_url: str) -> Iterator[str]:
    write_ledger(ledger)
    with live_server(db_url) as base:
        yield base


def cli(*args: str, env: dict[str, str | None] | None = None) -> Run:
    clean: dict[str, str | None] = {"LEDGER_DB": None, "LEDGER_ACTOR": None,
                                    "LEDGER_SERVER": None, "LEDGER_TOKEN": None}
    result = CliRunner().invoke(app, list(args), env=clean | (env or {}))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(result.exit_code, result.stdout, result.stderr)


def test_writes_through_the_service_answer_as_direct_ones(
        server: str, ledger: Ledger, db_url: str) -> None:
    allocator = grant_token(ledger, ALLOCATOR)
    remote = ["--server", server, "--token", allocator]
    made = cli(*remote, "--command-id", "reg-9", "practice", "register", "A81009",
               "--name", "Ninth Surgery", "--list-size", "900", "--on", "2024-04-01")
    assert made.code == 0, made.stderr
    assert made.stdout.startswith("done: registered A81009 Ninth Surgery (list size 900)")
    assert "command id reg-9" in made.stdout
    again = cli(*remote, "--command-id", "reg-9", "practice", "register", "A81009",
                "--name", "Ninth Surgery", "--list-size", "900", "--on", "2024-04-01")
    assert again.code == 0
    assert again.stdout.startswith("already applied:")
    # A practice committing against an element it does not hold: refused alike.
    args = ["spend", "commit", "A81001", "--year", "2024-25", "--element", "acute",
            "--ref", "R-X", "--amount", "10", "--provider", "P", "--service", "S",
            "--on", "2024-07-01"]
    direct = cli("--db", db_url, "--actor", "practice:A81002", *args)
    via = cli("--server", server, "--token", grant_token(ledger, "practice:A81002"), *args)
    assert direct.code == via.code == EXIT_REFUSED
    assert direct.one_line_error() == via.one_line_error()
    bad = cli(*remote, "spend", "commit", "A81001", "--year", "2024-25", "--element", "acute",
              "--ref", "R-Y", "--amount", "1.234", "--provider", "P", "--service", "S")
    assert bad.code == EXIT_USAGE
    bad.one_line_error("malformed amount")


def test_reads_through_the_service_print_what_direct_reads_print(
        server: str, ledger: Ledger, db_url: str) -> None:
    remote = ["--server", server, "--token", grant_token(ledger, "auditor:audit")]
    for read in (["holders", "--practice", "A81001"], ["position", "--by", "consortium"],
                 ["trail", "A81002"], ["quality"], ["pools"],
                 ["variation", "--method", "tukey", "--consortium", "16C"]):
        direct = cli("--db", db_url, *read, "--format", "json")
        via = cli(*remote, *read, "--format", "json")
        assert direct.code == via.code == 0, (read, via.stderr)
        assert json.loads(via.stdout) == json.loads(direct.stdout), read
    # As a table, the consortia's position is followed by their risk pools.
    direct = cli("--db", db_url, "position", "--by", "consortium")
    via = cli(*remote, "position", "--by", "consortium")
    assert direct.code == via.code == 0, via.stderr
    assert "Risk pools" in direct.stdout
    assert via.stdout == direct.stdout
    scoped = cli("--server", server, "--token", grant_token(ledger, "practice:A81001"),
                 "holders", "--format", "json")
    assert {r["practice"] for r in json.loads(scoped.stdout)} == {"A81001"}


def test_client_mode_refuses_actor_store_commands_and_bad_tokens(
        server: str, ledger: Ledger, tmp_path: Path) -> None:
    token = grant_token(ledger, ALLOCATOR)
    with_actor = cli("--server", server, "--token", token, "--actor", ALLOCATOR,
                     "practice", "register", "A81009", "--name", "N", "--list-size", "1")
    assert with_actor.code == EXIT_USAGE
    with_actor.one_line_error("--actor is refused with --server")
    env_actor = cli("practice", "register", "A81009", "--name", "N", "--list-size", "1",
                    env={"LEDGER_SERVER": server, "LEDGER_TOKEN": token,
                         "LEDGER_ACTOR": ALLOCATOR})
    assert env_actor.code == EXIT_USAGE
    (tmp_path / "x.jsonl").write_text("")
    store_only = cli("--server", server, "--token", token, "verify")
    assert store_only.code == EXIT_USAGE
    store_only.one_line_error("not available with --server")
    # It reads weighted populations from the store itself: refused as such, not by asking
    # for an --actor that --server refuses.
    formula = cli("--server", server, "--token", token, "budget", "allocate-formula",
                  "--year", "2025-26", "--rate", "acute=780")
    assert formula.code == EXIT_USAGE
    formula.one_line_error("not available with --server")
    plot = cli("--server", server, "--token", token, "position", "--consortium", "16C",
               "--plot", str(tmp_path / "p.svg"))
    assert plot.code == EXIT_USAGE
    plot.one_line_error("position --plot needs direct access to the store",
                        "position itself works with --server")
    assert not (tmp_path / "p.svg").exists()
    nobody = cli("--server", server, "holders")
    assert nobody.code == EXIT_REFUSED
    nobody.one_line_error("no bearer token", "[rule: authentication]")
    wrong = cli("--server", server, "--token", "nope", "holders")
    wrong.one_line_error("unknown bearer token")
    gone = cli("--server", f"http://127.0.0.1:{free_port()}", "--token", token, "holders")
    assert gone.code == EXIT_STORE_UNAVAILABLE
    gone.one_line_error("cannot reach the ledger service")


def test_tokens_are_made_through_the_service_by_the_allocator(
        server: str, ledger: Ledger) -> None:
    remote = ["--server", server, "--token", grant_token(ledger, ALLOCATOR)]
    made = cli(*remote, "token", "create", "--actor", "consortium:16C", "--name", "finance")
    assert made.code == 0, made.stderr
    assert "keep it now" in made.stdout
    boot = cli(*remote, "token", "create", "--actor", ALLOCATOR, "--bootstrap")
    assert boot.code == EXIT_USAGE
    boot.one_line_error("needs direct access to the store")
