"""The service reads a request body only up to its route's bound: 413 at once beyond it.

A write command's body is parsed before its bearer token is checked, so these run
against a real server over a socket, with and without a token: an unbounded body would
make the service hold it all in memory before answering 401.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from ledger.application.files import MAX_APPLY_REQUEST_BYTES, MAX_INPUT_BYTES
from ledger.bootstrap import Ledger
from projections.api_limits import MAX_COMMAND_BODY_BYTES
from tests.ledger.application.scenario import ALLOCATOR, bearer, grant_token
from tests.projections.live_server import live_server

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def served(ledger: Ledger, db_url: str) -> Iterator[tuple[str, str]]:
    token = grant_token(ledger, ALLOCATOR)
    with live_server(db_url) as url:
        yield url, token


def answer_of(sock: socket.socket, within: float = 10) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of the response read from `sock`, which must come within
    `within` seconds although the request's body was never finished."""
    sock.settimeout(within)
    data = b""
    deadline = time.monotonic() + within
    while b"\r\n\r\n" not in data or not _complete(data):
        assert time.monotonic() < deadline, data
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), orjson.loads(body)


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def request_head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: ledger", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("with_token", [False, True])
@pytest.mark.parametrize("path", ["/spend/commit", "/token/create"])
def test_a_command_body_declared_too_large_is_refused_before_it_is_sent(
        served: tuple[str, str], path: str, with_token: bool) -> None:
    url, token = served
    headers = {"Content-Type": "application/json",
               "Content-Length": str(MAX_COMMAND_BODY_BYTES + 1)}
    if with_token:
        headers |= bearer(token)
    with connect(url) as sock:
        sock.sendall(request_head(path, headers) + b'{"practice": "')
        status, body = answer_of(sock)
    assert status == 413
    assert body["rule"] == "request-size"
    assert "nothing was recorded" in body["error"]


def test_a_command_body_sent_in_chunks_is_refused_once_it_passes_the_bound(
        served: tuple[str, str]) -> None:
    url, _ = served
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    chunk = b"x" * 65536
    with connect(url) as sock:
        sock.sendall(request_head("/spend/commit", headers))
        sock.sendall(b'e\r\n{"practice": "\r\n')
        for _ in range(MAX_COMMAND_BODY_BYTES // len(chunk) + 2):
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        status, body = answer_of(sock)  # the last chunk (size 0) is never sent
    assert status == 413
    assert body["rule"] == "request-size"


@pytest.mark.parametrize("declared", [MAX_APPLY_REQUEST_BYTES + 1, MAX_INPUT_BYTES + 1])
def test_a_file_of_commands_declared_over_the_bound_is_refused_before_it_is_sent(
        served: tuple[str, str], declared: int) -> None:
    url, token = served
    headers = {"Content-Type": "text/plain", "Content-Length": str(declared),
               **bearer(token)}
    with connect(url) as sock:
        sock.sendall(request_head("/apply", headers) + b'{"command": ')
        status, body = answer_of(sock)
    assert status == 413
    assert body["rule"] == "request-size"
    assert f"over {MAX_APPLY_REQUEST_BYTES:,} bytes" in body["error"]
    assert "nothing was recorded" in body["error"]
    assert "in parts" in body["error"]


def register_line(n: int, padding: int = 0) -> bytes:
    """An `apply` line registering practice B8{n:04d}, padded with `padding` spaces."""
    return orjson.dumps({"command": "practice register", "command_id": f"r-{n}",
                         "args": {"practice": f"B8{n:04d}", "name": "Padded",
                                  "list_size": 3000, "on": "2024-04-01"}}
                        ) + b" " * padding + b"\n"


def test_a_file_of_commands_sent_in_chunks_past_the_bound_is_refused_and_records_nothing(
        served: tuple[str, str], ledger: Ledger) -> None:
    url, token = served
    head = ledger.store.head()
    headers = {"Content-Type": "text/plain", "Transfer-Encoding": "chunked", **bearer(token)}
    chunk = register_line(1, padding=1024**2 - 200)
    with connect(url) as sock:
        sock.sendall(request_head("/apply", headers))
        for _ in range(MAX_APPLY_REQUEST_BYTES // len(chunk) + 2):
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        status, body = answer_of(sock)  # the last chunk (size 0) is never sent
    assert status == 413
    assert body["rule"] == "request-size"
    assert ledger.store.head() == head


def test_a_file_of_commands_just_within_the_bound_is_applied(
        served: tuple[str, str], ledger: Ledger) -> None:
    url, token = served
    first, second = register_line(1), register_line(2)
    padding = MAX_APPLY_REQUEST_BYTES - len(first) - len(second)
    body = first + register_line(2, padding=padding)
    assert len(body) == MAX_APPLY_REQUEST_BYTES
    head = ledger.store.head()
    done = httpx.post(f"{url}/apply", content=body, timeout=60,
                      headers={"Content-Type": "text/plain", **bearer(token)})
    assert done.status_code == 200, done.text[:500]
    assert [r["status"] for r in done.json()["results"]] == ["applied", "applied"]
    assert ledger.store.head() == head + 2


def test_a_command_over_the_bound_records_nothing_and_one_within_it_is_recorded(
        served: tuple[str, str], ledger: Ledger) -> None:
    url, token = served
    args = {"practice": "A81001", "name": "The Densham Surgery", "list_size": "4069",
            "on": "2024-04-01"}
    padded = orjson.dumps(args)[:-1] + b"," + b" " * MAX_COMMAND_BODY_BYTES + b"}"
    head = ledger.store.head()
    refused = httpx.post(f"{url}/practice/register", content=padded, timeout=30,
                         headers={"Content-Type": "application/json", **bearer(token)})
    assert refused.status_code == 413, refused.text
    assert ledger.store.head() == head
    done = httpx.post(f"{url}/practice/register", json=args, timeout=30, headers=bearer(token))
    assert done.status_code == 201, done.text
    assert ledger.store.head() == head + 1
