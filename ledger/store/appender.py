"""A process of its own that appends encoded batches to a SQLite ledger, in order.

`ledger apply` decides a batch while this process appends the batch before it: the
appending (the inserts, the Merkle log's sealing, the commit) and the deciding then
run on two cores. Each batch is appended by `EventStore.append_encoded`, one write
transaction, only if the log's head is still the one the batch was decided against
(the head the previous batch left, the first one's given at the start): anything
appended by another writer meanwhile voids that batch and every later one, and the
process stops at the first batch it did not append. Its parent runs those again
(ledger/application/pipeline.py).

The process is forked (a copy of its parent, ready in milliseconds, with nothing to
import) and opens a connection of its own: SQLite connections must not cross a fork
(https://sqlite.org/howtocorrupt.html, section 2.6). It never touches its parent's,
not even to close them, and it ends with its parent.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from ledger.store.eventstore import EventStore
from ledger.store.recorders import Columns, Indexes

PROCESS_NAME = "ledger-appender"

BACKGROUND_NICENESS = 5
"""How much lower the priority of a process working for the one that decides (this one,
and `ledger apply`'s parse process) is: on two cores three processes share them, and
the deciding one, whose work the others wait on, should not wait for a core."""


class AppendFailed(Exception):  # noqa: N818 - a condition, as eventsourcing names them
    """The appending process did not append a batch (another writer appended first, the
    store failed, or the process ended): that batch and every later one are not in
    the log, unless the process ended while committing one, and nothing more will be."""


Plain = tuple[list[Any], list[int], list[str], list[bytes], list[int],
              list[str], list[str], list[bytes], list[str], list[str], list[str],
              list[tuple[str, str]], list[tuple[str, str]]]
"""A batch as it crosses the pipe: `Columns`' fields, in order (the events' streams,
versions, topics, states and schema versions; the receipts' command ids, fingerprints
and answers; the refs' refs, practices and years; the affiliations and budget years),
a list each: pickled several times faster than the objects they stand for, or than a
tuple a row, and inserted as they are (`EventStore.append_encoded`)."""

COLLECT_EVERY = 50
"""Batches appended between two collections of young garbage: the collector is held off
here as in the parent (`ledger.application.batch.collector_paused`), the objects a batch
makes being freed by reference counting, with no cycle among them."""


class Appender:
    """The parent's end: `send` batches, then `receive` each one's new head, in order."""

    def __init__(self, process: multiprocessing.process.BaseProcess, conn: Connection) -> None:
        self._process = process
        self._conn = conn

    @staticmethod
    def possible(store: EventStore) -> bool:
        """Whether `start` can start one: a writable SQLite file, fork on this system, and
        no thread running beside this one (a fork copies no thread, and with it any lock
        one held; a PostgreSQL connection pool runs threads)."""
        return (store.target.kind == "sqlite" and not store.read_only_copy
                and "fork" in multiprocessing.get_all_start_methods()
                and threading.active_count() == 1)

    @classmethod
    def start(cls, store: EventStore, head: int) -> Appender | None:
        """An appending process for `store`'s ledger, whose log's head is `head`; None
        where there can be none (`possible`) or the system would start none."""
        if not cls.possible(store):
            return None
        for stream in (sys.stdout, sys.stderr):  # else the copy would write it out again
            with contextlib.suppress(Exception):
                stream.flush()
        context = multiprocessing.get_context("fork")
        try:
            ours, theirs = context.Pipe()
        except OSError:  # no descriptor to be had (EMFILE): the batches are run here
            return None
        process = context.Process(target=_append_batches, args=(store, head, theirs, ours),
                                  name=PROCESS_NAME, daemon=True)
        try:
            process.start()
        except OSError:  # no process to be had (EAGAIN, ENOMEM): the batches are run here
            ours.close()
            return None
        finally:
            theirs.close()
        return cls(process, ours)

    def send(self, columns: Columns) -> None:
        """Hand over the next batch, given as columns; AppendFailed if the process is
        gone."""
        self.send_plain((
            list(columns.streams), list(columns.versions), list(columns.topics),
            list(columns.states), list(columns.schema_versions), list(columns.command_ids),
            list(columns.fingerprints), list(columns.answers), list(columns.refs),
            list(columns.practices), list(columns.years), list(columns.affiliations),
            list(columns.budget_years)))

    def send_plain(self, batch: Plain) -> None:
        """Hand over the next batch, as `plain` gives it; AppendFailed if the process is
        gone."""
        try:
            self._conn.send_bytes(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError as error:
            raise AppendFailed(f"the appending process is gone ({error})") from error

    def wait(self) -> None:
        """Until the oldest answer not yet received is there to read, or the process
        ended; nothing is read (Ctrl-C may stop the wait)."""
        with contextlib.suppress(OSError, EOFError):
            self._conn.poll(None)

    def receive(self) -> int:
        """The log's head once the oldest batch sent and not yet received was committed;
        AppendFailed (saying why) when it was not appended."""
        try:
            appended, value = pickle.loads(self._conn.recv_bytes())  # noqa: S301 - our child's
        except (EOFError, OSError, pickle.UnpicklingError, ValueError) as error:
            raise AppendFailed("the appending process ended") from error  # or was cut off
        if not appended:
            raise AppendFailed(value)
        return int(value)

    def close(self) -> None:
        """End the process once it has appended what it was sent (or failed): it reads
        the end of its input and stops. The end is said in so many words (an empty
        message): a process forked from this one after it (the parse process) holds a
        copy of this end of the pipe, and the appending process would see no end of its
        input while that one runs."""
        with contextlib.suppress(OSError, ValueError):  # gone already: nothing to end
            self._conn.send_bytes(b"")
        self._conn.close()
        self._process.join(timeout=60)
        if self._process.is_alive():  # never expected: it has nothing left to do
            self._process.kill()
            self._process.join()


def _append_batches(store: EventStore, head: int, conn: Connection, parents: Connection
                    ) -> None:
    """In the appending process: append each batch received on `conn`, answering (True,
    new head), or (False, why) and stop. `parents` is the parent's end, closed here so
    that the parent closing it is the end of the input."""
    parents.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(BACKGROUND_NICENESS)  # Ctrl-C stops the parent, which ends this
    parent = multiprocessing.parent_process()
    if parent is not None:  # a parent killed outright (SIGKILL) leaves no orphan behind
        threading.Thread(target=_end_with, args=(parent,), daemon=True).start()
    gc.disable()  # as in the parent while it runs batches (COLLECT_EVERY)
    gc.freeze()  # what the fork copied is never garbage here
    try:
        own = store.reopened()
    except Exception:  # noqa: BLE001 - the parent appends the batches itself, and says why not
        return
    next_message = _receiving(conn)
    try:
        for appended in itertools.count(1):
            if appended % COLLECT_EVERY == 0:
                gc.collect(1)
            message = next_message()
            if not message:  # the end (Appender.close), or of the input
                return
            columns = Columns(*pickle.loads(message))  # noqa: S301 - our parent's
            try:
                head = own.append_encoded(columns, after=head)
            except Exception as error:  # noqa: BLE001 - told to the parent, which acts on it
                _answer(conn, (False, f"{type(error).__name__}: {error}"))
                return
            if not _answer(conn, (True, head)):
                return
    finally:
        own.close()


def _receiving(conn: Connection) -> Callable[[], bytes]:
    """The next message of `conn` (b"" at the end of the input), read ahead by a thread
    of its own where one can be started. A batch is far larger than what the pipe holds:
    read only between two appends, the parent sending the next one would wait, its
    batch decided, for the append before to end, rather than decide the one after."""
    received: queue.SimpleQueue[bytes] = queue.SimpleQueue()

    def read() -> None:
        try:
            while message := conn.recv_bytes():
                received.put(message)
        except (EOFError, OSError):
            pass
        finally:
            received.put(b"")

    def read_one() -> bytes:
        try:
            return conn.recv_bytes()
        except (EOFError, OSError):
            return b""

    try:
        threading.Thread(target=read, name=f"{PROCESS_NAME}-reader", daemon=True).start()
    except RuntimeError:  # no thread to be had: each batch is read when it is appended
        return read_one
    return received.get


def _answer(conn: Connection, answer: tuple[bool, int | str]) -> bool:
    """Tell the parent how a batch went; False when it no longer listens (its run stopped
    part way, and reports no batch it was not told of), which ends this process quietly
    rather than with a traceback on the terminal they share."""
    try:
        conn.send_bytes(pickle.dumps(answer))
    except OSError:
        return False
    return True


def plain(streams: list[str], versions: list[int], topics: list[str], states: list[bytes],
          schema_versions: list[int], *, indexes: Indexes) -> Plain:
    """A batch of events as columns (each event's stream as 32 hex digits, version, topic,
    stored state, as the store's mapper stores it, and schema version) with its
    indexes (each answer in UTF-8), to `send_plain`."""
    receipts = indexes.receipts
    refs = indexes.refs
    return (streams, versions, topics, states, schema_versions,
            [r.command_id for r in receipts], [r.fingerprint for r in receipts],
            [r.answer.encode() for r in receipts],
            [r.ref for r in refs], [r.practice for r in refs], [r.year for r in refs],
            list(indexes.affiliations), list(indexes.budget_years))


def _end_with(parent: multiprocessing.process.BaseProcess) -> None:
    parent.join()
    os._exit(1)
