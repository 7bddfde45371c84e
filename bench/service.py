"""Service benchmark: `ledger serve` on loopback against direct calls, in one run.

    python bench/service.py                     # SQLite file in a temp dir
    python bench/service.py --store postgres    # PostgreSQL (own schema, dropped after)
    python bench/service.py --requests 2000 --events 300

Builds a ledger (practices in one consortium, allocated), starts the real
`ledger serve` on 127.0.0.1, and measures with 8 concurrent clients:

  holders   GET /holders?practice=P            requests/s, p50/p99 ms
  commit    POST /spend/commit (each its own Idempotency-Key)   requests/s, p50/p99 ms

each beside the same work done by direct calls in this process (JointReads.holders,
LedgerService.execute; 8 threads) as the baseline; and for one live consumer of
GET /events/live:

  feed      events/s streamed from position 0 (baseline: store.iter_events)
  delivery  commit-to-delivery latency, p50/p99 ms, one commit at a time: for commits
            through the service (commit answered -> message received) and for commits
            by another process (this one, writing to the store directly: committed ->
            message received), which reach the stream by LISTEN/NOTIFY on PostgreSQL
            and by polling every 50 ms on SQLite

Not a test: figures depend on the machine (and on what else runs on it).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import queue
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql
from write_path import serving  # bench/ is on the path when run as a script

from ledger.application.access import new_token
from ledger.application.commands import build_command
from ledger.application.service import Request
from ledger.bootstrap import bootstrap
from projections.joint_queries import JointReads

PG_BASE = "postgresql://postgres@127.0.0.1:5432/test"
ALLOCATOR = "allocator:Q71"
CLIENTS = 8
WRITERS = 16  # practices that commit, each with its own token


def practices(n: int) -> list[str]:
    return [f"B{i:05d}" for i in range(1, n + 1)]


def build(db: str, n: int) -> tuple[str, dict[str, str]]:
    """A ledger of `n` practices in consortium 16C, each allocated; returns the allocator's
    token and tokens of the first few practices (the ones that commit)."""
    with bootstrap(db) as ledger:
        requests = [Request(build_command("consortium form", {
            "consortium": "16C", "name": "Bench", "officer": "Dr B", "on": "2024-04-01"}),
            ALLOCATOR, "form")]
        for p in practices(n):
            requests += [
                Request(build_command("practice register", {
                    "practice": p, "name": f"Surgery {p}", "list_size": 5000,
                    "on": "2024-04-01"}), ALLOCATOR, f"reg-{p}"),
                Request(build_command("budget allocate", {
                    "practice": p, "year": "2024-25", "on": "2024-04-01",
                    "element": {"acute": "10000000", "community": "500000"}}),
                    ALLOCATOR, f"alloc-{p}"),
                Request(build_command("consortium join", {
                    "consortium": "16C", "practice": p, "on": "2024-04-01"}),
                    "consortium:16C", f"join-{p}"),
            ]
        for start in range(0, len(requests), 2000):
            ledger.service.execute_batch(requests[start:start + 2000])
        token = new_token()
        ledger.service.execute(build_command("token create", {
            "actor": ALLOCATOR, "token_id": token.token_id, "secret_sha256": token.digest,
            "bootstrap": True}), ALLOCATOR)
        writers: dict[str, str] = {}
        for p in practices(n)[:WRITERS]:
            one = new_token()
            ledger.service.execute(build_command("token create", {
                "actor": f"practice:{p}", "token_id": one.token_id,
                "secret_sha256": one.digest}), ALLOCATOR)
            writers[p] = one.secret
        JointReads(ledger.store, today=datetime.now(UTC).date()).holders()  # catch up once
        return token.secret, writers


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def concurrently(jobs: list[Callable[[], Any]]) -> tuple[float, list[float]]:
    """Run jobs on CLIENTS threads: (jobs per second, each job's latency in ms)."""
    latencies: list[float] = []
    lock = threading.Lock()

    def timed(job: Callable[[], Any]) -> None:
        start = time.perf_counter()
        job()
        took = (time.perf_counter() - start) * 1000
        with lock:
            latencies.append(took)

    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(timed, jobs))
    return len(jobs) / (time.perf_counter() - start), latencies


def line(label: str, rate: float, latencies: list[float], base: float | None = None) -> str:
    ratio = f"  ({rate / base:.2f} of direct)" if base else ""
    return (f"{label:<22} {rate:>9,.0f}/s   p50 {statistics.median(latencies):7.2f} ms"
            f"   p99 {percentile(latencies, 0.99):7.2f} ms{ratio}")


def commit_args(i: int, practice: str, tag: str) -> dict[str, Any]:
    return {"practice": practice, "year": "2024-25", "element": "acute",
            "ref": f"R-{tag}-{i:07d}", "amount": "1.00", "provider": "RTR",
            "service": "Bench", "on": "2024-07-01"}


def bench(db: str, n_practices: int, n_requests: int, n_events: int) -> None:
    secret, writers = build(db, n_practices)
    codes = practices(n_practices)
    committers = list(writers)
    rng = random.Random(7)
    headers = {"Authorization": f"Bearer {secret}"}
    local = threading.local()

    def client() -> httpx.Client:
        found: httpx.Client | None = getattr(local, "client", None)
        if found is None:
            found = httpx.Client(headers=headers, timeout=30)
            local.client = found
        return found

    with bootstrap(db) as ledger:
        reads_local = threading.local()

        def reads() -> JointReads:
            found: JointReads | None = getattr(reads_local, "reads", None)
            if found is None:
                found = JointReads(ledger.store, today=datetime.now(UTC).date())
                reads_local.reads = found
            return found

        picks = [rng.choice(codes) for _ in range(n_requests)]
        def direct_holders(p: str) -> None:
            reads().holders(practice=p)

        direct_read, direct_read_ms = concurrently(
            [functools.partial(direct_holders, p) for p in picks])
        service_lock = threading.Lock()

        def direct_commit(i: int) -> None:
            p = committers[i % len(committers)]
            command = build_command("spend commit", commit_args(i, p, "D"))
            with service_lock:  # one LedgerService is used by one thread at a time
                ledger.service.execute(command, f"practice:{p}")

        direct_write, direct_write_ms = concurrently(
            [functools.partial(direct_commit, i) for i in range(n_requests // 4)])
        start = time.perf_counter()
        direct_feed = sum(1 for _ in ledger.store.iter_events(0)) / (time.perf_counter() - start)

    with serving(db, group_commit=True) as base:
        def http_holders(p: str) -> None:
            client().get(f"{base}/holders", params={"practice": p}).raise_for_status()

        http_read, http_read_ms = concurrently(
            [functools.partial(http_holders, p) for p in picks])

        def http_commit(i: int) -> None:
            p = committers[i % len(committers)]
            client().post(f"{base}/spend/commit", json=commit_args(i, p, "H"),
                          headers={"Idempotency-Key": f"h-{i}",
                                   "Authorization": f"Bearer {writers[p]}"}
                          ).raise_for_status()

        http_write, http_write_ms = concurrently(
            [functools.partial(http_commit, i) for i in range(n_requests // 4)])
        feed_rate, head = stream_rate(base, headers)

        def through_service(i: int, p: str) -> None:
            with httpx.Client(timeout=30) as http:
                http.post(f"{base}/spend/commit", json=commit_args(i, p, "L"),
                          headers={"Idempotency-Key": f"l-{i}",
                                   "Authorization": f"Bearer {writers[p]}"}
                          ).raise_for_status()

        latencies, head = delivery(base, headers, list(writers), n_events, head,
                                   through_service)
        with bootstrap(db) as elsewhere:
            def by_another_process(i: int, p: str) -> None:
                elsewhere.service.execute(
                    build_command("spend commit", commit_args(i, p, "E")), f"practice:{p}")

            elsewhere_ms, head = delivery(base, headers, list(writers), n_events, head,
                                          by_another_process)

    print(line("holders direct", direct_read, direct_read_ms))
    print(line("holders over HTTP", http_read, http_read_ms, direct_read))
    print(line("commit direct", direct_write, direct_write_ms))
    print(line("commit over HTTP", http_write, http_write_ms, direct_write))
    print(f"{'feed direct':<22} {direct_feed:>9,.0f} events/s (store.iter_events)")
    print(f"{'feed over SSE':<22} {feed_rate:>9,.0f} events/s  ({feed_rate / direct_feed:.2f} "
          "of direct)")
    for label, found in (("delivery, via service", latencies),
                         ("delivery, other process", elsewhere_ms)):
        print(f"{label:<24} p50 {statistics.median(found):7.2f} ms   "
              f"p99 {percentile(found, 0.99):7.2f} ms   max {max(found):7.2f} ms "
              f"({len(found)} commits)")


def sse(base: str, headers: dict[str, str], after: int,
        into: queue.Queue[tuple[int, float]], stop: threading.Event) -> None:
    with httpx.stream("GET", f"{base}/events/live", params={"after": after}, headers=headers,
                      timeout=httpx.Timeout(30, read=None)) as response:
        for text in response.iter_lines():
            if stop.is_set():
                return
            if text.startswith("data:"):
                data = json.loads(text[5:])
                into.put((data["event"]["position"], time.perf_counter()))


def stream_rate(base: str, headers: dict[str, str]) -> tuple[float, int]:
    head = httpx.get(f"{base}/health").json()["head"]
    got: queue.Queue[tuple[int, float]] = queue.Queue()
    stop = threading.Event()
    start = time.perf_counter()
    threading.Thread(target=sse, args=(base, headers, 0, got, stop), daemon=True).start()
    position = 0
    while position < head:
        position, _ = got.get(timeout=120)
    stop.set()
    return head / (time.perf_counter() - start), head


def delivery(base: str, headers: dict[str, str], committers: list[str], n: int, head: int,
             commit: Callable[[int, str], None]) -> tuple[list[float], int]:
    """Commit-to-delivery latencies (ms) of `n` commits made one at a time by `commit`,
    for one live consumer; and the head after them."""
    got: queue.Queue[tuple[int, float]] = queue.Queue()
    stop = threading.Event()
    threading.Thread(target=sse, args=(base, headers, head, got, stop), daemon=True).start()
    time.sleep(0.5)
    latencies: list[float] = []
    for i in range(n):
        commit(i, committers[i % len(committers)])
        committed = time.perf_counter()
        while True:
            position, when = got.get(timeout=30)
            if position > head:
                head = position
                break
        latencies.append(max(0.0, (when - committed) * 1000))
        time.sleep(0.01)
    stop.set()
    return latencies, head


@contextlib.contextmanager
def target(store: str) -> Iterator[str]:
    if store == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield str(Path(tmp) / "bench.db")
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{PG_BASE}?schema={schema}"
    finally:
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {0} CASCADE").format(
                sql.Identifier(schema)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--practices", type=int, default=500)
    parser.add_argument("--requests", type=int, default=2000, help="holders reads to time "
                        "(commits: a quarter of it)")
    parser.add_argument("--events", type=int, default=200, help="commits for the latency")
    args = parser.parse_args()
    with target(args.store) as db:
        print(f"store: {args.store}, {args.practices} practices, {CLIENTS} clients")
        bench(db, args.practices, args.requests, args.events)


if __name__ == "__main__":
    main()
