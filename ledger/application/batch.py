"""`ledger apply`: a file of commands, one JSON object a line, each atomic and idempotent.

Lines are run in batches, one transaction per batch, so throughput is that of
bulk inserts while each line keeps its own command id: a re-run after a crash
answers "already applied" for what was committed and applies only what is
missing. A refused line records nothing and, unless asked to stop, the rest go on.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ledger import strict_json
from ledger.application.commands import build_command
from ledger.application.service import Outcome, Request
from ledger.domain.characters import parse_command_id
from ledger.domain.errors import InvalidInput, LedgerError

DEFAULT_BATCH = 2_000
LINE_KEYS = frozenset({"command", "command_id", "actor", "args"})


class Runs(Protocol):
    """What runs a batch: LedgerService, or the ledger service's writer for its caller."""

    def execute_batch(self, requests: Sequence[Request], *,
                      stop_at_first_refusal: bool = False) -> list[Outcome]: ...


@dataclass(slots=True)
class LineResult:
    line: int
    command_id: str | None
    command: str | None
    status: str  # "applied" | "already applied" | "refused"
    message: str
    error: LedgerError | None = None  # why a refused line was refused


@dataclass
class ApplyReport:
    results: list[LineResult] = field(default_factory=list)
    stopped_early: bool = False

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def applied(self) -> int:
        return self.count("applied")

    @property
    def already_applied(self) -> int:
        return self.count("already applied")

    @property
    def refused(self) -> list[LineResult]:
        return [r for r in self.results if r.status == "refused"]


@dataclass(slots=True)
class ParsedLine:
    line: int
    request: Request | None
    command_id: str | None
    command: str | None
    error: LedgerError | None = None


def parse_line(line_no: int, text: str, default_actor: str | None) -> ParsedLine:
    """One JSON line into a request, or the reason it cannot be one."""
    command_id: str | None = None
    name: str | None = None
    try:
        data = strict_json.loads(text)
        if not isinstance(data, dict):
            raise InvalidInput("apply-line", "each line must be a JSON object")
        name = _text_field(data, "command")
        if "command_id" not in data:
            raise InvalidInput("apply-line", "missing command_id")
        given_id = data["command_id"]
        command_id = given_id if isinstance(given_id, str) else None  # shown when refused
        command_id = parse_command_id(given_id)
        if not LINE_KEYS.issuperset(data):
            unknown = sorted(set(data) - LINE_KEYS)
            raise InvalidInput(
                "apply-line",
                f"unknown key {', '.join(map(repr, unknown))} (a line has only "
                f"{', '.join(sorted(LINE_KEYS))}; a command's arguments go under args)",
            )
        actor = data.get("actor", default_actor)
        if not isinstance(actor, str) or not actor:
            raise InvalidInput("actor", "no actor: give one on the line or with --actor")
        args = data.get("args", {})
        if not isinstance(args, dict):
            raise InvalidInput("apply-line", "args must be a JSON object")
        command = build_command(name, args)
    except strict_json.StrictJsonError as error:
        failure = InvalidInput("apply-line", f"not valid JSON ({error})")
        return ParsedLine(line_no, None, command_id, name, failure)
    except LedgerError as error:
        return ParsedLine(line_no, None, command_id, name, error)
    return ParsedLine(line_no, Request(command, actor, command_id), command_id, name)


def _text_field(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("apply-line", f"missing {key}")
    return value


def numbered_lines(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    for number, text in enumerate(lines, start=1):
        if text.strip():
            yield number, text


def apply_lines(
    service: Runs,
    lines: Iterable[str],
    *,
    default_actor: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    stop_on_error: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ApplyReport:
    """Apply every line; `progress` is told how many lines each batch settled."""
    report = ApplyReport()
    numbered = numbered_lines(lines)
    settled = 0
    with collector_paused():
        while True:
            batch = [parse_line(number, text, default_actor)
                     for number, text in itertools.islice(numbered, batch_size)]
            if not batch or not _settle(service, batch, report, stop_on_error, progress):
                return report
            settled += 1
            if settled % COLLECT_EVERY == 0:
                del batch
                gc.collect(1)


COLLECT_EVERY = 50
"""Batches between two collections of young garbage while `apply_lines` holds the
collector off (`collector_paused`)."""


_pause_lock = threading.Lock()
_pauses = {"depth": 0, "resume": False}


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Hold off Python's automatic cyclic garbage collection while batches are run.

    A batch allocates tens of thousands of short-lived objects with no cycles
    (freed by reference counting as usual); without the pause the collector walks
    them, and the growing aggregates, again and again. Automatic collection resumes
    when the pause ends. Nested and concurrent pauses resume it only when the last
    one ends, and only if it was on before the first began.
    """
    with _pause_lock:
        if _pauses["depth"] == 0:
            _pauses["resume"] = gc.isenabled()
            gc.disable()
        _pauses["depth"] += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses["depth"] -= 1
            if _pauses["depth"] == 0 and _pauses["resume"]:
                gc.enable()


def _settle(
    service: Runs,
    batch: list[ParsedLine],
    report: ApplyReport,
    stop_on_error: bool,
    progress: Callable[[int], None] | None,
) -> bool:
    """Run one batch; False when a refusal stops the run."""
    if stop_on_error:
        first_bad = next((i for i, p in enumerate(batch) if p.error), None)
        if first_bad is not None:
            batch = batch[: first_bad + 1]
    requests = [p.request for p in batch if p.request is not None]
    outcomes = iter(
        service.execute_batch(requests, stop_at_first_refusal=stop_on_error) if requests else []
    )
    settled = 0
    for parsed in batch:
        if parsed.error is not None:
            report.results.append(_refused(parsed, parsed.error))
            settled += 1
            continue
        outcome = next(outcomes, None)
        if outcome is None:  # not run: an earlier line stopped the batch
            break
        report.results.append(_result(parsed, outcome))
        settled += 1
    if progress:
        progress(settled)
    if stop_on_error and report.refused:
        report.stopped_early = True
        return False
    return True


def _refused(parsed: ParsedLine, error: LedgerError) -> LineResult:
    return LineResult(parsed.line, parsed.command_id, parsed.command, "refused", str(error),
                      error)


def _result(parsed: ParsedLine, outcome: Outcome) -> LineResult:
    if outcome.error is not None:
        return _refused(parsed, outcome.error)
    assert outcome.answer is not None
    return LineResult(
        parsed.line, parsed.command_id, parsed.command, outcome.status, outcome.answer.summary
    )
