"""The live feed: server-sent events from a checkpoint, resumable with `Last-Event-ID`.

`GET /events/live?after=N` (or the `Last-Event-ID` header a reconnecting client
sends, which wins) streams every event after position N, then each new one as it
is committed; a checkpoint past the log's head is refused (409, rule `after`).
Each message has `id:` the event's position (the consumer's checkpoint) and
`data:` one line of JSON, `{"ledger_id", "head", "visible_to", "event": row}`, the
row exactly as `/events` serves it. A consortium's or a practice's token streams
its part of the feed (projections/access.py `FeedView`): the ledger's positions,
with gaps where it may not look.

A commit through this process wakes the stream at once (`Notifier`). On
PostgreSQL so does a commit by any other process (the command line, other
workers): the notifier LISTENs for the NOTIFY every write transaction sends
(ledger/store/commits.py), and streams look again every `FALLBACK_SECONDS` in
case a notification was lost. On SQLite, which has no such signal, streams poll
the store every `POLL_SECONDS`. Either way a consumer sees a new event well
within 100 ms of its commit.

A consumer that reads slowly is paced: a stream reads `LIVE_PAGE` events at a time and
hands the server at most `SEND_BYTES` at once, and the server takes the next write only
once the connection has room for it, so what waits in the service for one client is
bounded (`BUFFERED_BYTES` beyond one page). A client that leaves a write untaken for
`STALL_SECONDS` (it stopped reading, its network did, or it reads slower than about a
write a minute) has its stream ended, the reason logged; it resumes with
`Last-Event-ID`, nothing skipped.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import orjson
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials
from sse_starlette.event import ServerSentEvent
from sse_starlette.sse import EventSourceResponse, SendTimeoutError

from ledger.domain.errors import InvalidInput, LedgerError
from ledger.domain.events import LEDGER_NAMESPACE
from ledger.domain.values import WHOLE_NUMBER, parse_whole_number, shown
from ledger.store.commits import CommitSignal, ListeningSignal, commit_signal
from projections.access import FeedView, Scope
from projections.api_auth import BEARER, Caller
from projections.api_writes import header_text
from projections.contract import documented, query_number
from projections.queries import feed_row, refuse_past_head

if TYPE_CHECKING:
    from ledger.store.eventstore import EventStore

# One server-sent message: `data` is one line of JSON,
# {"ledger_id", "head", "visible_to", "event"} with `event` a row of `/events`.
MESSAGE: dict[str, Any] = {
    "type": "object",
    "required": ["id", "event", "data"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "the event's position"},
        "event": {"const": "ledger-event", "type": "string"},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
}

MAX_POSITION = 2**63 - 1  # the stores' 64-bit positions
POLL_SECONDS = 0.05  # how often a stream looks when no commit signal reaches it
FALLBACK_SECONDS = 1.0  # how often it looks anyway while LISTENing (PostgreSQL)
WATCH_SECONDS = 1.0  # how often the LISTENing thread checks it should stop
BATCH = 500
SCAN = 10_000  # events read at most for one page of a part of the feed
PING_SECONDS = 15
LIVE_PAGE = 100
"""Events a live stream reads at a time (a page is read only once the last is sent)."""
SEND_BYTES = 64 * 1024
"""The most bytes a live stream hands the server at once (one message alone if longer)."""
BUFFERED_BYTES = 2 * SEND_BYTES
"""The most bytes of a live stream waiting in the service to be sent, beyond its page:
one write, and the connection's buffer up to the server's high-water mark (64 KiB),
past which the server waits for the client before taking the next write."""
STALL_SECONDS = 60.0
"""How long a live stream waits for a client to take a write before ending the stream."""

LOG = logging.getLogger(__name__)


class PacedEventSource(EventSourceResponse):
    """A server-sent event stream whose client must take each write within
    `STALL_SECONDS`: otherwise the stream ends (logged with the reason) rather than keep
    its page and its store reads for a client that has stopped reading."""

    def __init__(self, content: AsyncIterator[bytes], *, who: Callable[[], str]) -> None:
        super().__init__(content, ping=PING_SECONDS, send_timeout=STALL_SECONDS)
        self.who = who

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            LOG.warning("live feed: ended the stream of %s: the client left a write "
                        "untaken for %g s (it resumes with Last-Event-ID, nothing skipped)",
                        self.who(), STALL_SECONDS)


def in_writes(messages: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """`messages` (position, message) joined into writes of at most SEND_BYTES (a longer
    message alone), each with the position of its last message."""
    writes: list[tuple[int, bytes]] = []
    pending: list[bytes] = []
    size, last = 0, 0
    for position, message in messages:
        if pending and size + len(message) > SEND_BYTES:
            writes.append((last, b"".join(pending)))
            pending, size = [], 0
        pending.append(message)
        size, last = size + len(message), position
    if pending:
        writes.append((last, b"".join(pending)))
    return writes


class Notifier:
    """Wakes every live stream of this process when a write commits (thread-safe).

    Commits through this process notify it directly; on PostgreSQL `watch` also
    LISTENs for every other process's commits (ledger/store/commits.py) on a thread
    of its own. `generation` counts notifications, so a stream that read the store
    after seeing generation G and then waits with G returns at once if a commit was
    signalled meanwhile: no wake-up is lost between a read and a wait.
    """

    def __init__(self) -> None:
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._lock = threading.Lock()
        self.generation = 0
        self._signal: CommitSignal | None = None
        self._watching: threading.Thread | None = None
        self._stopped = threading.Event()

    def notify(self) -> None:
        with self._lock:
            self.generation += 1
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    @property
    def listening(self) -> bool:
        """Whether other processes' commits wake the streams (else they poll)."""
        return self._signal is not None and self._signal.listening

    def watch(self, store: EventStore) -> None:
        """Start LISTENing for commits to `store` by any process (once; PostgreSQL only)."""
        with self._lock:
            if self._watching is not None or self._stopped.is_set():
                return
            self._watching = threading.Thread(target=self._watch, args=(store,),
                                              name="ledger-commits", daemon=True)
        self._watching.start()

    def _watch(self, store: EventStore) -> None:
        signal = commit_signal(store)
        self._signal = signal
        try:
            if not isinstance(signal, ListeningSignal):
                return
            while not self._stopped.is_set():
                was = signal.listening
                # Woken by a commit, or just LISTENing again after a lost connection.
                if signal.wait(WATCH_SECONDS) or signal.listening != was:
                    self.notify()
        finally:
            signal.close()

    def close(self) -> None:
        self._stopped.set()
        if self._signal is not None:
            self._signal.close()

    async def wait(self, seen: int, timeout: float) -> None:
        """Until a commit after generation `seen` (at once if one came already), or
        `timeout` seconds."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            if self.generation != seen:
                return
            self._waiters.add(entry)
        try:
            await asyncio.wait_for(entry[1].wait(), timeout)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.discard(entry)


class LedgerIdentity:
    """The ledger's id: derived from its first event (its stream, command id and instant),
    so a consumer pointed at another ledger, or at one rebuilt from scratch, can tell.
    `None` while the ledger is empty."""

    def __init__(self) -> None:
        self._id: str | None = None

    def of(self, store: EventStore) -> str | None:
        if self._id is None:
            first = next(iter(store.iter_events(0, page=1)), None)
            if first is not None:
                event = first[1]
                self._id = str(uuid.uuid5(LEDGER_NAMESPACE, (
                    f"ledger:{event.originator_id}:{event.command_id}:"
                    f"{event.recorded_at.isoformat()}")))
        return self._id


@dataclass(frozen=True, slots=True)
class Page:
    """Rows the view sees after a checkpoint; `read_to` the position read up to (the next
    checkpoint: past events the view does not see); `more` when reading stopped before
    the head (the page is full, or `SCAN` events were read)."""

    rows: list[dict[str, Any]]
    read_to: int
    more: bool


def page_after(store: EventStore, after: int, limit: int, view: FeedView) -> Page:
    """Up to `limit` rows of the events after `after` that `view` sees, reading at most
    `SCAN` events (or `limit`, if more) for a part of the feed."""
    scan = limit if view.everything else max(limit, SCAN)
    rows: list[dict[str, Any]] = []
    read_to, read = after, 0
    for position, event in islice(store.iter_events(after, page=min(scan, BATCH)), scan):
        read_to, read = position, read + 1
        if view.sees(event):
            rows.append(feed_row(position, event))
            if len(rows) == limit:
                break
    return Page(rows, read_to, len(rows) == limit or read == scan)


def checkpoint_of(after: int, last_event_id: str | None, given: int = 1) -> int:
    """The position to resume after: `Last-Event-ID` (the digits 0-9 alone, read as every
    position is: parse_whole_number; spaces and tabs around it are HTTP's) when sent,
    else `after`. InvalidInput (400) for any other id, or for the header sent `given` > 1
    times (which of them to resume from would be a guess)."""
    if given > 1:
        raise InvalidInput("last-event-id",
                           f"Last-Event-ID given {given} times: send the last id once")
    text = (last_event_id or "").strip(" \t")
    if not text:
        return after
    try:
        return parse_whole_number(text, "Last-Event-ID", maximum=MAX_POSITION)
    except InvalidInput:
        raise InvalidInput("last-event-id", f"Last-Event-ID must be a position (the digits "
                           f"0-9 alone, 0 to {MAX_POSITION}), not "
                           f"{shown(header_text(text))}") from None


def install(app: FastAPI, open_store: Callable[[], EventStore],
            feed_view: Callable[[Scope], FeedView], notifier: Notifier,
            identity: LedgerIdentity, *,
            still_live: Callable[[str | None], object]) -> None:
    """The `/events/live` route. `still_live(secret)` raises NotAuthenticated once the
    stream's token is revoked or expired: it is asked before each batch is sent, so a
    revoked token's stream ends with a `ledger-error` message and sends nothing more."""

    @app.get("/events/live", summary="The event feed as server-sent events, live",
             response_class=EventSourceResponse, tags=["feed"],
             responses={200: {"content": {"text/event-stream": {"schema": MESSAGE}},
                              "description": "One message per event: id = position, data = "
                              '{"ledger_id", "head", "visible_to", "event"}; a '
                              '`ledger-error` message {"error", "rule"} ends the stream '
                              "when an event stored since it began cannot be read, or "
                              "its token is revoked or expires"},
                        **documented(statuses=(400, 401, 409, 503))})
    async def live(
        request: Request,
        scope: Caller,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
        after: Annotated[str | None, Query(
            description="Your checkpoint, 0 or more in the digits 0-9 (default 0; "
            "Last-Event-ID wins)", json_schema_extra={"pattern": WHOLE_NUMBER})] = None,
        last_event_id: Annotated[str | None, Header(
            alias="Last-Event-ID", description="The id of the last message you handled")
        ] = None,
    ) -> EventSourceResponse:
        """Every event after the checkpoint, then each new one as it is committed.

        A client that reads slowly is paced: the stream reads 100 events at a time and
        hands the server at most 64 KiB at once, taken only when the connection has room,
        so at most 128 KiB wait in the service per client beyond one page. A client that
        leaves a write untaken for 60 s (it stopped reading, or reads slower than about a
        write a minute) has its stream ended (the service logs why); reconnect with
        `Last-Event-ID` to resume, nothing skipped."""
        checkpoint = checkpoint_of(query_number(after, "after", 0, maximum=MAX_POSITION),
                                   last_event_id,
                                   len(request.headers.getlist("last-event-id")))
        store: EventStore = await anyio.to_thread.run_sync(open_store)
        view: FeedView = await anyio.to_thread.run_sync(feed_view, scope)
        # An event this version cannot read is a 503 before the stream starts, as on
        # /events, not a broken stream a client would reconnect to for ever.
        await anyio.to_thread.run_sync(store.ensure_readable)
        refuse_past_head(checkpoint, await anyio.to_thread.run_sync(store.head))
        notifier.watch(store)
        secret = credentials.credentials if credentials is not None else None

        sent = [checkpoint]  # the position of the last message handed to the server

        async def messages() -> AsyncIterator[bytes]:
            position = checkpoint
            while not await request.is_disconnected():
                seen = notifier.generation
                try:
                    page = await anyio.to_thread.run_sync(page_after, store, position,
                                                          LIVE_PAGE, view)
                except LedgerError as error:  # stored since the stream began: say so, end
                    yield ServerSentEvent(event="ledger-error", data=orjson.dumps(
                        {"error": error.message, "rule": error.rule}).decode()).encode()
                    return
                if page.rows:
                    try:  # revoked or expired since the stream began: say so, end
                        await anyio.to_thread.run_sync(still_live, secret)
                    except LedgerError as error:
                        yield ServerSentEvent(event="ledger-error", data=orjson.dumps(
                            {"error": error.message, "rule": error.rule}).decode()).encode()
                        return
                    head = await anyio.to_thread.run_sync(store.head)
                    ledger_id = identity.of(store)
                    # A message per event, sent together in writes of at most SEND_BYTES:
                    # each is taken by the server only once the client has room for it.
                    for last, chunk in in_writes([(row["position"], ServerSentEvent(
                            id=str(row["position"]), event="ledger-event",
                            data=orjson.dumps({"ledger_id": ledger_id, "head": head,
                                               "visible_to": view.visible_to, "event": row},
                                              option=orjson.OPT_UTC_Z).decode()).encode())
                            for row in page.rows]):
                        yield chunk
                        sent[0] = last
                position = page.read_to
                if not page.more:
                    await notifier.wait(seen, FALLBACK_SECONDS if notifier.listening
                                        else POLL_SECONDS)

        return PacedEventSource(messages(), who=lambda: f"{scope.actor} (sent up to "
                                f"position {sent[0]})")
