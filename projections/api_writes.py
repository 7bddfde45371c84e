"""Writes over HTTP: one `POST` per write command, built from the command registry.

`POST /spend/commit` (the command's words joined by `/`) takes the JSON object of
an `apply` line's `args` as its body and an optional `Idempotency-Key` header as
the command id; the actor is the bearer token's, never the body's. The answer is
the one the command line prints, as JSON; errors map to statuses through the same
table as the command line's exit codes (ledger/domain/errors.py `OUTCOMES`).

Token commands are served apart (`POST /token/create`, `POST /token/revoke`): the
service draws the new secret itself and returns it once, outside the stored answer.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, TypeVar

import anyio
import orjson
from fastapi import Body, Depends, FastAPI, Header, Query
from fastapi import Request as HttpRequest
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from ledger.application.access import new_token
from ledger.application.batch import (
    DEFAULT_BATCH,
    ApplyReport,
    LineResult,
    apply_lines,
    numbered_lines,
    parse_line,
)
from ledger.application.commands import (
    ACCESS_COMMANDS,
    COMMANDS,
    Command,
    TokenRevoke,
    build_command,
)
from ledger.application.files import MAX_APPLY_REQUEST_BYTES
from ledger.application.service import Outcome, Request
from ledger.domain.characters import parse_command_id
from ledger.domain.errors import (
    InvalidInput,
    LedgerError,
    NotAuthorised,
    RuleViolation,
    outcome_of,
)
from ledger.domain.values import WHOLE_NUMBER, Actor
from ledger.strict_json import StrictJsonError, decode_utf8, loads
from projections.api_auth import Caller
from projections.contract import (
    AnswerBody,
    ErrorBody,
    NewTokenBody,
    documented,
    query_number,
)

if TYPE_CHECKING:
    from ledger.application.service import Answer, LedgerService
    from projections.access import Scope


Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


class Served(Protocol):
    def service(self) -> LedgerService: ...

MAX_GROUP = 512
"""The most commands one group commit takes; later arrivals wait for the next."""

IDEMPOTENCY_KEY = r"^ *[A-Za-z0-9._:/#@+=-]{1,128} *$"
"""What ledger/domain/characters.py `parse_command_id` accepts; it alone decides (400)."""

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", json_schema_extra={"pattern": IDEMPOTENCY_KEY},
    description="The command id: 1 to 128 of A-Z a-z 0-9 . _ - : / # @ + = (an empty or "
                "malformed key is refused, 400). The same key with the same body records "
                "once and answers the same again; with another body it is refused (409).")]


_BODY = "ledger.strict_body"
"""Where a write's body, read strictly, is kept in the request's scope: read once."""


async def strict_body(request: HttpRequest) -> tuple[Any, StrictJsonError | None]:
    """The request's body as ledger/strict_json.py reads it (UTF-8 alone, a key given
    once), or why it cannot be read; read once per request."""
    found: tuple[Any, StrictJsonError | None] | None = request.scope.get(_BODY)
    if found is None:
        try:
            found = (loads(await request.body()), None)
        except StrictJsonError as error:
            found = (None, error)
        request.scope[_BODY] = found
    return found


class StrictBodyRequest(HttpRequest):
    """A request whose JSON body the framework reads through `strict_body`: its own
    reader (json.loads) would guess UTF-16 or 32, read a key given twice as the last,
    and answer a body it cannot read with a generic 400 before the caller is known.
    A body that cannot be read is None to the framework; `read_once` says why."""

    async def json(self) -> Any:
        return (await strict_body(self))[0]


class StrictBodyRoute(APIRoute):
    """A write route: its body is read by StrictBodyRequest."""

    def get_route_handler(self) -> Callable[[HttpRequest], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: HttpRequest) -> Response:
            return await handler(StrictBodyRequest(request.scope, request.receive))

        return strict


async def read_once(request: HttpRequest, _authenticated: Caller) -> None:
    """Refuse (400) a write whose body or command id could be read two ways, once the
    caller is known (so a request without a live token is 401 whatever its body): a body
    that is not one JSON object read strictly (ledger/strict_json.py: UTF-8 alone, the
    first byte that is not named; nesting past the reader's depth named as such; a key
    given twice, `NaN` or `Infinity` refused, as in `apply` lines; a plain parser would
    keep the last of two keys while a person reading the body sees the first), or more
    than one `Idempotency-Key` header (rule `identifier`). Raises InvalidInput."""
    keys = request.headers.getlist("idempotency-key")
    if len(keys) > 1:
        raise InvalidInput("identifier", f"command id given {len(keys)} times "
                           "(Idempotency-Key headers): give one")
    body, error = await strict_body(request)
    if error is not None:
        raise InvalidInput("request", f"the body is not read: {error}")
    if not isinstance(body, dict):
        raise InvalidInput("request", "the body must be one JSON object")


STRICT = [Depends(read_once)]


def header_text(value: str) -> str:
    """A header's value as the client wrote it: HTTP headers arrive as bytes the server
    reads as Latin-1, so a client's UTF-8 (a zero-width space is E2 80 8B) is read back
    as UTF-8 where it is, and a refusal names the character sent, not U+00E2."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def path_of(name: str) -> str:
    """`spend commit` -> `/spend/commit`."""
    return "/" + "/".join(name.split())


def answer_row(answer: Answer) -> dict[str, Any]:
    return {"command": answer.command, "command_id": answer.command_id,
            "summary": answer.summary, "effective_on": answer.effective_on,
            "events": list(answer.events), "already_applied": answer.already_applied}


def write_commands() -> dict[str, type[Command]]:
    """Every write command served as a plain `POST`: the registry less the token ones."""
    return {name: cls for name, cls in COMMANDS.items() if cls not in ACCESS_COMMANDS}


def schema_ref(cls: type[Command]) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{cls.__name__}"}


@dataclass(slots=True)
class _Waiting:
    """One caller's command, queued for the next group, and what became of it."""

    request: Request
    outcome: Outcome | None = None
    failure: BaseException | None = None

    @property
    def settled(self) -> bool:
        return self.outcome is not None or self.failure is not None


class Writer:
    """Runs the service's callers' commands and tells listeners after each commit.

    With `group_commit` (the default), commands that arrive while a transaction
    is committing wait and are then committed together: one transaction, and one
    flush to disk, for the whole group, as databases and TigerBeetle batch their
    writes. Each command is still its own unit: it is checked against its own id
    (a retry, in the same group or a later one, records once), and one that is
    refused records nothing and gets its own refusal while the rest of its group
    commits (LedgerService.execute_batch). The caller whose turn it is runs the
    group and hands every other caller its own answer, so there is no thread of
    the Writer's own. Without it, each command is one transaction, one at a time.
    """

    def __init__(self, served: Served, *, group_commit: bool = True,
                 max_group: int = MAX_GROUP) -> None:
        self.served = served
        self.group_commit = group_commit
        self.max_group = max_group
        self._lock = threading.Lock()  # held by the caller committing a group
        self._queue_lock = threading.Lock()
        self._waiting: list[_Waiting] = []
        self.listeners: list[Callable[[], None]] = []

    def execute(self, scope: Scope, command: Command, key: str | None) -> Answer:
        """The answer to one caller's command (raises the LedgerError refusing it)."""
        if scope.read_only:
            raise NotAuthorised("authorisation", f"{scope.actor} holds a read-only token")
        if key is not None:
            key = parse_command_id(header_text(key))
        service = self.served.service()
        request = Request(command, str(scope.actor), str(uuid.uuid4()) if key is None else key)
        if not self.group_commit:
            with self._lock:
                answer = service.execute(command, request.actor, request.command_id)
            self._notify()
            return answer
        waiting = _Waiting(request)
        with self._queue_lock:
            self._waiting.append(waiting)
        while not waiting.settled:
            with self._lock:
                if waiting.settled:  # a caller before us committed it with its group
                    break
                with self._queue_lock:
                    group = self._waiting[: self.max_group]
                    del self._waiting[: self.max_group]
                self._commit(service, group)
        if waiting.failure is not None:
            raise waiting.failure
        assert waiting.outcome is not None
        if waiting.outcome.error is not None:
            raise waiting.outcome.error
        assert waiting.outcome.answer is not None
        return waiting.outcome.answer

    def waiting(self) -> int:
        """How many commands wait for the next group."""
        with self._queue_lock:
            return len(self._waiting)

    def _commit(self, service: LedgerService, group: list[_Waiting]) -> None:
        try:
            outcomes = service.execute_batch([w.request for w in group])
        except Exception as error:  # noqa: BLE001 - each caller is told, below
            if len(group) == 1:
                group[0].failure = error
                return
            # Not a refusal (those are outcomes) but a failure of the whole
            # transaction: run each alone, so each caller gets its own answer.
            for waiting in group:
                self._commit(service, [waiting])
            return
        except BaseException as error:
            for waiting in group:
                waiting.failure = error
            raise
        for waiting, outcome in zip(group, outcomes, strict=True):
            waiting.outcome = outcome
        if any(o.answer is not None and not o.answer.already_applied for o in outcomes):
            self._notify()

    def _notify(self) -> None:
        for listener in self.listeners:
            listener()

    def run_batch(self, requests: Sequence[Request], *, stop_at_first_refusal: bool = False,
                  atomic: bool = False) -> list[Outcome]:
        """Run a batch of one caller's requests as one group (`ledger apply`'s batches;
        with `atomic`, a file import: one refusal records nothing)."""
        if not requests:
            return []
        service = self.served.service()
        with self._lock:
            outcomes = service.execute_batch(requests, atomic=atomic,
                                             stop_at_first_refusal=stop_at_first_refusal)
        if atomic and any(o.error is not None for o in outcomes):
            return outcomes
        if any(o.answer is not None and not o.answer.already_applied for o in outcomes):
            self._notify()
        return outcomes


class CallersBatches:
    """`ledger apply`'s batches run for one caller: every line as the token's actor.

    A line may leave out its actor (the token's is the default) or name the token's;
    a line naming another actor is refused (NotAuthorised) and records nothing, like a
    command line given `--actor` with `--server`.
    """

    def __init__(self, writer: Writer, scope: Scope, *, atomic: bool = False) -> None:
        self.writer = writer
        self.actor = scope.actor
        self.atomic = atomic

    def execute_batch(self, requests: Sequence[Request], *,
                      stop_at_first_refusal: bool = False) -> list[Outcome]:
        if self.atomic:
            return self._all_or_nothing(requests)
        outcomes: list[Outcome] = []
        pending: list[Request] = []
        for request in requests:
            refusal = self._refusal(request.actor)
            if refusal is None:
                pending.append(request)
                continue
            outcomes += self.writer.run_batch(pending,
                                              stop_at_first_refusal=stop_at_first_refusal)
            pending = []
            if stop_at_first_refusal and any(o.error is not None for o in outcomes):
                return outcomes
            outcomes.append(Outcome(request, error=refusal))
            if stop_at_first_refusal:
                return outcomes
        outcomes += self.writer.run_batch(pending, stop_at_first_refusal=stop_at_first_refusal)
        return outcomes

    def _all_or_nothing(self, requests: Sequence[Request]) -> list[Outcome]:
        refusals = [self._refusal(r.actor) for r in requests]
        if not any(refusals):
            return self.writer.run_batch(requests, atomic=True)
        return [Outcome(r, error=refusal or _not_run()) for r, refusal in
                zip(requests, refusals, strict=True)]

    def _refusal(self, actor: str) -> LedgerError | None:
        try:
            named = Actor.parse(actor)
        except LedgerError as error:
            return error
        if named == self.actor:
            return None
        return NotAuthorised("authorisation", f"the token acts as {self.actor}; a line may "
                             f"not act as {named}")


def install(app: FastAPI, writer: Writer) -> None:
    """A `POST` route for every write command in the registry, the token routes, and
    `POST /apply` for a file of commands."""
    for name, cls in write_commands().items():
        _route(app, name, cls, writer)
    _token_routes(app, writer)
    _apply_route(app, writer)


class ApplyLine(BaseModel):
    """What became of one line of `POST /apply` (`ledger apply` prints these)."""

    line: int = Field(ge=1, description="its line number in the body")
    command_id: str | None
    command: str | None
    status: Literal["applied", "already applied", "refused"]
    message: str = Field(description="the answer's summary, or the refusal with its rule")
    rule: str | None = Field(default=None, description="a refusal's rule")
    error: str | None = Field(default=None, description="a refusal's message")
    refusal_status: int | None = Field(
        default=None, description="the HTTP status the line would get as a request of its "
        "own (its exit code on the command line: 400 is 2, 401/403/404/409 are 1)")


class ApplyAnswer(BaseModel):
    results: list[ApplyLine]
    stopped_early: bool = Field(description="a refusal stopped the run (stop_on_error)")


def _apply_route(app: FastAPI, writer: Writer) -> None:
    @app.post("/apply", summary="ledger apply: a file of commands, one JSON object a line",
              tags=["writes"], responses=documented(ApplyAnswer, statuses=(400, 401, 403, 503))
              | {413: {"model": ErrorBody, "description": "The body is over "
                       f"{MAX_APPLY_REQUEST_BYTES:,} bytes (16 MiB): nothing was recorded; "
                       "send a larger file in parts of whole lines"}},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "text/plain": {"schema": {"type": "string", "description": "JSON lines"}}}}})
    async def apply(
        request: HttpRequest,
        scope: Caller,
        stop_on_error: Annotated[bool, Query(description="Stop at the first refused line")
                                 ] = False,
        batch_size: Annotated[str | None, Query(
            description="Lines per transaction, 1 to 100000 in the digits 0-9 (default "
            f"{DEFAULT_BATCH})", json_schema_extra={"pattern": WHOLE_NUMBER})] = None,
        atomic: Annotated[bool, Query(description="All or nothing: one refused line "
                                      "records nothing (as the CSV imports run)")] = False,
    ) -> Response:
        """Each line `{"command", "command_id", "args"}` (an `actor`, if given, must be the
        token's), atomic and idempotent by its command id, as `ledger apply` runs a file.
        The answer lists every line's outcome; refused lines are in it, not an error.
        The body is at most 16 MiB (16,777,216 bytes): a larger one is refused with 413
        (rule `request-size`) as soon as its `Content-Length` or the bytes sent pass it,
        and nothing is recorded; send a larger file in parts of whole lines, as `ledger
        apply --server` does (an `atomic` file must fit in one)."""
        if scope.read_only:
            raise NotAuthorised("authorisation", f"{scope.actor} holds a read-only token")
        lines_per_batch = query_number(batch_size, "batch_size", DEFAULT_BATCH, minimum=1,
                                       maximum=100_000)
        try:
            text = decode_utf8(await request.body())
        except StrictJsonError as error:
            raise InvalidInput("apply", f"the body is {error}") from None
        batches = CallersBatches(writer, scope, atomic=atomic)
        lines, actor = text.split("\n"), str(scope.actor)
        report = await anyio.to_thread.run_sync(
            lambda: _all_or_nothing(batches, lines, actor) if atomic else apply_lines(
                batches, lines, default_actor=actor, batch_size=lines_per_batch,
                stop_on_error=stop_on_error))
        return respond({"results": [_line_row(r) for r in report.results],
                        "stopped_early": report.stopped_early}, 200)


def _not_run() -> LedgerError:
    return RuleViolation("all-or-nothing", "not recorded: another line was refused")


def _all_or_nothing(batches: CallersBatches, lines: list[str], actor: str) -> ApplyReport:
    """Every line run in one batch that records nothing if any line is refused (the
    CSV imports); a line that cannot be read refuses the batch before any runs."""
    parsed = [parse_line(number, text, actor) for number, text in numbered_lines(lines)]
    if any(p.error is not None for p in parsed):
        return ApplyReport([LineResult(p.line, p.command_id, p.command, "refused",
                                       str(p.error or _not_run()), p.error or _not_run())
                            for p in parsed])
    outcomes = batches.execute_batch([p.request for p in parsed if p.request is not None])
    return ApplyReport([
        LineResult(p.line, p.command_id, p.command, o.status,
                   str(o.error) if o.error is not None else o.answer.summary
                   if o.answer is not None else "", o.error)
        for p, o in zip(parsed, outcomes, strict=True)])


def _line_row(result: LineResult) -> dict[str, Any]:
    row: dict[str, Any] = {"line": result.line, "command_id": result.command_id,
                           "command": result.command, "status": result.status,
                           "message": result.message}
    if result.error is not None:
        row |= {"rule": result.error.rule, "error": result.error.message,
                "refusal_status": outcome_of(result.error)[1]}
    return row


def _route(app: FastAPI, name: str, cls: type[Command], writer: Writer) -> None:
    def post(scope: Caller, body: Annotated[dict[str, Any], Body()],
             key: IdempotencyKey = None) -> Response:
        answer = writer.execute(scope, build_command(name, body), key)
        return respond(answer_row(answer), 200 if answer.already_applied else 201)

    app.router.add_api_route(
        path_of(name), post, methods=["POST"], summary=f"ledger {name}",
        name=name.replace(" ", "_"), status_code=201, tags=["writes"],
        responses=_answers(AnswerBody),
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": schema_ref(cls)}}}},
        description=f"The `ledger {name}` command; the body is an `apply` line's `args`.",
        dependencies=STRICT, route_class_override=StrictBodyRoute,
    )


def _token_routes(app: FastAPI, writer: Writer) -> None:
    @_post(app, "/token/create", summary="ledger token create", status_code=201,
           tags=["access"], responses=_answers(NewTokenBody), dependencies=STRICT)
    def create_token(scope: Caller, body: Annotated[TokenRequest, Body()],
                     key: IdempotencyKey = None) -> Response:
        """A new token (the allocator only). Its secret is in this answer and nowhere else:
        a replay of the same Idempotency-Key answers without it."""
        token = new_token()
        args = body.model_dump(exclude_none=True)
        args["label"] = args.pop("name", None)
        command = build_command("token create", args | {
            "token_id": token.token_id, "secret_sha256": token.digest})
        answer = writer.execute(scope, command, key)
        row = answer_row(answer)
        if not answer.already_applied:
            row |= {"token_id": token.token_id, "secret": token.secret}
        return respond(row, 200 if answer.already_applied else 201)

    @_post(app, "/token/revoke", summary="ledger token revoke", status_code=201,
           tags=["access"], responses=_answers(AnswerBody), dependencies=STRICT)
    def revoke_token(scope: Caller, body: Annotated[TokenRevoke, Body()],
                     key: IdempotencyKey = None) -> Response:
        """Stop a token at once (the allocator only)."""
        answer = writer.execute(scope, body, key)
        return respond(answer_row(answer), 200 if answer.already_applied else 201)


def _post(app: FastAPI, path: str, **route: Any) -> Callable[[Endpoint], Endpoint]:
    """`app.post(path, **route)` for a route whose JSON body is read by StrictBodyRoute."""

    def register(endpoint: Endpoint) -> Endpoint:
        app.router.add_api_route(path, endpoint, methods=["POST"],
                                 route_class_override=StrictBodyRoute, **route)
        return endpoint

    return register


def _answers(model: type[AnswerBody]) -> dict[int | str, Any]:
    found = documented(model)
    found[201] = {"model": model, "description": "Recorded"}
    found[200] = {"model": model, "description": "Already applied under this Idempotency-Key"}
    return found


class TokenRequest(BaseModel):
    """What `POST /token/create` takes: `ledger token create`'s options."""

    model_config = ConfigDict(extra="forbid")
    actor: str = Field(description="allocator:Q71, practice:A81001, consortium:16C, "
                       "auditor:NAME or service:NAME")
    name: str | None = Field(default=None, max_length=200)
    expires: str | None = Field(default=None, description="2025-03-31 (works through that "
                                "day: the end of it, UTC) or an exact instant with its zone "
                                "(2025-03-31T17:00:00Z; a time without a zone is refused)")
    read_only: StrictBool = Field(default=False, description="true or false only (not 1, "
                                  '"yes")')


def respond(content: Any, status: int) -> Response:
    """JSON as the reads write it (orjson: ISO dates)."""
    return Response(orjson.dumps(content, option=orjson.OPT_UTC_Z), status_code=status,
                    media_type="application/json")
