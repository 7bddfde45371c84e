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

import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, date, datetime
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import orjson
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.routing import Match

from ledger.application.commands import build_validators
from ledger.application.service import LedgerService
from ledger.bootstrap import Ledger, bootstrap
from ledger.domain.access import Grant
from ledger.domain.errors import (
    InvalidInput,
    LedgerError,
    NotAuthenticated,
    StoreUnavailable,
    UnreadableEvent,
    outcome_of,
)
from ledger.domain.values import WHOLE_NUMBER, Role, shown
from ledger.store.eventstore import MAX_POSITION, EventStore
from projections import api_feed, api_writes
from projections.access import FeedView, Gatekeeper, Scope
from projections.api_auth import Caller
from projections.api_limits import BODIES_AS_FILES, BodyLimit
from projections.contract import (
    Health,
    HolderRow,
    PoolRow,
    PositionRow,
    ProjectionRow,
    QualityRow,
    Ready,
    TrailRow,
    documented,
    extra_components,
    feed_event_schemas,
    query_number,
)
from projections.joint_queries import JointReads
from projections.queries import (
    GROUPINGS,
    parse_day,
    parse_known_at,
    refuse_past_head,
    trail_subject,
)

FEED_LIMIT = 100
FEED_MAX = 1000
TRAIL_FIELDS = ("position", "recorded_at", "effective_on", "actor", "event", "summary", "year")


DESCRIPTION = """\
Read-only HTTP API over the commissioning ledger's projections, for other services.

Every read answers with the rows `ledger <read> --format json` prints: a JSON
array of row objects, money as integer pence in `*_pence` fields, dates ISO 8601,
flags as booleans. Reads first bring the projections they use up to date.

`GET /events?after=N&limit=M` is the ordered event feed, one page at a time:
`{"events": [...], "next_after": N, "head": H, "ledger_id": "..."}` (`head` the
last position recorded, `ledger_id` the ledger's identity: if it changes, you
are reading another ledger and your checkpoint means nothing there).
`GET /events/live` streams the same rows as server-sent events, resumable with
`Last-Event-ID`. Keep `next_after` as your checkpoint and
ask again with `after=next_after`: no event is skipped or repeated. You are at the
head when `next_after` equals `head`.

Every endpoint but `/health` needs a bearer token (`ledger token create`):
`Authorization: Bearer <token>`. Each token acts as one actor: the allocator, an
auditor and `service:NAME` read everything; a consortium reads its member
practices (ever members), its pool, standards and peer review; a practice reads
its own budgets and those it holds for others. The feed is everyone's, each seeing
its own part: a consortium the events of its member practices, their budgets and its
own (never another consortium's), a practice those about itself and the budgets it
holds for others. Positions stay the ledger's own, so such a feed has gaps; its pages
say whose part they are (`visible_to`, null for the whole ledger) and `next_after`
passes the events skipped, so a page may be empty before the head.

Errors are one line of JSON, `{"error": "...", "rule": "..."}`, for every status
sent: 400 malformed input, 401 no valid token, 403 the token's actor may not,
404 unknown practice, consortium, year or path, 405 wrong method, 409 refused
by another rule, 500 a fault of the service, 503 store unavailable, or the log
holds an event this version cannot read (rule `unreadable-event`: a newer
version wrote it; upgrade the server).
"""


class JSONRows(JSONResponse):
    """JSON written by orjson, as the CLI's `--format json` writes it."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_UTC_Z)


def status_of(error: LedgerError) -> int:
    """The HTTP status of an error: the same mapping as the command line's exit codes."""
    return outcome_of(error)[1]


def envelope(error: str, rule: str, status: int, headers: dict[str, str] | None = None
             ) -> Response:
    """The one error body: `{"error": "...", "rule": "..."}` on one line."""
    return JSONRows({"error": _one_line(error), "rule": rule}, status_code=status,
                    headers=headers)


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

    def __init__(self, target: str, *, projected: bool = False) -> None:
        self.target = target
        self.projected = projected
        self.ledger: Ledger | None = None
        self._opening = threading.Lock()
        self._gate = threading.Lock()
        self._local = threading.local()
        self.gatekeeper = Gatekeeper()
        self.identity = api_feed.LedgerIdentity()

    def open(self) -> EventStore:
        return self._ledger().store

    def service(self) -> LedgerService:
        return self._ledger().service

    def _ledger(self) -> Ledger:
        with self._opening:
            if self.ledger is None:
                # A read never creates the ledger; there is nothing to authenticate
                # against until one exists (tokens live in it).
                self.ledger = bootstrap(self.target, create=False)
            return self.ledger

    def reads(self) -> _ServedReads:
        store = self.open()
        reads: _ServedReads | None = getattr(self._local, "reads", None)
        if reads is None or reads.store is not store:
            reads = _ServedReads(store, today=datetime.now(UTC).date(),
                                 catch_up=not self.projected)
            reads.gate = self._gate
            self._local.reads = reads
        reads.today = datetime.now(UTC).date()
        return reads

    def scope(self, secret: str | None) -> Scope:
        """Who the bearer of `secret` is and what they may read (NotAuthenticated)."""
        store = self.open()
        grant: Grant = self.gatekeeper.authenticate(store, secret, datetime.now(UTC))
        actor = grant.grantee
        if actor.role is Role.CONSORTIUM:
            return Scope(actor, self.reads().ever_members(actor.code), grant.read_only)
        if actor.role is Role.PRACTICE:
            return Scope(actor, frozenset({actor.code}), grant.read_only)
        return Scope(actor, read_only=grant.read_only)

    def feed_view(self, scope: Scope) -> FeedView:
        """The part of the feed `scope`'s actor may see (its reads' scope)."""
        if scope.everything:
            return FeedView(scope)
        return FeedView(scope, set(scope.practices),
                        set(self.reads().ever_held(scope.actor.holder)))

    def close(self) -> None:
        with self._opening:
            if self.ledger is not None:
                self.ledger.close()
                self.ledger = None


def create_app(store_target: str, *, projected: bool = False,
               group_commit: bool = True) -> FastAPI:
    """The API over the ledger at `store_target` (a SQLite path or postgresql:// URL).

    With `projected`, reads answer from the projections as a projector (`ledger
    project --follow`) keeps them and never write; `/ready` reports how far they lag.
    With `group_commit` (the default), concurrent writes commit in groups, one
    transaction per group, each command still its own atomic, idempotent unit
    (api_writes.Writer); without it, one transaction per command.
    """
    build_validators()  # before any request thread validates a command
    served = _Ledger(store_target, projected=projected)
    notifier = api_feed.Notifier()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # If it cannot be opened now, /health says 503 with the reason and each
        # request tries again.
        with suppress(StoreUnavailable):
            served.open()
        try:
            yield
        finally:
            notifier.close()
            served.close()

    app = FastAPI(
        title="Commissioning ledger read API",
        description=DESCRIPTION,
        version="1",
        lifespan=lifespan,
        default_response_class=JSONRows,
    )
    app.state.served = served
    _install_error_envelope(app)
    _refuse_unknown_parameters(app)
    app.add_middleware(BodyLimit, refuse=_body_too_large)
    _read_routes(app, served)
    _feed_routes(app, served)
    writer = api_writes.Writer(served, group_commit=group_commit)
    app.state.writer = writer
    api_writes.install(app, writer)
    writer.listeners.append(notifier.notify)
    api_feed.install(app, served.open, served.feed_view, notifier, served.identity,
                     still_live=lambda secret: served.gatekeeper.authenticate(
                         served.open(), secret, datetime.now(UTC)))
    _contract(app)
    return app


def _body_too_large(limit: int, path: str) -> Response:
    parts = ("; send a larger file of commands in parts of whole lines (ledger apply "
             "--server does; an all-or-nothing import must fit in one)"
             if path in BODIES_AS_FILES else "")
    return envelope(f"the request body is over {limit:,} bytes, the most this route reads; "
                    f"nothing was recorded{parts}", "request-size", 413)


def app_from_environment() -> FastAPI:
    """The app `ledger serve` runs in each worker: the store from `LEDGER_SERVE_DB`,
    projected reads when `LEDGER_SERVE_PROJECTED` is set, one transaction per write
    when `LEDGER_SERVE_ONE_BY_ONE` is set."""
    return create_app(os.environ["LEDGER_SERVE_DB"],
                      projected=bool(os.environ.get("LEDGER_SERVE_PROJECTED")),
                      group_commit=not os.environ.get("LEDGER_SERVE_ONE_BY_ONE"))


def _contract(app: FastAPI) -> None:
    """The OpenAPI document: the routes' own, plus each feed row's and command's schema by
    name, and without the framework's 422 (the service answers malformed input with 400)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)
            components.update(extra_components(api_writes.write_commands()))
            for operations in schema["paths"].values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _takes_many(annotation: object) -> bool:
    """Whether a query parameter's type holds several values (`list[str] | None`)."""
    origin = get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    return origin in (Union, UnionType, Annotated) and any(
        _takes_many(arg) for arg in get_args(annotation))


def _refuse_unknown_parameters(app: FastAPI) -> None:
    """A query parameter the route does not take is malformed input (400), not ignored;
    so is one given twice that takes one value (`after=1&after=2`: one of them would be
    dropped without a word)."""

    @app.middleware("http")
    async def known_parameters(request: Request, call_next: Any) -> Response:
        for route in app.router.routes:
            if not isinstance(route, APIRoute):
                continue
            match, _ = route.matches(request.scope)
            if match is Match.FULL:
                params = route.dependant.query_params
                known = {p.alias for p in params}
                unknown = sorted(set(request.query_params) - known)
                if unknown:
                    return envelope(f"unknown query parameter {shown(unknown[0])} (known: "
                                    f"{', '.join(sorted(known)) or 'none'})", "request", 400)
                repeatable = {p.alias for p in params
                              if _takes_many(p.field_info.annotation)}
                for name in sorted(known - repeatable):
                    given = request.query_params.getlist(name)
                    if len(given) > 1:
                        return envelope(f"query parameter {name} given {len(given)} times: "
                                        "give it once", "request", 400)
                break
        response: Response = await call_next(request)
        return response


def _install_error_envelope(app: FastAPI) -> None:
    """Every status the app sends, the framework's own included, in one JSON envelope."""

    @app.exception_handler(LedgerError)
    async def ledger_error(_: Request, error: Exception) -> Response:
        assert isinstance(error, LedgerError)
        challenge = {"WWW-Authenticate": "Bearer"} if isinstance(error, NotAuthenticated) else None
        return envelope(error.message, error.rule, status_of(error), challenge)

    @app.exception_handler(RequestValidationError)
    async def malformed(_: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
                    for e in error.errors()]
        return envelope("; ".join(problems), "request", 400)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        return envelope(str(error.detail), "http", error.status_code,
                        dict(error.headers) if error.headers else None)

    @app.exception_handler(Exception)
    async def fault(_: Request, error: Exception) -> Response:
        return envelope(f"internal error ({type(error).__name__})", "internal", 500)


# Query parameters as documented in the contract. Values are parsed by the same code as
# the command line's options (so the messages and rules are the same); the schema
# states the forms accepted, leading and trailing spaces and letter case aside.
_PRACTICE = r"^\s*[A-Za-z][0-9]{5}\s*$"
_CONSORTIUM = r"^\s*([A-Za-z0-9]{3}|[A-Za-z0-9]{5})\s*$"
_TRAIL_CODE = r"^\s*([A-Za-z][0-9]{5}|[A-Za-z0-9]{3}|[A-Za-z0-9]{5})\s*$"
_YEAR = r"^\s*[0-9]{4}-[0-9]{2}\s*$"
_DAY = r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}\s*$"


def _q(description: str, **schema: Any) -> Any:
    return Query(description=description, json_schema_extra=schema or None)


Practice = Annotated[str | None, _q("ODS code, A81001", pattern=_PRACTICE)]
Consortium = Annotated[str | None, _q("Consortium code, 16C", pattern=_CONSORTIUM)]
Year = Annotated[str | None, _q("Financial year, 2024-25", pattern=_YEAR)]
Day = Annotated[str | None, _q("Business date, 2024-09-30", pattern=_DAY)]

def _read_routes(app: FastAPI, served: _Ledger) -> None:
    @app.get("/health", summary="Whether the store answers, and its head position",
             responses=documented(Health, statuses=(503,)), tags=["health"])
    def health() -> Response:
        return JSONRows({"status": "ok", "head": served.open().head()})

    @app.get("/ready", summary="Whether reads can be served, and how far projections lag",
             responses=documented(Ready, statuses=(503,)), tags=["health"])
    def ready() -> Response:
        store = served.open()
        try:
            found = served.reads().views.status(create=not served.projected)
        except UnreadableEvent:  # not the projections' fault: 503 naming the event
            raise
        except Exception as error:  # noqa: BLE001 - any database error means not ready
            raise StoreUnavailable("projections", "the projections cannot be read (run "
                                   f"ledger project): {type(error).__name__}") from None
        lags = {s.name: s.lag for s in found}
        return JSONRows({"status": "ready", "head": store.head(),
                         "lag": max(lags.values(), default=0), "projected": served.projected,
                         "projections": lags})

    @app.get("/holders", summary="Who holds each element of each budget",
             responses=documented(list[HolderRow]), tags=["reads"])
    def holders(
        scope: Caller,
        *,
        practice: Practice = None,
        consortium: Consortium = None,
        holder: Annotated[str | None, _q(
            "consortium:16C or practice:A81002",
            pattern=r"^\s*([Pp][Rr][Aa][Cc][Tt][Ii][Cc][Ee]|[Cc][Oo][Nn][Ss][Oo][Rr][Tt][Ii]"
                    r"[Uu][Mm]):\s*[A-Za-z0-9]{3,6}\s*$")] = None,
        year: Year = None,
        as_of: Day = None,
        known_at: Annotated[str | None, _q(
            "What the ledger knew at this instant, written with its zone "
            "(2024-07-15T09:30:00Z; a time without a zone is refused) or a date, meaning the "
            "end of that day, UTC; digits finer than the microsecond, which instants are "
            "recorded to, are dropped: the answer is the same. Without as_of, its day is "
            "the business date, kept inside the year as today is")] = None,
    ) -> Response:
        scope.require(Role.CONSORTIUM, Role.PRACTICE, what="holders")
        scope.check(practice=practice, consortium=consortium, holder=holder)
        instant = parse_known_at(known_at) if known_at is not None else None
        return JSONRows(scope.rows(served.reads().holders(
            practice=practice, consortium=consortium, holder=holder, year=year,
            as_of=_day(as_of, "as_of"), known_at=instant)))

    @app.get("/trail/{code}", summary="Every event that touched a practice or a "
             "consortium, in order", responses=documented(list[TrailRow]), tags=["reads"])
    def trail(scope: Caller, code: Annotated[str, Path(
                  description="A practice's ODS code (A81001) or a consortium's code (16C)",
                  json_schema_extra={"pattern": _TRAIL_CODE})],
              year: Year = None, since: Day = None, until: Day = None) -> Response:
        scope.require(Role.CONSORTIUM, Role.PRACTICE, what="trails")
        kind, _ = trail_subject(code)
        scope.check(**{kind: code})
        found = served.reads().trail(code, year=year, since=_day(since, "since"),
                                     until=_day(until, "until"))
        return JSONRows([{k: r[k] for k in TRAIL_FIELDS} for r in found])

    @app.get("/replay/{practice}", summary="One budget event by event, with the state "
             "after each", responses=documented(list[dict[str, Any]]), tags=["reads"])
    def replay(scope: Caller, practice: Annotated[str, Path(
                   description="ODS code, A81001", json_schema_extra={"pattern": _PRACTICE})],
               year: Annotated[str, _q("Financial year, 2024-25", pattern=_YEAR)],
               until: Day = None) -> Response:
        scope.require(Role.CONSORTIUM, Role.PRACTICE, what="replays")
        scope.check(practice=practice)
        return JSONRows(served.reads().replay(practice, year, _day(until, "until")))

    @app.get("/position", summary="Budget against actual, per practice or rolled up",
             responses=documented(list[PositionRow]), tags=["reads"])
    def position(
        scope: Caller,
        *,
        practice: Practice = None,
        consortium: Consortium = None,
        by: Annotated[str, _q("Rows per practice, consortium or allocator",
                              enum=list(GROUPINGS))] = "practice",
        year: Year = None,
        as_of: Day = None,
    ) -> Response:
        scope.require(Role.CONSORTIUM, Role.PRACTICE, what="positions")
        scope.check(practice=practice, consortium=consortium)
        if not scope.everything and by not in ("practice", scope.actor.role):
            raise scope.refuse(f"positions by {by}")
        return JSONRows(scope.rows(served.reads().position(
            practice=practice, consortium=consortium, by=by, year=year,
            as_of=_day(as_of, "as_of"))))

    @app.get("/pools", summary="Each consortium's risk pool: capacity, drawn, headroom",
             responses=documented(list[PoolRow]), tags=["reads"])
    def pools(scope: Caller, consortium: Consortium = None, year: Year = None,
              as_of: Day = None) -> Response:
        scope.require(Role.CONSORTIUM, what="risk pools")
        scope.check(consortium=consortium)
        return JSONRows(scope.rows(served.reads().pools(
            consortium=consortium, year=year, as_of=_day(as_of, "as_of"))))

    @app.get("/quality", summary="Adopted quality standards and the commitments tagged",
             responses=documented(list[QualityRow]), tags=["reads"])
    def quality(scope: Caller, consortium: Consortium = None, year: Year = None,
                qs: Annotated[list[str] | None, Query(
                    description="Quality standard, QS1; repeatable",
                    json_schema_extra={"items": {"type": "string",
                                                 "pattern": r"^\s*[Qq][Ss][1-9][0-9]{0,3}\s*$"}})
                              ] = None) -> Response:
        scope.require(Role.CONSORTIUM, what="quality standards")
        scope.check(consortium=consortium)
        return JSONRows(scope.rows(served.reads().quality(consortium=consortium, year=year,
                                                          codes=qs or [])))

    @app.get("/variation", summary="Peer review: funnel limits (default) or Tukey outliers",
             responses=documented(list[dict[str, Any]]), tags=["reads"])
    def variation(scope: Caller, consortium: str | None = None, year: str | None = None,  # noqa: PLR0917
                  element: str | None = None, as_of: str | None = None,
                  method: Annotated[str, Query(description="funnel or tukey")] = "funnel",
                  against: Annotated[str, Query(description="funnel target: consortium or "
                                                            "national")] = "consortium",
                  overdispersion: bool = False) -> Response:
        scope.require(Role.CONSORTIUM, what="peer review")
        scope.check(consortium=consortium)
        day = _day(as_of, "as_of")
        if method == "tukey":
            return JSONRows(scope.rows(served.reads().variation(consortium=consortium, year=year,
                                                     element=element, as_of=day)))
        if method != "funnel":
            raise InvalidInput("method", f"unknown method {method!r}: funnel or tukey")
        return JSONRows(scope.rows(served.reads().funnel(
            consortium=consortium, year=year, element=element, as_of=day, against=against,
            overdispersion=overdispersion)))

    @app.get("/projections", summary="Each projection's position and lag",
             responses=documented(list[ProjectionRow]), tags=["health"])
    def projections(scope: Caller,
                    status: Annotated[str, _q("only `status`", enum=["status"])] = "status"
                    ) -> Response:
        scope.require(what="projection status")
        if status != "status":
            raise InvalidInput("projections", f"only status is served, not {status!r}")
        views = served.reads().views
        found = [{"projection": s.name, "position": s.position, "head": s.head, "lag": s.lag,
                  "holds": s.description} for s in views.status(create=not served.projected)]
        return JSONRows(found)



def _feed_routes(app: FastAPI, served: _Ledger) -> None:
    @app.get("/events", summary="The ordered event feed, one page after a checkpoint",
             responses=documented(schema={"$ref": "#/components/schemas/FeedPage"},
                                  statuses=(400, 401, 409, 503)),
             tags=["feed"])
    def events(
        scope: Caller,
        after: Annotated[str | None, _q(
            "Your checkpoint: the last position read, 0 or more in the digits 0-9 "
            "(default 0)", pattern=WHOLE_NUMBER)] = None,
        limit: Annotated[str | None, _q(
            f"Events per page, 1 to {FEED_MAX} in the digits 0-9 (default {FEED_LIMIT})",
            pattern=WHOLE_NUMBER)] = None,
    ) -> Response:
        checkpoint = query_number(after, "after", 0, maximum=MAX_POSITION)
        page_size = query_number(limit, "limit", FEED_LIMIT, minimum=1, maximum=FEED_MAX)
        store = served.open()
        view = served.feed_view(scope)
        refuse_past_head(checkpoint, store.head())
        page = api_feed.page_after(store, checkpoint, page_size, view)
        head = store.head()
        return JSONRows({"events": page.rows, "next_after": page.read_to, "head": head,
                         "ledger_id": served.identity.of(store),
                         "visible_to": view.visible_to})

    @app.get("/schemas", summary="Every event's JSON Schema as the feed serves it",
             responses=documented(dict[str, dict[str, Any]], statuses=(401, 503)),
             tags=["feed"])
    def schemas(_: Caller) -> Response:
        return JSONRows(feed_event_schemas())
