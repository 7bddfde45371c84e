"""The command line as a client of the ledger service (`--server URL --token T`).

Writes go to the service's `POST` routes with the command id as the
`Idempotency-Key` (a fresh one when `--command-id` is not given, kept across
retries, so a write retried after a lost connection still records once); reads
go to its `GET` routes. The service's error envelope becomes the same error the
command line would have raised, so exit codes are the same in both modes.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

from ledger.application.files import MAX_APPLY_REQUEST_BYTES
from ledger.domain.errors import InvalidInput, LedgerError, StoreUnavailable, error_for_status

if TYPE_CHECKING:
    import httpx

    from ledger.application.batch import ApplyReport
    from ledger.application.service import Answer, Outcome, Request

ATTEMPTS = 3
TIMEOUT_SECONDS = 30.0
APPLY_TIMEOUT_SECONDS = 3600.0  # a whole file in one request
FEED_PAGE = 1000


_TOKEN = re.compile(r"[\x21-\x7e]+")


def _service_url(server: str) -> str:
    """`--server` as a base URL: http or https with a host (and a port 1 to 65535 when
    given), without spaces or control characters; InvalidInput (exit 2) otherwise,
    the URL shown with its password masked."""
    url = server.strip().rstrip("/")
    shown = re.sub(r"(://[^:/@]+:)[^@]*(@)", r"\1***\2", url)  # the password masked
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise InvalidInput("server", f"malformed --server {shown!r}: {error}") from None
    if (parts.scheme not in ("http", "https") or not parts.hostname
            or not _TOKEN.fullmatch(url) or port == 0):
        raise InvalidInput("server", f"malformed --server {shown!r}: write the service's "
                           "URL, like https://ledger.example.org or http://127.0.0.1:8000")
    return url


class PartlyApplied(Exception):  # noqa: N818 - what happened, not an error of its own
    """`apply --server` of a file sent in parts, stopped while a later part was sent:
    `report` holds the outcomes of the parts the service recorded (`done` commands, blank
    lines aside), `failure` what stopped it (a LedgerError, or KeyboardInterrupt for
    Ctrl-C), and `in_flight` how many commands the part being sent held: the service may
    have applied any of those, each whole or not at all."""

    def __init__(self, report: ApplyReport, failure: BaseException, done: int,
                 in_flight: int) -> None:
        super().__init__(str(failure))
        self.report = report
        self.failure = failure
        self.done = done
        self.in_flight = in_flight


class ServiceClient:
    def __init__(self, server: str, token: str | None) -> None:
        self.server = _service_url(server)
        if token and not _TOKEN.fullmatch(token):
            # Never echoed: it is a secret.
            raise InvalidInput("token", "malformed --token: a token is printable ASCII without "
                               "spaces, as `ledger token create` prints it")
        self.token = token

    def _send(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              body: Any = None, key: str | None = None, lines: str | None = None,
              timeout: float = TIMEOUT_SECONDS) -> Any:
        import httpx  # noqa: PLC0415 - fast --help

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if key is not None:
            headers["Idempotency-Key"] = key
        content = None
        if lines is not None:  # JSON lines, each with its own command id: safe to resend
            headers["Content-Type"] = "text/plain; charset=utf-8"
            content = lines.encode()
        for attempt in range(ATTEMPTS):
            try:
                response = httpx.request(method, f"{self.server}{path}", params=params,
                                         json=body, content=content, headers=headers,
                                         timeout=timeout)
                break
            except httpx.TransportError as error:
                if attempt + 1 == ATTEMPTS or (method != "GET" and key is None
                                               and lines is None):
                    raise StoreUnavailable(
                        "server", f"cannot reach the ledger service at {self.server}: {error}"
                    ) from None
                time.sleep(0.2 * (attempt + 1))
        return _answer_of(response)

    # --- writes --------------------------------------------------------------------------

    def execute(self, name: str, args: dict[str, Any], command_id: str | None) -> Answer:
        """Run `name` with `args` as the token's actor; same answer as the command line."""
        body = _json_ready(args)
        found = self._send("POST", "/" + "/".join(name.split()), body=body,
                           key=str(uuid.uuid4()) if command_id is None else command_id)
        return answer_from(found)

    def create_token(self, args: dict[str, Any], command_id: str | None
                     ) -> tuple[Answer, str | None, str | None]:
        """(answer, token id, secret): the secret only when the token was new."""
        found = self._send("POST", "/token/create", body=_json_ready(args),
                           key=str(uuid.uuid4()) if command_id is None else command_id)
        return answer_from(found), found.get("token_id"), found.get("secret")

    def apply(self, lines: list[str], *, stop_on_error: bool, batch_size: int
              ) -> ApplyReport:
        """`ledger apply` run by the service (`POST /apply`) as the token's actor: the
        same report, each refused line with the error it would raise here.

        The file is sent in parts of whole lines, each at most MAX_APPLY_REQUEST_BYTES
        (the most the service reads in one request), one after the other; with
        `stop_on_error`, none after a part the service stopped in. InvalidInput (exit 2,
        nothing sent) for a line longer than that bound on its own. A failure or Ctrl-C
        while a later part is sent raises PartlyApplied, holding the outcomes of the
        parts the service recorded before it; while the first is, it is raised as it
        came."""
        from ledger.application.batch import ApplyReport, LineResult  # noqa: PLC0415

        results: list[LineResult] = []
        for offset, part in _parts(lines, MAX_APPLY_REQUEST_BYTES):
            try:
                found = self._send("POST", "/apply", lines="\n".join(part),
                                   params={"stop_on_error": stop_on_error,
                                           "batch_size": batch_size},
                                   timeout=APPLY_TIMEOUT_SECONDS)
            except (Exception, KeyboardInterrupt) as failure:
                if not offset:
                    raise
                in_flight = sum(1 for line in part if line.strip())
                raise PartlyApplied(ApplyReport(results), failure, len(results), in_flight
                                    ) from failure
            results += [
                LineResult(offset + r["line"], r["command_id"], r["command"], r["status"],
                           r["message"],
                           error_for_status(r["refusal_status"], r["rule"], r["error"])
                           if r.get("refusal_status") is not None else None)
                for r in found["results"]]
            if found["stopped_early"]:
                return ApplyReport(results, stopped_early=True)
        return ApplyReport(results, stopped_early=False)

    def batches(self) -> RemoteBatches:
        """What runs the CSV imports through the service (all or nothing)."""
        return RemoteBatches(self)

    # --- reads ---------------------------------------------------------------------------

    def get(self, path: str, **params: Any) -> Any:
        return self._send("GET", path, params={k: _plain(v) for k, v in params.items()
                                               if v is not None and v != []})


class RemoteBatches:
    """LedgerService's `execute_batch` and `clock`, for the CSV imports, run by the
    service as the token's actor (`POST /apply?atomic=true`): each command an `apply`
    line with its command id, the outcomes those of direct access."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    @property
    def clock(self) -> Callable[[], datetime]:
        return lambda: datetime.now(UTC)

    def execute_batch(self, requests: Sequence[Request], *, atomic: bool = False
                      ) -> list[Outcome]:
        from ledger.application.service import Answer, Outcome  # noqa: PLC0415

        lines = [orjson.dumps({"command": r.command.name, "command_id": r.command_id,
                               "args": _json_ready(r.command.given)},
                              default=str).decode()
                 for r in requests]
        found = self.client._send(
            "POST", "/apply", lines="\n".join(lines), params={"atomic": atomic},
            timeout=APPLY_TIMEOUT_SECONDS)
        outcomes: list[Outcome] = []
        for request, row in zip(requests, found["results"], strict=True):
            if row.get("refusal_status") is not None:
                error = error_for_status(row["refusal_status"], row["rule"], row["error"])
                outcomes.append(Outcome(request, error=error))
                continue
            outcomes.append(Outcome(request, answer=Answer(
                command=row["command"], command_id=row["command_id"], summary=row["message"],
                effective_on=None, events=(),
                already_applied=row["status"] == "already applied")))
        return outcomes


def _parts(lines: list[str], bound: int) -> list[tuple[int, list[str]]]:
    """`lines` cut into runs of whole lines whose text, joined by newlines and encoded
    as UTF-8, is at most `bound` bytes: (how many lines come before the run, the run).
    InvalidInput (rule `apply`) for a line longer than `bound` on its own, before any
    is sent."""
    parts: list[tuple[int, list[str]]] = []
    start, size = 0, -1
    for number, line in enumerate(lines):
        length = len(line.encode("utf-8", "surrogatepass")) + 1  # with its newline
        if length - 1 > bound:
            raise InvalidInput("apply", f"line {number + 1} is {length - 1:,} bytes, more "
                               f"than the service reads in one request ({bound:,}); "
                               "nothing was sent")
        if size + length > bound:
            parts.append((start, lines[start:number]))
            start, size = number, -1
        size += length
    parts.append((start, lines[start:]))
    return parts


def answer_from(found: dict[str, Any]) -> Answer:
    from ledger.application.service import Answer  # noqa: PLC0415 - fast --help

    on = found.get("effective_on")
    return Answer(command=found["command"], command_id=found["command_id"],
                  summary=found["summary"],
                  effective_on=date.fromisoformat(on) if on else None,
                  events=tuple(found["events"]),
                  already_applied=bool(found.get("already_applied")))


def _answer_of(response: httpx.Response) -> Any:
    try:
        found = response.json()
    except ValueError:
        found = None
    if response.status_code < 400:
        return found
    if isinstance(found, dict) and {"error", "rule"} <= set(found):
        if response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
            # Input too large to send, as a file too large to read is (exit 2).
            raise InvalidInput(str(found["rule"]), str(found["error"]))
        raise error_for_status(response.status_code, str(found["rule"]), str(found["error"]))
    raise StoreUnavailable("server", f"the ledger service answered {response.status_code}")


def _plain(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def _json_ready(args: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) for k, v in args.items() if v is not None}


class RemoteReads:
    """The read queries of projections/queries.py answered by the service's `GET` routes
    (same names, same rows, as JSON)."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    def holders(self, **options: Any) -> Any:
        return self.client.get("/holders", **options)

    def trail(self, code: str, **options: Any) -> Any:
        return self.client.get(f"/trail/{code.strip()}", **options)

    def position(self, **options: Any) -> Any:
        return self.client.get("/position", **options)

    def pools(self, **options: Any) -> Any:
        return self.client.get("/pools", **options)

    def quality(self, *, codes: list[str] | None = None, **options: Any) -> Any:
        return self.client.get("/quality", qs=codes, **options)

    def variation(self, **options: Any) -> Any:
        # The service's peer review defaults to the funnel; these rows are the Tukey method's.
        return self.client.get("/variation", method="tukey", **options)

    def replay(self, practice: str, year: str, until: date | None = None) -> Any:
        return self.client.get(f"/replay/{practice.strip()}", year=year, until=until)

    def funnel(self, **options: Any) -> Any:
        return self.client.get("/variation", method="funnel", **options)

    def events(self, after: int = 0) -> Iterator[dict[str, Any]]:
        """The feed after `after` as the token may read it (`GET /events`), page by page
        up to the head."""
        while True:
            page = self.client.get("/events", after=after, limit=FEED_PAGE)
            yield from page["events"]
            if page["next_after"] >= page["head"] or page["next_after"] == after:
                return
            after = page["next_after"]

    def __getattr__(self, name: str) -> Any:
        raise InvalidInput("server", f"{name} needs direct access to the store (--db); it is "
                           "not available with --server")


__all__ = ["LedgerError", "RemoteReads", "ServiceClient"]
