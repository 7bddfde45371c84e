"""`POST /add-checkpoint`: every status of c2sp.org/tlog-witness, on published vectors first."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.audit.cosignature import WitnessSigner, parse_witness_key, valid_cosignatures
from ledger.witness.protocol import format_request
from tests.ledger.witness.conftest import Clock, WitnessClient
from tests.ledger.witness.logs import (
    GO_INIT,
    GO_LOG_KEY,
    GO_NEXT,
    GO_PROOF_5_TO_8,
    GO_WITNESS_KEY,
    MemoryLog,
)


def post(client: object, old: int, proof: list[bytes], note: str) -> tuple[int, str, str]:
    response = client.post("/add-checkpoint", content=format_request(old, proof, note))  # type: ignore[attr-defined]
    return response.status_code, response.text, response.headers.get("content-type", "")


def test_the_go_witness_vectors_are_cosigned_in_order(make_witness: WitnessClient) -> None:
    client = make_witness(GO_LOG_KEY)
    status, body, _ = post(client, 0, [], GO_INIT)
    assert status == 200, body
    witness = parse_witness_key(GO_WITNESS_KEY)
    assert [c.timestamp for c in valid_cosignatures(GO_INIT + body, [witness])] == [1_700_000_000]
    status, body, _ = post(client, 5, GO_PROOF_5_TO_8, GO_NEXT)
    assert status == 200, body
    assert len(valid_cosignatures(GO_NEXT + body, [witness])) == 1
    # The monitoring endpoint serves what was cosigned, log signature and cosignature.
    latest = client.get(f"/{hashlib.sha256(b'monkeys').hexdigest()}/checkpoint")
    assert latest.status_code == 200
    assert latest.text == GO_NEXT + body


def test_the_go_witness_refusals_get_the_protocol_statuses(make_witness: WitnessClient) -> None:
    client = make_witness(GO_LOG_KEY)
    assert post(client, 0, [], GO_NEXT)[0] == 200
    # Stale old size: 409 with the size the witness holds, as text/x.tlog.size.
    assert post(client, 2, [], GO_NEXT) == (409, "8\n", "text/x.tlog.size")
    # A smaller checkpoint after a larger one: the old size is above its size.
    assert post(client, 8, GO_PROOF_5_TO_8, GO_INIT)[0] == 400
    # The same size with another root: a fork.
    forked = GO_NEXT.replace("V8K9akl", "V8K9akm")
    assert post(client, 8, [], forked)[0] == 403  # the edited text no longer verifies
    # Unknown origin.
    other = MemoryLog(origin="elsewhere.example/log")
    other.grow(3)
    assert post(client, 0, [], other.checkpoint())[0] == 404
    # Malformed bodies (transparency-dev/witness http_test.go TestParseBody, and more).
    for head in (b"10 stuff\n\n", b"old 8\nZ043\n423ed\n\n", b"old 8\n", b"old 08\n\n",
                 b"old 8\n" + b"AAAA\n" * 64 + b"\n"):
        response = client.post("/add-checkpoint", content=head + GO_NEXT.encode())
        assert response.status_code == 400, head


def test_garbage_or_missing_proofs_are_unprocessable(make_witness: WitnessClient) -> None:
    client = make_witness(GO_LOG_KEY)
    assert post(client, 0, [], GO_INIT)[0] == 200
    garbage = [bytes.fromhex(h) for h in ("aaaa", "bbbb", "cccc", "dddd")]
    assert post(client, 5, garbage, GO_NEXT)[0] == 422
    assert post(client, 5, [], GO_NEXT)[0] == 422
    assert post(client, 5, GO_PROOF_5_TO_8[::-1], GO_NEXT)[0] == 422
    assert post(client, 5, GO_PROOF_5_TO_8, GO_NEXT)[0] == 200


def test_a_fork_at_the_same_size_is_refused(make_witness: WitnessClient) -> None:
    log = MemoryLog()
    log.grow(10)
    client = make_witness(log.vkey)
    assert post(client, 0, [], log.checkpoint())[0] == 200
    fork = MemoryLog()  # the same key signing another history of the same size
    fork.grow(10, tag=b"forged")
    status, body, _ = post(client, 10, [], fork.checkpoint())
    assert status == 422, body
    assert "not consistent" in body


def test_signatures_from_unknown_keys_alone_are_forbidden(make_witness: WitnessClient) -> None:
    log = MemoryLog(seed=b"real")
    impostor = MemoryLog(seed=b"impostor")  # same origin, another key
    client = make_witness(log.vkey)
    impostor.grow(4)
    status, body, _ = post(client, 0, [], impostor.checkpoint())
    assert status == 403, body


def test_size_zero_and_proofs_from_zero(make_witness: WitnessClient) -> None:
    log = MemoryLog()
    client = make_witness(log.vkey)
    log.grow(6)
    assert post(client, 0, [bytes(32)], log.checkpoint())[0] == 422
    empty_but_not = log.signer.sign(f"{log.signer.name}\n0\n{'A' * 43}=\n")
    assert post(client, 0, [], empty_but_not)[0] == 422
    assert post(client, 0, [], log.checkpoint(0))[0] == 200
    assert post(client, 0, [], log.checkpoint())[0] == 200  # from the empty tree: no proof


def test_a_rotated_log_key_is_followed_when_configured(make_witness: WitnessClient) -> None:
    old, new = MemoryLog(seed=b"k1"), MemoryLog(seed=b"k2")
    client = make_witness(old.vkey, new.vkey)
    old.grow(5)
    assert post(client, 0, [], old.checkpoint())[0] == 200
    new.grow(5)
    new.grow(3)
    assert post(client, 5, new.proof(5), new.checkpoint())[0] == 200


def test_state_outlives_the_process_object(make_witness: WitnessClient, tmp_path: Path) -> None:
    log = MemoryLog()
    log.grow(5)
    first = make_witness(log.vkey, state=tmp_path / "s")
    assert post(first, 0, [], log.checkpoint())[0] == 200
    again = make_witness(log.vkey, state=tmp_path / "s")
    assert post(again, 0, [], log.checkpoint())[:2] == (409, "5\n")


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.integers(0, 40), min_size=1, max_size=12), data=st.data())
def test_the_witness_only_ever_cosigns_a_growing_log(
    make_witness: WitnessClient, tmp_path_factory: object, witness_signer: WitnessSigner,
    steps: list[int], data: st.DataObject,
) -> None:
    """Whatever old sizes and proofs arrive, every cosigned checkpoint extends the last one."""
    log = MemoryLog()
    state = tmp_path_factory.mktemp("s")  # type: ignore[attr-defined]
    client = make_witness(log.vkey, state=state, clock=Clock())
    cosigned: list[int] = []
    for grow in steps:
        log.grow(grow)
        size = len(log.leaves)
        claimed = data.draw(st.sampled_from([0, *cosigned[-1:], size]))
        if claimed > size:
            continue
        status, body, _ = post(client, claimed, log.proof(claimed) if claimed else [],
                               log.checkpoint())
        if status == 200:
            assert claimed == (cosigned[-1] if cosigned else 0)
            cosigned.append(size)
            assert valid_cosignatures(log.checkpoint() + body, [witness_signer.verifier])
        elif status == 409:
            assert int(body) == (cosigned[-1] if cosigned else 0)
        else:
            raise AssertionError((status, body))
    assert cosigned == sorted(cosigned)


def test_a_log_grows_through_thousands_of_cosigned_checkpoints(
    make_witness: WitnessClient, witness_signer: WitnessSigner,
) -> None:
    log = MemoryLog()
    clock = Clock()
    # In memory (tmpfs, where fsync costs nothing) to keep this quick; durability on disk
    # is what test_witness_process.py checks with kill -9.
    memory = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=memory) as state:
        client = make_witness(log.vkey, clock=clock, state=Path(state))
        grow_through_checkpoints(client, log, clock, witness_signer)


def grow_through_checkpoints(client: object, log: MemoryLog, clock: Clock,
                             witness_signer: WitnessSigner) -> None:
    old = 0
    for step in range(2500):
        log.grow(1 + step % 3)
        clock.now += 1
        note = log.checkpoint()
        status, body, _ = post(client, old, log.proof(old) if old else [], note)
        assert status == 200, (step, body)
        if step % 250 == 0:
            found = valid_cosignatures(note + body, [witness_signer.verifier])
            assert [c.timestamp for c in found] == [clock.now]
        old = len(log.leaves)
    assert old == 4999
    # ... and a history rewritten anywhere below is refused at once.
    forged = MemoryLog()
    forged.levels = [list(level) for level in log.levels]
    forged.levels[0][1234] = bytes(32)
    rebuilt = MemoryLog()
    for leaf in forged.leaves:
        rebuilt.append(leaf)
    rebuilt.grow(5)
    status, _, _ = post(client, old, rebuilt.proof(old), rebuilt.checkpoint())
    assert status == 422


def test_sizes_of_thousands_of_digits_are_malformed_not_a_fault(
        make_witness: WitnessClient) -> None:
    client = make_witness(GO_LOG_KEY)
    assert post(client, 0, [], GO_INIT)[0] == 200
    huge = "9" * 5000
    response = client.post("/add-checkpoint", content=f"old {huge}\n\n".encode()
                           + GO_NEXT.encode())
    assert response.status_code == 400, response.text
    origin, _size, *rest = GO_NEXT.split("\n")
    response = client.post("/add-checkpoint", content=b"old 0\n\n"
                           + "\n".join([origin, huge, *rest]).encode())
    assert response.status_code == 400, response.text


def test_a_body_that_is_not_utf8_is_refused_naming_the_byte(make_witness: WitnessClient) -> None:
    client = make_witness(GO_LOG_KEY)
    for body, byte in ((b"old 0\n\n\xff" + GO_INIT.encode(), 7),
                       (b"old 0\n\n" + GO_INIT.encode() + b"\xed\xa0\x80",
                        7 + len(GO_INIT.encode()))):
        response = client.post("/add-checkpoint", content=body)
        assert response.status_code == 400, response.text
        assert f"request body is not UTF-8 (byte {byte} cannot be read)" in response.text
