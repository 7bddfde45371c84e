"""The real `ledger witness serve` over loopback HTTP: it keeps its word across kill -9."""

from __future__ import annotations

import os
import signal
import socket
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

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("witness-process")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    def __init__(self, key: Path, state: Path, log: MemoryLog) -> None:
        self.key, self.state, self.log = key, state, log
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [*ledger_executable(), "witness", "serve", "--key", str(self.key), "--state",
             str(self.state), "--log", f"{self.log.signer.name}={self.log.vkey}",
             "--port", str(self.port)],
            env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/{'0' * 64}/checkpoint", timeout=1)
                return
            except httpx.TransportError:
                assert self.process.poll() is None, self.process.stderr.read()  # type: ignore[union-attr]
                time.sleep(0.1)
        raise AssertionError("the witness did not start")

    def kill9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Served, str]]:
    key = tmp_path / "witness.key"
    made = subprocess.run([*ledger_executable(), "witness", "keygen", "--name",
                           "witness.test/w1", "--key", str(key)],
                          env=clean_env(), capture_output=True, text=True, check=True)
    assert key.stat().st_mode & 0o777 == 0o600
    server = Served(key, tmp_path / "state", MemoryLog())
    server.start()
    yield server, made.stdout.strip()
    server.stop()


def submit(server: Served, old: int) -> httpx.Response:
    log = server.log
    proof = log.proof(old) if old else []
    return httpx.post(f"{server.url}/add-checkpoint",
                      content=format_request(old, proof, log.checkpoint()), timeout=10)


def test_the_witness_survives_kill_9_without_forgetting(served: tuple[Served, str]) -> None:
    server, vkey = served
    witness = parse_witness_key(vkey)
    log = server.log
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
    deadline = time.monotonic() + 20
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
