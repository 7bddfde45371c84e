"""How large a request body the service reads: a bound per route, checked as it arrives.

A write command's body (`POST /spend/commit`, the token routes) is read and parsed before
its bearer token is checked, so without a bound anyone who can reach the service could
make it hold gigabytes in memory without a token. Such a body is a few hundred bytes;
MAX_COMMAND_BODY_BYTES leaves room for the longest names and reasons, escaped. `POST
/apply` (a `ledger apply` file, read once its token is checked, and held in memory with
every line's outcome) reads at most MAX_APPLY_REQUEST_BYTES (ledger/application/files.py,
16 MiB); a larger file is sent in parts. A larger body is refused with 413 as soon as its
`Content-Length` says so, or as soon as the bytes that pass the bound arrive; the command
is not run and nothing is recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.application.files import MAX_APPLY_REQUEST_BYTES

MAX_COMMAND_BODY_BYTES = 1024**2
"""The largest body of a write command or a token route, in bytes (1 MiB)."""

BODIES_AS_FILES = frozenset({"/apply"})
"""Routes whose body is a file of commands, bounded by MAX_APPLY_REQUEST_BYTES."""


def body_limit(path: str) -> int:
    """The most bytes a request body to `path` may hold."""
    return MAX_APPLY_REQUEST_BYTES if path in BODIES_AS_FILES else MAX_COMMAND_BODY_BYTES


class _TooLarge(Exception):  # noqa: N818 - a signal inside the middleware, never shown
    """Raised from the wrapped `receive` once a body passes its bound."""


class BodyLimit:
    """ASGI middleware: a request whose body passes `body_limit(path)` gets `refuse(limit,
    path)` (a 413 response) instead of whatever the app would answer."""

    def __init__(self, app: ASGIApp, refuse: Callable[[int, str], Response]) -> None:
        self.app = app
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self.refuse(limit, scope["path"])(scope, receive, send)
            return
        received = 0
        over = False

        async def counted() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise _TooLarge
            return message

        async def unless_over(message: Message) -> None:
            if not over:  # the app's answer to a body it could not read is not sent
                await send(message)

        try:
            await self.app(scope, counted, unless_over)
        except _TooLarge:
            pass
        except Exception:
            if not over:
                raise
        if over:
            await self.refuse(limit, scope["path"])(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    """The request's declared body length; None when it declares none (or garbage, which
    the server refuses itself)."""
    headers: Any = scope.get("headers", ())
    for name, value in headers:
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isascii() and text.isdigit() else None
    return None
