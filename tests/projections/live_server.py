"""A real HTTP server for the service in a thread (streams need a real socket), and a
server-sent-events reader that hands messages over a queue."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from projections.api import create_app


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def live_server(db: str) -> Iterator[str]:
    with serving(db, free_port()) as (url, _):
        yield url


@contextmanager
def serving(db: str, port: int, sockets: list[socket.socket] | None = None
            ) -> Iterator[tuple[str, uvicorn.Server]]:
    """The service on 127.0.0.1:`port` (listening on `sockets` when given, bound to that
    port), and its uvicorn server; stopped on leaving."""
    server = uvicorn.Server(uvicorn.Config(create_app(db), host="127.0.0.1", port=port,
                                           log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class SseReader:
    """Reads `/events/live` on a thread; `next()` gives (id, data) or fails after a wait."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.messages: queue.Queue[tuple[str, dict[str, Any]] | BaseException] = queue.Queue()
        self.status: int | None = None
        self._socket: socket.socket | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self._thread.start()
        self._ready.wait(timeout=20)

    def _run(self, url: str, headers: dict[str, str]) -> None:
        try:
            with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(10, read=None)
                              ) as response:
                self.status = response.status_code
                self._socket = response.extensions["network_stream"].get_extra_info("socket")
                self._ready.set()
                ident, data = "", list[str]()
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if not line:
                        if data:
                            self.messages.put((ident, json.loads("\n".join(data))))
                        ident, data = "", []
                    elif line.startswith("id:"):
                        ident = line[3:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].lstrip())
        except BaseException as error:  # noqa: BLE001 - handed to the test
            self.messages.put(error)
        finally:
            self._ready.set()

    def next(self, wait: float = 20) -> tuple[str, dict[str, Any]]:
        item = self.messages.get(timeout=wait)
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Stop reading and end the connection, as a consumer that leaves does: the
        service's stream ends at once, and a server stopping after it need not wait."""
        self._stop.set()
        if self._socket is not None:
            with contextlib.suppress(OSError):  # the service has closed it already
                self._socket.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=10)


@contextmanager
def ledger_serve(db: str, tmp_path: Path, *options: str) -> Iterator[str]:
    """The real `ledger serve` in a subprocess; yields its base URL once `/health` answers
    (or fails with its log). Stopped, and waited for, on the way out."""
    from tests.commands.conftest import clean_env, ledger_executable  # noqa: PLC0415

    port = free_port()
    log_path = tmp_path / f"serve-{port}.log"
    with log_path.open("w") as log:
        server = subprocess.Popen([*ledger_executable(), "--db", db, "serve", "--port",
                                   str(port), *options], cwd=tmp_path, env=clean_env(),
                                  stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90  # a loaded machine starts slowly; not a timing
            while True:
                try:
                    httpx.get(f"{base}/health", timeout=2)
                    break
                except httpx.TransportError:
                    assert server.poll() is None, log_path.read_text()
                    assert time.monotonic() < deadline, log_path.read_text()
                    time.sleep(0.1)
            yield base
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)
