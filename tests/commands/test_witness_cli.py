"""The witness end to end over real loopback HTTP: `ledger witness serve` (and an independent
tlog-witness, aics-witness) cosign a ledger's checkpoints; `verify-bundle` checks them offline;
a rewritten log is refused with exit 4 naming the witness."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.commands.conftest import Ledger, clean_env
from tests.commands.test_audit_cli import edit_first_event, populate
from tests.ledger.audit.test_tampering import Db
from tests.ledger.witness.serving import Served, ledger_witness_command
from tests.ledger.witness.test_witnessed_ledger import rebuild_audit_tables

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("signing_key")]
ALLOCATOR = "allocator:Q71"


@pytest.fixture
def witness(invoke: Ledger, tmp_path: Path) -> Iterator[tuple[Served, str]]:
    """`ledger witness serve` following this ledger's log, and its verifier key."""
    populate(invoke)
    log_key = invoke("checkpoint", "--public-key").stdout.strip()
    key = tmp_path / "witness.key"
    made = invoke("witness", "keygen", "--name", "witness.test/w1", "--key", str(key))
    assert made.code == 0, made.stderr
    server = Served(lambda port: ledger_witness_command(key, tmp_path / "w-state", log_key, port))
    server.start()
    yield server, made.stdout.strip()
    server.stop()


def commit(invoke: Ledger, ref: str) -> None:
    done = invoke("spend", "commit", "A81001", "--year", "2024-25", "--element", "acute",
                  "--ref", ref, "--amount", "12.50", "--provider", "RTR", "--service", "Hip",
                  actor="practice:A81001")
    assert done.code == 0, done.stderr


def test_cosigned_checkpoints_and_an_offline_bundle_check(
    invoke: Ledger, witness: tuple[Served, str], tmp_path: Path, db_url: str,
) -> None:
    server, witness_key = witness
    first = invoke("checkpoint", "--witness", f"{server.url}={witness_key}")
    assert first.code == 0, first.stderr
    assert "cosigned by witness witness.test/w1 at size 2" in first.stderr
    assert "\u2014 witness.test/w1 " in first.stdout
    commit(invoke, "R-1")
    again = invoke("checkpoint")  # the witness is remembered
    assert again.code == 0, again.stderr
    assert "at size 3" in again.stderr
    bundle = tmp_path / "bundle.json"
    assert invoke("prove", "A81001", "--out", str(bundle)).code == 0
    data = orjson.loads(bundle.read_bytes())
    assert (data["version"], data["witnesses"]) == (2, [witness_key])
    log_key = invoke("checkpoint", "--public-key").stdout.strip()
    assert data["key_id"] == log_key.split("+")[1]
    server.stop()  # offline from here on
    checked = invoke("verify-bundle", str(bundle), "--public-key", log_key,
                     "--witness-key", witness_key, "--quorum", "1")
    assert checked.code == 0, checked.stderr
    assert "cosigned: 1 of 1 witness(es)" in checked.stdout
    assert "not checked" not in checked.stderr
    unchecked = invoke("verify-bundle", str(bundle), "--public-key", log_key)
    assert unchecked.code == 0, unchecked.stderr
    assert "cosigned" not in unchecked.stdout
    assert ("note: the checkpoint carries 1 cosignature(s), not checked; pass --witness-key "
            "with each witness's key to check them") in unchecked.stderr
    report = invoke("verify")
    assert report.code == 0, report.stdout
    assert "latest checkpoint cosigned by witnesses is size 3 (witness.test/w1); the log " \
           "still extends it" in report.stdout
    as_json = orjson.loads(invoke("verify", "--format", "json").stdout)
    assert (as_json["cosigned_size"], as_json["extends_cosigned"]) == (3, True)

    # A bundle carrying no cosignature is refused under --witness-key.
    data["checkpoint"] = data["checkpoint"].split("\u2014 witness.test/w1")[0]
    bundle.write_bytes(orjson.dumps(data))
    bare = invoke("verify-bundle", str(bundle), "--public-key", log_key,
                  "--witness-key", witness_key)
    assert bare.code == 4
    bare.one_line_error("carries 0 valid cosignature(s)", "witness.test/w1", "1 required")
    assert invoke("verify-bundle", str(bundle), "--quorum", "1").code == 2

    # The operator rewrites the first event and rebuilds the log and its checkpoints.
    server.start()
    edit_first_event(db_url, "Densham", "Dansham")
    rebuild_audit_tables(Db(db_url))
    refused = invoke("checkpoint")
    assert refused.code == 4
    refused.one_line_error("witness witness.test/w1", server.url,
                           "refused the checkpoint of size 3", "HTTP 422")


def aics_witness(tmp_path: Path, origin: str, log_key: str) -> tuple[Served, str]:
    pytest.importorskip("aics_witness", reason="aics-witness is installed by `make`")
    config = tmp_path / "aics" / "witness.json"
    config.parent.mkdir()
    command = [sys.executable, "-m", "aics_witness"]
    made = subprocess.run([*command, "init", "--config", str(config), "--name",
                           "independent.test/w2"], capture_output=True, text=True, check=True,
                          env=clean_env())
    doc = json.loads(config.read_text())
    doc["logs"] = [{"origin": origin, "vkeys": [log_key], "extension_lines": True}]
    config.write_text(json.dumps(doc))
    served = Served(lambda port: [*command, "serve", "--config", str(config), "--listen",
                                  f"127.0.0.1:{port}"])
    served.start()
    return served, made.stdout.strip()


def test_an_independent_witness_cosigns_and_refuses_alike(
    invoke: Ledger, witness: tuple[Served, str], tmp_path: Path, db_url: str,
) -> None:
    ours, our_key = witness
    log_key = invoke("checkpoint", "--public-key").stdout.strip()
    theirs, their_key = aics_witness(tmp_path, log_key.split("+")[0], log_key)
    try:
        done = invoke("checkpoint", "--witness", f"{ours.url}={our_key}",
                      "--witness", f"{theirs.url}={their_key}")
        assert done.code == 0, done.stderr
        assert "cosigned by witness independent.test/w2 at size 2" in done.stderr
        commit(invoke, "R-2")
        assert invoke("checkpoint").code == 0
        bundle = tmp_path / "bundle.json"
        assert invoke("prove", "A81001", "--out", str(bundle)).code == 0
        both = invoke("verify-bundle", str(bundle), "--public-key", log_key,
                      "--witness-key", our_key, "--witness-key", their_key)
        assert both.code == 0, both.stderr
        assert "cosigned: 2 of 2" in both.stdout
        edit_first_event(db_url, "Densham", "Dansham")
        rebuild_audit_tables(Db(db_url))
        commit(invoke, "R-3")
        refused = invoke("checkpoint")
        assert refused.code == 4
        line = refused.one_line_error("witness independent.test/w2", "witness witness.test/w1")
        assert line.count("HTTP 422") == 2
    finally:
        theirs.stop()


def test_a_witness_key_file_and_bad_witness_options(invoke: Ledger, tmp_path: Path) -> None:
    populate(invoke)
    key = tmp_path / "w.key"
    assert invoke("witness", "keygen", "--name", "w.test", "--key", str(key)).code == 0
    again = invoke("witness", "keygen", "--name", "w.test", "--key", str(key))
    assert again.code == 2
    again.one_line_error("exists")
    assert invoke("witness", "key", "--key", str(key)).stdout.startswith("w.test+")
    bad = invoke("checkpoint", "--witness", "witness.test=nonsense")
    assert bad.code == 2
    bad.one_line_error("URL=WITNESS_KEY")
    vkey = invoke("witness", "key", "--key", str(key)).stdout.strip()
    down = invoke("checkpoint", "--witness", f"http://127.0.0.1:9={vkey}")
    assert down.code == 4
    down.one_line_error("witness w.test (http://127.0.0.1:9) could not be asked to cosign "
                        "the checkpoint", "no answer")
    # Not remembered: a witness that never cosigned leaves no trace.
    assert invoke("checkpoint").code == 0
    unknown = invoke("checkpoint", "--forget-witness", "w.test")
    assert unknown.code == 1
    unknown.one_line_error("no witness named 'w.test'")


def test_a_witness_that_does_not_answer_leaves_its_stored_url_alone(
    invoke: Ledger, witness: tuple[Served, str], db_url: str,
) -> None:
    server, witness_key = witness
    assert invoke("checkpoint", "--witness", f"{server.url}={witness_key}").code == 0
    commit(invoke, "PO-1")
    down = invoke("checkpoint", "--witness", f"http://127.0.0.1:9={witness_key}")
    assert down.code == 4
    down.one_line_error("witness witness.test/w1 (http://127.0.0.1:9) could not be asked "
                        "to cosign the checkpoint", "no answer")
    commit(invoke, "PO-2")
    again = invoke("checkpoint")  # asks the witness at the URL it last cosigned at
    assert again.code == 0, again.stderr
    assert "cosigned by witness witness.test/w1 at size 4" in again.stderr
    commit(invoke, "PO-3")
    forgotten = invoke("checkpoint", "--forget-witness", "witness.test/w1")
    assert forgotten.code == 0, forgotten.stderr
    assert "\u2014 witness.test/w1" not in forgotten.stdout


def test_ledger_help_does_not_load_the_witness() -> None:
    probe = ("import sys, commands.app; "
             "print([m for m in ('uvicorn', 'starlette', 'httpx', 'ledger.witness.state') "
             "if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=clean_env(), check=True)
    assert done.stdout.strip() == "[]"
