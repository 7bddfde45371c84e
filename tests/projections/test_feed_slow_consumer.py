"""A live feed client that stops reading: the service holds a bounded amount for it, ends
its stream once it has taken nothing for `STALL_SECONDS` (saying why in its log), and the
client resumes from its last whole message with nothing skipped."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn

from ledger.application.batch import apply_lines
from ledger.bootstrap import Ledger
from projections import api_feed
from tests.ledger.application.scenario import ALLOCATOR, bearer, grant_token
from tests.projections.live_server import SseReader, serving

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

ADJUSTMENTS = 2_000  # each event's row is about 1.3 KB: about 2.7 MB of feed in all


def write_large_feed(ledger: Ledger) -> int:
    """A practice, its budget and ADJUSTMENTS adjustments with long reasons; the head."""
    lines = [
        {"command": "practice register", "command_id": "r-0", "args": {
            "practice": "B80000", "name": "N" * 200, "list_size": 3000, "on": "2024-04-01"}},
        {"command": "budget allocate", "command_id": "a-0", "args": {
            "practice": "B80000", "year": "2024-25", "element": {"acute": "100000"},
            "on": "2024-04-01"}},
        *({"command": "budget adjust", "command_id": f"adj-{n}", "args": {
            "practice": "B80000", "year": "2024-25", "element": "acute", "by": "1",
            "on": "2024-04-02", "reason": "R" * 1000}} for n in range(ADJUSTMENTS))]
    report = apply_lines(ledger.service, [json.dumps(line) for line in lines],
                         default_actor=ALLOCATOR)
    assert not report.refused, report.results[:3]
    return ledger.store.head()


@contextmanager
def served(db: str) -> Iterator[tuple[str, uvicorn.Server]]:
    """The service on a real socket, and its uvicorn server (to look at its connections).

    The connections' operating-system send buffers are small (inherited from the
    listening socket), as on a busy host: what a client does not take then waits in the
    service's own memory, which is what must stay bounded."""
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    try:
        with serving(db, port, [listening]) as served_here:
            yield served_here
    finally:
        listening.close()


def waiting_to_be_sent(server: uvicorn.Server) -> int:
    """Bytes the service holds in its connections' buffers, not yet taken by the OS."""
    total = 0
    for connection in list(server.server_state.connections):
        transport = getattr(connection, "transport", None)
        if transport is not None and not transport.is_closing():
            total += transport.get_write_buffer_size()
    return total


def ended(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "live feed: ended" in r.getMessage()]


def test_a_client_that_stops_reading_is_paced_then_disconnected_and_resumes_whole(
        ledger: Ledger, db_url: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    head = write_large_feed(ledger)
    token = grant_token(ledger, ALLOCATOR)
    monkeypatch.setattr(api_feed, "STALL_SECONDS", 2.0)
    caplog.set_level(logging.WARNING, logger="projections.api_feed")
    with served(db_url) as (url, server):
        port = int(url.rsplit(":", 1)[1])
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting
        sock.settimeout(30)
        sock.connect(("127.0.0.1", port))
        # One request on the connection: the service closes it once the stream ends.
        sock.sendall(f"GET /events/live?after=0 HTTP/1.1\r\nHost: ledger\r\n"
                     f"Connection: close\r\n"
                     f"Authorization: {bearer(token)['Authorization']}\r\n\r\n".encode())
        received = b""
        while b"\r\n\r\n" not in received:
            received += sock.recv(1024)
        assert received.startswith(b"HTTP/1.1 200"), received[:200]
        # The client reads nothing more: the service must not take the feed in for it.
        most = 0
        deadline = time.monotonic() + 120  # generous: a loaded machine; not a timing
        while not ended(caplog):
            assert time.monotonic() < deadline, f"the stream was never ended; held {most}"
            most = max(most, waiting_to_be_sent(server))
            time.sleep(0.01)
        assert most <= api_feed.BUFFERED_BYTES, most
        assert "the client left a write untaken for 2 s" in ended(caplog)[0]
        assert "allocator:Q71" in ended(caplog)[0]
        # Reading again, the client gets what was sent, then the end of the connection.
        while chunk := sock.recv(65536):
            received += chunk
        sock.close()
    ids = [int(line[4:]) for line in received.decode().replace("\r\n", "\n").split("\n")
           if line.startswith("id: ")]
    assert ids == list(range(1, len(ids) + 1))
    assert 0 < len(ids) < head
    # Resuming from the last whole message it received (the last id may belong to a
    # message cut off), nothing is skipped or repeated up to the head.
    resume = ids[-2]
    with served(db_url) as (url, _):
        reader = SseReader(f"{url}/events/live", {**bearer(token),
                                                    "Last-Event-ID": str(resume)})
        try:
            assert reader.status == 200
            got = [int(reader.next()[0]) for _ in range(head - resume)]
        finally:
            reader.close()
    assert got == list(range(resume + 1, head + 1))
