"""The read API for other services (`ledger serve`).

`create_app(store_target)` builds a FastAPI app over the same queries the read
commands use (projections/queries.py `Reads`, projections/joint_queries.py
`JointReads`): each GET answers with the rows `ledger <read> --format json`
prints (same field names, money as integer pence, dates ISO 8601), and
`/events` pages through the ordered feed from a consumer's own checkpoint.

Nothing is opened at import time: the store is opened when the app starts (and
again on a later request if it could not be then). Requests run on worker
threads; each thread keeps its own `JointReads` (connections come from the
store's pool, one per query), and catch-ups take turns within the process, so
threads never race each other to apply the same batch. Errors the queries raise
map to HTTP statuses in one handler, as one line of JSON:
`{"error": "...", "rule": "..."}`.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, date, datetime
from itertools import islice
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from ledger.domain.errors import (
    InvalidInput,
    LedgerError,
    NotFound,
    RuleViolation,
    StoreUnavailable,
    UnreadableEvent,
)
from ledger.store.eventstore import MAX_POSITION, EventStore, open_store
from projections.joint_queries import JointReads
from projections.queries import feed_row, parse_day, parse_instant

FEED_LIMIT = 100
FEED_MAX = 1000
TRAIL_FIELDS = ("position", "recorded_at", "effective_on", "actor", "event", "summary", "year")

# Most specific first; the first class an error is an instance of decides.
STATUSES: tuple[tuple[type[LedgerError], int], ...] = (
    (UnreadableEvent, 503),
    (StoreUnavailable, 503),
    (InvalidInput, 400),
    (NotFound, 404),
    (RuleViolation, 409),
)

DESCRIPTION = """\
Read-only HTTP API over the commissioning ledger's projections, for other services.

Every read answers with the rows `ledger <read> --format json` prints: a JSON
array of row objects, money as integer pence in `*_pence` fields, dates ISO 8601,
flags as booleans. Reads first bring the projections they use up to date.

`GET /events?after=N&limit=M` is the ordered event feed, one page at a time:
`{"events": [...], "next_after": N}`. Keep `next_after` as your checkpoint and
ask again with `after=next_after`: no event is skipped or repeated. An empty page
means you are at the head (its `next_after` is the `after` you gave).

Errors are one line of JSON, `{"error": "...", "rule": "..."}`: 400 malformed
input, 404 unknown practice, consortium or year, 409 refused by another
rule, 503 store unavailable, or the log holds an event this version cannot read
(rule `unreadable-event`: a newer version wrote it; upgrade the server).
"""


class JSONRows(Response):
    """JSON written by orjson, as the CLI's `--format json` writes it."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def status_of(error: LedgerError) -> int:
    for kind, status in STATUSES:
        if isinstance(error, kind):
            return status
    return 409


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _day(text: str | None, option: str) -> date | None:
    return parse_day(text, option) if text is not None else None


class _ServedReads(JointReads):
    """`JointReads` whose catch-ups take turns with the other threads of the server."""

    gate: threading.Lock

    def _fresh(self, *names: str) -> None:
        with self.gate:
            super()._fresh(*names)


class _Ledger:
    """The app's store, opened on start (or on first need), and one reader per thread."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.store: EventStore | None = None
        self._opening = threading.Lock()
        self._gate = threading.Lock()
        self._local = threading.local()

    def open(self) -> EventStore:
        with self._opening:
            if self.store is None:
                self.store = open_store(self.target, create=False)
            return self.store

    def reads(self) -> _ServedReads:
        store = self.open()
        reads: _ServedReads | None = getattr(self._local, "reads", None)
        if reads is None or reads.store is not store:
            reads = _ServedReads(store, today=datetime.now(UTC).date())
            reads.gate = self._gate
            self._local.reads = reads
        reads.today = datetime.now(UTC).date()
        return reads

    def close(self) -> None:
        with self._opening:
            if self.store is not None:
                self.store.close()
                self.store = None


def create_app(store_target: str) -> FastAPI:
    """The read API over the ledger at `store_target` (a SQLite path or postgresql:// URL)."""
    served = _Ledger(store_target)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # If it cannot be opened now, /health says 503 with the reason and each
        # request tries again.
        with suppress(StoreUnavailable):
            served.open()
        try:
            yield
        finally:
            served.close()

    app = FastAPI(
        title="Commissioning ledger read API",
        description=DESCRIPTION,
        version="1",
        lifespan=lifespan,
        default_response_class=JSONRows,
    )

    @app.exception_handler(LedgerError)
    async def ledger_error(_: Request, error: Exception) -> Response:
        assert isinstance(error, LedgerError)
        return JSONRows({"error": _one_line(error.message), "rule": error.rule},
                        status_code=status_of(error))

    @app.exception_handler(RequestValidationError)
    async def malformed(_: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
                    for e in error.errors()]
        return JSONRows({"error": _one_line("; ".join(problems)), "rule": "request"},
                        status_code=400)

    @app.get("/health", summary="Whether the store answers, and its head position")
    def health() -> Response:
        return JSONRows({"status": "ok", "head": served.open().head()})

    @app.get("/holders", summary="Who holds each element of each budget")
    def holders(
        *,
        practice: str | None = None,
        consortium: str | None = None,
        holder: Annotated[str | None, Query(description="consortium:16C, practice:A81002")
                          ] = None,
        year: Annotated[str | None, Query(description="Financial year, 2024-25")] = None,
        as_of: Annotated[str | None, Query(description="Business date YYYY-MM-DD")] = None,
        known_at: Annotated[str | None, Query(
            description="What the ledger knew at this instant (2024-07-15T09:30:00Z)")] = None,
    ) -> Response:
        instant = parse_instant(known_at) if known_at is not None else None
        return JSONRows(served.reads().holders(
            practice=practice, consortium=consortium, holder=holder, year=year,
            as_of=_day(as_of, "as_of"), known_at=instant))

    @app.get("/trail/{practice}", summary="Every event that touched a practice, in order")
    def trail(practice: str, year: str | None = None, since: str | None = None,
              until: str | None = None) -> Response:
        found = served.reads().trail(practice, year=year, since=_day(since, "since"),
                                     until=_day(until, "until"))
        return JSONRows([{k: r[k] for k in TRAIL_FIELDS} for r in found])

    @app.get("/position", summary="Budget against actual, per practice or rolled up")
    def position(
        practice: str | None = None,
        consortium: str | None = None,
        by: Annotated[str, Query(description="practice, consortium or allocator")
                      ] = "practice",
        year: str | None = None,
        as_of: str | None = None,
    ) -> Response:
        return JSONRows(served.reads().position(
            practice=practice, consortium=consortium, by=by, year=year,
            as_of=_day(as_of, "as_of")))

    @app.get("/pools", summary="Each consortium's risk pool: capacity, drawn, headroom")
    def pools(consortium: str | None = None, year: str | None = None,
              as_of: str | None = None) -> Response:
        return JSONRows(served.reads().pools(consortium=consortium, year=year,
                                             as_of=_day(as_of, "as_of")))

    @app.get("/quality", summary="Adopted quality standards and the commitments tagged")
    def quality(consortium: str | None = None, year: str | None = None,
                qs: Annotated[list[str] | None, Query(description="QS1; repeatable")
                              ] = None) -> Response:
        return JSONRows(served.reads().quality(consortium=consortium, year=year,
                                               codes=qs or []))

    @app.get("/variation", summary="Peer review: funnel limits (default) or Tukey outliers")
    def variation(consortium: str | None = None, year: str | None = None,  # noqa: PLR0917
                  element: str | None = None, as_of: str | None = None,
                  method: Annotated[str, Query(description="funnel or tukey")] = "funnel",
                  against: Annotated[str, Query(description="funnel target: consortium or "
                                                            "national")] = "consortium",
                  overdispersion: bool = False) -> Response:
        day = _day(as_of, "as_of")
        if method == "tukey":
            return JSONRows(served.reads().variation(consortium=consortium, year=year,
                                                     element=element, as_of=day))
        if method != "funnel":
            raise InvalidInput("method", f"unknown method {method!r}: funnel or tukey")
        return JSONRows(served.reads().funnel(consortium=consortium, year=year, element=element,
                                              as_of=day, against=against,
                                              overdispersion=overdispersion))

    @app.get("/projections", summary="Each projection's position and lag")
    def projections(status: Annotated[str, Query(description="only `status`")] = "status"
                    ) -> Response:
        if status != "status":
            raise InvalidInput("projections", f"only status is served, not {status!r}")
        found = [{"projection": s.name, "position": s.position, "head": s.head, "lag": s.lag,
                  "holds": s.description} for s in served.reads().views.status()]
        return JSONRows(found)

    @app.get("/events", summary="The ordered event feed, one page after a checkpoint")
    def events(
        after: Annotated[int, Query(description="Your checkpoint: the last position read")
                         ] = 0,
        limit: Annotated[int, Query(description=f"Events per page, 1 to {FEED_MAX}")
                         ] = FEED_LIMIT,
    ) -> Response:
        if not 0 <= after <= MAX_POSITION:
            raise InvalidInput(
                "after", f"after must be 0 or more and at most {MAX_POSITION}, not {after}")
        if not 1 <= limit <= FEED_MAX:
            raise InvalidInput("limit", f"limit must be 1 to {FEED_MAX}, not {limit}")
        store = served.open()
        page = [feed_row(position, event)
                for position, event in islice(store.iter_events(after, page=limit), limit)]
        return JSONRows({"events": page,
                         "next_after": page[-1]["position"] if page else after})

    return app

