"""`ledger serve --host`: an address this machine has, written bare or as in a URL
(`[::1]`), is listened on; one it does not have is refused in one line naming the host."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from commands.errors import EXIT_USAGE
from tests.commands.conftest import clean_env, ledger_executable

pytestmark = pytest.mark.e2e


def free_port(family: socket.AddressFamily, address: str) -> int:
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def test_an_address_no_interface_has_is_refused_naming_the_host(tmp_path: Path) -> None:
    subprocess.run([*ledger_executable(), "--db", str(tmp_path / "ledger.db"), "token",
                    "create", "--actor", "allocator:Q71", "--bootstrap"], cwd=tmp_path,
                   env=clean_env(), capture_output=True, timeout=120, check=True)
    done = subprocess.run(
        [*ledger_executable(), "--db", str(tmp_path / "ledger.db"), "serve", "--host",
         "192.0.2.1", "--port", "8000"],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120,
        check=False)
    assert done.returncode == EXIT_USAGE, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("error: cannot listen on 192.0.2.1: "), done.stderr
    assert done.stderr.endswith("give another --host [rule: host]\n"), done.stderr
    assert done.stderr.count("\n") == 1


def test_an_ipv6_address_written_as_in_a_url_is_listened_on(tmp_path: Path) -> None:
    try:
        port = free_port(socket.AF_INET6, "::1")
    except OSError:
        pytest.fail("this machine's loopback has no IPv6 address ::1")
    subprocess.run([*ledger_executable(), "--db", str(tmp_path / "ledger.db"), "token",
                    "create", "--actor", "allocator:Q71", "--bootstrap"], cwd=tmp_path,
                   env=clean_env(), capture_output=True, timeout=120, check=True)
    server = subprocess.Popen(
        [*ledger_executable(), "--db", str(tmp_path / "ledger.db"), "serve", "--host",
         "[::1]", "--port", str(port)],
        cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        deadline = time.monotonic() + 60
        answered = b""
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with socket.create_connection(("::1", port), timeout=1) as client:
                    client.sendall(b"GET /health HTTP/1.0\r\n\r\n")
                    answered = client.recv(4096)
                break
            except OSError:
                time.sleep(0.1)
        assert answered.startswith(b"HTTP/1.1 200"), (answered, server.poll())
    finally:
        server.send_signal(signal.SIGINT)
        try:
            _, stderr = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            _, stderr = server.communicate()
    assert "Traceback" not in stderr
    assert "Name or service not known" not in stderr
