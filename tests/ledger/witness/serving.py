"""Witness processes on loopback for end-to-end tests: started, waited for, killed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.commands.conftest import clean_env, ledger_executable
from tests.ledger.witness.logs import MemoryLog


def ledger_witness_command(key: Path, state: Path, log_vkey: str, port: int) -> list[str]:
    return [*ledger_executable(), "witness", "serve", "--key", str(key), "--state", str(state),
            "--log", log_vkey, "--port", str(port)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """A witness server process; `command(port)` is its command line."""

    def __init__(self, command: Callable[[int], list[str]], env: dict[str, str] | None = None
                 ) -> None:
        self.command = command
        self.env = env or clean_env()
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log: MemoryLog | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command(self.port), env=self.env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120  # a loaded machine starts Python slowly
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


