"""The bearer-token dependency every authenticated route takes."""

from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ledger.domain.errors import NotAuthenticated
from projections.access import Scope

BEARER = HTTPBearer(auto_error=False, description="A token from `ledger token create`")


class Scoping(Protocol):
    def scope(self, secret: str | None) -> Scope: ...


def caller(request: Request,
           credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
           ) -> Scope:
    """The scope of the request's bearer token (401 without a live one, and with two
    `Authorization` headers: which of them acts would be the server's guess)."""
    served: Scoping = request.app.state.served
    if len(request.headers.getlist("authorization")) > 1:
        raise NotAuthenticated("authentication",
                               "Authorization given more than once: send one bearer token")
    return served.scope(credentials.credentials if credentials is not None else None)


Caller = Annotated[Scope, Depends(caller)]
