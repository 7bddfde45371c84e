"""A witness app in-process (Starlette's test client: no sockets), with a settable clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from ledger.audit.cosignature import WitnessSigner, parse_witness_private_key
from ledger.audit.note import Verifier, parse_verifier_key
from ledger.witness.app import create_witness_app
from ledger.witness.state import StateDir, Witness
from tests.ledger.witness.logs import GO_WITNESS_PRIVATE


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000

    def __call__(self) -> int:
        return self.now


WitnessClient = Callable[..., TestClient]


@pytest.fixture
def witness_signer() -> WitnessSigner:
    return parse_witness_private_key(GO_WITNESS_PRIVATE)


@pytest.fixture
def make_witness(tmp_path: Path, witness_signer: WitnessSigner) -> Iterator[WitnessClient]:
    """make_witness(*log vkeys, state=dir): a test client for a witness following those logs."""
    clients: list[TestClient] = []

    def make(*vkeys: str, state: Path | None = None, clock: Clock | None = None) -> TestClient:
        logs: dict[str, list[Verifier]] = {}
        for text in vkeys:
            key = parse_verifier_key(text)
            logs.setdefault(key.name, []).append(key)
        witness = Witness(witness_signer, logs, StateDir(state or tmp_path / "state"),
                          clock or Clock())
        client = TestClient(create_witness_app(witness))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
