"""`ledger apply`: a file of commands, one JSON object a line, each atomic and idempotent.

Lines are run in batches, one transaction per batch, so throughput is that of
bulk inserts while each line keeps its own command id: a re-run after a crash
answers "already applied" for what was committed and applies only what is
missing. A refused line records nothing and, unless asked to stop, the rest go on.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import itertools
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from ledger import strict_json
from ledger.application.commands import Command, build_command
from ledger.application.pipeline import pipelined
from ledger.application.service import LedgerService, Outcome, Request
from ledger.domain.characters import parse_command_id
from ledger.domain.errors import InvalidInput, LedgerError
from ledger.domain.values import Actor
from ledger.interrupts import ctrl_c_held
from ledger.store.appender import BACKGROUND_NICENESS

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
    """Apply every line; `progress` is told how many lines each batch settled.

    An input of a batch and PARSE_STAGE_MIN_LINES lines or more is parsed ahead by a
    second process (`_parse_stage`) while this one runs the batches before; the lines,
    their outcomes and the events recorded are the same either way.
    """
    report = ApplyReport()
    numbered = numbered_lines(lines)
    chunks = iter(lambda: list(itertools.islice(numbered, batch_size)), [])
    head, large = _head(chunks)

    def settled(batch: list[ParsedLine], outcomes: list[Outcome]) -> None:
        _record(batch, outcomes, report, progress)

    with collector_paused(), _runner(service, large and not stop_on_error, settled) as run, \
            _parse_stage(head, chunks, large, default_actor) as batches:
        for number, batch in enumerate(batches, start=1):
            to_run = _to_first_refusal(batch) if stop_on_error else batch
            run(to_run, [p.request for p in to_run if p.request is not None], stop_on_error)
            if stop_on_error and report.refused:
                report.stopped_early = True
                break
            if number % COLLECT_EVERY == 0:
                del batch
                gc.collect(1)
    return report


def _to_first_refusal(batch: list[ParsedLine]) -> list[ParsedLine]:
    """The batch up to its first line refused as parsed, included."""
    first_bad = next((i for i, p in enumerate(batch) if p.error), None)
    return batch if first_bad is None else batch[: first_bad + 1]


Run = Callable[[list[ParsedLine], list[Request], bool], None]
"""Runs a batch's requests (the third argument: stopping at the first refusal) and,
now or once committed, has its outcomes recorded."""


@contextlib.contextmanager
def _runner(service: Runs, pipeline: bool,
            settled: Callable[[list[ParsedLine], list[Outcome]], None]) -> Iterator[Run]:
    """How batches are run: one transaction each, here (`execute_batch`), or, for a large
    input to a ledger's own service with a core to spare, decided here while a second
    process appends the ones before (ledger/application/pipeline.py)."""
    if pipeline and isinstance(service, LedgerService) and _spare_core():
        with pipelined(service, settled) as running:
            if running is not None:
                def submit(batch: list[ParsedLine], requests: list[Request], _: bool) -> None:
                    running.submit(batch, requests)
                yield submit
                return

    def execute(batch: list[ParsedLine], requests: list[Request], stop: bool) -> None:
        settled(batch, service.execute_batch(requests, stop_at_first_refusal=stop)
                if requests else [])
    yield execute


PARSE_STAGE_MIN_LINES = 3_000
"""Lines past the first batch (which is parsed here while the parse process starts) from
which a second process parses them: it costs the running process some 10 ms of CPU
(forking it, and its threads) and saves it about 7 us a line. Fewer are parsed here."""

PARSE_STAGE_AHEAD = 3
"""Hand-overs (`PARSE_STAGE_UNIT`) the parse process is given ahead of the batch being run."""

PARSE_STAGE_UNIT = 500
"""Lines, at the least, the parse process is given at a time: smaller batches (a small
--batch-size) are handed to it several together. Each hand-over costs the running process
some 150 us of CPU (pickling, and the executor's threads waking) against about 7 us a line
saved: handed over one by one, batches of 1 to 20 lines cost it more than parsing them."""

Chunk = list[tuple[int, str]]
CompactLine = tuple[type[Command], dict[str, Any], set[str] | None, str, str, str | None,
                    tuple[str, str] | None]
"""A line parsed into a request: its command (`Command.compact`, but for its arguments as
given, which the running process reads again from the line if ever asked: `_line_args`),
actor, command id, command as named, and fingerprint; `_parse_compact`."""


def _head(chunks: Iterator[Chunk]) -> tuple[list[Chunk], bool]:
    """The first batches of `chunks`, up to PARSE_STAGE_MIN_LINES lines past the first
    one, and whether there were that many (a large input)."""
    head: list[Chunk] = []
    count = 0
    for chunk in chunks:
        head.append(chunk)
        count += len(chunk)
        if count - len(head[0]) >= PARSE_STAGE_MIN_LINES:
            break
    return head, bool(head) and count - len(head[0]) >= PARSE_STAGE_MIN_LINES


@contextlib.contextmanager
def _parse_stage(head: list[Chunk], chunks: Iterator[Chunk], large: bool,
                 default_actor: str | None) -> Iterator[Iterator[list[ParsedLine]]]:
    """The parsed batches of `chunks`, in order: parsed here, or, for a large input,
    by a second process a few batches ahead of the caller's.

    The parse process is forked (a copy of this one, ready in milliseconds) only when a
    core is free for it (`_spare_core`), and only from a process running no other
    thread (a fork copies no thread, and with it any lock one held). It ignores Ctrl-C:
    the run stops here and shuts it down. Should it fail or die, the batches it had not
    parsed are parsed here.
    """
    everything = itertools.chain(head, chunks)
    before = set(multiprocessing.active_children()) if large else set()
    pool = _parse_pool() if large else None
    if pool is None:
        yield (_parsed_here(chunk, default_actor) for chunk in everything)
        return
    try:
        yield _pipelined(pool, everything, default_actor)
    finally:
        _shut_down(pool, before)


def _shut_down(pool: ProcessPoolExecutor, before: set[multiprocessing.process.BaseProcess]
               ) -> None:
    """Ends the parse process, even one the pool lost track of: forked, but the pool's
    thread never started (Ctrl-C, or no thread to be had, in between), it would wait for
    work, and this process's exit for it, forever. `before` are this process's children
    from before the pool, which are not the pool's. Ctrl-C is held meanwhile (a few
    milliseconds): a second one stopping the wait for the pool to shut down left its
    process waiting for work, or its threads for a pipe no one reads, and this process's
    exit waiting for them, forever."""
    with ctrl_c_held():
        try:
            with contextlib.suppress(RuntimeError):  # a thread never started: nothing to join
                pool.shutdown(wait=True, cancel_futures=True)
        finally:
            for process in set(multiprocessing.active_children()) - before:
                process.kill()
                process.join()


def _parse_pool() -> ProcessPoolExecutor | None:
    if ("fork" not in multiprocessing.get_all_start_methods()
            or threading.active_count() > 1 or not _spare_core()):
        return None
    return ProcessPoolExecutor(1, multiprocessing.get_context("fork"), _parse_process_start)


def _spare_core() -> bool:
    """Whether a second core is free for the parse process: this process may run on two
    or more, and fewer tasks than its cores were runnable, on average, over the last
    minute (this process counts among them). On a machine whose cores are all busy the
    parse process would take its CPU from this one's share (Linux's autogroup shares
    CPU between sessions, not processes): the lines would cost more CPU in all and take
    longer."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average here: the cores are taken as free
        load = 0.0
    return cores >= 2 and load < cores


def _parse_process_start() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(BACKGROUND_NICENESS)
    parent = multiprocessing.parent_process()
    if parent is not None:  # a parent killed outright (SIGKILL) leaves no orphan behind
        threading.Thread(target=_end_with, args=(parent,), daemon=True).start()
    # What the fork copied is never garbage to this process, and the collector is held
    # off as in the parent (`collector_paused`): `_parse_compact` collects young garbage.
    gc.disable()
    gc.freeze()


def _end_with(parent: multiprocessing.process.BaseProcess) -> None:
    parent.join()
    os._exit(1)


def _pipelined(pool: ProcessPoolExecutor, chunks: Iterator[Chunk], default_actor: str | None
               ) -> Iterator[list[ParsedLine]]:
    ahead: collections.deque[tuple[list[Chunk], Future[list[CompactLine | None]] | None]] = (
        collections.deque())
    usable = [pool]

    def give_ahead() -> None:
        while len(ahead) < PARSE_STAGE_AHEAD:
            unit = _unit(chunks)
            if not unit:
                return
            future: Future[list[CompactLine | None]] | None = None
            if usable:
                try:
                    future = pool.submit(_parse_compact,
                                         [line for chunk in unit for line in chunk],
                                         default_actor)
                except (RuntimeError, OSError):  # no process or none of its threads (broken,
                    usable.clear()  # or never started): this and the rest are parsed here
            ahead.append((unit, future))

    first = next(chunks, None)
    if first is None:
        return
    give_ahead()
    yield _parsed_here(first, default_actor)  # while the parse process starts
    while ahead:
        unit, future = ahead.popleft()
        give_ahead()
        yield from _received(unit, future, default_actor)


def _unit(chunks: Iterator[Chunk]) -> list[Chunk]:
    """The next batches to hand the parse process at once: PARSE_STAGE_UNIT lines or
    more, or what is left."""
    unit: list[Chunk] = []
    size = 0
    while size < PARSE_STAGE_UNIT:
        chunk = next(chunks, None)
        if chunk is None:
            break
        unit.append(chunk)
        size += len(chunk)
    return unit


def _parsed_here(chunk: Chunk, default_actor: str | None) -> list[ParsedLine]:
    return [parse_line(number, text, default_actor) for number, text in chunk]


def _received(unit: list[Chunk], future: Future[list[CompactLine | None]] | None,
              default_actor: str | None) -> Iterator[list[ParsedLine]]:
    """The batches of `unit` as the parse process parsed them; a line it refused is
    parsed again here, so its refusal is exactly the one `parse_line` gives (same error,
    same message)."""
    compact: list[CompactLine | None] | None = None
    if future is not None:
        try:
            compact = future.result()
        except Exception:  # noqa: BLE001 - parsed here: the same error, if any, raised here
            compact = None
    start = 0
    for chunk in unit:
        if compact is None:
            yield _parsed_here(chunk, default_actor)
            continue
        yield _made_again(chunk, compact[start:start + len(chunk)], default_actor)
        start += len(chunk)


def _made_again(chunk: Chunk, compact: list[CompactLine | None], default_actor: str | None
                ) -> list[ParsedLine]:
    from_compact = Command.from_compact
    parsed: list[ParsedLine] = []
    add = parsed.append
    for (number, text), line in zip(chunk, compact, strict=True):
        if line is None:
            add(parse_line(number, text, default_actor))
            continue
        cls, values, fields_set, actor, command_id, name, fingerprint = line
        command = from_compact(cls, values, fields_set, (_line_args, text))
        add(ParsedLine(number, Request(command, actor, command_id, fingerprint), command_id,
                       name))
    return parsed


def _line_args(text: str) -> dict[str, Any]:
    """The arguments as given of a line `parse_line` made a command of (`Command.given`)."""
    args: dict[str, Any] = strict_json.loads(text).get("args", {})
    return dict(args)


def _parse_compact(chunk: Chunk, default_actor: str | None) -> list[CompactLine | None]:
    """In the parse process: each line as plain values (pickled several times faster than
    the objects), its fingerprint taken; None for a line refused.

    Equal texts that recur from line to line (a command's name, an actor) are handed
    back as one object, which pickle writes once a batch."""
    gc.collect(0)  # the garbage of the hand-overs before, a line refused being a cycle
    texts: dict[str, str] = {}
    return [_compact(parse_line(number, text, default_actor), texts) for number, text in chunk]


def _compact(parsed: ParsedLine, texts: dict[str, str]) -> CompactLine | None:
    request = parsed.request
    if request is None:
        return None
    command = request.command
    fingerprint: tuple[str, str] | None
    try:  # as LedgerService._run takes it; an actor refused there is refused there
        actor = str(Actor.parse(request.actor))
        fingerprint = actor, command.fingerprint(actor)
    except LedgerError:
        fingerprint = None
    cls, values, fields_set, _ = command.compact()
    same = texts.setdefault
    name = parsed.command
    return (cls, values, fields_set, same(request.actor, request.actor),
            request.command_id, name and same(name, name), fingerprint)


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


def _record(batch: list[ParsedLine], outcomes: list[Outcome], report: ApplyReport,
            progress: Callable[[int], None] | None) -> None:
    """Add a batch's lines to the report with the outcomes of its requests, in order
    (fewer outcomes than requests: the rest were not run, a refusal stopped the batch)."""
    ran = iter(outcomes)
    settled = 0
    add = report.results.append
    for parsed in batch:
        if parsed.error is not None:
            add(_refused(parsed, parsed.error))
            settled += 1
            continue
        outcome = next(ran, None)
        if outcome is None:  # not run: an earlier line stopped the batch
            break
        answer = outcome.answer
        if outcome.error is not None or answer is None:
            add(_result(parsed, outcome))
        else:  # `_result` of an answered line, inline: this loop runs for every line
            add(LineResult(parsed.line, parsed.command_id, parsed.command,
                           "already applied" if answer.already_applied else "applied",
                           answer.summary))
        settled += 1
    if progress:
        progress(settled)


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
