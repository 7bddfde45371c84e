"""National-scale benchmark: a ledger of millions of events; its load, rebuild, reads, audit.

    python bench/national.py                                   # 10,000,000 events, PostgreSQL
    python bench/national.py --events 1000000 --keep           # resume or reuse a ledger
    python bench/national.py --store sqlite --events 1000000   # the same on a SQLite file

The ledger is England-sized: 6,500 practices in 100 consortia under 42 allocators,
7 elements, a year of commitments with variations, settlements and cancellations,
delegations, opt-outs and opt-ins, risk pools with draws. Every event is a real,
validated ledger event (built by the event classes, encoded by the store's
mapper) appended straight to the events table in bulk (COPY on PostgreSQL,
executemany on SQLite), one transaction per 100,000 events, with the catalogue
of event kinds the ledger checks before it reads; then sealed into the Merkle
log by the ledger's own sealer, so `verify` checks all of it.

`--keep` reuses the ledger (the schema or file) of an earlier run: the load
resumes from the events already stored (chunks are deterministic from their
first position), sealing resumes from its head, and `--no-rebuild` skips the
rebuild when the projections are already at the head. `--passes verify` (or
`rebuild`) runs only that pass after the read baselines, `--baseline-events N`
takes the baselines over the log's first N events, and `--deadline HH:MM` (UTC)
stops a rebuild that runs past it and reports how far it got.

Figures, each beside a baseline measured in the same run, with the ratio, and
the load average (`uptime`) when it was taken:

  load            events/s appended (generate + validate + encode + write),
                  beside the bulk write alone
  seal            events/s sealed by the follower sealer
  bare read       every row of the events table by a bare SELECT, pages of 10,000
                  (binary tuples on PostgreSQL): the baseline of every read
  raw read        every notification of the log through the store, decoding nothing
  verify          `ledger verify` events/s (target >= 200,000/s)
  rebuild         every projection from position zero, events/s
  holders         `holders --practice P --as-of D` p50/p99 (target p99 < 5 ms),
                  beside a bare SELECT of one event by position
  consortium      `position --by consortium`, median ms (target < 200 ms)
  allocator       `position --by allocator`, median ms, both beside a bare
                  SELECT of the year's position rows they sum
  feed            one page of the feed at the head (`ledger events --after HEAD-100`),
                  beside a bare SELECT of the same 100 rows

Not a test: run by hand; nothing here is timed in CI.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from eventsourcing.persistence import StoredEvent

from ledger.auditlog.seal import seal
from ledger.auditlog.tables import transaction
from ledger.auditlog.verify import verify_store
from ledger.bootstrap import bootstrap
from ledger.domain import events as ev
from ledger.domain.events import (
    LedgerEvent,
    budget_stream,
    consortium_stream,
    pool_stream,
    practice_stream,
)
from ledger.domain.values import ELEMENTS, Element
from ledger.store import catalogue
from ledger.store.eventstore import EventStore
from ledger.store.mapper import stored_version
from projections.materialise import Materialiser
from projections.queries import Reads

YEAR = "2024-25"
FIRST = date(2024, 4, 1)
CHUNK = 100_000
SEAL_CHUNK = 10_000
ALLOCATORS = [f"Q{50 + i}" for i in range(42)]
EPOCH = datetime(2024, 4, 1, 8, 0, tzinfo=UTC)
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test?schema=bench_national"
DEFAULT_SQLITE = "/tmp/ledger-national-bench.db"
T = TypeVar("T")


def load_average() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def say(line: str) -> None:
    print(f"{line}   [{load_average()}]", flush=True)


# --- the ledger's shape --------------------------------------------------------------


class Shape:
    """Who exists: practices, consortia, allocators, and each practice's consortium."""

    def __init__(self, practices: int, consortia: int) -> None:
        self.practices = [f"A{80000 + i:05d}" for i in range(practices)]
        self.consortia = [f"{i:02d}C" for i in range(consortia)]
        self.member = {p: self.consortia[i % consortia] for i, p in enumerate(self.practices)}
        self.allocator = {p: ALLOCATORS[i % len(ALLOCATORS)]
                          for i, p in enumerate(self.practices)}


class Writer:
    """Builds real events with consecutive positions; `chunk` hands them over in order."""

    def __init__(self, versions: dict[uuid.UUID, int], position: int) -> None:
        self.versions = versions
        self.position = position
        self.pending: list[LedgerEvent] = []

    def add(self, cls: type[LedgerEvent], stream: uuid.UUID, on: date, actor: str,
            **fields: Any) -> None:
        version = self.versions.get(stream, 0) + 1
        self.versions[stream] = version
        self.position += 1
        self.pending.append(cls(
            originator_id=stream, originator_version=version,
            recorded_at=EPOCH + timedelta(seconds=3 * self.position), effective_on=on,
            actor=actor, command_id=f"n-{self.position}", **fields))


def setup_events(shape: Shape, w: Writer, rng: random.Random) -> None:
    for code in shape.consortia:
        w.add(ev.ConsortiumFormed, consortium_stream(code), FIRST, f"allocator:{ALLOCATORS[0]}",
              consortium=code, name=f"Consortium {code}", accountable_officer="Dr A")
        w.add(ev.RiskPoolAgreed, consortium_stream(code), FIRST, f"consortium:{code}",
              consortium=code, year=YEAR, top_slice_basis_points=100)
    for p in shape.practices:
        allocator = shape.allocator[p]
        w.add(ev.PracticeRegistered, practice_stream(p), FIRST, f"allocator:{allocator}",
              practice=p, name=f"Surgery {p}", list_size=rng.randrange(2000, 20000),
              allocator=allocator)
        c = shape.member[p]
        w.add(ev.PracticeJoined, consortium_stream(c), FIRST, f"consortium:{c}",
              consortium=c, practice=p)
        w.add(ev.BudgetAllocated, budget_stream(p, YEAR), FIRST, f"allocator:{allocator}",
              practice=p, year=YEAR, allocator=allocator,
              amounts_pence={e: rng.randrange(10**8, 10**9) for e in ELEMENTS})


def chunk_events(shape: Shape, w: Writer, rng: random.Random, count: int) -> None:
    """`count` events of a year's business; commitments change only within their chunk."""
    practices = shape.practices
    refs: list[tuple[str, str, int]] = []
    end = w.position + count
    while w.position < end:
        p = rng.choice(practices)
        on = FIRST + timedelta(days=rng.randrange(365))
        b = {"practice": p, "year": YEAR}
        actor = f"practice:{p}"
        stream = budget_stream(p, YEAR)
        roll = rng.random()
        if roll < 0.01:
            w.add(ev.HoldingDelegated, stream, on, actor, elements=(rng.choice(ELEMENTS),),
                  holder=f"consortium:{shape.member[p]}", **b)
        elif roll < 0.015:
            w.add(ev.DelegationRevoked, stream, on, actor, elements=(rng.choice(ELEMENTS),), **b)
        elif roll < 0.017:
            w.add(ev.OptedOut, stream, on, actor, reason="merger",
                  holder=f"practice:{rng.choice(practices)}", **b)
        elif roll < 0.019:
            w.add(ev.OptedIn, stream, on, actor, **b)
        elif roll < 0.02:
            w.add(ev.MadeHard, stream, on, f"allocator:{shape.allocator[p]}", **b)
        elif roll < 0.5 or not refs or end - w.position < 2:
            ref = f"R-{w.position + 1:09d}"
            amount = rng.randrange(10_000, 10_000_000)
            w.add(ev.SpendCommitted, stream, on, actor, ref=ref,
                  element=Element(rng.choice(ELEMENTS)), amount_pence=amount, provider="RTR",
                  service="Hip replacement", qs_codes=("QS3",) if roll < 0.2 else (), **b)
            refs.append((ref, p, amount))
        else:
            i = rng.randrange(len(refs))
            ref, owner, amount = refs[i]
            b = {"practice": owner, "year": YEAR}
            actor = f"practice:{owner}"
            stream = budget_stream(owner, YEAR)
            if roll < 0.63:
                w.add(ev.CommitmentVaried, stream, on, actor, ref=ref,
                      amount_pence=amount + 1000, **b)
                refs[i] = (ref, owner, amount + 1000)
                continue
            if roll < 0.64:  # the consortium's risk pool covers part of it: two streams
                c = shape.member[owner]
                draw = max(amount // 10, 1)
                w.add(ev.PoolDrawRecorded, pool_stream(c, YEAR), on, f"consortium:{c}",
                      consortium=c, ref=ref, amount_pence=draw, **b)
                w.add(ev.RiskPoolDrawn, stream, on, actor, ref=ref, consortium=c,
                      amount_pence=draw, **b)
                continue
            if roll < 0.9:
                w.add(ev.CommitmentSettled, stream, on, actor, ref=ref, amount_pence=amount,
                      final=True, **b)
            else:
                w.add(ev.CommitmentCancelled, stream, on, actor, ref=ref, **b)
            refs[i] = refs[-1]
            refs.pop()


# --- bulk writing ----------------------------------------------------------------------


def stored_versions(store: EventStore) -> dict[uuid.UUID, int]:
    dialect = store.recorder.dialect
    rows = store.recorder.select_rows(
        dialect.sql("SELECT originator_id, MAX(originator_version) FROM {events} "
                    "GROUP BY originator_id"), ())
    return {r[0] if isinstance(r[0], uuid.UUID) else uuid.UUID(str(r[0])): int(r[1])
            for r in rows}


def write(store: EventStore, stored: list[StoredEvent], first: int) -> float:
    """Append encoded events at positions first, first + 1, ... in one transaction, with
    their kinds in the catalogue; returns the seconds spent in the database."""
    dialect = store.recorder.dialect
    kinds = [(first + i, s.topic, stored_version(s.state) or 1) for i, s in enumerate(stored)]
    started = time.perf_counter()
    with transaction(store, commit=True) as curs:
        if dialect.kind == "postgres":
            with curs.copy(  # type: ignore[attr-defined]
                f"COPY {dialect.events} (notification_id, originator_id, originator_version, "
                "topic, state) FROM STDIN"
            ) as copy:
                for i, s in enumerate(stored):
                    copy.write_row((first + i, s.originator_id, s.originator_version,
                                    s.topic, s.state))
        else:
            curs.executemany(
                f"INSERT INTO {dialect.events} ({dialect.position}, originator_id, "
                "originator_version, topic, state) VALUES (?, ?, ?, ?, ?)",
                [(first + i, uuid.UUID(str(s.originator_id)).hex, s.originator_version,
                  s.topic, s.state) for i, s in enumerate(stored)])
        found = store.recorder.select_rows(
            dialect.sql("SELECT topic, version, first_position FROM {event_kinds}"), ())
        known: set[tuple[str, int | None]] = {(str(t), int(v)) for t, v, _ in found}
        catalogue.record(curs, dialect, kinds, known)
        if dialect.kind == "postgres":
            curs.execute("SELECT setval(pg_get_serial_sequence(%s, 'notification_id'), %s)",
                         (dialect.events, first + len(stored) - 1))
    return time.perf_counter() - started


def load(store: EventStore, shape: Shape, total: int, seed: int) -> None:
    """Generate chunk after chunk while a writer thread appends the one before it.

    Encoding and validation happen here, in order; the thread only runs the COPY
    (the database work overlaps the generating of the next chunk).
    """
    head = store.head()
    if head >= total:
        say(f"load      {head:,} events already stored: nothing to load")
        return
    versions = stored_versions(store) if head else {}
    started = time.perf_counter()
    in_db = 0.0
    loaded = 0
    with ThreadPoolExecutor(1) as writer:
        pending: Future[float] | None = None
        while head < total:
            w = Writer(versions, head)
            rng = random.Random(seed * 1_000_003 + head)
            if head == 0:
                setup_events(shape, w, rng)
            else:
                chunk_events(shape, w, rng, min(CHUNK, total - head))
            stored = [store.mapper.to_stored_event(e) for e in w.pending]
            if pending is not None:
                in_db += pending.result()
                elapsed = time.perf_counter() - started
                print(f"  loaded {head:>12,} events ({loaded / elapsed:,.0f}/s)   "
                      f"[{load_average()}]", flush=True)
            pending = writer.submit(write, store, stored, head + 1)
            loaded += len(stored)
            head = w.position
        if pending is not None:
            in_db += pending.result()
    elapsed = time.perf_counter() - started
    say(f"load      {loaded:>12,} events in {elapsed:8.1f} s {loaded / elapsed:>10,.0f} events/s; "
        f"bulk write alone {loaded / in_db:,.0f} events/s (overlapping the generating)")


# --- measuring -------------------------------------------------------------------------


def raw_read(store: EventStore, upto: int) -> float:
    """Events/s reading the notifications up to position `upto` through the store, pages
    of 10,000."""
    started = time.perf_counter()
    after, read = 0, 0
    while after < upto:
        batch = store.notifications(after, 10_000)
        if not batch:
            break
        read += len(batch)
        after = batch[-1].id
    return read / (time.perf_counter() - started)


def bare_read(store: EventStore, upto: int) -> float:
    """Rows/s of the same pages (up to position `upto`) by a bare SELECT on a cursor of
    the driver (binary on PostgreSQL), as tuples: no notification objects; the baseline
    of the reads."""
    dialect = store.recorder.dialect
    query = dialect.sql("SELECT {position}, originator_id, originator_version, topic, state "
                        "FROM {events} WHERE {position} > ? ORDER BY {position} LIMIT 10000")
    started = time.perf_counter()
    after, read = 0, 0
    with ExitStack() as stack:
        if dialect.kind == "postgres":
            from psycopg.rows import tuple_row  # noqa: PLC0415

            datastore: Any = store.app.recorder.datastore  # type: ignore[attr-defined]
            conn = stack.enter_context(datastore.get_connection())
            curs = stack.enter_context(conn.cursor(binary=True, row_factory=tuple_row))
        else:
            curs = stack.enter_context(cursor(store))
        while after < upto:
            curs.execute(query, (after,))
            rows = curs.fetchall()
            if not rows:
                break
            read += len(rows)
            after = rows[-1][0]
    return read / (time.perf_counter() - started)


class DeadlineError(Exception):
    """The rebuild ran past the time given (`--deadline`)."""


def timed(work: Callable[[], Any], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        out.append((time.perf_counter() - started) * 1000)
    return out


def p99(timings: list[float]) -> float:
    ordered = sorted(timings)
    return ordered[max(int(len(ordered) * 0.99) - 1, 0)]


@contextmanager
def cursor(store: EventStore) -> Iterator[Any]:
    with transaction(store, commit=False) as curs:
        yield curs


def reads(store: EventStore, shape: Shape, queries: int) -> None:
    dialect = store.recorder.dialect
    p = "%s" if dialect.kind == "postgres" else "?"
    head = store.head()
    rng = random.Random(1)
    views = Reads(store, today=date(2024, 12, 1))
    views.holders(practice=shape.practices[0], as_of=FIRST)  # catch up once, outside the clock

    asked = [(rng.choice(shape.practices), FIRST + timedelta(days=rng.randrange(365)))
             for _ in range(queries)]
    holder_ms = []
    for practice, day in asked:
        started = time.perf_counter()
        found = views.holders(practice=practice, as_of=day)
        holder_ms.append((time.perf_counter() - started) * 1000)
        assert len(found) == len(ELEMENTS), found
    positions = [rng.randrange(1, head + 1) for _ in range(queries)]
    bare_ms = []
    with cursor(store) as curs:
        one = f"SELECT state FROM {dialect.events} WHERE {dialect.position} = {p}"
        for position in positions:
            started = time.perf_counter()
            curs.execute(one, (position,))
            curs.fetchall()
            bare_ms.append((time.perf_counter() - started) * 1000)
    say(f"holders   --practice --as-of p50/p99 {statistics.median(holder_ms):7.2f} / "
        f"{p99(holder_ms):.2f} ms (target p99 < 5 ms: "
        f"{'met' if p99(holder_ms) < 5 else 'MISSED'}); bare SELECT of one event p99 "
        f"{p99(bare_ms):.3f} ms: {p99(holder_ms) / p99(bare_ms):.1f}x")

    def year_rows() -> None:
        with cursor(store) as curs:
            curs.execute(f"SELECT * FROM {store_table(store, 'position_totals')} "
                         f"WHERE year = {p}", (YEAR,))
            curs.fetchall()

    bare = statistics.median(timed(year_rows, 5))
    for by in ("consortium", "allocator"):
        runs = timed(lambda by=by: views.position(by=by), 5)  # type: ignore[misc]
        groups = views.position(by=by)
        median = statistics.median(runs)
        target = (f" (target < 200 ms: {'met' if median < 200 else 'MISSED'})"
                  if by == "consortium" else "")
        say(f"position  --by {by:<10} {len(groups):>4} rows, median {median:8.1f} ms{target}; "
            f"bare SELECT of the year's {len(shape.practices) * len(ELEMENTS):,} position rows "
            f"{bare:.1f} ms: {median / bare:.1f}x")


def feed_page(store: EventStore, base: float) -> None:
    """One page of the feed at the head (the log's last 100 events), beside a bare SELECT."""
    dialect = store.recorder.dialect
    p = "%s" if dialect.kind == "postgres" else "?"
    views = Reads(store, today=date(2024, 12, 1))
    after = max(store.head() - 100, 0)
    page_ms = timed(lambda: list(views.events(after)), 5)
    page = list(views.events(after))

    def bare_page() -> None:
        with cursor(store) as curs:
            curs.execute(f"SELECT * FROM {dialect.events} WHERE {dialect.position} > {p} "
                         f"ORDER BY {dialect.position} LIMIT 100", (after,))
            curs.fetchall()

    bare_feed = statistics.median(timed(bare_page, 5))
    feed = statistics.median(page_ms)
    say(f"feed      --after HEAD-100: {len(page)} events in {feed:.1f} ms; bare SELECT of the "
        f"same rows {bare_feed:.2f} ms: {feed / bare_feed:.1f}x "
        f"(raw read of the log at {base:,.0f}/s reads 100 in {100 / base * 1000:.2f} ms)")


def retried(work: Callable[[], T]) -> T:
    """`work` again after the store lost its connection (resumable work only).

    On a busy machine PostgreSQL ends a session its limit finds idle in a transaction;
    the next use of that pooled connection fails, and a new one succeeds.
    """
    from eventsourcing.persistence import InternalError, OperationalError  # noqa: PLC0415

    for _ in range(20):
        try:
            return work()
        except (InternalError, OperationalError) as error:
            say(f"          retrying after: {str(error).splitlines()[0]}")
    return work()


def store_table(store: EventStore, name: str) -> str:
    return Materialiser(store).db.name(name)


def main(argv: Any = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--db", help=f"default {DEFAULT_PG} or {DEFAULT_SQLITE}")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--practices", type=int, default=6_500)
    parser.add_argument("--consortia", type=int, default=100)
    parser.add_argument("--keep", action="store_true",
                        help="reuse (and extend) the ledger of an earlier run")
    parser.add_argument("--no-rebuild", action="store_true",
                        help="skip the rebuild (catch the projections up instead)")
    parser.add_argument("--load-only", action="store_true")
    parser.add_argument("--passes", default="verify,rebuild",
                        help="after the read baselines: verify, rebuild (then the reads)")
    parser.add_argument("--baseline-events", type=int,
                        help="read only the log's first N events for the read baselines")
    parser.add_argument("--deadline", help="HH:MM UTC: stop the rebuild then, report the "
                        "events it reached, and skip the reads that need it")
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    db = args.db or (DEFAULT_PG if args.store == "postgres" else DEFAULT_SQLITE)
    if not args.keep:
        drop(db)
    ledger = bootstrap(db)
    store = ledger.store
    shape = Shape(args.practices, args.consortia)
    say(f"ledger    {db}: {store.head():,} events stored, {args.events:,} asked; "
        f"{args.practices:,} practices, {args.consortia} consortia")
    load(store, shape, args.events, args.seed)
    started = time.perf_counter()
    # Small chunks: each is one transaction that hashes between its reads and writes,
    # and PostgreSQL ends a transaction idle for longer than the store's limit (5 s).
    sealed = retried(lambda: seal(store, chunk=SEAL_CHUNK).sealed)
    if sealed:
        elapsed = time.perf_counter() - started
        say(f"seal      {sealed:>12,} events in {elapsed:8.1f} s "
            f"{sealed / elapsed:>10,.0f} events/s")
    if args.load_only:
        ledger.close()
        return
    passes = set(args.passes.split(","))
    head = store.head()
    # Taken in turns, twice each, the better of each kept: the first pass also warms
    # the caches, and on a shared machine a pass can lose the processor for a while.
    upto = min(head, args.baseline_events or head)
    raws, bares = [], []
    for _ in range(2):
        raws.append(retried(lambda: raw_read(store, upto)))
        bares.append(retried(lambda: bare_read(store, upto)))
    base, bare = max(raws), max(bares)
    say(f"bare read {upto:>12,} rows (baseline)        {bare:>10,.0f} rows/s   "
        f"(a bare SELECT of the events, pages of 10,000; passes "
        f"{', '.join(f'{r:,.0f}' for r in bares)})")
    say(f"raw read  {upto:>12,} events (baseline)      {base:>10,.0f} events/s "
        f"(through the store, pages of 10,000; passes {', '.join(f'{r:,.0f}' for r in raws)}); "
        f"{base / bare:.2f}x bare read")
    if sealed:
        say(f"          seal above: {sealed / elapsed / bare:.2f}x bare read")

    if "verify" in passes:
        report = retried(lambda: verify_store(store))
        assert report.ok, report.damage
        rate = report.events_checked / report.seconds
        say(f"verify    {report.events_checked:>12,} events in {report.seconds:8.1f} s "
            f"{rate:>10,.0f} events/s (target >= 200,000: "
            f"{'met' if rate >= 200_000 else 'MISSED'}); {rate / base:.2f}x raw read, "
            f"{rate / bare:.2f}x bare read")
    feed_page(store, base)
    if "rebuild" not in passes:
        ledger.close()
        return

    views = Materialiser(store)
    if not args.no_rebuild:
        stop = deadline(args.deadline)
        done = [0]
        next_say = [250_000]
        started = time.perf_counter()

        def progress(count: int) -> None:
            done[0] += count
            if done[0] >= next_say[0]:
                next_say[0] += 250_000
                spent = time.perf_counter() - started
                print(f"  rebuilt {done[0]:>12,} events ({done[0] / spent:,.0f}/s)   "
                      f"[{load_average()}]", flush=True)
            if stop is not None and datetime.now(UTC) > stop:
                for child in multiprocessing.active_children():  # the rebuild's workers
                    child.terminate()
                raise DeadlineError

        try:
            views.rebuild(progress=progress)
        except DeadlineError:
            spent = time.perf_counter() - started
            say(f"rebuild   STOPPED at the deadline after {spent:8.1f} s: {done[0]:,} of "
                f"{head:,} events folded, {done[0] / spent:,.0f} events/s; "
                f"{done[0] / spent / base:.2f}x raw read; the reads need it: not measured")
            ledger.close()
            return
        elapsed = time.perf_counter() - started
        say(f"rebuild   {head:>12,} events in {elapsed:8.1f} s {head / elapsed:>10,.0f} events/s "
            f"(target >= 50,000); {head / elapsed / base:.2f}x raw read")
    else:
        started = time.perf_counter()
        caught = views.catch_up()
        say(f"catch-up  {caught:>12,} events in {time.perf_counter() - started:8.1f} s")
    reads(store, shape, args.queries)
    ledger.close()


def deadline(text: str | None) -> datetime | None:
    """Today's HH:MM in UTC (None when not given)."""
    if not text:
        return None
    hour, minute = (int(part) for part in text.split(":"))
    return datetime.now(UTC).replace(hour=hour, minute=minute, second=0, microsecond=0)


def drop(db: str) -> None:
    """Start from nothing: remove the SQLite file, or the PostgreSQL schema."""
    if db.startswith("postgres"):
        from urllib.parse import parse_qs, urlsplit  # noqa: PLC0415

        import psycopg  # noqa: PLC0415 - only for PostgreSQL

        parts = urlsplit(db)
        schema = parse_qs(parts.query).get("schema", [""])[0]
        if not schema:
            raise SystemExit("give the PostgreSQL URL a ?schema=NAME to run in")
        plain = parts._replace(query="").geturl()
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        return
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
