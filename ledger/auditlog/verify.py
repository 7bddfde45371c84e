"""`ledger verify`: recompute the whole log from the stored events and compare.

Checked, in one snapshot:

- every leaf: recomputed from the event at its position (stream, version, topic,
  state bytes, position) and compared with the sealed leaf hash;
- every stored event inside the sealed range has a leaf (nothing inserted);
- every stream's versions, in log order, run 1, 2, 3, ... with none missing or
  repeated (each event's version is its stream's previous version plus one), over
  the whole log, the unsealed tail included: a stream with a hole, sealed as it
  was, is still damage (`VERSION_GAP`);
- the stored subtree nodes, the tree head (size, compact range, root);
- every stored checkpoint: its signature, its row against its signed text, and its
  root against the root recomputed from the events at its size (consistency with
  the current log; a checkpoint larger than the log means a truncated log).

Damage is reported by kind with the first bad position. Events after the last
sealed position are the unsealed tail: counted and aged, not damage.

On a large store the leaves are recomputed on two worker processes, chunk by chunk
(see `_Workers`): on SQLite each opens the file read-only, on PostgreSQL each reads
in the main transaction's exported snapshot, fetching in binary. Any chunk they do
not find sound is checked again, and its damage classified, in the main snapshot,
so the report is the same either way.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from ledger.audit.leaf import LEAF_FORMAT, state_bytes, stream_bytes
from ledger.audit.merkle import HASH_SIZE, CompactRange, aligned_pieces, perfect_levels
from ledger.audit.note import Checkpoint, KeyRing, NoteError, Verifier, open_checkpoint
from ledger.auditlog.reader import (
    EventRow,
    LeafHashRow,
    LogReader,
    SharedSnapshot,
    open_shared,
    snapshot,
)
from ledger.auditlog.tables import NODE_LEVEL_STEP, open_read_only
from ledger.store.dialect import Dialect

if TYPE_CHECKING:
    from ledger.store.eventstore import EventStore

CHUNK_LEVEL = 16
CHUNK = 1 << CHUNK_LEVEL
MAX_REPORTED = 50

EDITED = "edited"
DELETED = "deleted"
INSERTED = "inserted"
REORDERED = "reordered"
TRUNCATED = "truncated"
TREE = "tree-damaged"
BAD_SIGNATURE = "bad-checkpoint-signature"
CHECKPOINT_ALTERED = "checkpoint-altered"
INCONSISTENT = "inconsistent-with-checkpoint"
COSIGNED_LOST = "inconsistent-with-cosigned"
VERSION_GAP = "stream-version-gap"

# (position, stream id as 16 bytes, the stream's version before it or None, its version):
# an event whose version is not its stream's previous version plus one.
OddVersion = tuple[int, bytes, int | None, int]


@dataclass(frozen=True, slots=True)
class Damage:
    kind: str
    position: int | None  # the event position concerned, when there is one
    detail: str
    leaf_index: int | None = None


@dataclass
class VerifyReport:
    origin: str | None = None
    sealed: int = 0
    events_checked: int = 0
    root: bytes | None = None
    checkpoints_checked: int = 0
    signatures_checked: bool = False
    unsealed: int = 0
    unsealed_after: int = 0
    oldest_unsealed_at: datetime | None = None
    damage: list[Damage] = field(default_factory=list)
    damage_count: int = 0
    seconds: float = 0.0
    cosigned_size: int | None = None  # the largest checkpoint witnesses cosigned
    cosigned_by: list[str] = field(default_factory=list)  # their names (as the note says)
    cosigned_extended: bool | None = None  # does the stored log still extend it?
    truncated_from: int | None = None  # the first sealed position past the log's end

    @property
    def ok(self) -> bool:
        return self.damage_count == 0

    @property
    def first(self) -> Damage | None:
        with_position = [d for d in self.damage if d.position is not None]
        if with_position:
            return min(with_position, key=lambda d: (d.position or 0))
        return self.damage[0] if self.damage else None

    def add(self, damage: Damage) -> None:
        self.damage_count += 1
        if len(self.damage) < MAX_REPORTED:
            self.damage.append(damage)


_LEAF_PACKS: dict[str, tuple[Callable[..., bytes], bytes]] = {}


def _leaf_pack(topic: str) -> tuple[Callable[..., bytes], bytes]:
    """0x00, the leaf input up to the state, in one pack: (pack, topic bytes) per topic."""
    found = _LEAF_PACKS.get(topic)
    if found is None:
        encoded = topic.encode()
        found = struct.Struct(f">BBQ16sQH{len(encoded)}sI").pack, encoded
        if len(_LEAF_PACKS) < 1024:
            _LEAF_PACKS[topic] = found
    return found


def _leaf_hashes(rows: list[EventRow], last: dict[bytes, int], odd: list[OddVersion]
                 ) -> list[bytes]:
    """Leaf hashes of stored events (leaf.event_leaf_hash, inlined for speed).

    The stream id is read exactly as `leaf.stream_bytes` reads it (32 hex digits as
    16 bytes, 16 bytes as themselves, anything else through `stream_bytes`), as
    sealing did. On the way, `last` (stream id -> version) is carried through the
    rows in order, and every row whose version is not its stream's last plus one
    (from 0 for a stream not in `last`) is appended to `odd`.
    """
    sha, fromhex, packs = hashlib.sha256, bytes.fromhex, _LEAF_PACKS
    get = last.get
    out: list[bytes] = []
    append = out.append
    for position, stream, version, topic, stored in rows:
        if type(stream) is str and len(stream) == 32:
            try:
                sid = fromhex(stream)
            except ValueError:
                sid = stream_bytes(stream)
        elif type(stream) is bytes and len(stream) == 16:
            sid = stream
        else:
            sid = stream_bytes(stream)
        if get(sid, 0) != version - 1:
            odd.append((position, sid, get(sid), version))
        last[sid] = version
        state = stored if type(stored) is bytes else state_bytes(stored)
        found = packs.get(topic)
        pack, t = found if found is not None else _leaf_pack(topic)
        append(sha(pack(0, LEAF_FORMAT, position, sid, version, len(t), t, len(state))
                   + state).digest())
    return out


class _Versions:
    """Each stream's last version in log order, and the check that each next one follows.

    The rule: a stream's versions, in position order, are 1, 2, 3, ...: the first is
    1 and each is the one before plus one. Stream ids are their 16 bytes.
    """

    def __init__(self, report: VerifyReport) -> None:
        self.report = report
        self.last: dict[bytes, int] = {}

    def report_odd(self, odd: list[OddVersion]) -> None:
        """Damage for rows `_leaf_hashes` found out of turn against `self.last`."""
        for position, sid, previous, version in odd:
            before = "first" if previous is None else f"after version {previous}"
            self.report.add(Damage(VERSION_GAP, position, f"stream {uuid.UUID(bytes=sid)} has "
                                                          f"version {version} {before} at "
                                                          f"position {position}: a stream's "
                                                          "versions run 1, 2, 3, ... with "
                                                          "none missing"))

    def stitch(self, odd: list[OddVersion], last_in_chunk: dict[bytes, int]) -> bool:
        """Take a chunk checked on its own (from no versions); False, taking nothing, unless
        every stream in it carries on from where the chunks before left it.

        `odd` holds only first appearances in the chunk (a worker returns no chunk
        with a break inside it); a stream that appears first as version 1 must be new.
        """
        last = self.last
        carried = {sid for _position, sid, _previous, _version in odd}
        for _position, sid, _previous, version in odd:
            if last.get(sid, 0) != version - 1:
                return False
        if not (last.keys() & last_in_chunk.keys()) <= carried:
            return False
        last.update(last_in_chunk)
        return True

    def tail(self, reader: LogReader, after: int, upto: int) -> None:
        """Check the events with after < position <= upto (the unsealed tail), by chunks."""
        while after < upto:
            rows = reader.events_between(after, min(after + CHUNK, upto))
            odd: list[OddVersion] = []
            _leaf_hashes(rows, self.last, odd)
            self.report_odd(odd)
            after = min(after + CHUNK, upto)


class _Tree:
    """Rebuilds the tree chunk by chunk from recomputed leaves; checks nodes and roots."""

    def __init__(self, reader: LogReader, report: VerifyReport, sizes: set[int]) -> None:
        self.reader = reader
        self.report = report
        self.compact = CompactRange()
        self.sizes = sizes  # checkpoint sizes whose roots we want
        self.roots: dict[int, bytes] = {}
        if 0 in sizes:
            self.roots[0] = self.compact.root()

    def add_chunk(self, start: int, hashes: list[bytes]) -> None:
        levels = perfect_levels(hashes)
        end = start + len(hashes)
        for level in range(NODE_LEVEL_STEP, len(levels), NODE_LEVEL_STEP):
            computed = levels[level]
            first = start >> level
            stored = self.reader.nodes(level, first, first + len(computed))
            for offset, node in enumerate(computed):
                if stored.get(first + offset) != node:
                    self._node_damage(level, first + offset, first + offset in stored)
        for size in sorted(s for s in self.sizes if start < s <= end):
            partial = self.compact.copy()
            for level, index in aligned_pieces(start, size):
                partial.append_subtree(level, levels[level][index - (start >> level)])
            self.roots[size] = partial.root()
        for level, index in aligned_pieces(start, end):
            piece = levels[level][index - (start >> level)]
            for big_level, big_index, node in self.compact.append_subtree(level, piece):
                if big_level % NODE_LEVEL_STEP == 0:
                    stored = self.reader.nodes(big_level, big_index, big_index + 1)
                    if stored.get(big_index) != node:
                        self._node_damage(big_level, big_index, big_index in stored)

    def _node_damage(self, level: int, index: int, present: bool) -> None:
        what = "differs from the leaves under it" if present else "is missing"
        first_leaf = index << level
        self.report.add(Damage(TREE, None, f"stored tree node (level {level}, index {index}, "
                                           f"leaves from {first_leaf}) {what}"))


def verify_store(
    store: EventStore,
    verifier: Verifier | KeyRing | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Check the whole store; `progress(done, total)` is called per chunk of leaves."""
    started = time.perf_counter()
    report = VerifyReport()
    with snapshot(store) as reader:
        _verify(reader, report, verifier, progress)
    report.seconds = time.perf_counter() - started
    return report


def _verify(
    reader: LogReader,
    report: VerifyReport,
    verifier: Verifier | KeyRing | None,
    progress: Callable[[int, int], None] | None,
) -> None:
    head = reader.stored_head()
    max_position = reader.max_event_position()
    checkpoints = reader.checkpoints()
    report.origin = head.origin if head else None
    leaf_total = reader.leaf_count()
    signed_sizes = _check_checkpoint_rows(checkpoints, head, verifier, report)
    cosigned = _cosigned_checkpoint(reader, verifier, report)
    sizes = {size for size, _root in signed_sizes.values()}
    if cosigned is not None:
        sizes.add(cosigned.size)
    tree = _Tree(reader, report, sizes)
    versions = _Versions(report)
    chunks = _Chunks(reader, report, max_position, versions)

    index = 0
    last_position = 0
    with _Workers.start(reader, leaf_total) as workers:
        while True:
            done = workers.next_result(index, last_position, versions)
            if done is not None:  # a worker found the chunk sound: its leaves, recomputed
                count, upto, events, blob = done
                hashes = [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]
                report.events_checked += events
            else:
                found = chunks.check(index, last_position)
                if found is None:
                    break
                count, upto, hashes = found
            tree.add_chunk(index, hashes)
            index += count
            last_position = upto
            if progress is not None:
                progress(index, leaf_total)

    report.sealed = index
    report.root = tree.compact.root()
    _check_head(report, head, tree.compact, last_position)
    expected_nodes = sum(
        index >> level for level in range(NODE_LEVEL_STEP, index.bit_length() + 1, NODE_LEVEL_STEP)
    )
    stored_nodes = reader.node_count()
    if stored_nodes != expected_nodes:
        report.add(Damage(TREE, None, f"{stored_nodes} stored tree nodes where the log "
                                      f"of {index} leaves has {expected_nodes}"))
    for checkpoint_id, (size, root) in signed_sizes.items():
        _check_against_log(report, checkpoint_id, size, root, tree.roots.get(size), index, reader)
    report.checkpoints_checked = len(checkpoints)
    report.signatures_checked = verifier is not None
    if cosigned is not None:
        report.cosigned_extended = (cosigned.size <= index
                                    and tree.roots.get(cosigned.size) == cosigned.root)
        if not report.cosigned_extended:
            report.add(Damage(COSIGNED_LOST, None, f"the log no longer extends the checkpoint "
                                                   f"of size {cosigned.size} that witnesses "
                                                   f"cosigned ({', '.join(report.cosigned_by)})"))

    _check_witness_sizes(reader, report, cosigned)
    _check_unsealed(reader, report, versions, last_position, max_position)


def _check_witness_sizes(reader: LogReader, report: VerifyReport,
                         cosigned: Checkpoint | None) -> None:
    """A witness's size (`ledger_witnesses`) moves on in the transaction that keeps the
    checkpoint it cosigned (`ledger_cosigned`), so each witness's size names a cosigned
    checkpoint at least that large: one missing was removed (damage
    `inconsistent-with-cosigned`), hiding what the witness vouched for. A kept one whose
    note cannot be opened (`cosigned` None; reported already: signed by a key not given,
    say) counts at the size its row records: it was not removed."""
    if cosigned is not None:
        kept: int | None = cosigned.size
    else:
        latest = reader.latest_cosigned()
        kept = latest[1] if latest is not None else None
    largest = kept or 0
    for name, size in reader.witness_sizes():
        if size > largest:
            held = f"the largest kept is of size {kept}" if kept is not None else (
                "none is kept")
            report.add(Damage(COSIGNED_LOST, None, f"witness {name} cosigned the checkpoint "
                                                   f"of size {size}, but {held}: the record "
                                                   "of what it cosigned was removed"))


def _check_unsealed(reader: LogReader, report: VerifyReport, versions: _Versions,
                    last_position: int, max_position: int) -> None:
    """The tail after the last sealed position: its streams' versions, its size and age."""
    versions.tail(reader, last_position, max_position)
    report.unsealed = reader.count_events_after(last_position)
    report.unsealed_after = last_position
    if report.unsealed:
        first = reader.events_after(last_position, 1)
        report.oldest_unsealed_at = _recorded_at(first[0][4]) if first else None


class _Chunks:
    """Checks one chunk of leaves in the main snapshot, classifying any damage."""

    def __init__(self, reader: LogReader, report: VerifyReport, max_position: int,
                 versions: _Versions) -> None:
        self.reader = reader
        self.report = report
        self.max_position = max_position
        self.versions = versions
        self.identities: dict[tuple[bytes, int], int] | None = None

    def _identities(self) -> dict[tuple[bytes, int], int]:
        if self.identities is None:
            self.identities = self.reader.leaf_identities()
        return self.identities

    def check(self, index: int, last_position: int) -> tuple[int, int, list[bytes]] | None:
        """(leaves taken, last position, leaf hashes for the tree), None past the last leaf."""
        reader, report = self.reader, self.report
        leaves = reader.leaf_hash_rows(index, CHUNK)
        if not leaves:
            return None
        if leaves[0][0] != index or leaves[-1][0] != index + len(leaves) - 1:
            report.add(Damage(TREE, None, f"leaf rows missing from leaf index {index}",
                              leaf_index=index))
            leaves = [leaf for leaf in leaves if leaf[0] < index + len(leaves)]
            leaves = _contiguous(leaves, index)
            if not leaves:
                return None
        upto = leaves[-1][1]
        events = reader.events_between(last_position, upto)
        report.events_checked += len(events)
        odd: list[OddVersion] = []
        recomputed = _leaf_hashes(events, self.versions.last, odd)
        if [e[0] for e in events] == [leaf[1] for leaf in leaves]:
            if recomputed != [bytes(leaf[2]) for leaf in leaves]:
                identities = self._identities()
                for leaf, event, computed in zip(leaves, events, recomputed, strict=True):
                    if computed != bytes(leaf[2]):
                        _classify(report, leaf, event, identities)
            hashes = recomputed
        else:
            hashes = _diagnose(report, leaves, events, recomputed, self._identities(),
                               self.max_position)
        self.versions.report_odd(odd)
        return len(leaves), upto, hashes


# --- the same check on 2 processes --------------------------------------------------------
#
# On a large store, worker processes each open the SQLite file read-only (or, on
# PostgreSQL, a connection reading in the main snapshot, exported) and take whole
# chunks of leaves [start, end) below the main snapshot's leaf count: they read the leaf
# rows and the events between the previous leaf's position and the last one's, recompute
# every leaf hash and compare. A chunk comes back only when all of it is sound (contiguous
# leaf rows, the same positions in both tables, every hash equal, every stream's versions
# following on inside it); then it carries its leaf hashes as one blob, with where each
# stream's versions start and end in it, and the main process builds the tree and checks
# nodes, head and checkpoints from them exactly as before, and takes the versions on
# only if each stream carries on from the chunks before. Anything else (a difference, an
# error, a chunk that does not start where the main pass is, a stream that does not carry
# on) and the main process checks that chunk itself in its own snapshot, which is what
# classifies the damage. A worker can only say "sound" for events whose hashes equal the
# sealed leaves and whose versions follow on, so this path never accepts what the
# single-process one would refuse.

PARALLEL_MIN_LEAVES = 1 << 17  # below this, starting processes costs more than it saves
WORKERS = 2

_worker: dict[str, LogReader] = {}


def _worker_start(path: str | None, dialect: Dialect, shared: SharedSnapshot | None) -> None:
    if shared is not None:  # PostgreSQL: one transaction, in the main snapshot, throughout
        _worker["reader"] = open_shared(shared, dialect)
        return
    assert path is not None
    conn = open_read_only(path)
    conn.isolation_level = None
    _worker["reader"] = LogReader(conn.cursor(), dialect, path)


ChunkResult = tuple[int, int, int, int, bytes, list[OddVersion], dict[bytes, int]]


def _worker_chunk(start: int, end: int) -> ChunkResult | None:
    """Leaves [start, end): (start, previous position, last position, events, hashes,
    first appearances out of turn, each stream's last version in the chunk)."""
    reader = _worker["reader"]
    if reader.dialect.kind == "postgres":
        return _check_chunk(reader, start, end)
    curs = reader.curs
    curs.execute("BEGIN")
    try:
        return _check_chunk(reader, start, end)
    finally:
        curs.execute("ROLLBACK")


def _check_chunk(reader: LogReader, start: int, end: int) -> ChunkResult | None:
    """The worker's check of leaves [start, end); None unless all of it is sound (every
    stream's versions inside it following on; where they start is for `_Versions.stitch`)."""
    before = 0
    if start:
        previous = reader.leaf_hash_rows(start - 1, 1)
        if not previous or previous[0][0] != start - 1:
            return None
        before = previous[0][1]
    leaves = reader.leaf_hash_rows(start, end - start)
    if len(leaves) != end - start or leaves[0][0] != start or leaves[-1][0] != end - 1:
        return None
    upto = leaves[-1][1]
    events = reader.events_between(before, upto)
    if len(events) != len(leaves) or [e[0] for e in events] != [leaf[1] for leaf in leaves]:
        return None
    last: dict[bytes, int] = {}
    odd: list[OddVersion] = []
    recomputed = _leaf_hashes(events, last, odd)
    if recomputed != [leaf[2] for leaf in leaves]:
        return None
    if any(previous is not None for _position, _sid, previous, _version in odd):
        return None
    return start, before, upto, len(events), b"".join(recomputed), odd, last


class _Workers:
    """Chunk results from worker processes, in leaf order; empty when not worth it."""

    def __init__(self, pool: ProcessPoolExecutor | None, results: Iterator[Any]) -> None:
        self.pool = pool
        self.results = results

    @classmethod
    def start(cls, reader: LogReader, leaf_total: int) -> _Workers:
        path, shared = reader.path, reader.shared
        workers = min(WORKERS, os.cpu_count() or 1)
        if ((path is None and shared is None) or workers < 2
                or leaf_total < PARALLEL_MIN_LEAVES):
            return cls(None, iter(()))
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        starts = range(0, leaf_total, CHUNK)
        ends = [min(start + CHUNK, leaf_total) for start in starts]
        pool = None
        try:
            pool = ProcessPoolExecutor(workers, context, _worker_start,
                                       (path, reader.dialect, shared))
            return cls(pool, pool.map(_worker_chunk, starts, ends))
        except Exception:  # noqa: BLE001 - no processes here (a daemon, limits): one process
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
            return cls(None, iter(()))

    def next_result(self, index: int, last_position: int, versions: _Versions
                    ) -> tuple[int, int, int, bytes] | None:
        """(leaves, last position, events, hashes) of the sound chunk at `index`, if any;
        its streams' versions taken into `versions` if they carry on from it."""
        if self.pool is None:
            return None
        try:
            done = next(self.results, None)
        except Exception:  # noqa: BLE001 - the main process checks the chunk (and reports)
            return None
        if done is None:
            return None
        start, before, upto, events, blob, odd, last = done
        if start != index or before != last_position or not versions.stitch(odd, last):
            return None
        return len(blob) // HASH_SIZE, upto, events, blob

    def __enter__(self) -> _Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _contiguous(leaves: list[LeafHashRow], index: int) -> list[LeafHashRow]:
    out: list[LeafHashRow] = []
    for leaf in leaves:
        if leaf[0] != index + len(out):
            break
        out.append(leaf)
    return out


def _classify(
    report: VerifyReport,
    leaf: LeafHashRow,
    event: EventRow,
    identities: dict[tuple[bytes, int], int],
) -> None:
    leaf_index, position = leaf[0], leaf[1]
    identity = (stream_bytes(event[1]), int(event[2]))
    if identities.get(identity) == leaf_index:
        report.add(Damage(EDITED, position, f"the event at position {position} was altered "
                                            "after it was sealed", leaf_index))
        return
    other = identities.get(identity)
    if other is not None:
        report.add(Damage(REORDERED, position, f"position {position} holds the event sealed as "
                                               f"leaf {other}, not its own", leaf_index))
    else:
        report.add(Damage(INSERTED, position, f"position {position} holds an event that was "
                                              "never sealed", leaf_index))


def _diagnose(  # noqa: PLR0917
    report: VerifyReport,
    leaves: list[LeafHashRow],
    events: list[EventRow],
    recomputed: list[bytes],
    identities: dict[tuple[bytes, int], int],
    max_position: int,
) -> list[bytes]:
    """The slow path: positions of events and leaves disagree somewhere in this chunk."""
    by_position = {event[0]: (event, h) for event, h in zip(events, recomputed, strict=True)}
    sealed_positions = {leaf[1] for leaf in leaves}
    for position in sorted(by_position.keys() - sealed_positions):
        report.add(Damage(INSERTED, position, f"position {position} holds an event that was "
                                              "never sealed"))
    hashes: list[bytes] = []
    for leaf in leaves:
        leaf_index, position, stored = leaf[0], leaf[1], bytes(leaf[2])
        found = by_position.get(position)
        if found is None:
            if position > max_position:
                # One truncation, however many sealed events it cut off: reported once, at
                # the first of them.
                if report.truncated_from is None:
                    report.truncated_from = position
                    report.add(Damage(TRUNCATED, position, f"the log ends at position "
                                                           f"{max_position}: the sealed events "
                                                           f"from position {position} on are "
                                                           "gone", leaf_index))
            else:
                report.add(Damage(DELETED, position, f"the event at position {position} was "
                                                     "deleted", leaf_index))
            hashes.append(stored)  # keeps the tree comparable past the hole
            continue
        event, computed = found
        if computed != stored:
            _classify(report, leaf, event, identities)
        hashes.append(computed)
    return hashes


def _check_head(report: VerifyReport, head: Any, compact: CompactRange, last: int) -> None:
    if head is None:
        if compact.size:
            report.add(Damage(TREE, None, "the tree head row is missing"))
        return
    if head.size != compact.size or head.last_position != last:
        report.add(Damage(TREE, None, f"the tree head says {head.size} leaves up to position "
                                      f"{head.last_position}; the leaf table holds "
                                      f"{compact.size} up to {last}"))
    elif head.root != compact.root() or head.frontier != compact.encode():
        report.add(Damage(TREE, None, "the tree head's root or compact range does not "
                                      "match the leaves"))


def _open(note: str, keys: Verifier | KeyRing) -> Checkpoint:
    """Open a checkpoint with the log's key, or with whichever key of its ring signed it."""
    if isinstance(keys, KeyRing):
        return keys.open(note)[0]
    return open_checkpoint(note, keys)


def _cosigned_checkpoint(
    reader: LogReader, verifier: Verifier | KeyRing | None, report: VerifyReport
) -> Checkpoint | None:
    """The largest cosigned checkpoint (log signature checked when the key is known)."""
    from ledger.audit.note import split_note, unverified_checkpoint  # noqa: PLC0415

    latest = reader.latest_cosigned()
    if latest is None:
        return None
    checkpoint_id, _size, note = latest
    try:
        checkpoint = (_open(note, verifier) if verifier is not None
                      else unverified_checkpoint(note))
        names = [s.name for s in split_note(note)[1] if s.name != checkpoint.origin]
    except NoteError as error:
        report.add(Damage(BAD_SIGNATURE, None, f"cosigned checkpoint #{checkpoint_id}: {error}"))
        return None
    report.cosigned_size = checkpoint.size
    report.cosigned_by = names
    return checkpoint


def _check_checkpoint_rows(
    checkpoints: list[tuple[int, int, bytes, str, str]],
    head: Any,
    verifier: Verifier | KeyRing | None,
    report: VerifyReport,
) -> dict[int, tuple[int, bytes]]:
    """Signature and row of each checkpoint; returns id -> (signed size, signed root)."""
    signed: dict[int, tuple[int, bytes]] = {}
    origin = head.origin if head else None
    for checkpoint_id, size, root, note, _created in checkpoints:
        try:
            if verifier is not None:
                checkpoint = _open(note, verifier)
            else:
                from ledger.audit.note import unverified_checkpoint  # noqa: PLC0415

                checkpoint = unverified_checkpoint(note)
        except NoteError as error:
            report.add(Damage(BAD_SIGNATURE, None, f"checkpoint #{checkpoint_id}: {error}"))
            continue
        if origin is not None and checkpoint.origin != origin:
            report.add(Damage(BAD_SIGNATURE, None, f"checkpoint #{checkpoint_id} is from "
                                                   f"another log ({checkpoint.origin})"))
            continue
        if checkpoint.size != int(size) or checkpoint.root != bytes(root):
            report.add(Damage(CHECKPOINT_ALTERED, None, f"checkpoint #{checkpoint_id}'s row "
                                                        "(size, root) differs from its signed "
                                                        "text"))
        signed[checkpoint_id] = (checkpoint.size, checkpoint.root)
    return signed


def _check_against_log(  # noqa: PLR0917
    report: VerifyReport,
    checkpoint_id: int,
    size: int,
    root: bytes,
    computed: bytes | None,
    log_size: int,
    reader: LogReader,
) -> None:
    if size > log_size:
        position = None
        last = reader.leaf_at(log_size - 1) if log_size else None
        if last is not None:
            position = last[1] + 1
        report.add(Damage(TRUNCATED, position, f"checkpoint #{checkpoint_id} signed {size} "
                                               f"events; the log now has {log_size}"))
    elif computed != root:
        report.add(Damage(INCONSISTENT, None, f"the events no longer match checkpoint "
                                              f"#{checkpoint_id} (size {size}): the log was "
                                              "rewritten below it"))


def _recorded_at(state: Any) -> datetime | None:
    try:
        value = orjson.loads(bytes(state)).get("recorded_at")
        return datetime.fromisoformat(value).astimezone(UTC) if value else None
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return None
