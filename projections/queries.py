"""The auditor's questions, answered from the projection tables.

Every read first brings the projections it uses up to date (catch-up from
their tracked positions), then runs indexed queries; nothing here loads an
aggregate. Rows come back as plain dicts with the field names the
read commands print (money in `*_pence` integers, dates as `date`), ready for any renderer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

import orjson

from ledger.domain.budget import top_slice
from ledger.domain.errors import InvalidInput, NotFound, RuleViolation, UnreadableEvent
from ledger.domain.events import EVENTS_BY_TOPIC, LedgerEvent, budget_stream
from ledger.domain.values import (
    ELEMENTS,
    FinancialYear,
    parse_consortium_code,
    parse_holder,
    parse_instant,
    parse_iso_date,
    parse_practice_code,
    shown,
)
from ledger.store.eventstore import EventStore
from projections.core import MemoryState, Positioned, fold, trusted_event
from projections.holders import HOLDER_CHANGES, HOLDER_ELEMENTS, HOLDERS
from projections.materialise import Materialiser
from projections.positions import POSITIONS, TOTALS
from projections.trail import CONSORTIUM_WIDE, describe

Row = dict[str, Any]
GROUPINGS = ("practice", "consortium", "allocator")


def parse_day(text: str, option: str) -> date:
    """A read's date option (`--as-of`), `YYYY-MM-DD` only (`parse_iso_date`)."""
    return parse_iso_date(text, option)


def parse_known_at(text: str) -> datetime:
    """`--known-at` (`known_at` in the API) as the UTC instant a read is answered as known
    at, by the rule every instant is read with (`parse_instant`): a bare date means the
    end of that day, its last microsecond, which records are compared with inclusively.
    Digits finer than the microsecond are dropped: events are recorded to the
    microsecond, so what was known at 09:30:00.0000009 is what was known at 09:30:00."""
    found = parse_instant(text, "instant for --known-at", "instant")
    if isinstance(found, datetime):
        return found
    return datetime.combine(found, time.max, tzinfo=UTC)


def _as_json(sql: str, _params: Sequence[Any] = ()) -> str:
    """A PostgreSQL scalar subquery: the rows of `sql` (a SELECT of columns ... FROM ...
    ORDER BY ...) as JSON text, an array of arrays in the same order (NULL for none)."""
    select, rest = sql.removeprefix("SELECT ").split(" FROM ", 1)
    source, order = rest.rsplit(" ORDER BY ", 1)
    return (f"(SELECT json_agg(json_build_array({select}) ORDER BY {order})::text "  # noqa: S608
            f"FROM {source})")


def _year_and_practice(practice: str | None, year: str | None, on: date | None
                       ) -> tuple[str, str] | None:
    """(the financial year containing `on`, the practice code) for the usual holders
    question, a practice on a date without a year; None for any other (or a malformed
    code or date: the read refuses those itself)."""
    if practice is None or year is not None or on is None:
        return None
    try:
        return str(FinancialYear.containing(on)), parse_practice_code(practice)
    except InvalidInput:
        return None


def _nearest_year(years: Sequence[FinancialYear], day: date) -> FinancialYear:
    """Of `years` (in order, none containing `day`), the latest that ends before `day`,
    else the first."""
    before = [fy for fy in years if fy.last_day < day]
    return before[-1] if before else years[0]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


EVENTS_AT_ONCE = 500
"""Positions a read asks the log for in one statement (well under either store's limit
on parameters)."""


@dataclass
class Reads:
    """Queries over one store's projections; `today` decides the default dates."""

    store: EventStore
    today: date
    # False: answer from the projections as they stand, never writing (a projector,
    # `ledger project --follow`, keeps them current; the lag is reported apart).
    catch_up: bool = True

    def __post_init__(self) -> None:
        self.views = Materialiser(self.store)
        self.db = self.views.db
        self._cursor: Any = None  # the read's own, while `_together` runs
        # What the read has found to exist (("year", "2024-25") -> bool), while it runs.
        self._known: dict[tuple[str, str], bool] = {}
        # Rows of statements the read will make, fetched ahead ((sql, params) -> rows).
        self._ahead: dict[tuple[str, tuple[Any, ...]], list[tuple[Any, ...]]] = {}

    def _fresh(self, *names: str) -> None:
        """Bring the projections `names` up to date; answering from them as they stand
        (`catch_up` False), check that the log holds no event this code cannot read: a
        projector stopped by one (exit 5) would otherwise leave every read answering
        from before it, as if the log ended there (UnreadableEvent)."""
        if self.catch_up:
            self.views.catch_up(list(names))
        else:
            self.store.ensure_readable()

    @contextmanager
    def _together(self) -> Iterator[None]:
        """Run the read's queries on one connection, with no round trips between them.

        On SQLite in one read transaction (one snapshot). On PostgreSQL without one:
        each statement sees its own snapshot, as in the READ COMMITTED transaction a
        query would otherwise open, without that transaction's BEGIN and ROLLBACK.
        """
        if self._cursor is not None:
            yield
            return
        with self._connection() as cursor:
            self._cursor = cursor
            try:
                yield
            finally:
                self._cursor = None
                self._known.clear()
                self._ahead.clear()

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        if self.db.kind == "sqlite":
            with self.db.cursor(write=False) as cursor:
                yield cursor
            return
        from psycopg.rows import tuple_row  # noqa: PLC0415 - only for PostgreSQL

        with (self.db.postgres.get_connection() as conn,  # autocommit: no BEGIN
              conn.cursor(row_factory=tuple_row) as cursor):
            yield cursor

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        fetched = self._ahead.pop((sql, tuple(params)), None)
        if fetched is not None:
            return fetched
        cursor = self._cursor
        if cursor is None:
            return self.db.query(sql, params)
        if self.db.kind == "postgres":
            sql = sql.replace("?", "%s")
        cursor.execute(sql, tuple(params))
        return [tuple(row) for row in cursor.fetchall()]

    def _as_given(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A statement already in the store's own form (`Dialect.sql`), on the read's
        connection while `_together` runs."""
        self._cursor.execute(sql, tuple(params))
        return [tuple(row) for row in self._cursor.fetchall()]

    def _t(self, table: str) -> str:
        return self.db.name(table)

    # --- names and dates ---------------------------------------------------------------

    def _practice(self, text: str) -> str:
        code = parse_practice_code(text)
        known = self._known.get(("practice", code))
        if known is None:
            known = bool(self._q(
                f"SELECT 1 FROM {self._t('org_practices')} WHERE practice = ?", [code]))  # noqa: S608
        if not known:
            raise NotFound("practice", f"no practice {code}")
        return code

    def _look_up_together(self, year: str, practice: str) -> None:
        """Whether budgets of `year` and the practice `practice` exist, in one query;
        `_has_year` and `_practice` then answer from it for the rest of the read."""
        columns, params = self._look_up_columns(year, practice)
        self._remember(year, practice, self._q(f"SELECT {columns}", params)[0])

    def _look_up_columns(self, year: str, practice: str) -> tuple[str, list[str]]:
        """Two columns, `has_year` and `has_practice` (1 or NULL), and their parameters."""
        return (f"(SELECT 1 FROM {self._t('position_budgets')} WHERE year = ? LIMIT 1) "  # noqa: S608
                f"AS has_year, (SELECT 1 FROM {self._t('org_practices')} WHERE practice = ?) "
                "AS has_practice", [year, practice])

    def _remember(self, year: str, practice: str, found: Sequence[Any]) -> None:
        has_year, has_practice = found
        self._known[("year", year)] = has_year is not None
        self._known[("practice", practice)] = has_practice is not None

    def _consortium(self, text: str) -> str:
        code = parse_consortium_code(text)
        if not self._q(f"SELECT 1 FROM {self._t('org_consortia')} WHERE consortium = ?",  # noqa: S608
                       [code]):
            raise NotFound("consortium", f"no consortium {code}")
        return code

    def years(self) -> list[str]:
        """The financial years with budgets, in order.

        One index seek a year (a loose scan of `position_budgets_by_year`), not a
        read of every budget: a national ledger has thousands of budgets a year.
        """
        table = self._t("position_budgets")
        rows = self._q(
            f"WITH RECURSIVE y(year) AS (SELECT MIN(year) FROM {table} "  # noqa: S608
            f"UNION ALL SELECT (SELECT MIN(b.year) FROM {table} b WHERE b.year > y.year) "
            "FROM y WHERE y.year IS NOT NULL) SELECT year FROM y WHERE year IS NOT NULL")
        return [r[0] for r in rows]

    def _has_year(self, year: str) -> bool:
        known = self._known.get(("year", year))
        if known is not None:
            return known
        return bool(self._q(
            f"SELECT 1 FROM {self._t('position_budgets')} WHERE year = ? LIMIT 1",  # noqa: S608
            [year]))

    def _require_year(self, fy: FinancialYear) -> None:
        """NotFound (exit 1, HTTP 404, rule `year`) when no budget is allocated for the
        financial year `fy`: every read of such a year answers so, rather than show an
        empty or all-zero year as if it had been looked at (a mistyped year, often)."""
        if not self._has_year(str(fy)):
            have = ", ".join(self.years()) or "none yet"
            raise NotFound("year", f"no budgets in {fy} (years with budgets: {have})")

    def _year_and_day(self, year: str | None, as_of: date | None,
                      fallback: date | None = None) -> tuple[FinancialYear, date]:
        """The one financial year a read covers, and the business date it looks at.

        `as_of` is a date asked for: outside `year`, or in a year with no budgets, it is
        refused. Without it the day is `fallback` (the day of `--known-at`), else today,
        kept inside `year`; with no `year` either, the year is that day's when it has
        budgets, else the nearest that has (the latest ending before it, else the
        first), and the day is kept inside it: next year's budgets, allocated before
        1 April, are not shown in place of the current year's."""
        if year is not None:
            fy = FinancialYear.parse(year)
            on = as_of or min(max(fallback or self.today, fy.first_day), fy.last_day)
            if on not in fy:
                raise InvalidInput("date", f"{on} is outside the financial year {fy}")
            self._require_year(fy)
        elif as_of is not None:
            fy, on = FinancialYear.containing(as_of), as_of
            if not self._has_year(str(fy)):
                have = ", ".join(self.years()) or "none yet"
                raise NotFound("year", f"{on} is outside every budget year (years with "
                               f"budgets: {have})")
        else:
            asked = fallback or self.today
            fy = FinancialYear.containing(asked)
            if not self._has_year(str(fy)) and (known := self.years()):
                fy = _nearest_year([FinancialYear.parse(y) for y in known], asked)
            on = min(max(asked, fy.first_day), fy.last_day)
        return fy, on

    def _members(self, consortium: str, day: date) -> list[str]:
        rows = self._q(
            f"SELECT practice FROM {self._t('org_memberships')} WHERE consortium = ? "  # noqa: S608
            "AND joined_on <= ? AND (left_on IS NULL OR ? < left_on) ORDER BY practice",
            [consortium, day.isoformat(), day.isoformat()],
        )
        return sorted({r[0] for r in rows})

    def ever_members(self, consortium: str) -> frozenset[str]:
        """Every practice that has ever been a member of `consortium` (any dates)."""
        self._fresh("organisations")
        rows = self._q(
            f"SELECT practice FROM {self._t('org_memberships')} WHERE consortium = ?",  # noqa: S608
            [consortium],
        )
        return frozenset(r[0] for r in rows)

    def ever_held(self, holder: str) -> frozenset[tuple[str, str]]:
        """Every budget, as (practice, year), that `holder` (`practice:A81002`,
        `consortium:16C`) has ever held any element of, on any date."""
        self._fresh("holders")
        rows = self._q(
            f"SELECT DISTINCT practice, year FROM {self._t('holder_changes')} "  # noqa: S608
            "WHERE holder = ?", [holder])
        return frozenset((r[0], r[1]) for r in rows)

    # --- holders -----------------------------------------------------------------------

    def holders(self, *, practice: str | None = None, consortium: str | None = None,
                holder: str | None = None, year: str | None = None,
                as_of: date | None = None, known_at: datetime | None = None) -> list[Row]:
        if sum(x is not None for x in (practice, consortium, holder)) > 1:
            raise InvalidInput("options", "give at most one of --practice, --consortium, --holder")
        names = ("organisations", "holders", "portfolio", "positions")
        on = as_of or (known_at.date() if known_at is not None else None)
        asked = _year_and_practice(practice, year, on)
        if asked is not None and self.catch_up and self.db.kind == "postgres":
            # The usual question (a practice on a date), asked on PostgreSQL: whether its
            # year and practice exist, and its holder changes, go with the check that
            # the log is readable and the projections current (one round trip).
            with self._together():
                if self._fetch_ahead(names, asked, on, known_at):
                    return self._holders(practice, consortium, holder, year=year,
                                         as_of=as_of, known_at=known_at)
        # Caught up holding no connection: a served read waits its turn for this.
        self._fresh(*names)
        with self._together():
            return self._holders(practice, consortium, holder, year=year, as_of=as_of,
                                 known_at=known_at)

    def _fetch_ahead(self, names: Sequence[str], asked: tuple[str, str], on: date | None,
                     known_at: datetime | None) -> bool:
        """Whether the projections are current; if so, what `_holders` asks of them for
        `asked` (year, practice) on `on` is fetched ahead, in the same statement."""
        assert on is not None  # the usual question has a date
        columns, params = self._look_up_columns(*asked)
        rows = self._holder_changes(FinancialYear.parse(asked[0]), on, [asked[1]], known_at)
        found = self.views.current_with(
            names, f"{columns}, {_as_json(*rows)} AS holder_rows", [*params, *rows[1]],
            self._q, self._as_given)
        if found is None:
            return False
        *looked_up, fetched = found
        self._remember(*asked, looked_up)
        self._ahead[(rows[0], tuple(rows[1]))] = [
            tuple(r) for r in orjson.loads(fetched or "[]")]
        return True

    def _holders(self, practice: str | None, consortium: str | None, holder: str | None, *,
                 year: str | None, as_of: date | None, known_at: datetime | None
                 ) -> list[Row]:
        fallback = known_at.date() if known_at is not None else None
        asked = _year_and_practice(practice, year, as_of or fallback)
        if asked is not None and ("practice", asked[1]) not in self._known:
            # The usual question (a practice on a date): both checks in one round trip.
            self._look_up_together(*asked)
        fy, day = self._year_and_day(year, as_of, fallback)
        practices: list[str] | None = None
        if practice is not None:
            practices = [self._practice(practice)]
        elif consortium is not None:
            practices = self._members(self._consortium(consortium), day)
        wanted_holder = parse_holder(holder) if holder is not None else None
        if wanted_holder is not None:
            kind, _, code = wanted_holder.partition(":")
            # A holder the ledger has never heard of is refused as --practice and
            # --consortium refuse it, not answered with an empty portfolio.
            (self._practice if kind == "practice" else self._consortium)(code)
            practices = self._practices_held_by(wanted_holder, fy, day, known_at)
        rows = self._holder_rows(fy, day, practices, known_at)
        if wanted_holder is not None:
            rows = [r for r in rows if r["holder"] == wanted_holder]
        return rows

    def _practices_held_by(self, holder: str, fy: FinancialYear, day: date,
                           known_at: datetime | None) -> list[str]:
        if known_at is None:
            found = self._q(
                f"SELECT DISTINCT practice FROM {self._t('portfolio')} WHERE holder = ? "  # noqa: S608
                "AND year = ? AND start_on <= ? AND (end_on IS NULL OR ? < end_on)",
                [holder, str(fy), day.isoformat(), day.isoformat()],
            )
        else:
            found = self._q(
                f"SELECT DISTINCT practice FROM {self._t('holder_changes')} WHERE holder = ? "  # noqa: S608
                "AND year = ? AND recorded_at <= ? AND effective_on <= ?",
                [holder, str(fy), _iso(known_at), day.isoformat()],
            )
        return sorted(r[0] for r in found)

    def _holder_changes(self, fy: FinancialYear, day: date, practices: list[str] | None,
                        known_at: datetime | None) -> tuple[str, list[Any]]:
        """The query of the holder changes a holders read folds (practice, element,
        effective_on, holder, in that order), and its parameters: of the elements the
        budget has by `day` (and `known_at`), those allocated, adjusted or delegated."""
        sql = (f"SELECT h.practice, h.element, h.effective_on, h.holder "  # noqa: S608
               f"FROM {self._t('holder_changes')} h WHERE h.year = ? AND h.effective_on <= ?")
        params: list[Any] = [str(fy), day.isoformat()]
        if practices is not None:
            sql += f" AND h.practice IN ({_marks(practices)})"
            params += practices
        recorded = ""
        if known_at is not None:
            sql += " AND h.recorded_at <= ?"
            recorded = " AND e.recorded_at <= ?"
            params.append(_iso(known_at))
        sql += (f" AND EXISTS (SELECT 1 FROM {self._t('holder_elements')} e "  # noqa: S608
                "WHERE e.practice = h.practice AND e.year = h.year AND e.element = h.element "
                f"AND e.effective_on <= ?{recorded})")
        params.append(day.isoformat())
        if known_at is not None:
            params.append(_iso(known_at))
        return sql + " ORDER BY h.practice, h.element, h.effective_on, h.position", params

    def _holder_rows(self, fy: FinancialYear, day: date, practices: list[str] | None,
                     known_at: datetime | None) -> list[Row]:
        if practices is not None and not practices:
            return []
        sql, params = self._holder_changes(fy, day, practices, known_at)
        timelines: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for p, element, on, who in self._q(sql, params):
            timelines.setdefault((p, element), []).append((on, who))
        order = {str(e): i for i, e in enumerate(ELEMENTS)}
        rows: list[Row] = []
        for (p, element), changes in sorted(timelines.items(),
                                            key=lambda kv: (kv[0][0], order[kv[0][1]])):
            since, who = changes[-1]
            for on, earlier in reversed(changes[:-1]):
                if earlier != who:
                    break
                since = on
            rows.append({"practice": p, "year": str(fy), "element": element, "holder": who,
                         "since": date.fromisoformat(since)})
        return rows

    # --- trail -------------------------------------------------------------------------

    def trail(self, code: str, *, year: str | None = None, since: date | None = None,
              until: date | None = None) -> list[Row]:
        """Every event that touched a practice or a consortium, in order (rows with
        position, year, recorded_at (a UTC instant), effective_on, actor, event (its
        kind), summary (in words)).

        `code` is a practice's ODS code (A81001): its own events, its budgets', holdings
        handed to it, and the risk pools and quality standards of the consortia it
        belonged to when they took effect; or a consortium's code (16C, X2C4Y): its
        forming, members joining and leaving, risk pools and their draws, quality
        standards, and holdings delegated to it. The trail projection says which events
        belong (projections/trail.py); who recorded each, when, and its words are read
        from the event at that position. Raises InvalidInput (rule trail,
        `trail_subject`) for any other code, a malformed year or `since` after `until`,
        NotFound for a year nobody has a budget for (rule `year`, as every read of a
        year) or a code the ledger does not know, UnreadableEvent as every read of the
        log does.
        """
        self._fresh("organisations", "trail", *(("positions",) if year is not None else ()))
        with self._together():
            if year is not None:
                trail_subject(code)  # a malformed code is named before the year
                self._require_year(FinancialYear.parse(year))
            kept = self._trail_entries(code, year, since, until)
            events = self._events_at([position for position, *_ in kept])
        rows: list[Row] = []
        for position, row_year, on, kind in kept:
            event = events[position]
            rows.append({"position": position, "recorded_at": event.recorded_at,
                         "effective_on": on, "actor": event.actor, "event": kind,
                         "year": row_year, "summary": describe(event)})
        return rows

    def trail_kinds(self, code: str, *, year: str | None = None
                    ) -> list[tuple[int, str | None, date, str]]:
        """The trail of `code` as (position, year, effective_on, event kind), in position
        order, without reading the events: what a read that only orders them by kind
        needs. Raises as `trail` does."""
        self._fresh("organisations", "trail")
        with self._together():
            return self._trail_entries(code, year, None, None)

    def _trail_entries(self, code: str, year: str | None, since: date | None,
                       until: date | None) -> list[tuple[int, str | None, date, str]]:
        kind, code = trail_subject(code)
        if year is not None:
            FinancialYear.parse(year)
        if since and until and since > until:
            raise InvalidInput("date", f"--since {since} is after --until {until}")
        columns = "position, year, effective_on, event"
        wide: list[tuple[Any, ...]] = []
        if kind == "consortium":
            try:
                self._consortium(code)
            except NotFound as error:
                raise NotFound(error.rule, f"{error.message}: {_TRAIL_TAKES}; {_ACTORS}"
                               ) from None
        else:
            self._practice(code)
            memberships = self._q(
                f"SELECT consortium, joined_on, left_on FROM {self._t('org_memberships')} "  # noqa: S608
                "WHERE practice = ?", [code])
            for consortium, joined_on, left_on in memberships:
                params: list[Any] = [f"consortium:{consortium}", *CONSORTIUM_WIDE, joined_on]
                sql = (f"SELECT {columns} FROM {self._t('trail')} WHERE subject = ? "  # noqa: S608
                       f"AND event IN (?, ?) AND effective_on >= ?")
                if left_on is not None:
                    sql += " AND effective_on < ?"
                    params.append(left_on)
                wide += self._q(sql, params)
        own = self._q(f"SELECT {columns} FROM {self._t('trail')} WHERE subject = ?",  # noqa: S608
                      [f"{kind}:{code}"])
        kept: list[tuple[int, str | None, date, str]] = []
        for position, row_year, effective, event in sorted(set(own) | set(wide)):
            on = date.fromisoformat(effective)
            if year is not None and row_year not in (None, year):
                continue
            if (since and on < since) or (until and on > until):
                continue
            kept.append((int(position), row_year, on, event))
        return kept

    def _events_at(self, positions: Sequence[int]) -> dict[int, LedgerEvent]:
        """The log's events at `positions`, by position, read on the read's connection
        as the projections' folds read them (`trusted_event`: validated when recorded);
        UnreadableEvent for one of a kind or schema version this code cannot read."""
        dialect = self.store.recorder.dialect
        found: dict[int, LedgerEvent] = {}
        for start in range(0, len(positions), EVENTS_AT_ONCE):
            chunk = list(positions[start:start + EVENTS_AT_ONCE])
            rows = self._q(
                f"SELECT {dialect.position}, originator_id, originator_version, topic, "  # noqa: S608
                f"state FROM {dialect.events} WHERE {dialect.position} IN ({_marks(chunk)})",
                chunk)
            for position, stream, version, topic, state in rows:
                if topic not in EVENTS_BY_TOPIC:
                    raise UnreadableEvent(topic, "?", None, int(position))
                found[int(position)] = trusted_event(topic, stream, version, bytes(state),
                                                     int(position))
        return found

    # --- positions ---------------------------------------------------------------------

    def position(self, *, practice: str | None = None, consortium: str | None = None,
                 by: str = "practice", year: str | None = None,
                 as_of: date | None = None) -> list[Row]:
        if practice is not None and consortium is not None:
            raise InvalidInput("options", "give --practice or --consortium, not both")
        if by not in GROUPINGS:
            raise InvalidInput("by", f"--by must be one of {', '.join(GROUPINGS)}, not {by!r}")
        self._fresh("organisations", "positions")
        with self._together():
            return self._position(practice, consortium, by, year, as_of)

    def _position(self, practice: str | None, consortium: str | None, by: str,
                  year: str | None, as_of: date | None) -> list[Row]:
        fy, day = self._year_and_day(year, as_of)
        practices: list[str] | None = None
        if practice is not None:
            practices = [self._practice(practice)]
        elif consortium is not None:
            practices = self._members(self._consortium(consortium), day)
            if not practices:
                return []
        if by != "practice":
            return self._rolled_up(fy, day, practices, as_of is not None, by)
        detail = self._position_rows(fy, day, practices, as_of is not None)
        return [{k: v for k, v in r.items() if k not in ("consortium", "allocator")}
                | {"consortium": r["consortium"]} for r in detail]

    def _amounts_sql(self, fy: FinancialYear, day: date, practices: list[str] | None,
                     dated: bool) -> tuple[str, list[Any]]:
        """Per practice and element: allocated, committed, settled, drawn (now or as of).

        Now, they are the rows of `position_totals` as they stand (one a practice and
        element); as of a date, the sums of `position_days` up to it.
        """
        params: list[Any] = [str(fy)]
        where = "year = ?"
        if dated:
            where += " AND effective_on <= ?"
            params.append(day.isoformat())
        if practices is not None:
            where += f" AND practice IN ({_marks(practices)})"
            params += practices
        if not dated:
            return (f"SELECT practice, element, allocated, committed, settled, drawn "  # noqa: S608
                    f"FROM {self._t('position_totals')} WHERE {where}", params)
        return (f"SELECT practice, element, CAST(SUM(allocated) AS BIGINT) AS allocated, "  # noqa: S608
                f"CAST(SUM(committed) AS BIGINT) AS committed, "
                f"CAST(SUM(settled) AS BIGINT) AS settled, CAST(SUM(drawn) AS BIGINT) AS drawn "
                f"FROM {self._t('position_days')} WHERE {where} GROUP BY practice, element",
                params)

    def _rolled_up(self, fy: FinancialYear, day: date, practices: list[str] | None,
                   dated: bool, by: str) -> list[Row]:
        """Positions summed per consortium or allocator and element, in the database.

        Row for row what summing `_position_rows` gives: each practice's top-slice
        (rounded down per practice and element) and overspend are worked out per row
        in SQL, then summed and counted per group; only the groups come back to
        Python. What belongs to a practice (its consortium and top-slice on the day,
        its allocator, hard or indicative) is looked up once a practice, then joined
        to its element rows by one lookup each.
        """
        year, on = str(fy), day.isoformat()
        # Every practice with a position that year (a position as of a day has its row
        # in the totals too), with what belongs to it, found once a practice:
        # its consortium on the day, the first (in code order) whose pool has a
        # top-slice that year, else the first (the same choice as `_top_slice_terms`),
        # and that top-slice; the hard/indicative status in force on the day, the last
        # change by date, then log; its allocator.
        scope = "year = ?"
        scope_params: list[Any] = [year]
        if practices is not None:
            scope += f" AND practice IN ({_marks(practices)})"
            scope_params += practices
        if self.db.kind == "sqlite":
            owners, params = self._owners_by_seeks(year, on, scope, scope_params)
        else:
            owners, params = self._owners_by_joins(year, on, scope, scope_params)
        # Each practice's element rows are found by their primary key, practice first:
        # SQLite joins in the order written after CROSS JOIN, and a unary plus keeps it
        # from seeking by the year index instead (PostgreSQL plans its own).
        join, pin = ("CROSS JOIN", "+") if self.db.kind == "sqlite" else ("JOIN", "")
        if dated:
            amounts = (
                "SELECT o.consortium AS consortium, o.allocator AS allocator, "  # noqa: S608
                "o.basis_points AS basis_points, o.hard AS hard, a.element AS element, "
                "CAST(SUM(a.allocated) AS BIGINT) AS allocated, "
                "CAST(SUM(a.committed) AS BIGINT) AS committed, "
                "CAST(SUM(a.settled) AS BIGINT) AS settled, CAST(SUM(a.drawn) AS BIGINT) AS drawn "
                f"FROM owners o {join} {self._t('position_days')} a "
                f"ON a.practice = o.practice AND {pin}a.year = ? AND {pin}a.effective_on <= ? "
                "GROUP BY o.practice, o.consortium, o.allocator, o.basis_points, o.hard, "
                "a.element")
            params += [year, on]
        else:
            amounts = (
                "SELECT o.consortium AS consortium, o.allocator AS allocator, "  # noqa: S608
                "o.basis_points AS basis_points, o.hard AS hard, a.element AS element, "
                "a.allocated AS allocated, a.committed AS committed, a.settled AS settled, "
                "a.drawn AS drawn "
                f"FROM owners o {join} {self._t('position_totals')} a "
                f"ON a.practice = o.practice AND {pin}a.year = ?")
            params += [year]
        detail = (
            "SELECT COALESCE(o.consortium, '') AS consortium, "  # noqa: S608
            "COALESCE(o.allocator, '') AS allocator, o.element AS element, "
            "o.allocated AS allocated, o.allocated - (CASE WHEN o.allocated > 0 "
            "THEN o.allocated ELSE 0 END) * o.basis_points / 10000 AS available, "
            "o.committed AS committed, o.settled AS settled, o.drawn AS drawn, "
            f"o.hard AS hard FROM ({amounts}) o")
        # Materialised: each practice's lookups run once, not once an element row.
        sql = (
            f"WITH owners AS MATERIALIZED ({owners}) "  # noqa: S608
            f"SELECT d.{by}, d.element, COUNT(*), SUM(d.allocated), SUM(d.available), "
            "SUM(d.committed), SUM(d.settled), SUM(d.drawn), "
            "SUM(CASE WHEN d.hard <> 0 THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN d.available + d.drawn - d.committed - d.settled < 0 "
            "THEN 1 ELSE 0 END) "
            f"FROM ({detail}) d GROUP BY d.{by}, d.element")
        found = self._q(sql, params)
        order = {str(e): i for i, e in enumerate(ELEMENTS)}
        rows: list[Row] = []
        for group, element, *numbers in sorted(found, key=lambda r: (r[0], order[r[1]])):
            (count, allocated, available, committed, settled, drawn, hard_count,
             overspent_count) = (int(v) for v in numbers)
            used = committed + settled
            rows.append({
                by: group, "year": year, "element": element, "practices": count,
                "allocated_pence": allocated, "available_pence": available,
                "committed_pence": committed, "settled_pence": settled,
                "drawn_pence": drawn, "remaining_pence": available + drawn - committed - settled,
                "hard_practices": hard_count, "overspent_practices": overspent_count,
                "used_percent": round(100 * used / available, 1) if available else None,
                "hard": hard_count == count, "overspent": overspent_count > 0,
            })
        return rows

    def _owners_by_seeks(self, year: str, on: str, scope: str, scope_params: list[Any]
                         ) -> tuple[str, list[Any]]:
        """Each practice's consortium, top-slice, allocator and status, by index seeks
        a practice (SQLite: correlated lookups, no plan to go wrong)."""
        member = ("m.practice = x.practice AND m.joined_on <= ? "
                  "AND (m.left_on IS NULL OR ? < m.left_on)")
        consortium = (
            f"SELECT m.consortium FROM {self._t('org_memberships')} m "  # noqa: S608
            f"LEFT JOIN {self._t('org_risk_pools')} r ON r.consortium = m.consortium "
            f"AND r.year = ? WHERE {member} ORDER BY CASE WHEN "
            "COALESCE(r.basis_points, 0) <> 0 THEN 0 ELSE 1 END, m.consortium LIMIT 1")
        basis_points = (
            f"SELECT r.basis_points FROM {self._t('org_memberships')} m "  # noqa: S608
            f"JOIN {self._t('org_risk_pools')} r ON r.consortium = m.consortium "
            f"AND r.year = ? WHERE {member} AND r.basis_points <> 0 "
            "ORDER BY m.consortium LIMIT 1")
        hard = (
            f"SELECT s.hard FROM {self._t('position_status')} s "  # noqa: S608
            "WHERE s.practice = x.practice AND s.year = ? AND s.effective_on <= ? "
            "ORDER BY s.effective_on DESC, s.position DESC LIMIT 1")
        owners = (
            f"SELECT x.practice AS practice, ({consortium}) AS consortium, "  # noqa: S608
            f"COALESCE(({basis_points}), 0) AS basis_points, b.allocator AS allocator, "
            f"COALESCE(({hard}), 0) AS hard "
            f"FROM (SELECT DISTINCT practice FROM {self._t('position_totals')} "
            f"WHERE {scope}) x "
            f"LEFT JOIN {self._t('position_budgets')} b ON b.practice = x.practice "
            "AND b.year = ?")
        return owners, [year, on, on, year, on, on, year, on, *scope_params, year]

    def _owners_by_joins(self, year: str, on: str, scope: str, scope_params: list[Any]
                         ) -> tuple[str, list[Any]]:
        """The same as `_owners_by_seeks`, set by set (PostgreSQL: hash joins, whatever
        its statistics say)."""
        terms = (
            "SELECT practice, consortium, basis_points FROM ("  # noqa: S608
            "SELECT m.practice, m.consortium, COALESCE(r.basis_points, 0) AS basis_points, "
            "ROW_NUMBER() OVER (PARTITION BY m.practice ORDER BY "
            "CASE WHEN COALESCE(r.basis_points, 0) <> 0 THEN 0 ELSE 1 END, m.consortium) AS n "
            f"FROM {self._t('org_memberships')} m LEFT JOIN {self._t('org_risk_pools')} r "
            "ON r.consortium = m.consortium AND r.year = ? "
            "WHERE m.joined_on <= ? AND (m.left_on IS NULL OR ? < m.left_on)) ranked "
            "WHERE n = 1")
        hard = (
            "SELECT practice, hard FROM ("  # noqa: S608
            "SELECT practice, hard, ROW_NUMBER() OVER (PARTITION BY practice "
            "ORDER BY effective_on DESC, position DESC) AS n "
            f"FROM {self._t('position_status')} WHERE year = ? AND effective_on <= ?) s "
            "WHERE n = 1")
        owners = (
            "SELECT x.practice AS practice, t.consortium AS consortium, "  # noqa: S608
            "COALESCE(t.basis_points, 0) AS basis_points, b.allocator AS allocator, "
            "COALESCE(h.hard, 0) AS hard "
            f"FROM (SELECT DISTINCT practice FROM {self._t('position_totals')} "
            f"WHERE {scope}) x "
            f"LEFT JOIN ({terms}) t ON t.practice = x.practice "
            f"LEFT JOIN {self._t('position_budgets')} b ON b.practice = x.practice "
            "AND b.year = ? "
            f"LEFT JOIN ({hard}) h ON h.practice = x.practice")
        return owners, [*scope_params, year, on, on, year, year, on]

    def _position_rows(self, fy: FinancialYear, day: date, practices: list[str] | None,
                       dated: bool) -> list[Row]:
        amounts = self._q(*self._amounts_sql(fy, day, practices, dated))
        hard: dict[str, bool] = {}
        for p, flag in self._q(
                f"SELECT practice, hard FROM {self._t('position_status')} WHERE year = ? "  # noqa: S608
                "AND effective_on <= ? ORDER BY practice, effective_on, position",
                [str(fy), day.isoformat()]):
            hard[p] = bool(flag)
        terms = self._top_slice_terms(str(fy), day)
        allocators = dict(self._q(
            f"SELECT practice, allocator FROM {self._t('position_budgets')} WHERE year = ?",  # noqa: S608
            [str(fy)]))
        order = {str(e): i for i, e in enumerate(ELEMENTS)}
        year_text = str(fy)
        rows: list[Row] = []
        for p, element, *sums in sorted(amounts, key=lambda r: (r[0], order.get(r[1], 99))):
            consortium, basis_points = terms.get(p, ("", 0))
            allocated, committed, settled, drawn = (int(v) for v in sums)
            available = allocated - top_slice(allocated, basis_points)
            remaining = available + drawn - committed - settled
            used = committed + settled
            rows.append({
                "practice": p, "consortium": consortium, "allocator": allocators.get(p, ""),
                "year": year_text, "element": element,
                "allocated_pence": allocated, "available_pence": available,
                "committed_pence": committed, "settled_pence": settled,
                "drawn_pence": drawn, "remaining_pence": remaining,
                "used_percent": round(100 * used / available, 1) if available else None,
                "hard": hard.get(p, False), "overspent": remaining < 0,
            })
        return rows

    def _top_slice_terms(self, year: str, day: date) -> dict[str, tuple[str, int]]:
        """practice -> (its consortium on `day`, top-slice basis points of its pool)."""
        terms: dict[str, tuple[str, int]] = {}
        rows = self._q(
            f"SELECT m.practice, m.consortium, r.basis_points FROM {self._t('org_memberships')} m "  # noqa: S608
            f"LEFT JOIN {self._t('org_risk_pools')} r ON r.consortium = m.consortium "
            "AND r.year = ? WHERE m.joined_on <= ? AND (m.left_on IS NULL OR ? < m.left_on) "
            "ORDER BY m.practice, m.consortium",
            [year, day.isoformat(), day.isoformat()])
        for p, consortium, basis_points in rows:
            if p not in terms or (basis_points and not terms[p][1]):
                terms[p] = (consortium, int(basis_points or 0))
        return terms

    # --- replay ------------------------------------------------------------------------

    def replay(self, practice: str, year: str, until: date | None = None) -> list[Row]:
        """Each event of one budget in recorded order, with the state after it.

        Reads the budget's own stream and folds it in memory: an answer writes nothing,
        not even a projection. Amounts are before any risk-pool top-slice. Raises
        InvalidInput for a malformed code, year or date, NotFound for a year nobody has a
        budget for (rule `year`, as every read of a year: only then are the positions
        brought up to date, to tell) or a practice without a budget that year (rule
        `budget`), UnreadableEvent as every read of the log does.
        """
        code = parse_practice_code(practice)
        fy = FinancialYear.parse(year)
        if until is not None and until < fy.first_day:
            raise InvalidInput("date", f"--until {until} is before the year {fy} starts")
        self.store.ensure_readable()
        events = self.store.stream(budget_stream(code, str(fy)))
        if not events:
            self._fresh("positions")
            self._require_year(fy)
            raise NotFound("budget", f"no budget for {code} in {fy}")
        holders = MemoryState()
        positions = MemoryState()
        steps: list[Row] = []
        for event in events:
            if until is not None and event.effective_on > until:
                continue
            item = Positioned(event.originator_version, event)
            fold(HOLDERS, [item], holders)
            fold(POSITIONS, [item], positions)
            steps.append(_step(event, holders, positions))
        return steps

    # --- projections -------------------------------------------------------------------

    def events(self, after: int = 0) -> Iterator[Row]:
        for position, event in self.store.iter_events(after):
            yield feed_row(position, event)


def feed_row(position: int, event: LedgerEvent) -> Row:
    body = event.model_dump(mode="json")
    return {"position": position, "event": event.topic,
            "schema_version": event.schema_version,
            "stream": body.pop("originator_id"), "version": body.pop("originator_version"),
            **body}


def refuse_past_head(after: int, head: int) -> None:
    """RuleViolation (exit 1, HTTP 409, rule `after`) for a feed checkpoint past the log's
    last position `head`: this ledger has recorded nothing there, so the checkpoint was
    kept from another ledger or from before a backup was restored, and waiting at it
    would skip the events the log gives those positions next."""
    if after > head:
        raise RuleViolation(
            "after", f"checkpoint {after} is past the head of this ledger ({head}): it has "
            "recorded no event there; a checkpoint kept from another ledger or from before "
            f"a backup was restored must be set back to at most {head}")


def _step(event: LedgerEvent, holders: MemoryState, positions: MemoryState) -> Row:
    held: dict[str, str] = {}
    by_element: dict[str, list[tuple[date, int, str]]] = {}
    for (_, _, element, position), (on, _, who) in holders.table(HOLDER_CHANGES).items():
        by_element.setdefault(element, []).append((on, position, who))
    for element, changes in by_element.items():
        in_force = [c for c in sorted(changes) if c[0] <= event.effective_on]
        held[element] = in_force[-1][2] if in_force else ""
    # The elements the budget has by the step's date, as a holders read lists them.
    has = {element for (_, _, element, _), (on, _) in holders.table(HOLDER_ELEMENTS).items()
           if on <= event.effective_on}
    totals = positions.table(TOTALS)
    money = [0, 0, 0, 0]
    for values in totals.values():
        for i, v in enumerate(values):
            money[i] += v
    allocated, committed, settled, drawn = money
    return {
        "version": event.originator_version, "recorded_at": event.recorded_at,
        "effective_on": event.effective_on, "actor": event.actor, "event": event.topic,
        "summary": describe(event),
        "holders": {str(e): held.get(str(e), "") for e in ELEMENTS if str(e) in has},
        "allocated_pence": allocated, "committed_pence": committed,
        "settled_pence": settled, "drawn_pence": drawn,
        "remaining_pence": allocated + drawn - committed - settled,
    }


_TRAIL_TAKES = "trail takes a practice's ODS code (A81001) or a consortium's code (16C)"
_ACTORS = "what an allocator, auditor or service did is each event's actor in ledger events"


def trail_subject(text: str) -> tuple[str, str]:
    """("practice", "A81001") or ("consortium", "16C"): whose trail `text` names, by the
    shape of its code (DESIGN glossary: a practice's is one letter and five digits, a
    consortium's 3 characters with a digit or 5). An actor's form (`consortium:16C`,
    `allocator:Q71`) or any other text raises InvalidInput (rule `trail`) saying what
    trail takes and what to use instead."""
    role, colon, rest = text.strip().partition(":")
    kind = role.strip().lower()
    if colon and kind in ("practice", "consortium"):
        raise InvalidInput("trail", f"trail takes the code alone, without {kind}: before "
                           f"it: write ledger trail {rest.strip()[:40] or 'A81001'}")
    if colon:
        raise InvalidInput("trail", f"{_TRAIL_TAKES}, not {shown(text)}: {_ACTORS}")
    try:
        return "practice", parse_practice_code(text)
    except InvalidInput:
        pass
    try:
        return "consortium", parse_consortium_code(text)
    except InvalidInput:
        raise InvalidInput("trail", f"malformed code {shown(text)}: {_TRAIL_TAKES}: one "
                           "letter and five digits, or 3 characters with a digit or 5 "
                           "(X2C4Y)") from None
