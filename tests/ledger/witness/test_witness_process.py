"""The real `ledger witness serve` over loopback HTTP: it keeps its word across kill -9."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ledger.audit.cosignature import parse_witness_key, valid_cosignatures
from ledger.witness.protocol import format_request
from tests.commands.conftest import clean_env, ledger_executable
from tests.ledger.witness.logs import MemoryLog
from tests.ledger.witness.serving import Served, ledger_witness_command

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("witness-process")]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Served, str]]:
    key = tmp_path / "witness.key"
    made = subprocess.run([*ledger_executable(), "witness", "keygen", "--name",
                           "witness.test/w1", "--key", str(key)],
                          env=clean_env(), capture_output=True, text=True, check=True)
    assert key.stat().st_mode & 0o777 == 0o600
    log = MemoryLog()
    server = Served(lambda port: ledger_witness_command(key, tmp_path / "state", log.vkey, port))
    server.log = log
    server.start()
    yield server, made.stdout.strip()
    server.stop()


def submit(server: Served, old: int) -> httpx.Response:
    log = server.log
    assert log is not None
    proof = log.proof(old) if old else []
    return httpx.post(f"{server.url}/add-checkpoint",
                      content=format_request(old, proof, log.checkpoint()), timeout=10)


def test_the_witness_survives_kill_9_without_forgetting(served: tuple[Served, str]) -> None:
    server, vkey = served
    witness = parse_witness_key(vkey)
    log = server.log
    assert log is not None
    cosigned = 0
    for step in range(1, 16):
        log.grow(step)
        answer = submit(server, cosigned)
        assert answer.status_code == 200, answer.text
        assert valid_cosignatures(log.checkpoint() + answer.text, [witness])
        cosigned = len(log.leaves)
    server.kill9()  # right after its answer: the checkpoint must already be on disk
    server.start()
    stale = submit(server, 0)
    assert (stale.status_code, stale.text) == (409, f"{cosigned}\n")
    assert stale.headers["content-type"] == "text/x.tlog.size"

    # Kill it again in the middle of a stream of submissions.
    acknowledged: list[int] = []
    stop = threading.Event()

    def feed() -> None:
        old = cosigned
        while not stop.is_set():
            log.grow(1)
            try:
                reply = submit(server, old)
            except httpx.TransportError:
                return
            if reply.status_code != 200:
                return
            old = len(log.leaves)
            acknowledged.append(old)

    feeder = threading.Thread(target=feed)
    feeder.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill9()
    stop.set()
    feeder.join(timeout=20)
    assert acknowledged
    server.start()
    held = int(submit(server, 0).text)
    # Never less than what it answered; at most the one it was writing when killed.
    assert acknowledged[-1] <= held <= acknowledged[-1] + 1
    log_now = len(log.leaves)
    assert submit(server, held).status_code == 200
    assert int(submit(server, 0).text) == log_now
