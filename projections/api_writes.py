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
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import orjson
from fastapi import Body, FastAPI, Header
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ledger.application.access import new_token
from ledger.application.commands import (
    ACCESS_COMMANDS,
    COMMANDS,
    Command,
    TokenRevoke,
    build_command,
)
from ledger.domain.errors import NotAuthorised
from projections.api_auth import Caller
from projections.contract import AnswerBody, NewTokenBody, documented

if TYPE_CHECKING:
    from ledger.application.service import Answer, LedgerService
    from projections.access import Scope


class Served(Protocol):
    def service(self) -> LedgerService: ...

IDEMPOTENCY_KEY = r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}$"

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", pattern=IDEMPOTENCY_KEY,
    description="The command id: the same key with the same body records once and answers "
                "the same again; with another body it is refused (409).")]


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


class Writer:
    """Runs commands for the service's callers, one at a time within the process (the
    store takes one writer at a time anyway), and tells listeners after each commit."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self._lock = threading.Lock()
        self.listeners: list[Callable[[], None]] = []

    def execute(self, scope: Scope, command: Command, key: str | None) -> Answer:
        if scope.read_only:
            raise NotAuthorised("authorisation", f"{scope.actor} holds a read-only token")
        service = self.served.service()
        with self._lock:
            answer = service.execute(command, str(scope.actor), key)
        for listener in self.listeners:
            listener()
        return answer


def install(app: FastAPI, writer: Writer) -> None:
    """A `POST` route for every write command in the registry, and the token routes."""
    for name, cls in write_commands().items():
        _route(app, name, cls, writer)
    _token_routes(app, writer)


def _route(app: FastAPI, name: str, cls: type[Command], writer: Writer) -> None:
    def post(scope: Caller, body: Annotated[dict[str, Any], Body()],
             key: IdempotencyKey = None) -> Response:
        answer = writer.execute(scope, build_command(name, body), key)
        return respond(answer_row(answer), 200 if answer.already_applied else 201)

    app.post(
        path_of(name), summary=f"ledger {name}", name=name.replace(" ", "_"),
        status_code=201, tags=["writes"], responses=_answers(AnswerBody),
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": schema_ref(cls)}}}},
        description=f"The `ledger {name}` command; the body is an `apply` line's `args`.",
    )(post)


def _token_routes(app: FastAPI, writer: Writer) -> None:
    @app.post("/token/create", summary="ledger token create", status_code=201,
              tags=["access"], responses=_answers(NewTokenBody))
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

    @app.post("/token/revoke", summary="ledger token revoke", status_code=201,
              tags=["access"], responses=_answers(AnswerBody))
    def revoke_token(scope: Caller, body: Annotated[TokenRevoke, Body()],
                     key: IdempotencyKey = None) -> Response:
        """Stop a token at once (the allocator only)."""
        answer = writer.execute(scope, body, key)
        return respond(answer_row(answer), 200 if answer.already_applied else 201)


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
    expires: str | None = Field(default=None, description="2025-03-31 or an instant with a zone")
    read_only: bool = False


def respond(content: Any, status: int) -> Response:
    """JSON as the reads write it (orjson: ISO dates)."""
    return Response(orjson.dumps(content, option=orjson.OPT_UTC_Z), status_code=status,
                    media_type="application/json")
