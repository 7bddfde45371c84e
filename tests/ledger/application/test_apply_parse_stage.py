"""`ledger apply` of a large input parses its lines in a second process, ahead of the
batches being run: every line's outcome, every event and every receipt is the same as
when the lines are parsed in the process that runs them.

On SQLite the parse process is the real one (forked: the test process runs no other
thread). A PostgreSQL ledger's connection pool runs threads, so the process that holds
one parses its lines itself; there the parse stage is run by an executor that pickles
its work and results both ways in this process, so the same code path (lines handed
over as plain values and made into commands again) is checked against the store.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.application import batch
from ledger.application.batch import ApplyReport, apply_lines
from ledger.application.commands import Command, build_command
from ledger.bootstrap import Ledger, bootstrap
from ledger.store import appender
from tests.conftest import PG_BASE_URL, STORES, FakeClock, _drop_schema
from tests.ledger.application.scenario import A1, A2, ALLOCATOR, ME, YEAR, seed


def line(command: str, command_id: str, actor: str | None, **args: Any) -> str:
    data: dict[str, Any] = {"command": command, "command_id": command_id, "args": args}
    if actor is not None:
        data["actor"] = actor
    return json.dumps(data)


def commit(n: int, *, amount: Any = "10.00", practice: str = A1, actor: str | None = ME,
           command_id: str | None = None, ref: str | None = None, **more: Any) -> str:
    return line("spend commit", command_id or f"c-{n}", actor, practice=practice, year=YEAR,
                element="acute", ref=ref or f"R-{n:05d}", amount=amount, provider="RTR",
                service="Hip replacement", qs=["QS3"], on="2024-06-01", **more)


# Every kind of line `apply` meets: each a function of a number that keeps ids apart.
KINDS: dict[str, Callable[[int], str]] = {
    "commit": commit,
    "commit without actor (the default)": lambda n: commit(n, actor=None),
    "commit as pence": lambda n: commit(n, amount=1250),
    "commit spelled otherwise": lambda n: line(
        "spend  commit", f"c-{n}", " practice:a81001 ", practice=" a81001 ", year=YEAR,
        element=" ACUTE ", ref=f"R-{n:05d}", amount="£1,000", provider=" RTR ",
        service="Hip replacement", qs="qs3"),
    "commit of another practice's budget": lambda n: commit(n, practice=A2),
    "commit of no practice": lambda n: commit(n, practice="A89999"),
    "commit by an auditor": lambda n: commit(n, actor="auditor:jsmith"),
    "commit by a malformed actor": lambda n: commit(n, actor="nobody"),
    "commit of a fraction": lambda n: line(
        "spend commit", f"c-{n}", ME, practice=A1, year=YEAR, element="acute",
        ref=f"R-{n:05d}", amount=12.5, provider="RTR", service="Hip replacement"),
    "commit of patient data": lambda n: line(
        "spend commit", f"c-{n}", ME, practice=A1, year=YEAR, element="acute",
        ref=f"R-{n:05d}", amount="1", provider="RTR", service="Patient 9434765919"),
    "commit with an unknown argument": lambda n: commit(n, colour="red"),
    "overspend": lambda n: commit(n, amount="20000"),
    "vary of the first commitment": lambda n: line(
        "spend vary", f"v-{n}", ME, ref="R-00000", amount="12.00", on="2024-06-02"),
    "cancel of no commitment": lambda n: line("spend cancel", f"x-{n}", ME, ref="R-NONE"),
    "budget adjust (validated, not a bulk command)": lambda n: line(
        "budget adjust", f"a-{n}", ALLOCATOR, practice=" a81002 ", year=YEAR,
        element="Prescribing", by="-1.50", reason=f"correction {n}", on="2024-06-01"),
    "practice register": lambda n: line(
        "practice register", f"p-{n}", ALLOCATOR, practice=f"B{n % 100000:05d}",
        name=f"Surgery {n}", list_size=1000 + n, on="2024-04-01"),
    "the first commit again (already applied)": lambda n: commit(0),
    "the first id for another command (conflict)": lambda n: commit(0, amount="11.00"),
    "an id used by another line of the file": lambda n: commit(n, command_id="c-0",
                                                               ref=f"R-{n:05d}x"),
    "a malformed id": lambda n: commit(n, command_id="bad id"),
    "no id": lambda n: json.dumps({"command": "spend commit", "args": {}}),
    "an unknown command": lambda n: line("spend everything", f"u-{n}", ME),
    "not JSON": lambda n: '{"command": "spend commit", "command_id": "c-tr',
    "a key twice": lambda n: '{"command": "spend cancel", "command": "x", "command_id": "k"}',
    "not an object": lambda n: "[1, 2]",
    "blank": lambda n: "   ",
    "empty": lambda n: "",
}


def mixed_lines(kinds: list[str]) -> list[str]:
    return [commit(0), *(KINDS[kind](n) for n, kind in enumerate(kinds, start=1))]


def outcome_rows(report: ApplyReport) -> list[tuple[Any, ...]]:
    return [
        (r.line, r.command_id, r.command, r.status, r.message, type(r.error).__name__,
         r.error.rule if r.error else None)
        for r in report.results
    ]


def log_rows(ledger: Ledger, after: int) -> list[tuple[Any, ...]]:
    rows = ledger.store.notifications(after, 1_000_000)
    return [(n.id, n.originator_id, n.originator_version, n.topic, bytes(n.state))
            for n in rows]


def receipts(ledger: Ledger, report: ApplyReport) -> dict[str, Any]:
    ids = sorted({r.command_id for r in report.results if r.command_id})
    return {k: (v.fingerprint, v.answer) for k, v in ledger.store.receipts(ids).items()}


class PicklingExecutor(Executor):
    """Runs each call here, its arguments and result pickled as a process would."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        call = pickle.loads(pickle.dumps((fn, args, kwargs)))
        future.set_result(pickle.loads(pickle.dumps(call[0](*call[1], **call[2]))))
        return future


SPARE_CORE = batch._spare_core


def parse_processes() -> list[multiprocessing.process.BaseProcess]:
    """The parse process, if running (beside it may run the process that appends the
    batches, ledger/store/appender.py)."""
    return [p for p in multiprocessing.active_children() if p.name != appender.PROCESS_NAME]


@pytest.fixture(autouse=True)
def spare_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests run on a machine as busy as the run makes it: a core is taken as free,
    except where a test says otherwise."""
    monkeypatch.setattr(batch, "_spare_core", lambda: True)


@pytest.fixture
def fresh_url(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Makes the `--db` of a new, empty ledger on a store."""
    schemas: list[str] = []

    def make(store: str) -> str:
        if store == "sqlite":
            return str(tmp_path / f"{uuid.uuid4().hex}.db")
        schemas.append(f"t_{uuid.uuid4().hex[:16]}")
        return f"{PG_BASE_URL}?schema={schemas[-1]}"

    yield make
    for schema in schemas:
        _drop_schema(schema)


def run_both(url: Callable[[str], str], store: str, lines: list[str],
             monkeypatch: pytest.MonkeyPatch, *, before: tuple[str, ...] = (),
             **options: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """(report rows, log rows, receipts) of `lines` applied with the parse stage, then
    parsed in the running process, each on a new ledger seeded alike."""
    results = []
    used: list[bool] = []  # at each batch settled: was a parse process running?

    def progress(_settled: int) -> None:
        used.append(bool(multiprocessing.active_children()))

    for stage in (True, False):
        with monkeypatch.context() as patch:
            patch.setattr(batch, "PARSE_STAGE_MIN_LINES", 1 if stage else 10**9)
            if stage and store == "postgres":
                patch.setattr(batch, "_parse_pool", PicklingExecutor)
            with bootstrap(url(store), clock=FakeClock()) as ledger:
                seed(ledger)  # under random command ids: the log is compared after it
                seeded = ledger.store.head()
                apply_lines(ledger.service, before, default_actor=ME)
                used.clear()
                report = apply_lines(ledger.service, lines, default_actor=ME,
                                     progress=progress, **options)
                batches = len([t for t in lines if t.strip()]) > options.get(
                    "batch_size", batch.DEFAULT_BATCH)
                if stage and store == "sqlite" and batches:  # one batch is parsed here
                    assert used[0], "the lines were not parsed in a second process"
                if not stage:
                    assert not any(used)
                results.append((outcome_rows(report), report.stopped_early,
                                log_rows(ledger, seeded), receipts(ledger, report)))
    return results[0], results[1]


@pytest.mark.parametrize("store", STORES)
def test_a_parse_process_gives_the_same_outcomes_events_and_receipts(
    store: str, fresh_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    kinds = list(KINDS) * 3
    staged, here = run_both(fresh_url, store, mixed_lines(kinds), monkeypatch,
                            before=(commit(1), KINDS["budget adjust (validated, not a bulk "
                                                     "command)"](7)), batch_size=7)
    assert staged == here
    statuses = {row[3] for row in staged[0]}
    assert statuses == {"applied", "already applied", "refused"}


@pytest.mark.parametrize("store", STORES)
def test_a_parse_process_stops_at_the_same_line_with_stop_on_error(
    store: str, fresh_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [commit(n) for n in range(1, 30)]
    lines[17] = KINDS["commit of no practice"](17)
    lines[23] = KINDS["not JSON"](23)
    staged, here = run_both(fresh_url, store, lines, monkeypatch, batch_size=4,
                            stop_on_error=True)
    assert staged == here
    assert staged[1] is True
    assert staged[0][-1][:4] == (18, "c-17", "spend commit", "refused")


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=40),
       batch_size=st.integers(1, 9), stop_on_error=st.booleans())
@pytest.mark.parametrize("store", STORES)
def test_any_mix_of_lines_is_applied_alike_with_and_without_a_parse_process(
    store: str, fresh_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch,
    kinds: list[str], batch_size: int, stop_on_error: bool,
) -> None:
    staged, here = run_both(fresh_url, store, mixed_lines(kinds), monkeypatch,
                            batch_size=batch_size, stop_on_error=stop_on_error)
    assert staged == here


def test_a_command_made_again_from_its_compact_form_is_the_same_command() -> None:
    cases: list[tuple[str, dict[str, Any]]] = [
        ("spend commit", {"practice": " a81001 ", "year": YEAR, "element": "Acute",
                          "ref": "R-1", "amount": "£1,000.50", "provider": "RTR",
                          "service": "Hip", "qs": ["qs10", "QS2"]}),
        ("budget allocate", {"practice": A1, "year": YEAR, "element": {"acute": "12"}}),
        ("practice close", {"practice": A1, "on": "2025-01-01"}),
    ]
    for name, args in cases:
        command = build_command(name, args)
        again = Command.from_compact(*pickle.loads(pickle.dumps(command.compact())))
        assert again == command
        assert again.__getstate__() == command.__getstate__()
        assert again.fingerprint(ME) == command.fingerprint(ME)


def test_small_inputs_are_parsed_in_the_running_process(ledger: Ledger) -> None:
    seed(ledger)
    seen: list[int] = []
    report = apply_lines(ledger.service, [commit(n) for n in range(1, 40)], batch_size=10,
                         progress=lambda _: seen.append(len(parse_processes())))
    assert report.applied == 39
    assert seen == [0, 0, 0, 0]


@pytest.mark.parametrize(("lines", "forked"), [(29, False), (30, True)])
def test_a_parse_process_is_forked_for_a_batch_and_parse_stage_min_lines_or_more(
    sqlite_path: str, monkeypatch: pytest.MonkeyPatch, lines: int, forked: bool
) -> None:
    monkeypatch.setattr(batch, "PARSE_STAGE_MIN_LINES", 20)
    seen: list[int] = []
    with bootstrap(sqlite_path) as ledger:
        seed(ledger)
        text = [commit(n) for n in range(1, lines + 1)]
        text[3:3] = ["", "  "]  # blank lines are not counted
        report = apply_lines(
            ledger.service, text, batch_size=10,
            progress=lambda _: seen.append(len(parse_processes())))
    assert report.applied == lines
    assert seen[0] == (1 if forked else 0)


def test_the_parse_process_ends_with_the_run(
    sqlite_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped early by a refusal or by an interrupt, no parse process is left running."""
    monkeypatch.setattr(batch, "PARSE_STAGE_MIN_LINES", 1)
    with bootstrap(sqlite_path) as ledger:
        seed(ledger)
        stop_and_interrupt(ledger)


def stop_and_interrupt(ledger: Ledger) -> None:
    lines = [commit(n) for n in range(1, 200)]
    lines[50] = "{oops"
    children: list[int] = []

    def progress(_settled: int) -> None:
        children.extend(p.pid or 0 for p in multiprocessing.active_children())

    report = apply_lines(ledger.service, lines, batch_size=10, stop_on_error=True,
                         progress=progress)
    assert report.stopped_early
    assert children
    assert not multiprocessing.active_children()

    def interrupt(_settled: int) -> None:
        assert multiprocessing.active_children()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        apply_lines(ledger.service, [commit(n) for n in range(300, 400)], batch_size=10,
                    progress=interrupt)
    assert not multiprocessing.active_children()


class BrokenExecutor(Executor):
    """A parse stage whose every batch fails, as a pool whose process died does."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_exception(BrokenProcessPool("the parse process died"))
        return future


@pytest.mark.parametrize("failure", ["killed", "every batch fails"])
def test_lines_the_parse_process_did_not_hand_back_are_parsed_in_the_running_process(
    fresh_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    """A parse process killed mid-run (out of memory, say) loses no line: the batches it
    had not handed back are parsed where they are run, to the same outcomes."""
    lines = mixed_lines(list(KINDS) * 2)
    results = []
    for fail in (True, False):
        with monkeypatch.context() as patch:
            patch.setattr(batch, "PARSE_STAGE_MIN_LINES", 1)
            if fail and failure == "every batch fails":
                patch.setattr(batch, "_parse_pool", BrokenExecutor)
            with bootstrap(fresh_url("sqlite"), clock=FakeClock()) as ledger:
                seed(ledger)
                seeded = ledger.store.head()
                killed: list[int] = []

                def progress(_settled: int, kill: bool = fail and failure == "killed",
                             killed: list[int] = killed) -> None:
                    for child in multiprocessing.active_children():
                        if kill and not killed:
                            killed.append(child.pid or 0)
                            child.kill()
                            child.join()

                report = apply_lines(ledger.service, lines, default_actor=ME, batch_size=5,
                                     progress=progress)
                assert bool(killed) is (fail and failure == "killed")
                results.append((outcome_rows(report), log_rows(ledger, seeded)))
    assert results[0] == results[1]
    assert not multiprocessing.active_children()


@pytest.mark.parametrize(("load", "forked"), [(0.4, True), (1.9, True), (2.0, False),
                                              (6.5, False)])
def test_no_parse_process_is_forked_when_the_cores_are_busy(
    sqlite_path: str, monkeypatch: pytest.MonkeyPatch, load: float, forked: bool
) -> None:
    """On two cores, the parse process is forked only while fewer than two tasks were
    runnable on average over the last minute: otherwise it would take its CPU from the
    share of the process running the batches."""
    monkeypatch.setattr(batch, "_spare_core", SPARE_CORE)
    monkeypatch.setattr(batch, "PARSE_STAGE_MIN_LINES", 1)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    monkeypatch.setattr(os, "getloadavg", lambda: (load, 0.0, 0.0))
    seen: list[int] = []
    with bootstrap(sqlite_path) as ledger:
        seed(ledger)
        report = apply_lines(
            ledger.service, [commit(n) for n in range(1, 30)], batch_size=10,
            progress=lambda _: seen.append(len(parse_processes())))
    assert report.applied == 29
    assert seen[0] == (1 if forked else 0)


class CountingExecutor(PicklingExecutor):
    """PicklingExecutor that keeps how many lines each hand-over held."""

    def __init__(self) -> None:
        self.handed: list[int] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.handed.append(len(args[0]))
        return super().submit(fn, *args, **kwargs)


def test_small_batches_are_handed_to_the_parse_process_several_together(
    sqlite_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hand-over costs the running process more than parsing a few lines itself: with
    --batch-size 1 the lines go to the parse process hundreds at a time, not one by one."""
    executor = CountingExecutor()
    monkeypatch.setattr(batch, "PARSE_STAGE_MIN_LINES", 1)
    monkeypatch.setattr(batch, "_parse_pool", lambda: executor)
    settled: list[int] = []
    with bootstrap(sqlite_path, clock=FakeClock()) as ledger:
        seed(ledger)
        report = apply_lines(ledger.service, [commit(n) for n in range(1, 1_202)],
                             default_actor=ME, batch_size=1, progress=settled.append)
    assert report.applied == 1_201
    assert settled == [1] * 1_201  # still one line a batch
    assert sum(executor.handed) == 1_200  # the first batch is parsed here
    assert len(executor.handed) == 3
    assert all(n >= 400 for n in executor.handed[:-1])


@pytest.mark.parametrize("batch_size", [1, 7, 333])
def test_batches_handed_over_together_keep_their_outcomes_events_and_receipts(
    fresh_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch, batch_size: int
) -> None:
    kinds = list(KINDS) * 40
    staged, here = run_both(fresh_url, "sqlite", mixed_lines(kinds), monkeypatch,
                            batch_size=batch_size, stop_on_error=False)
    assert staged == here
    staged, here = run_both(fresh_url, "sqlite", mixed_lines([*kinds[:700], "not JSON", *kinds]),
                            monkeypatch, batch_size=batch_size, stop_on_error=True)
    assert staged == here
    assert staged[1] is True


def fail_the_executors_thread(monkeypatch: pytest.MonkeyPatch,
                               failure: type[BaseException]) -> None:
    """The executor's thread fails to start, after the parse process was forked."""
    import concurrent.futures.process  # noqa: PLC0415 - the executor's own thread

    def fail(_thread: object) -> None:
        raise failure("between the fork and the executor's thread")

    monkeypatch.setattr(batch, "PARSE_STAGE_MIN_LINES", 1)
    monkeypatch.setattr(concurrent.futures.process._ExecutorManagerThread, "start", fail)


def end_children() -> None:
    for child in multiprocessing.active_children():  # so that this test process can end
        child.kill()
        child.join()


def test_ctrl_c_between_the_fork_and_the_executors_thread_leaves_no_parse_process(
    sqlite_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C between the fork and the start of the executor's thread leaves a parse
    process the executor never tells to end: it would wait for work, and this process's
    exit for it, forever. The run ends it, and the interrupt is what is raised."""
    fail_the_executors_thread(monkeypatch, KeyboardInterrupt)
    try:
        with bootstrap(sqlite_path, clock=FakeClock()) as ledger:
            seed(ledger)
            with pytest.raises(KeyboardInterrupt):
                apply_lines(ledger.service, [commit(n) for n in range(1, 40)],
                            default_actor=ME, batch_size=10)
            assert not multiprocessing.active_children()
    finally:
        end_children()


@pytest.mark.timeout(60)
def test_a_second_ctrl_c_as_the_parse_process_is_shut_down_still_ends_it(
    sqlite_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C again the moment the run, stopped by the first, shuts the parse stage down:
    it is shut down all the same (its process, left waiting for work, would keep this
    process's exit waiting for it forever), and the interrupt is what is raised."""
    monkeypatch.setattr(batch, "PARSE_STAGE_MIN_LINES", 1)
    shutdown = ProcessPoolExecutor.shutdown
    shut: list[bool] = []

    def interrupted_again(self: ProcessPoolExecutor, *args: Any, **kwargs: Any) -> None:
        shut.append(True)
        os.kill(os.getpid(), signal.SIGINT)
        shutdown(self, *args, **kwargs)

    def interrupted(_settled: int) -> None:
        if not shut:
            monkeypatch.setattr(ProcessPoolExecutor, "shutdown", interrupted_again)
            os.kill(os.getpid(), signal.SIGINT)

    try:
        with bootstrap(sqlite_path, clock=FakeClock()) as ledger:
            seed(ledger)
            with pytest.raises(KeyboardInterrupt):
                apply_lines(ledger.service, [commit(n) for n in range(1, 300)],
                            default_actor=ME, batch_size=10, progress=interrupted)
        assert shut
        assert not multiprocessing.active_children()
        deadline = time.monotonic() + 30
        while threading.active_count() > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() == 1, threading.enumerate()
    finally:
        end_children()


def test_an_executor_whose_thread_cannot_start_leaves_the_lines_to_be_parsed_here(
    sqlite_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No thread to be had for the executor (a limit on threads, say): every line is
    parsed in the running process, none waits for a hand-over that never comes, and no
    parse process is left behind."""
    fail_the_executors_thread(monkeypatch, RuntimeError)
    try:
        with bootstrap(sqlite_path, clock=FakeClock()) as ledger:
            seed(ledger)
            report = apply_lines(ledger.service, [commit(n) for n in range(1, 1_600)],
                                 default_actor=ME, batch_size=100)
            assert report.applied == 1_599
            assert not multiprocessing.active_children()
    finally:
        end_children()


@settings(max_examples=60, deadline=None)
@given(kinds=st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=12))
def test_a_line_made_again_from_the_parse_process_is_the_line_parse_line_makes(
    kinds: list[str],
) -> None:
    """Its command, fingerprint and arguments as given (read again from the line when
    asked for, as receipts of older versions compare with them) are parse_line's."""
    chunk = list(enumerate(mixed_lines(kinds), start=1))
    compact = pickle.loads(pickle.dumps(batch._parse_compact(chunk, ME)))
    again = batch._made_again(chunk, compact, ME)
    for (number, text), made in zip(chunk, again, strict=True):
        parsed = batch.parse_line(number, text, ME)
        assert (made.line, made.command_id, made.command) == (
            parsed.line, parsed.command_id, parsed.command)
        assert str(made.error) == str(parsed.error)
        if parsed.request is None:
            assert made.request is None
            continue
        assert made.request is not None
        command, expected = made.request.command, parsed.request.command
        assert command == expected
        assert made.request.actor == parsed.request.actor
        assert command.given == expected.given
        assert command.given is not command.given  # a copy each time, as before
        assert command._v1_body() == expected._v1_body()
        assert command._given_text() == expected._given_text()
        assert command.fingerprint(ME) == expected.fingerprint(ME)
