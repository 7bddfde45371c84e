"""The event store: eventsourcing's Application configured for the ledger.

`open_store(target)` is the one place a database is chosen: a filesystem path
means a SQLite file, a `postgresql://` URL means PostgreSQL (`?schema=name`
selects a schema, created on first use). Configuration is passed to
eventsourcing as an explicit `env` mapping, never through the process
environment, so two stores can live in one process.

Only writers create a ledger (`create=True`): readers open an existing one or
refuse ("no ledger at PATH"), so a mistyped `--db` never leaves a new empty
ledger behind. A SQLite ledger that cannot be written (a read-only file or
directory) is read from an in-memory copy taken when it is opened, so the read
side can still bring its projections up to date there; the file is never touched.
"""

from __future__ import annotations

import os
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from eventsourcing.application import Application
from eventsourcing.persistence import (
    IntegrityError,
    Notification,
    PersistenceError,
    StoredEvent,
)
from eventsourcing.utils import get_topic

from ledger.audit.leaf import state_bytes
from ledger.domain.errors import InvalidInput, StoreUnavailable, UnreadableEvent
from ledger.domain.events import LedgerEvent
from ledger.domain.values import parse_whole_number
from ledger.store import catalogue, faults
from ledger.store.hooks import WriteHook
from ledger.store.mapper import OrjsonTranscoder, PydanticMapper, decode_event
from ledger.store.recorders import (
    Columns,
    IndexedRecorder,
    Indexes,
    LedgerSQLiteFactory,
    Reads,
    Receipt,
    RefEntry,
)

T = TypeVar("T")

# Remembered by a write once every event up to it is in the catalogue and readable.
_CATALOGUED = "ledger.store.eventstore:catalogued"

MAX_POSITION = 2**63 - 1
"""The largest position either store can hold (a signed 64-bit integer)."""


class HeadMoved(IntegrityError):  # noqa: N818 - a condition, as eventsourcing names them
    """The log's head is not the one a write was decided against (`append_encoded`)."""


@dataclass(frozen=True, slots=True)
class StoreTarget:
    """Where the events live, parsed from `--db` / `LEDGER_DB`."""

    kind: str  # "sqlite" | "postgres"
    location: str
    env: dict[str, str]

    @property
    def display(self) -> str:
        return self.location


_URL_WITH_USER = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s'\"]*:)([^\s'\"]*)")


def mask_password(text: str) -> str:
    """`text` (a URL, or a message quoting URLs) with each URL's password written `***`:
    all of it, up to the last `@` before the URL's query, or its first `@` if the query
    seems to start inside the password (a password may hold `@`, `/`, `?` or `#`
    written unencoded)."""
    return _URL_WITH_USER.sub(_masked, text)


def _masked(url: re.Match[str]) -> str:
    user, rest = url.group(1), url.group(2)
    at = rest.split("?", 1)[0].split("#", 1)[0].rfind("@")
    if at < 0:
        at = rest.find("@")
    return url.group(0) if at < 0 else f"{user}***{rest[at:]}"


def parse_target(target: str) -> StoreTarget:
    """Where `--db` / LEDGER_DB says the ledger is: a SQLite file's path, or a
    `postgresql://` URL. Raises InvalidInput (rule db) for a blank one, or a URL of
    another kind."""
    if not target.strip():
        raise InvalidInput("db", "--db is blank: give the ledger's file path (ledger.db) or "
                                 "a postgresql:// URL")
    if target.startswith(("postgresql://", "postgres://")):
        return _postgres_target(target)
    if "://" in target:
        raise InvalidInput(
            "db", f"unsupported database {mask_password(target)!r}: a file path or postgresql://"
        )
    path = Path(target).expanduser()
    return StoreTarget("sqlite", str(path), {"SQLITE_DBNAME": str(path)})


URL_PARAMETERS = ("schema", "connect_timeout")
"""The query parameters a PostgreSQL `--db` URL takes; any other is refused."""

SCHEMA_NAME_MAX = 63 - len(".ledger_events")
"""The longest schema name (49 characters): each write NOTIFYs the channel
`<schema>.ledger_events`, and PostgreSQL refuses a channel name past 63 bytes."""

_SCHEMA_NAME = re.compile(rf"[a-z_][a-z0-9_]{{0,{SCHEMA_NAME_MAX - 1}}}")
_CONNECT_TIMEOUT_MAX = 3600
_PORT_MAX = 65535


def _postgres_target(url: str) -> StoreTarget:
    """A PostgreSQL URL, `postgresql://user:pass@host:5432/db?schema=NAME&connect_timeout=S`.

    Raises InvalidInput (rule db) for a URL that does not parse (a bracket left open, a
    port that is not 1 to 65535, a `#` part), a parameter other than `schema` and `connect_timeout`
    (a misspelt `shema=` would otherwise write to the default schema), one given twice
    or blank, a schema name that is not 1 to 49 of `a-z 0-9 _` (not starting with a
    digit), or a timeout that is not 1 to 3600 whole seconds (read as every whole number
    is, by parse_whole_number, with rule db). The URL is shown with its
    password masked, and nothing of what the parser read is echoed: a password holding
    `/`, `?` or `#` unencoded is cut there, and its start read as a port.
    """
    shown = mask_password(url)
    encoded = "a password holding @, /, ? or # is written percent-encoded (%40, %2F, %3F, %23)"
    if "#" in url:
        raise InvalidInput("db", f"malformed PostgreSQL URL {shown!r}: it has a # part, which "
                           f"a connection does not read ({encoded})")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidInput("db", f"malformed PostgreSQL URL {shown!r}: its host does not "
                           f"parse (an IPv6 address is written in [ ]; {encoded})") from None
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port is not None and not 1 <= port <= _PORT_MAX:
        raise InvalidInput("db", f"malformed PostgreSQL URL {shown!r}: the port must be a "
                           f"whole number from 1 to {_PORT_MAX} ({encoded})")
    query: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in URL_PARAMETERS:
            raise InvalidInput(
                "db", f"unknown parameter {name!r} in the PostgreSQL URL {shown!r}: it takes "
                "schema=NAME and connect_timeout=SECONDS")
        if name in query:
            raise InvalidInput(
                "db", f"parameter {name} is given twice in the PostgreSQL URL {shown!r}: "
                "give it once")
        query[name] = value
    schema = query.get("schema")
    if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
        raise InvalidInput(
            "db", f"malformed schema name {schema!r}: 1 to {SCHEMA_NAME_MAX} of a-z, 0-9 and "
            "_, not starting with a digit")
    timeout = str(parse_whole_number(
        query.get("connect_timeout", "5"), f"connect_timeout (seconds) in the PostgreSQL URL "
        f"{shown!r}", minimum=1, maximum=_CONNECT_TIMEOUT_MAX, rule="db"))
    env = {
        "POSTGRES_DBNAME": unquote(parts.path.lstrip("/")) or "postgres",
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_SCHEMA": schema or "",
        "POSTGRES_CONNECT_TIMEOUT": timeout,
        "POSTGRES_POOL_SIZE": "2",
        "POSTGRES_MAX_OVERFLOW": "4",
    }
    return StoreTarget("postgres", shown, env)


# A topic, not an import: psycopg loads only when a PostgreSQL store is opened.
POSTGRES_FACTORY = "ledger.store.postgres:LedgerPostgresFactory"


def _is_store_error(error: Exception) -> bool:
    if isinstance(error, PersistenceError | OSError):
        return True
    return type(error).__module__.startswith("psycopg")


class LedgerApplication(Application[uuid.UUID]):
    """eventsourcing's Application with the pydantic mapper and the ledger's recorders."""

    name = "ledger"
    env: ClassVar[dict[str, str]] = {
        "MAPPER_TOPIC": get_topic(PydanticMapper),
        "TRANSCODER_TOPIC": get_topic(OrjsonTranscoder),
    }


class EventStore:
    """Appends events atomically with their indexes and reads them back.

    `hooks` run inside every write transaction (ledger/store/hooks.py); with
    `create`, the ledger's tables (and the hooks') are created when missing,
    otherwise a missing ledger raises StoreUnavailable ("no ledger at ...").
    `snapshot` is a SQLite database name the events are read from instead of
    the target's file (the in-memory copy of a read-only ledger).
    """

    def __init__(
        self,
        target: StoreTarget,
        hooks: Sequence[WriteHook] = (),
        *,
        create: bool = True,
        snapshot: str | None = None,
    ) -> None:
        self.target = target
        self.read_only_copy = snapshot is not None
        env = dict(target.env)
        env["CREATE_TABLE"] = "no"  # created below, with the hooks' tables, when asked
        if target.kind == "sqlite":
            env["PERSISTENCE_MODULE"] = get_topic(LedgerSQLiteFactory)
            env["SQLITE_DBNAME"] = snapshot or _sqlite_uri(target.location, create=create)
        else:
            env["PERSISTENCE_MODULE"] = POSTGRES_FACTORY
        try:
            self.app = LedgerApplication(env=_isolated(env))
            recorder: Any = self.app.recorder
            recorder.hooks = tuple(hooks)
            if create:
                recorder.create_table()
            elif not recorder.ledger_exists():
                self.app.close()
                raise StoreUnavailable("store", f"no ledger at {target.display}")
        except StoreUnavailable:
            raise
        except Exception as error:
            if not _is_store_error(error):
                raise
            named = faults.fault(error, target.display)
            if named is not None and named.rule != "store":
                raise named from error  # read-only, full, damaged: say which
            raise StoreUnavailable(
                "store", f"cannot open the ledger at {target.display}: {_first_line(error)}"
            ) from error
        self.recorder: IndexedRecorder = recorder
        assert isinstance(self.app.mapper, PydanticMapper)
        self.mapper: PydanticMapper = self.app.mapper
        self._catalogued = create
        self._kinds: set[catalogue.Kind] = set()  # known to be in the catalogue
        # The reads the catalogue's check makes, named ahead by each write transaction
        # where a store fetches named rows ahead (PostgreSQL; SQLite reads them when asked).
        self._check_reads = (() if target.kind == "sqlite"
                             else tuple(catalogue.check_statements(self.recorder.dialect)))

    # --- writing -----------------------------------------------------------------------

    def write(self, work: Callable[[], tuple[Sequence[LedgerEvent], Indexes, T]],
              reads: Reads | None = None,
              written: Callable[[Sequence[StoredEvent]], None] | None = None) -> T:
        """Run `work` (reads, then decisions) and append the events it returns, atomically.

        `reads` names what `work` will read first (receipts, refs, affiliations):
        a store may fetch it with its lock, ahead of `work` (recorders.Reads).

        The reads and the append share one write transaction that holds the
        store's write lock from its start (SQLite's single writer; PostgreSQL's
        EXCLUSIVE lock on the events table, which eventsourcing takes for every
        insert anyway), so nothing can change in between. A conflict can then
        only come from a writer that bypasses this path: it raises IntegrityError
        and the caller runs the work again.

        `written` is told the events as stored, once inserted (before the commit: if
        that fails, the caller's handling of the failure applies to them too).
        """
        reads = reads or Reads()
        if self._check_reads:
            reads = Reads(reads.command_ids, reads.refs, reads.practices,
                          [*reads.rows, *self._check_reads])
        with self.recorder.write_transaction(reads) as cursor:
            tail = self._unchecked_tail()
            events, indexes, result = work()
            ids: Sequence[int] = ()
            if events or indexes.receipts:
                to_stored = self.mapper.to_stored_event
                stored = [to_stored(e) for e in events]
                ids = self.recorder.insert_in_transaction(cursor, stored, indexes)
                if written is not None:
                    written(stored)
            added = self._catalogue(cursor, tail, ids, [e.topic for e in events],
                                    [e.schema_version for e in events])
        self._kinds |= added  # known once committed
        return result

    def append_encoded(self, columns: Columns, *, after: int) -> int:
        """Append events and their indexes, given as columns (a batch `ledger apply`
        decided, each event's state as this store's mapper stores it, by this process or
        another on the same ledger), in one write transaction, if the log's head is
        still `after`; returns the new head (a position). ValueError, nothing written,
        for columns of a group that differ in length.

        What was decided against the log as it stood at `after` is void once anything
        else was appended: HeadMoved (an IntegrityError, as a taken stream version
        is) when the head is not `after`, with nothing written. The same checks as
        `write` apply (an unreadable log is refused; the write hooks seal the events).
        """
        columns.check()  # here too: a batch of no event and no receipt is not inserted
        dialect = self.recorder.dialect
        with self.recorder.write_transaction(Reads(rows=self._check_reads)) as cursor:
            tail = self._unchecked_tail()
            head = int(self.recorder.select_rows(dialect.sql(
                "SELECT COALESCE(MAX({position}), 0) FROM {events}"), ())[0][0])
            if head != after:
                raise HeadMoved(f"the log's head is {head}, not {after}")
            ids: Sequence[int] = ()
            if columns.streams or columns.command_ids:
                ids = self.recorder.insert_columns(cursor, columns)
            added = self._catalogue(cursor, tail, ids, columns.topics,
                                    columns.schema_versions)
        self._kinds |= added
        return ids[-1] if ids else head

    def _unchecked_tail(self) -> list[tuple[int, str, int]]:
        """Inside a write transaction: refuse to add to a log this code cannot read
        (ledger/store/catalogue.py); the log's rows past the catalogue's checked
        position. Already done when this store's last write is still the last write."""
        if self.recorder.carried(_CATALOGUED):
            return []
        return catalogue.check(self.recorder.select_rows, self.recorder.dialect)

    def _catalogue(self, cursor: Any, tail: list[tuple[int, str, int]], ids: Sequence[int],
                   topics: Sequence[str], versions: Sequence[int]) -> set[catalogue.Kind]:
        """Inside a write transaction: add the kinds of the `tail` and of the events just
        inserted at `ids` (ascending), of `topics` and schema `versions`, to the
        catalogue; the kinds added (known once it commits)."""
        assert len(ids) == len(topics) == len(versions), "one position for each event stored"
        rows = tail
        if len(ids) == 1:  # a single command's
            rows = [*tail, (ids[0], topics[0], versions[0])]
        elif ids:
            # What `record` keeps of the events: the first of each kind, and the last.
            # The first of each is found by pairing them backwards (a later pair of one
            # kind is overwritten by an earlier one), with no Python loop an event.
            first = dict(zip(zip(reversed(topics), reversed(versions), strict=True),
                             reversed(ids), strict=True))
            rows = [*tail, *sorted([(position, topic, version)
                                    for (topic, version), position in first.items()]),
                    (ids[-1], topics[-1], versions[-1])]
        added = (catalogue.record(cursor, self.recorder.dialect, rows, self._kinds)
                 if rows else set())
        self.recorder.remember(_CATALOGUED, value=True)  # every event is in the catalogue
        return added

    def reopened(self) -> EventStore:
        """Another connection to this store's ledger, with the same write hooks: for a
        process of its own (a forked child never uses its parent's connections)."""
        hooks: Sequence[WriteHook] = self.app.recorder.hooks  # type: ignore[attr-defined]
        return EventStore(self.target, hooks, create=False)

    def fault(self, error: BaseException) -> StoreUnavailable | None:
        """The store fault behind `error` in one line (faults.py), or None."""
        return faults.fault(error, self.target.display)

    @staticmethod
    def retryable(error: BaseException) -> bool:
        """Whether a failed write may succeed on another attempt (a lock was held)."""
        return faults.retryable(error)

    def ensure_readable(self) -> None:
        """Raise UnreadableEvent if the log holds an event this code cannot read exactly.

        An unknown topic or a newer schema version anywhere in the log stops every
        read and write with the first position that holds it (catalogue.py).
        """
        self.readable_head()

    def readable_head(self, columns: str = "", params: Sequence[Any] = (), *,
                      select: catalogue.Select | None = None,
                      check: catalogue.Select | None = None) -> tuple[int, tuple[Any, ...]]:
        """`ensure_readable`, and the log's head, in one statement with `columns`.

        `columns` is more of the SELECT list (scalar SQL, `?` for the `params`, each
        column named apart with `AS name`: PostgreSQL rows come back by name),
        read in the same statement (on PostgreSQL, the same snapshot) as the head,
        by `select` (a caller's own connection; else the store's). Returns (head, the
        values of `columns`). Raises UnreadableEvent as `ensure_readable` does; events
        past the checked position (written some other way) cost one more read, by
        `check` (else the store's).
        """
        head, checked, values = self.probe(columns, params, select)
        if head > checked:
            catalogue.check_tail(check or self.recorder.select_rows, self.recorder.dialect)
        return head, values

    def probe(self, columns: str = "", params: Sequence[Any] = (),
              select: catalogue.Select | None = None) -> tuple[int, int, tuple[Any, ...]]:
        """(head, checked position, the values of `columns`), read in one statement
        (`columns` as `readable_head` takes them) by `select`, a caller's own
        connection, else the store's; UnreadableEvent for a catalogued kind this code
        cannot read. Events past the checked position (head > checked: written some
        other way) are not read: `readable_head` checks them."""
        dialect = self.recorder.dialect
        if not self._catalogued:
            self._catalogued = catalogue.exists(self.recorder.select_rows, dialect)
        if not self._catalogued:
            catalogue.check(self.recorder.select_rows, dialect, catalogued=False)
            head_only = dialect.sql(
                "SELECT (SELECT COALESCE(MAX({position}), 0) FROM {events}) AS ledger_head")
            row = self._select_one(head_only + (f", {columns}" if columns else ""), params,
                                   select)
            return int(row[0]), int(row[0]), row[1:]
        statement = "SELECT " + catalogue.probe_columns(dialect) + (
            f", {columns}" if columns else "")
        head, checked, kinds, *rest = self._select_one(statement, params, select)
        catalogue.check_kinds(kinds)
        return int(head), int(checked), tuple(rest)

    def _select_one(self, statement: str, params: Sequence[Any],
                    select: catalogue.Select | None) -> tuple[Any, ...]:
        if self.target.kind == "postgres":
            statement = statement.replace("?", "%s")
        return (select or self.recorder.select_rows)(statement, tuple(params))[0]

    def append(self, events: Sequence[LedgerEvent], indexes: Indexes) -> list[int]:
        """Write events and their indexes in one transaction; returns their positions.

        Raises eventsourcing's IntegrityError when a stream version or an index key
        is already taken: the caller reloads and retries (optimistic concurrency).
        """
        # Straight to the recorder: Application.save's protocol checks cost more
        # than the insert itself on a batch, and it adds nothing we use.
        stored = [self._to_stored(e) for e in events]
        ids = self.app.recorder.insert_events(stored, indexes=indexes)
        return list(ids or [])

    def _to_stored(self, event: LedgerEvent) -> StoredEvent:
        return self.mapper.to_stored_event(event)

    # --- reading -----------------------------------------------------------------------

    def stream(self, stream_id: uuid.UUID, after_version: int = 0) -> list[LedgerEvent]:
        """The stream's events after `after_version`."""
        return self._decoded(stream_id, self.recorder.select_events(
            stream_id, gt=after_version or None))

    def holds(self, stream_id: uuid.UUID, version: int, state: bytes) -> bool:
        """Whether the stream's event at `version` (1 or more) is the very one whose stored
        state is `state` (the bytes written, recording time included): whether a write
        that held it was committed, whoever committed it."""
        stored = self.recorder.select_events(stream_id, gt=version - 1 or None, lte=version)
        return bool(stored) and state_bytes(stored[-1].state) == state

    def follow(self, stream_id: uuid.UUID, version: int, held: bytes | None
               ) -> tuple[list[LedgerEvent], bytes | None]:
        """The stream's events after `version`, which the caller (a cached aggregate)
        holds, `held` being the stored state of its event at `version` (None at 0); and
        the stored state of the stream's last event (`held` when none was read after).

        StreamRewritten if the store, when read, no longer has that very event at
        `version` (history rewritten under the process): checked on a row the same
        statement reads, so no round trip is added."""
        stored = self.recorder.select_events(stream_id, gt=version or None,
                                             held=held if version else None)
        if not stored:  # the caller is up to date (a write transaction's own streams)
            return [], held
        return self._decoded(stream_id, stored), state_bytes(stored[-1].state)

    def _decoded(self, stream_id: uuid.UUID, stored: Sequence[StoredEvent]
                 ) -> list[LedgerEvent]:
        try:
            return [decode_event(s.topic, s.originator_id, s.originator_version, s.state)
                    for s in stored]
        except UnreadableEvent as error:
            if error.position is not None:
                raise
            # Name its place in the log: look the position up (only on this path).
            for s in stored:
                try:
                    decode_event(s.topic, s.originator_id, s.originator_version, s.state)
                except UnreadableEvent:
                    position = self.recorder.position_of(stream_id, s.originator_version)
                    raise error.at(position or 0) from None
            raise

    def receipts(self, command_ids: Sequence[str]) -> dict[str, Receipt]:
        return self.recorder.select_receipts(command_ids) if command_ids else {}

    def ref(self, ref: str) -> RefEntry | None:
        return self.recorder.select_ref(ref)

    def refs(self, refs: Sequence[str]) -> dict[str, RefEntry]:
        return self.recorder.select_refs(refs) if refs else {}

    def budget_years(self, practice: str) -> list[str]:
        """The financial years the practice has a budget for."""
        return self.recorder.select_budget_years(practice)

    def affiliations(self, practices: Sequence[str]) -> dict[str, list[str]]:
        """Consortia each practice has ever joined (membership dates are in their streams)."""
        return self.recorder.select_affiliations(practices) if practices else {}

    def notifications(self, after: int, limit: int) -> Sequence[Notification]:
        return self.app.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )

    def iter_events(self, after: int = 0, page: int = 1000) -> Iterator[tuple[int, LedgerEvent]]:
        """Every event after a position, in position order, with its position.

        `after` must lie in 0..MAX_POSITION (InvalidInput otherwise).
        """
        if not 0 <= after <= MAX_POSITION:
            raise InvalidInput(
                "after", f"a position is 0 to {MAX_POSITION:,}, not {after:,}")
        self.ensure_readable()
        while True:
            batch = self.notifications(after, page)
            for n in batch:
                yield n.id, decode_event(n.topic, n.originator_id, n.originator_version,
                                         n.state, n.id)
            if len(batch) < page:
                return
            after = batch[-1].id

    def events_of(self, topic: str, page: int = 1000) -> Iterator[LedgerEvent]:
        """Every event of one topic, in position order (a full scan filtered in SQL)."""
        self.ensure_readable()
        after = 0
        while True:
            batch = self.app.recorder.select_notifications(
                start=after, limit=page, topics=(topic,), inclusive_of_start=False)
            for n in batch:
                yield decode_event(n.topic, n.originator_id, n.originator_version, n.state,
                                   n.id)
            if len(batch) < page:
                return
            after = batch[-1].id

    def head(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    _keeper: sqlite3.Connection | None = None
    _created_file: Path | None = None  # the SQLite file this store created on opening
    _created_schema = False  # whether opening created the PostgreSQL schema

    def close(self) -> None:
        """Close the store; a SQLite file or PostgreSQL schema it created and left
        without events is removed when it was opened with `discard_if_empty` (open_store).

        So a refused write never leaves an empty ledger behind, and a later read
        of that path or URL still says "no ledger at ...".
        """
        created = self._created_file
        empty = created is not None and self._holds_no_events()
        schema_empty = self._created_schema and self._holds_no_events()
        self.app.close()
        if schema_empty:
            self._created_schema = False
            self._discard_schema()
        if self._keeper is not None:
            self._keeper.close()
            self._keeper = None
        if empty and created is not None:
            self._created_file = None
            for name in (created, *(Path(f"{created}{tail}") for tail in _SIDECARS)):
                name.unlink(missing_ok=True)

    def _discard_schema(self) -> None:
        from ledger.store.postgres import discard_if_empty  # noqa: PLC0415 - psycopg on demand

        with suppress(StoreUnavailable):  # unreachable now: the empty schema stays
            discard_if_empty(self.target.env, self.target.display,
                             self.recorder.dialect.events_table)

    def _holds_no_events(self) -> bool:
        try:
            return self.head() == 0
        except Exception:  # noqa: BLE001 - when in doubt, keep the file
            return False


def _isolated(env: dict[str, str]) -> dict[str, Any]:
    """Shadow eventsourcing settings inherited from the process environment.

    Application merges os.environ under the explicit env; blank values for the
    keys we do not set keep a stray PERSISTENCE_MODULE or POSTGRES_* from
    redirecting the ledger.
    """
    shadowed = {
        key: ""
        for key in os.environ
        if key.startswith(("POSTGRES_", "SQLITE_", "PERSISTENCE_", "LEDGER_"))
        or key.endswith("_TOPIC")
    }
    return {**shadowed, **env}


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


_SIDECARS = ("-wal", "-shm", "-journal")


def _sqlite_uri(location: str, *, create: bool) -> str:
    """The file as a SQLite URI: created on first use only by writers (`mode=rwc`)."""
    uri = Path(location).absolute().as_uri()
    return f"{uri}?mode={'rwc' if create else 'rw'}"


def _writable(path: Path) -> bool:
    """Whether this process may write the ledger file and its directory (WAL files).

    os.access answers for root too: a read-only mount (EROFS) or an immutable
    file or directory (chattr +i, EPERM) refuse writes whatever the user.
    """
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


_SQLITE_MAGIC = b"SQLite format 3\x00"
_SQLITE_HEADER_BYTES = 100
_WRITE_VERSION = 18
"""Offset of the header's file format write version: 1 rollback journal, 2 WAL
(https://sqlite.org/fileformat2.html#the_database_header)."""


def _refuse_another_database(path: Path, location: str) -> None:
    """StoreUnavailable (exit 3, nothing written) when `path` is a SQLite database holding
    tables but none of a ledger's (`stored_events`, `ledger_*`): another program's
    database, named by mistake (the feed consumer's store, say), which a write would
    otherwise fill with the ledger's tables. A new or empty file, a ledger (of any
    version, even one whose first write stopped part-way), and a file that is no
    database at all (refused when opened) pass.

    The probe leaves the folder as it found it: a read-only connection to a WAL database
    no connection has open makes its -wal and -shm files and cannot remove them on
    closing (https://sqlite.org/walformat.html), so such a database (header byte 18 is
    2, no -wal file beside it: its main file is all of it, and only a checkpoint,
    which needs that file, changes it) is read as immutable."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        with path.open("rb") as file:
            header = file.read(_SQLITE_HEADER_BYTES)
    except OSError:  # unreadable: opening the store says why
        return
    closed_wal = (header.startswith(_SQLITE_MAGIC) and header[_WRITE_VERSION:][:1] == b"\x02"
                  and not path.with_name(f"{path.name}-wal").exists())
    mode = "immutable=1" if closed_wal else "mode=ro"
    try:
        with closing(sqlite3.connect(f"{path.absolute().as_uri()}?{mode}", uri=True)) as probe:
            tables = sorted(str(row[0]) for row in probe.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"))
    except sqlite3.Error:
        return
    if tables and not any(t == "stored_events" or t.startswith("ledger_") for t in tables):
        shown = ", ".join(tables[:5]) + (", …" if len(tables) > 5 else "")
        raise StoreUnavailable(
            "store", f"{location} is a SQLite database that holds no ledger (its tables: "
                     f"{shown}): give the ledger's own file; nothing was written")


def _snapshot(path: Path) -> tuple[str, sqlite3.Connection]:
    """An in-memory copy of a read-only SQLite ledger, and the connection keeping it alive."""
    name = f"file:ledger-copy-{uuid.uuid4().hex}?mode=memory&cache=shared"
    keeper = sqlite3.connect(name, uri=True, check_same_thread=False)
    uri = path.absolute().as_uri()
    try:
        try:
            source = sqlite3.connect(f"{uri}?mode=ro", uri=True)
            source.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error:
            # A WAL ledger in a directory nobody may write: no -shm can be made,
            # so read the file as it stands (its last checkpoint).
            source = sqlite3.connect(f"{uri}?immutable=1", uri=True)
        with source:
            source.backup(keeper)
        source.close()
    except sqlite3.Error as error:
        keeper.close()
        raise StoreUnavailable(
            "store", f"cannot read the ledger at {path}: {_first_line(error)}"
        ) from error
    return name, keeper


def open_store(
    target: str | StoreTarget, hooks: Sequence[WriteHook] = (), *, create: bool = True,
    discard_if_empty: bool = False,
) -> EventStore:
    """Open the store at `target`; see EventStore for `hooks` and `create`.

    With `discard_if_empty`, a SQLite file this call creates is removed again on
    close if it still holds no events (a refused write leaves no ledger behind).

    Raises StoreUnavailable when the database cannot be reached or, without
    `create`, when there is no ledger there.
    """
    parsed = parse_target(target) if isinstance(target, str) else target
    if parsed.kind == "postgres":
        from ledger.store.postgres import prepared  # noqa: PLC0415 - psycopg on demand

        with prepared(parsed.env, parsed.display, create=create) as schema_created:
            store = EventStore(parsed, hooks, create=create)
        store._created_schema = discard_if_empty and schema_created
        return store
    path = Path(parsed.location)
    parent = path.parent
    if not parent.is_dir():
        if not create:
            raise StoreUnavailable("store", f"no ledger at {parsed.location}")
        raise StoreUnavailable(
            "store", f"cannot open the ledger at {parsed.location}: no directory {parent}"
        )
    if not create:
        if not path.is_file():
            raise StoreUnavailable("store", f"no ledger at {parsed.location}")
        if not _writable(path):
            name, keeper = _snapshot(path)
            store = EventStore(parsed, hooks, create=False, snapshot=name)
            store._keeper = keeper
            return store
    if create:
        _refuse_another_database(path, parsed.location)
    created = create and discard_if_empty and not path.exists()
    store = EventStore(parsed, hooks, create=create)
    if created:
        store._created_file = path
    return store
