"""`ledger apply --server` of a file too large for one request, sent in parts: when a
later part fails, or Ctrl-C comes while it is sent, the outcomes of the parts the
service already recorded are reported as they would be for a file of those lines
alone, and then the failure, with the failure's exit code.

The service is a fake (a real HTTP server in a thread): it answers the first part as
the ledger service answers `POST /apply`, line by line, and the second with a failure,
or by sending Ctrl-C (SIGINT) to the client while it waits.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from commands.errors import EXIT_INTERRUPTED, EXIT_STORE_UNAVAILABLE
from ledger.application.files import MAX_APPLY_REQUEST_BYTES
from tests.commands.conftest import clean_env, ledger_executable

LINE_BYTES = 100_000
"""Each command line's size: about 168 lines fill a part, 170 need two."""
LINES = MAX_APPLY_REQUEST_BYTES // LINE_BYTES + 2
REFUSED_LINE = 7


class FakeService(ThreadingHTTPServer):
    """Answers the first `POST /apply` line by line (line 7 refused, the rest applied);
    the second with 503 and the service's error envelope, or, with `interrupt`, by
    sending SIGINT to `client` and answering nothing until `release` is set."""

    def __init__(self, interrupt: bool) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.interrupt = interrupt
        self.parts: list[int] = []
        self.client: subprocess.Popen[str] | None = None
        self.release = threading.Event()


class Handler(BaseHTTPRequestHandler):
    server: FakeService

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads the client's output, not the fake's."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        self.server.parts.append(len(lines))
        if len(self.server.parts) == 1:
            results = [_outcome(n, line) for n, line in enumerate(lines, start=1)]
            self._answer(200, {"results": results, "stopped_early": False})
        elif self.server.interrupt:
            assert self.server.client is not None
            self.server.client.send_signal(signal.SIGINT)
            self.server.release.wait()
        else:
            self._answer(503, {"error": "the store is unavailable: disk full", "rule": "store"})

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _outcome(n: int, line: dict[str, str]) -> dict[str, object]:
    if n == REFUSED_LINE:
        return {"line": n, "command_id": line["command_id"], "command": line["command"],
                "status": "refused", "message": "no practice A81007; register it first",
                "refusal_status": 404, "rule": "practice",
                "error": "no practice A81007; register it first"}
    return {"line": n, "command_id": line["command_id"], "command": line["command"],
            "status": "applied", "message": "adopted", "refusal_status": None,
            "rule": None, "error": None}


@pytest.fixture(params=[False, True], ids=["failure", "ctrl-c"])
def service(request: pytest.FixtureRequest) -> Iterator[FakeService]:
    fake = FakeService(interrupt=request.param)
    thread = threading.Thread(target=fake.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.release.set()
    fake.shutdown()
    fake.server_close()


def test_a_later_part_failing_reports_the_parts_recorded_then_the_failure(
        service: FakeService, tmp_path: Path) -> None:
    path = tmp_path / "commands.jsonl"
    path.write_text("".join(
        json.dumps({"command": "consortium adopt", "command_id": f"c-{n}",
                    "args": {"consortium": "16C", "year": "2024-25", "codes": ["QS1"],
                             "note": "x" * LINE_BYTES}}) + "\n"
        for n in range(1, LINES + 1)), encoding="utf-8")
    # Ctrl-C as a terminal sends it, even where this test runs with SIGINT ignored.
    interruptible = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                     "os.execv(sys.argv[1], sys.argv[1:])")
    client = subprocess.Popen(
        [sys.executable, "-c", interruptible, *ledger_executable(), "--server",
         f"http://127.0.0.1:{service.server_port}", "--token", "t0ken", "apply", str(path)],
        cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    service.client = client
    stdout, stderr = client.communicate(timeout=120)
    first, second = service.parts
    assert first + second == LINES
    assert "Traceback" not in stderr
    assert (f"applied: {first - 1:,} lines (1-{REFUSED_LINE - 1}, {REFUSED_LINE + 1}-{first})"
            in stdout), stdout
    assert (f"line {REFUSED_LINE}: refused c-{REFUSED_LINE} consortium adopt: no practice "
            "A81007; register it first") in stdout, stdout
    assert f"commands.jsonl: {first - 1:,} applied, 0 already applied, 1 refused" in stdout
    said = " ".join(stderr.split())
    if service.interrupt:
        assert client.returncode == EXIT_INTERRUPTED, (stdout, stderr)
        assert (f"interrupted: commands.jsonl: {first:,} of {LINES:,} lines done before it "
                f"(reported above), and the service may have applied any of the {second:,} "
                "being sent then") in said, said
    else:
        assert client.returncode == EXIT_STORE_UNAVAILABLE, (stdout, stderr)
        assert (f"commands.jsonl: the report above is of the first {first:,} of {LINES:,} "
                f"lines, the parts the service recorded; the service may have applied any of "
                f"the {second:,} lines of the part being sent then") in said, said
        assert said.endswith("error: the store is unavailable: disk full [rule: store]"), said
