"""`ledger apply` on a SQLite ledger decides each batch while a second process appends the
batches before it (ledger/application/pipeline.py): every line's outcome, every event
(its position and bytes) and every receipt is the same as when each batch is read,
decided and written in one transaction; another writer's append between two batches,
or the appending process failing or dying, loses and repeats nothing.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger.application import batch
from ledger.application.batch import apply_lines
from ledger.application.unit_of_work import AggregateCache
from ledger.bootstrap import Ledger, bootstrap
from ledger.store import appender
from ledger.store.eventstore import EventStore
from ledger.store.recorders import Columns
from tests.conftest import FakeClock
from tests.ledger.application.scenario import A1, A2, A3, ALLOCATOR, ME, YEAR, run, seed
from tests.ledger.application.test_apply_parse_stage import (
    KINDS,
    commit,
    line,
    log_rows,
    mixed_lines,
    outcome_rows,
    receipts,
)

Results = tuple[Any, ...]

# Another writer closes the practice part way through a run (a stream the run's commits
# do not write to): later commits are refused.
CLOSE = ("practice close", ALLOCATOR, "close-1")
CLOSE_ARGS = {"practice": A1, "on": "2024-06-02", "reason": "merged"}


def others_after(seconds: float) -> list[str]:
    """The threads other than this one still running after up to `seconds` (one an
    earlier test's server or client is ending may take a moment)."""
    deadline = time.monotonic() + seconds
    while True:
        others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        if not others or time.monotonic() >= deadline:
            return others
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def spare_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs here are large and a core is taken as free: the pipeline is used, which
    forks only where no other thread runs (one an earlier test left would be copied half)."""
    assert not others_after(5.0), f"threads left running by an earlier test: {others_after(0)}"
    monkeypatch.setattr(batch, "_spare_core", lambda: True)
    monkeypatch.setattr(batch, "PARSE_STAGE_MIN_LINES", 1)


def appending() -> bool:
    return any(p.name == appender.PROCESS_NAME for p in multiprocessing.active_children())


def applied(path: str, lines: list[str], *, pipeline: bool,
            monkeypatch: pytest.MonkeyPatch, cache: int | None = None,
            after_first: Callable[[Ledger], None] | None = None, **options: Any
            ) -> tuple[Results, list[bool]]:
    """(report rows, stopped early, log rows, receipts) of `lines` applied to a new seeded
    ledger at `path` (its budgets hard), with or without the appending process; and, at
    each batch settled, whether it was running. `after_first` runs once the first batch
    is settled."""
    used: list[bool] = []
    with monkeypatch.context() as patch, bootstrap(path, clock=FakeClock()) as ledger:
        if not pipeline:
            patch.setattr(appender.Appender, "start", classmethod(lambda *_: None))
        if cache is not None:
            ledger.service.cache = AggregateCache(maxsize=cache)
        seed(ledger)
        for practice in (A1, A2, A3):  # hard: an overspend is refused
            run(ledger, "budget harden", ALLOCATOR, practice=practice, year=YEAR,
                on="2024-04-01")
        seeded = ledger.store.head()

        def progress(_settled: int) -> None:
            used.append(appending())
            if after_first is not None and len(used) == 1:
                after_first(ledger)

        report = apply_lines(ledger.service, lines, default_actor=ME, progress=progress,
                             **options)
        return (outcome_rows(report), report.stopped_early, log_rows(ledger, seeded),
                receipts(ledger, report)), used


def both(tmp_path: Path, lines: list[str], monkeypatch: pytest.MonkeyPatch,
         **options: Any) -> tuple[Results, Results]:
    piped, used = applied(str(tmp_path / "piped.db"), lines, pipeline=True,
                          monkeypatch=monkeypatch, **options)
    assert any(used), "no batch was appended by a second process"
    alone, used = applied(str(tmp_path / "alone.db"), lines, pipeline=False,
                          monkeypatch=monkeypatch, **options)
    assert not any(used)
    return piped, alone


def test_every_kind_of_line_gets_the_same_outcome_events_and_receipts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    piped, alone = both(tmp_path, mixed_lines(list(KINDS) * 3), monkeypatch, batch_size=5)
    assert piped == alone
    assert {row[3] for row in piped[0]} == {"applied", "already applied", "refused"}


def test_memberships_budgets_and_refs_recorded_by_a_batch_still_appending_are_known(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each line reads what the line before it recorded, one batch earlier."""
    lines = [
        line("consortium join", "j-2", "consortium:16C", consortium="16C", practice=A2,
             on="2024-04-02"),
        line("budget allocate", "y-1", ALLOCATOR, practice=A3, year="2025-26",
             on="2025-04-01", element={"acute": "50"}),
        commit(1, practice=A2, actor=f"practice:{A2}"),
        line("spend commit", "c-2", f"practice:{A3}", practice=A3, year="2025-26",
             element="acute", ref="R-00002", amount="60", provider="RTR",
             service="Hip replacement", on="2025-05-01"),
        commit(3, ref="R-00001", actor=f"practice:{A2}", practice=A2),  # the ref is taken
        commit(1, practice=A2, actor=f"practice:{A2}"),  # already applied
        line("spend vary", "v-1", f"practice:{A2}", ref="R-00001", amount="12.00",
             on="2024-06-02"),
        line("consortium leave", "l-2", "consortium:16C", consortium="16C", practice=A2,
             on="2024-06-03"),
        commit(4, practice=A2, actor=f"practice:{A2}", amount="20000"),
    ]
    piped, alone = both(tmp_path, lines, monkeypatch, batch_size=1)
    assert piped == alone
    assert [row[3] for row in piped[0]].count("applied") >= 5


def test_an_aggregate_the_cache_let_go_is_read_once_the_batches_before_are_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    practices = [A1, A2, A3]
    lines = [commit(n, practice=practices[n % 3], actor=f"practice:{practices[n % 3]}",
                    amount="900") for n in range(1, 60)]
    piped, alone = both(tmp_path, lines, monkeypatch, batch_size=2, cache=1)
    assert piped == alone
    assert any(row[3] == "refused" for row in piped[0])  # the budgets ran out


def test_another_writers_append_between_two_batches_voids_the_later_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The practice is closed just before the appending process's second batch: that batch
    and those after it were decided with it open, so they are run again against it, just
    as when it closes between the first and the second batch run one by one."""
    lines = [line("spend commit", f"c-{n}", ME, practice=A1, year=YEAR, element="acute",
                  ref=f"R-{n:05d}", amount="100", provider="RTR", service="Hip replacement",
                  on="2024-06-01" if n <= 5 else "2024-06-05") for n in range(1, 40)]
    path = str(tmp_path / "piped.db")
    original = EventStore.append_encoded
    appends: list[int] = []  # counted in the appending process

    def closed_before_the_second(store: EventStore, *args: Any, **kwargs: Any) -> int:
        appends.append(1)
        if len(appends) == 2:
            with bootstrap(path, clock=FakeClock()) as other:
                run(other, *CLOSE, **CLOSE_ARGS)
        return original(store, *args, **kwargs)

    monkeypatch.setattr(EventStore, "append_encoded", closed_before_the_second)
    piped, used = applied(path, lines, pipeline=True, monkeypatch=monkeypatch,
                          batch_size=5)
    monkeypatch.setattr(EventStore, "append_encoded", original)
    assert used[0]

    def close(ledger: Ledger) -> None:
        with bootstrap(ledger.store.target.location, clock=FakeClock()) as other:
            run(other, *CLOSE, **CLOSE_ARGS)

    alone, _ = applied(str(tmp_path / "alone.db"), lines, pipeline=False,
                       monkeypatch=monkeypatch, batch_size=5, after_first=close)
    assert piped == alone
    statuses = [row[3] for row in piped[0]]
    assert statuses[:5] == ["applied"] * 5
    assert statuses[5:] == ["refused"] * (len(lines) - 5)


def test_an_appending_process_killed_part_way_loses_and_repeats_no_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [commit(n, amount="1") for n in range(1, 200)]

    def kill_it(_ledger: Ledger) -> None:
        for process in multiprocessing.active_children():
            if process.name == appender.PROCESS_NAME:
                os.kill(process.pid or 0, signal.SIGKILL)
                process.join()

    path = str(tmp_path / "killed.db")
    (rows, _, log, kept), used = applied(path, lines, pipeline=True, monkeypatch=monkeypatch,
                                         batch_size=10, after_first=kill_it)
    assert used[0]
    assert not used[-1]
    assert {row[3] for row in rows} == {"applied"}
    assert len(rows) == len(lines)
    assert len(kept) == len(lines)
    commands = [json.loads(state)["command_id"] for *_, state in log]
    assert sorted(commands) == sorted(f"c-{n}" for n in range(1, 200))  # each once


def test_a_batch_committed_by_an_appending_process_that_died_before_saying_so_is_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process commits the second batch and dies before answering: that batch's
    lines are applied by this run, and said so (the store holds its very events), as
    every line gets the outcome it gets when run the ordinary way."""
    answered = tmp_path / "answered"  # written by the appending process

    def dies_before_the_second(conn: Any, answer: Any) -> bool:
        with answered.open("a") as file:
            file.write("1")
        if answered.read_text() == "11":
            os._exit(1)
        return original(conn, answer)

    original = appender._answer
    lines = [*(commit(n, amount="1", command_id=f"d-{n}", ref=f"D-{n:05d}")
               for n in range(1, 11)), *mixed_lines(list(KINDS) * 3)]
    with monkeypatch.context() as patch:
        patch.setattr(appender, "_answer", dies_before_the_second)
        piped, used = applied(str(tmp_path / "piped.db"), lines, pipeline=True,
                              monkeypatch=monkeypatch, batch_size=5)
    assert answered.read_text() == "11"
    assert not used[-1]
    alone, _ = applied(str(tmp_path / "alone.db"), lines, pipeline=False,
                       monkeypatch=monkeypatch, batch_size=5)
    assert piped == alone
    assert [row[3] for row in piped[0][5:10]] == ["applied"] * 5


def test_a_failed_append_runs_the_rest_the_ordinary_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tried = tmp_path / "tried"  # written by the appending process

    def failing(*_args: Any, **_kwargs: Any) -> int:
        tried.touch()
        raise OSError("disk I/O error")

    lines = [commit(n, amount="1") for n in range(1, 50)]
    with monkeypatch.context() as patch:
        patch.setattr(EventStore, "append_encoded", failing)
        piped, _ = applied(str(tmp_path / "piped.db"), lines, pipeline=True,
                           monkeypatch=monkeypatch, batch_size=10)
    assert tried.exists()
    alone, _ = applied(str(tmp_path / "alone.db"), lines, pipeline=False,
                       monkeypatch=monkeypatch, batch_size=10)
    assert piped == alone
    assert {row[3] for row in piped[0]} == {"applied"}


INTERRUPTED = [commit(n, amount="1") for n in range(1, 300)]


def stopped_by_ctrl_c(path: str, monkeypatch: pytest.MonkeyPatch,
                      patch: Callable[[pytest.MonkeyPatch], None] = lambda _: None,
                      on_settled: Callable[[list[int]], None] = lambda _: None) -> list[int]:
    """INTERRUPTED applied in batches of 10 to a new seeded ledger at `path` until Ctrl-C
    stops the run, sent by what `patch` patches (undone once the run stopped) or by
    `on_settled` (told, as each batch is, how many lines each batch settled): checks
    that the run said done exactly the lines committed (their receipts are in the
    store, a rerun answers "already applied" for those and applies the rest) and left no
    process behind; how many lines each batch settled."""
    settled: list[int] = []

    def progress(count: int) -> None:
        settled.append(count)
        on_settled(settled)

    ids = [f"c-{n}" for n in range(1, len(INTERRUPTED) + 1)]
    with bootstrap(path, clock=FakeClock()) as ledger:
        seed(ledger)
        with monkeypatch.context() as patched:
            patch(patched)
            with pytest.raises(KeyboardInterrupt):
                apply_lines(ledger.service, INTERRUPTED, default_actor=ME, batch_size=10,
                            progress=progress)
        assert not multiprocessing.active_children()
        assert len(ledger.store.receipts(ids)) == sum(settled)
        report = apply_lines(ledger.service, INTERRUPTED, default_actor=ME, batch_size=10)
    assert report.already_applied == sum(settled)
    assert report.applied == len(INTERRUPTED) - sum(settled)
    return settled


def ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_part_way_reports_every_line_committed_and_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def at_the_second(settled: list[int]) -> None:
        if len(settled) == 2:
            ctrl_c()

    stopped_by_ctrl_c(str(tmp_path / "l.db"), monkeypatch, on_settled=at_the_second)


@pytest.mark.timeout(60)
def test_a_second_ctrl_c_while_the_batches_being_appended_settle_still_reports_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second Ctrl-C stops the wait for the batches the appending process still
    commits after the first: it commits them all the same, and they are told."""
    waits: list[bool] = []
    first: list[int] = []
    original = appender.Appender.wait

    def interrupted_again(self: appender.Appender) -> None:
        waits.append(bool(first))
        if len(first) == 1 and waits.count(True) == 1:
            ctrl_c()
        original(self)

    def at_the_second(settled: list[int]) -> None:
        if len(settled) == 2:
            first.append(1)
            ctrl_c()

    settled = stopped_by_ctrl_c(
        str(tmp_path / "l.db"), monkeypatch,
        lambda patch: patch.setattr(appender.Appender, "wait", interrupted_again),
        on_settled=at_the_second)
    assert waits.count(True) == 1, "the second Ctrl-C came while no batch was settling"
    assert len(settled) > 2  # told after the second Ctrl-C


def test_only_a_sqlite_ledger_has_its_batches_appended_by_a_second_process(
    ledger: Ledger
) -> None:
    """A PostgreSQL server takes writes from many connections at once; its client
    library's pool runs threads, which a fork would not copy."""
    seed(ledger)
    seen: list[bool] = []
    report = apply_lines(ledger.service, [commit(n) for n in range(1, 40)], batch_size=5,
                         progress=lambda _: seen.append(appending()))
    assert report.applied == 39
    assert any(seen) == (ledger.store.target.kind == "sqlite")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("at", [1, 2, 3])
def test_ctrl_c_just_as_a_batch_is_known_committed_reports_it_and_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, at: int
) -> None:
    """Ctrl-C arriving the moment the appending process has said a batch is committed
    (its answer read, the batch not yet reported): the run still ends, at once, having
    told that batch and every other one committed, and no other."""
    original = appender.Appender.receive
    answers: list[int] = []

    def interrupted_after(self: appender.Appender) -> int:
        head = original(self)
        answers.append(head)
        if len(answers) == at:
            ctrl_c()
        return head

    stopped_by_ctrl_c(
        str(tmp_path / "l.db"), monkeypatch,
        lambda patch: patch.setattr(appender.Appender, "receive", interrupted_after))
    assert len(answers) >= at


def test_the_processes_working_for_the_deciding_one_run_at_a_lower_priority(
    sqlite_path: str
) -> None:
    """The deciding process is the one the others wait on: on a busy core it goes first."""
    own = os.getpriority(os.PRIO_PROCESS, 0)
    seen: list[list[int]] = []
    with bootstrap(sqlite_path, clock=FakeClock()) as ledger:
        seed(ledger)
        apply_lines(ledger.service, [commit(n) for n in range(1, 40)], batch_size=5,
                    progress=lambda _: seen.append([os.getpriority(os.PRIO_PROCESS, p.pid or 0)
                                                    for p in multiprocessing.active_children()]))
    assert len(seen[0]) == 2  # the parse process and the appending process
    assert all(p == own + appender.BACKGROUND_NICENESS for p in seen[0])


@pytest.mark.timeout(120)
def test_a_read_failing_while_deciding_runs_the_rest_the_ordinary_way_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read refused while a batch is decided (the ledger busy a moment) runs that batch
    and the rest the ordinary way, at once: the appending process, waiting for its next
    batch, ends as soon as it is told there is none (the parse process, forked after
    it, keeps no end of the pipe between them open)."""
    from eventsourcing.persistence import OperationalError  # noqa: PLC0415

    from ledger.application import pipeline  # noqa: PLC0415

    original = pipeline.Pipeline.receipts
    calls: list[int] = []

    def busy_once(self: pipeline.Pipeline[Any], command_ids: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise OperationalError("database is locked")
        return original(self, command_ids)

    monkeypatch.setattr(pipeline.Pipeline, "receipts", busy_once)
    lines = [commit(n, amount="1") for n in range(1, 300)]
    started = time.monotonic()
    piped, used = applied(str(tmp_path / "piped.db"), lines, pipeline=True,
                          monkeypatch=monkeypatch, batch_size=10)
    took = time.monotonic() - started
    monkeypatch.setattr(pipeline.Pipeline, "receipts", original)
    assert used[0]
    assert not used[-1]
    alone, _ = applied(str(tmp_path / "alone.db"), lines, pipeline=False,
                       monkeypatch=monkeypatch, batch_size=10)
    assert piped == alone
    assert took < 30, f"{took:.0f} s"


def test_the_next_batch_is_taken_while_the_one_before_is_still_being_appended(
    sqlite_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch far larger than the pipe holds is taken by the appending process while it
    still appends the one before, so the deciding process hands it over and goes on to
    decide the next rather than wait for that append to end; both are then appended."""
    release = tmp_path / "release"  # until it exists, the appending process's first append waits
    original = EventStore.append_encoded

    def held(store: EventStore, *args: Any, **kwargs: Any) -> int:
        while not release.exists():
            time.sleep(0.01)
        return original(store, *args, **kwargs)

    count = 20_000  # some 2.5 MB pickled: several times what a pipe or socket buffers
    large = Columns(command_ids=[f"large-{n}" for n in range(count)],
                    fingerprints=[f"v3:{n:064x}" for n in range(count)],
                    answers=[b'{"summary":"' + b"x" * 60 + b'"}'] * count)
    monkeypatch.setattr(EventStore, "append_encoded", held)
    with bootstrap(sqlite_path, clock=FakeClock()) as ledger:
        seed(ledger)
        head = ledger.store.head()
        started = appender.Appender.start(ledger.store, head)
        assert started is not None
        try:
            started.send(Columns())
            handing_over = threading.Thread(target=started.send, args=(large,), daemon=True)
            handing_over.start()
            handing_over.join(timeout=30)
            taken_while_held = not handing_over.is_alive()
        finally:
            release.touch()
        handing_over.join()
        assert taken_while_held
        assert [started.receive(), started.receive()] == [head, head]
        started.close()
        assert ledger.store.receipts(["large-0", f"large-{count - 1}"]).keys() == {
            "large-0", f"large-{count - 1}"}


def test_an_appending_process_whose_parent_stopped_listening_ends_without_a_traceback(
    sqlite_path: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """The run stopped part way (a second Ctrl-C while the last batches are committed):
    the process commits the batch it has, finds no one to tell, and ends quietly."""
    with bootstrap(sqlite_path, clock=FakeClock()) as ledger:
        seed(ledger)
        started = appender.Appender.start(ledger.store, ledger.store.head())
        assert started is not None
        started.send(Columns())
        started.close()
    assert "Traceback" not in capfd.readouterr().err


def test_an_appending_process_that_cannot_be_started_leaves_the_batches_run_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A system out of processes (fork refused, EAGAIN) runs every batch the ordinary way,
    as the parse process's lines are then parsed here."""
    started = multiprocessing.process.BaseProcess.start

    def refused(process: multiprocessing.process.BaseProcess) -> None:
        if process.name == appender.PROCESS_NAME:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        started(process)

    lines = [commit(n, amount="1") for n in range(1, 50)]
    with monkeypatch.context() as patch:
        patch.setattr(multiprocessing.process.BaseProcess, "start", refused)
        piped, used = applied(str(tmp_path / "piped.db"), lines, pipeline=True,
                              monkeypatch=monkeypatch, batch_size=10)
    assert not any(used)
    alone, _ = applied(str(tmp_path / "alone.db"), lines, pipeline=False,
                       monkeypatch=monkeypatch, batch_size=10)
    assert piped == alone
    assert {row[3] for row in piped[0]} == {"applied"}
