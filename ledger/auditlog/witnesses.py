"""Asking witnesses to cosign the log's checkpoints (the client side of c2sp.org/tlog-witness).

For each configured witness (`ledger_witnesses`: name, URL, verifier key, the size it
last cosigned for this log) the new checkpoint goes to `<url>/add-checkpoint` with
an RFC 6962 consistency proof from that size. A 409 names the size the witness
really holds: the proof is made again from there, once. A 200 must carry a valid
cosignature from the witness's key; it is added to the checkpoint's cosigned note
(`ledger_cosigned`) and the witness's size moves on. Anything else is a refusal:
the checkpoint stays signed by the log but not cosigned, and `WitnessRefused`
names each witness and its answer. For a log rewritten under a witness, that
refusal is the alarm: no honest witness will cosign a history that does not
extend the one it saw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ledger.audit.cosignature import (
    Cosignature,
    WitnessVerifier,
    add_cosignatures,
    parse_witness_key,
    signature_lines,
    valid_cosignatures,
)
from ledger.audit.merkle import ProofError, consistency_proof
from ledger.audit.note import NoteError
from ledger.auditlog.proofs import AuditFailed, StoredCheckpoint, cosigned_note
from ledger.auditlog.reader import StoreNodes, snapshot
from ledger.auditlog.tables import ensure_tables, fetch, transaction
from ledger.domain.errors import InvalidInput, NotFound
from ledger.witness.protocol import SIZE_CONTENT_TYPE, format_request

if TYPE_CHECKING:
    from ledger.store.eventstore import EventStore

# post(url, body) -> (HTTP status, response text, content type); raises OSError when
# the witness cannot be reached.
Post = Callable[[str, bytes], tuple[int, str, str]]


class WitnessRefused(AuditFailed):
    """A witness would not cosign the checkpoint (exit 4): the log may have been rewritten."""


@dataclass(frozen=True, slots=True)
class WitnessConfig:
    name: str
    url: str
    verifier: WitnessVerifier
    size: int


def parse_witness_option(text: str) -> tuple[str, WitnessVerifier]:
    """`URL=WITNESS_KEY` as (url, verifier)."""
    url, sep, key = text.partition("=")
    if not sep or not url.startswith(("http://", "https://")):
        raise InvalidInput("witness", f"write --witness URL=WITNESS_KEY, not {text[:60]!r}")
    try:
        return url.rstrip("/"), parse_witness_key(key)
    except NoteError as error:
        raise InvalidInput("witness", f"--witness {url}: {error}") from error


def configure_witnesses(store: EventStore, witnesses: Sequence[tuple[str, WitnessVerifier]]
                        ) -> None:
    """Add witnesses (or change a witness's URL or key); they are asked from now on."""
    dialect = ensure_tables(store)
    with transaction(store, commit=True) as curs:
        for url, verifier in witnesses:
            rows = fetch(curs, dialect.sql("SELECT vkey FROM {witnesses} WHERE name = ?"),
                         (verifier.name,))
            if rows:
                curs.execute(dialect.sql("UPDATE {witnesses} SET url = ?, vkey = ? WHERE name = ?"),
                             (url, verifier.vkey, verifier.name))
            else:
                curs.execute(
                    dialect.sql("INSERT INTO {witnesses} (name, url, vkey, size) "
                                "VALUES (?, ?, ?, 0)"),
                    (verifier.name, url, verifier.vkey),
                )


def with_given(store: EventStore, given: Sequence[tuple[str, WitnessVerifier]]
               ) -> list[WitnessConfig]:
    """The configured witnesses, with `given` ones added (or their URL or key changed).

    Nothing is written: a given witness is recorded only once it cosigns (see
    `request_cosignatures`), so one that refuses or does not answer leaves no trace."""
    witnesses = {w.name: w for w in configured_witnesses(store)}
    for url, verifier in given:
        known = witnesses.get(verifier.name)
        witnesses[verifier.name] = WitnessConfig(verifier.name, url, verifier,
                                                 known.size if known is not None else 0)
    return [witnesses[name] for name in sorted(witnesses)]


def forget_witnesses(store: EventStore, names: Sequence[str]) -> None:
    """Stop asking these witnesses (a witness retired or gone for good); NotFound if unknown."""
    dialect = ensure_tables(store)
    with transaction(store, commit=True) as curs:
        known = {str(r[0]) for r in fetch(curs, dialect.sql("SELECT name FROM {witnesses}"))}
        for name in names:
            if name not in known:
                raise NotFound("witness", f"no witness named {name!r} is configured")
            curs.execute(dialect.sql("DELETE FROM {witnesses} WHERE name = ?"), (name,))


def configured_witnesses(store: EventStore) -> list[WitnessConfig]:
    dialect = ensure_tables(store)
    with transaction(store, commit=False) as curs:
        rows = fetch(curs, dialect.sql("SELECT name, url, vkey, size FROM {witnesses} "
                                       "ORDER BY name"))
    return [WitnessConfig(str(name), str(url), parse_witness_key(str(vkey)), int(size))
            for name, url, vkey, size in rows]


def latest_cosigned(store: EventStore) -> tuple[int, str] | None:
    """(checkpoint id, cosigned note) of the largest checkpoint any witness cosigned."""
    dialect = ensure_tables(store)
    with transaction(store, commit=False) as curs:
        rows = fetch(curs, dialect.sql("SELECT checkpoint_id, note FROM {cosigned} "
                                       "ORDER BY size DESC, checkpoint_id DESC LIMIT 1"))
    return (int(rows[0][0]), str(rows[0][1])) if rows else None


@dataclass
class CosignResult:
    note: str  # the checkpoint with every cosignature it has
    cosigned_by: list[Cosignature] = field(default_factory=list)  # new this time
    already: list[str] = field(default_factory=list)  # witnesses that had cosigned it before


def _answer_text(status: int, text: str) -> str:
    first = text.strip().splitlines()[0][:200] if text.strip() else ""
    return f"HTTP {status}" + (f": {first}" if first else "")


def request_cosignatures(
    store: EventStore, stored: StoredCheckpoint, post: Post,
    witnesses: Sequence[WitnessConfig] | None = None,
) -> CosignResult:
    """Ask every configured witness to cosign `stored`; WitnessRefused if any will not."""
    witnesses = configured_witnesses(store) if witnesses is None else witnesses
    checkpoint = stored.signed.checkpoint
    note = cosigned_note(store, stored.checkpoint_id) or stored.signed.note
    result = CosignResult(note)
    refusals: list[str] = []
    for witness in witnesses:
        if witness.size >= checkpoint.size and valid_cosignatures(result.note,
                                                                  [witness.verifier]):
            result.already.append(witness.name)
            continue
        try:
            lines, size = _ask(store, stored, witness, post)
        except _Refusal as refusal:
            verb = "could not be asked to cosign" if isinstance(refusal, _NoAnswer) else (
                "refused")
            refusals.append(f"witness {witness.name} ({witness.url}) {verb} the checkpoint of "
                            f"size {checkpoint.size}: {refusal}")
            continue
        try:
            found = valid_cosignatures(add_cosignatures(stored.signed.note, lines),
                                       [witness.verifier])
        except NoteError as error:
            found, lines = [], []
            refusals.append(f"witness {witness.name} ({witness.url}) answered with a bad "
                            f"cosignature: {error}")
        if not found:
            if lines:
                refusals.append(f"witness {witness.name} ({witness.url}) answered without a "
                                "cosignature from its key")
            continue
        result.note = add_cosignatures(result.note, [c.line for c in found])
        result.cosigned_by.extend(found)
        _store(store, stored, [c.line for c in found], witness, size)
    if refusals:
        raise WitnessRefused("witness", "; ".join(refusals))
    return result


class _Refusal(Exception):  # noqa: N818 - internal
    pass


class _NoAnswer(_Refusal):
    """The witness could not be reached: down, or the network between, not a verdict."""


def _ask(store: EventStore, stored: StoredCheckpoint, witness: WitnessConfig, post: Post
         ) -> tuple[list[str], int]:
    checkpoint = stored.signed.checkpoint
    old = witness.size
    for _attempt in range(2):
        if old > checkpoint.size:
            raise _Refusal(f"it has cosigned size {old}, larger than this log's "
                           f"{checkpoint.size}: the log was cut back")
        proof = _proof(store, old, checkpoint.size)
        body = format_request(old, proof, stored.signed.note)
        try:
            status, text, content_type = post(witness.url + "/add-checkpoint", body)
        except OSError as error:
            raise _NoAnswer(f"no answer ({error})") from error
        if status == 200:
            try:
                return signature_lines(text), checkpoint.size
            except NoteError as error:
                raise _Refusal(f"unreadable answer: {error}") from error
        if status == 409 and content_type.split(";")[0].strip() == SIZE_CONTENT_TYPE:
            held = text.strip()
            if not (held.isascii() and held.isdigit()) or int(held) == old:
                raise _Refusal(_answer_text(status, text))
            old = int(held)
            continue
        raise _Refusal(_answer_text(status, text))
    raise _Refusal(f"HTTP 409 twice: it holds size {old}")


def _proof(store: EventStore, old: int, new: int) -> list[bytes]:
    if old in (0, new):
        return []
    with snapshot(store) as reader:
        try:
            return consistency_proof(StoreNodes(reader), old, new)
        except (ProofError, LookupError) as error:
            raise _Refusal(f"no consistency proof from size {old}: {error}") from error


def _store(store: EventStore, stored: StoredCheckpoint, lines: list[str],
           witness: WitnessConfig, size: int) -> None:
    """Add the witness's cosignature to the checkpoint's cosigned note; record the witness
    (its URL and key as asked) at its new size."""
    dialect = ensure_tables(store)
    with transaction(store, commit=True) as curs:
        rows = fetch(curs, dialect.sql("SELECT note FROM {cosigned} WHERE checkpoint_id = ?"),
                     (stored.checkpoint_id,))
        if rows:
            curs.execute(dialect.sql("UPDATE {cosigned} SET note = ? WHERE checkpoint_id = ?"),
                         (add_cosignatures(str(rows[0][0]), lines), stored.checkpoint_id))
        else:
            curs.execute(dialect.sql("INSERT INTO {cosigned} (checkpoint_id, size, note) "
                                     "VALUES (?, ?, ?)"),
                         (stored.checkpoint_id, stored.signed.checkpoint.size,
                          add_cosignatures(stored.signed.note, lines)))
        if fetch(curs, dialect.sql("SELECT name FROM {witnesses} WHERE name = ?"),
                 (witness.name,)):
            curs.execute(dialect.sql("UPDATE {witnesses} SET url = ?, vkey = ?, size = ? "
                                     "WHERE name = ?"),
                         (witness.url, witness.verifier.vkey, size, witness.name))
        else:
            curs.execute(dialect.sql("INSERT INTO {witnesses} (name, url, vkey, size) "
                                     "VALUES (?, ?, ?, ?)"),
                         (witness.name, witness.url, witness.verifier.vkey, size))


def http_post(timeout: float = 30.0) -> Post:
    """A Post over HTTP (httpx, one connection pool, keep-alive)."""
    import httpx  # noqa: PLC0415 - only when witnesses are asked

    client = httpx.Client(timeout=timeout)

    def post(url: str, body: bytes) -> tuple[int, str, str]:
        try:
            response = client.post(url, content=body)
        except httpx.HTTPError as error:
            raise OSError(str(error)) from error
        return response.status_code, response.text, response.headers.get("content-type", "")

    return post
