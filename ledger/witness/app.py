"""The witness over HTTP (Starlette): `POST /add-checkpoint`, `GET /<origin hash>/checkpoint`.

The monitoring endpoint serves the latest checkpoint the witness cosigned for the
log whose origin hashes (SHA-256, lowercase hex) to the path, with the log's
signatures and the cosignature; 404 if it never cosigned one.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ledger.witness.protocol import MAX_BODY_BYTES
from ledger.witness.state import Witness


def create_witness_app(witness: Witness) -> Starlette:
    async def add_checkpoint(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return PlainTextResponse(f"request body over {MAX_BODY_BYTES} bytes\n", 413)
        answer = await run_in_threadpool(witness.add_checkpoint, body)
        return Response(answer.body, answer.status, headers={"Content-Type": answer.content_type})

    async def latest(request: Request) -> Response:
        note = await run_in_threadpool(witness.latest, str(request.path_params["origin_hash"]))
        if note is None:
            return PlainTextResponse("no checkpoint cosigned for that log\n", 404)
        return PlainTextResponse(note)

    return Starlette(routes=[
        Route("/add-checkpoint", add_checkpoint, methods=["POST"]),
        Route("/{origin_hash}/checkpoint", latest, methods=["GET"]),
    ])
