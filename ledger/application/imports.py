"""File imports: practices and allocations from CSV, all or nothing.

Each row becomes one command with a command id derived from the import's id and
the row's line (`<id>:line<N>`), and the whole file runs as one atomic batch:
one bad row refuses the file, naming its line, and nothing is recorded. Without
an explicit id, the import's id is derived from the file's content, so running
the same file again answers "already applied" and records nothing new.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from ledger.application.commands import Command, build_command
from ledger.application.files import read_text, source_name
from ledger.application.mapping import (
    ALLOCATION_FIELDS,
    LIST_SIZE_FIELDS,
    PRACTICE_FIELDS,
    ColumnMap,
    missing_columns,
    weighted_of,
)
from ledger.application.service import Clock, Outcome, Request
from ledger.domain.characters import COMMAND_ID_MAX, parse_command_id, refuse_unprintable
from ledger.domain.errors import InvalidInput, LedgerError
from ledger.domain.values import FinancialYear, parse_practice_code, shown

PRACTICE_COLUMNS = ("practice", "name", "list_size")
LIST_SIZE_COLUMNS = ("practice", "list_size")
ALLOCATION_COLUMNS = ("practice", "element", "amount")


@dataclass(frozen=True, slots=True)
class ImportReport:
    source: str
    what: str
    rows: int
    command_id: str
    outcomes: tuple[Outcome, ...]

    @property
    def applied(self) -> int:
        return sum(1 for o in self.outcomes if o.status == "applied")

    @property
    def already_applied(self) -> int:
        return sum(1 for o in self.outcomes if o.status == "already applied")


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    values: dict[str, str]


@dataclass(frozen=True, slots=True)
class CsvFile:
    source: str
    text: str

    @classmethod
    def read(cls, path: Path) -> CsvFile:
        return cls(source_name(path), read_text(path, encoding="utf-8-sig"))

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    def header(self, required: Sequence[str]) -> list[str]:
        """The header row's column names, as written."""
        reader = csv.reader(io.StringIO(self.text, newline=""), strict=True)
        return self._header_row(reader, required)

    def _header_row(self, reader: Iterator[list[str]], required: Sequence[str]) -> list[str]:
        """The reader's first row; InvalidInput naming `required` when the file is empty,
        and saying how to save it comma-separated when it is separated by semicolons or
        tabs (_other_separator)."""
        try:
            header = next(reader)
        except StopIteration:
            raise InvalidInput("csv-header", f"{self.source} is empty: it needs a header row "
                               f"({','.join(required)})") from None
        except csv.Error as error:
            _other_separator(self.source, self.text)
            raise InvalidInput("csv", f"{self.source} line 1: {error}") from None
        if len(header) == 1:
            _other_separator(self.source, self.text)
        return header

    def mapped_rows(self, mapping: ColumnMap, fields: Sequence[str], required: Sequence[str]
                    ) -> Iterator[Row]:
        """Rows as {field: value}, the columns read through `mapping` (see mapping.py)."""
        chosen = mapping.resolve(self.header(required), fields, required, self.source)
        for row in self.rows(()):
            yield Row(row.line, mapping.values(chosen, row.values,
                                               f"{self.source} line {row.line}"))

    def rows(self, required: Sequence[str]) -> Iterator[Row]:
        """Rows as {column: value} with lower-cased, trimmed column names.

        Nothing is dropped silently: a column named twice, a row with more or fewer
        cells than the header, a value under a column with no name and malformed
        quoting are refused, naming the line. Rows whose cells are all blank (an empty
        line, a spreadsheet's `,,,`) carry nothing and are skipped; a byte-order mark
        before the header is read as nothing.
        """
        reader = csv.reader(io.StringIO(self.text, newline=""), strict=True)
        header = [h.strip().lower() for h in self._header_row(reader, required)]
        for number, name in enumerate(header, 1):
            _printable(name, self.source, 1, f"header column {number}")
        _check_header(header, required, self.source)
        try:
            ended = reader.line_num  # the line the previous row ended on
            for cells in reader:
                # A quoted cell may span lines: a row is named by the line it starts on.
                line, ended = ended + 1, reader.line_num
                if not any(c.strip() for c in cells):
                    continue
                if len(cells) != len(header):
                    raise InvalidInput("csv-row", _miscounted(self.source, line, header, cells))
                values: dict[str, str] = {}
                for number, (name, cell) in enumerate(zip(header, cells, strict=True), 1):
                    _printable(cell, self.source, line, name or f"column {number}")
                    if name:
                        values[name] = cell.strip()
                    elif cell.strip():
                        raise InvalidInput(
                            "csv-row",
                            f"{self.source} line {line}: a value in column {number}, which "
                            "has no name in the header; nothing was imported",
                        )
                yield Row(line, values)
        except csv.Error as error:
            raise InvalidInput("csv", f"{self.source} line {reader.line_num}: {error}; "
                               "nothing was imported") from None


_SAVE_AS_CSV = 'save it as "CSV UTF-8 (Comma delimited)" (Excel: File > Save As)'
_SEPARATORS = {
    ";": ("semicolon-separated", f"{_SAVE_AS_CSV} with a comma as the list separator and a "
          "full stop as the decimal symbol (Windows: Region > Additional settings)"),
    "\t": ("tab-separated", f'{_SAVE_AS_CSV}, not as "Text (Tab delimited)"'),
}


def _other_separator(source: str, text: str) -> None:
    """Refuse a file whose header row is one column when read comma-separated but several
    when read separated by semicolons (as Excel writes CSV where a comma is the decimal
    point) or tabs (Excel's "Text (Tab delimited)"), saying how to save it with commas.
    No import has fewer than two columns, so a comma-separated file is never refused here.
    Raises InvalidInput (rule `csv-separator`, exit 2); returns when neither fits."""
    first = text.split("\n", 1)[0].removesuffix("\r")
    if len(next(csv.reader([first]), [])) > 1:
        return
    counts = {sep: len(next(csv.reader([first], delimiter=sep), [])) for sep in _SEPARATORS}
    sep = max(counts, key=lambda s: counts[s])
    if counts[sep] < 2:
        return
    looks, how = _SEPARATORS[sep]
    raise InvalidInput("csv-separator", f"{source} looks {looks} (line 1: {shown(first)}): "
                       f"the ledger reads comma-separated CSV; {how}; nothing was imported")


def _printable(cell: str, source: str, line: int, column: str) -> None:
    """A cell holding a control, invisible or unassigned character is refused, naming the
    line and column: nothing a file holds may print differently from what is recorded."""
    try:
        refuse_unprintable(cell, column)
    except InvalidInput as error:
        raise InvalidInput(error.rule, f"{source} line {line}: {error.message}; "
                           "nothing was imported") from None


def _miscounted(source: str, line: int, header: list[str], cells: list[str]) -> str:
    """Why a row whose cell count differs from the header's is refused."""
    counts = f"{len(cells)} cells but the header has {len(header)} columns"
    if len(cells) > len(header):
        return (f"{source} line {line}: {counts} (quote a value that holds a comma, "
                f'as "1,200,000"); nothing was imported')
    absent = ", ".join(name for name in header[len(cells):] if name) or "a cell"
    return f"{source} line {line}: no {absent}: {counts}; nothing was imported"


def _check_header(header: list[str], required: Sequence[str], source: str) -> None:
    """Every required column present, and no column named twice."""
    seen: dict[str, int] = {}
    for number, name in enumerate(header, 1):
        if name and name in seen:
            raise InvalidInput(
                "csv-header",
                f"{source} line 1: column {name} appears twice (columns {seen[name]} and "
                f"{number}); nothing was imported",
            )
        seen[name] = number
    missing = [c for c in required if c not in seen]
    if missing:
        raise missing_columns(source, missing, header)


def _cell(row: Row, column: str, source: str) -> str:
    value = row.values.get(column, "")
    if not value:
        raise InvalidInput("csv-row", f"{source} line {row.line}: no {column}")
    return value


def _at_line(error: LedgerError, source: str, line: int) -> LedgerError:
    """The same kind of error, naming the file and line; the file is refused whole."""
    return type(error)(
        error.rule, f"{source} line {line}: {error.message}; nothing was imported"
    )


class Runs(Protocol):
    """What runs an import: LedgerService, or the ledger service for a client (`--server`)."""

    @property
    def clock(self) -> Clock: ...

    def execute_batch(self, requests: Sequence[Request], *, atomic: bool = False
                      ) -> list[Outcome]: ...


@dataclass
class _Plan:
    """The commands of an import, each remembering the line it came from."""

    source: str
    command_id: str
    actor: str
    requests: list[Request]
    lines: list[int]

    def add(self, line: int, suffix: str, name: str, args: dict[str, Any]) -> None:
        try:
            command: Command = build_command(name, args)
        except LedgerError as error:
            raise _at_line(error, self.source, line) from None
        row_id = f"{self.command_id}:line{line}{suffix}"
        self.requests.append(Request(command, self.actor, row_id))
        self.lines.append(line)

    def _refuse_long_ids(self) -> None:
        """InvalidInput (rule `identifier`) when a row's id, `<id>:line<N>[:join]`, passes
        COMMAND_ID_MAX, which an id given with --command-id may make it do: such an id
        could be named by no retry, apply line or Idempotency-Key. The room named is the
        one the longest row's id leaves, so an id that long fits every row."""
        row_id, line = max(((r.command_id, line) for r, line in zip(
            self.requests, self.lines, strict=True)), key=lambda found: len(found[0]))
        if len(row_id) > COMMAND_ID_MAX:
            room = COMMAND_ID_MAX - (len(row_id) - len(self.command_id))
            raise InvalidInput(
                "identifier",
                f"{self.source} line {line}: the import's command id is "
                f"{len(self.command_id)} characters long: each row is recorded as "
                f"<id>:line<N>, at most {COMMAND_ID_MAX} characters, so give one of at most "
                f"{room}; nothing was imported")

    def run(self, service: Runs, what: str) -> ImportReport:
        """Every command as one atomic batch, reported as `what`; a file whose header has
        no row under it, or whose rows' ids would be too long (`_refuse_long_ids`), is
        refused (InvalidInput) before anything runs."""
        rows = len(set(self.lines))  # every row read gave one command or more
        if rows == 0:
            raise InvalidInput("csv", f"{self.source} has a header but no rows: nothing to "
                               "import")
        self._refuse_long_ids()
        outcomes = service.execute_batch(self.requests, atomic=True)
        for outcome, line in zip(outcomes, self.lines, strict=False):
            if outcome.error is not None:
                raise _at_line(outcome.error, self.source, line)
        return ImportReport(self.source, what, rows, self.command_id, tuple(outcomes))


def _plan(file: CsvFile, kind: str, actor: str, command_id: str | None) -> _Plan:
    """The import's id is `command_id` (InvalidInput when empty, blank or malformed),
    or derived from the file's content when None."""
    chosen = f"import:{kind}:{file.digest}" if command_id is None else parse_command_id(
        command_id)
    return _Plan(file.source, chosen, actor, [], [])


def import_practices(
    service: Runs,
    path: Path,
    *,
    actor: str,
    command_id: str | None = None,
    on: str | None = None,
    mapping: ColumnMap | None = None,
) -> ImportReport:
    """Register each practice of a `practice,name,list_size[,consortium][,<element>_weighted]`
    file, and join it to its consortium when one is named.

    `mapping` says which published column holds which field (mapping.py); without
    it the columns are named as above. Registration and joining take effect on
    `on`, by default the first day of the current financial year (a practice joins
    on the day it is registered).
    """
    file = CsvFile.read(path)
    plan = _plan(file, "practices", actor, command_id)
    effective = on or default_join_date(service.clock().date()).isoformat()
    for row in file.mapped_rows(mapping or ColumnMap(), PRACTICE_FIELDS, PRACTICE_COLUMNS):
        practice = _cell(row, "practice", file.source)
        plan.add(row.line, "", "practice register", {
            "practice": practice,
            "name": _cell(row, "name", file.source),
            "list_size": _cell(row, "list_size", file.source),
            "weighted": weighted_of(row.values),
            "on": effective,
        })
        consortium = row.values.get("consortium", "")
        if consortium:
            plan.add(row.line, ":join", "consortium join", {
                "consortium": consortium, "practice": practice, "on": effective,
            })
    return plan.run(service, "practices")


def import_list_sizes(
    service: Runs,
    path: Path,
    *,
    actor: str,
    command_id: str | None = None,
    on: str | None = None,
    mapping: ColumnMap | None = None,
) -> ImportReport:
    """Record the list size (and any weighted populations) of each row's practice, already
    registered, in force from `on` (default today): next month's published file.

    Columns `practice,list_size[,<element>_weighted]`, or as `mapping` says. A practice
    on two rows is refused (InvalidInput, rule `csv-row`), naming both lines: both figures
    would take effect on the same day and one would be lost, as when a file of list sizes
    by sex or age band is given for the totals.
    """
    file = CsvFile.read(path)
    plan = _plan(file, "list-sizes", actor, command_id)
    seen: dict[str, int] = {}
    for row in file.mapped_rows(mapping or ColumnMap(), LIST_SIZE_FIELDS, LIST_SIZE_COLUMNS):
        args: dict[str, Any] = {
            "practice": _cell(row, "practice", file.source),
            "list_size": _cell(row, "list_size", file.source),
            "weighted": weighted_of(row.values),
        }
        if on:
            args["on"] = on
        plan.add(row.line, "", "practice list-size", args)
        code = parse_practice_code(args["practice"])  # read by the command just added
        if code in seen:
            raise InvalidInput(
                "csv-row",
                f"{file.source} line {row.line}: practice {code} is also on line {seen[code]}: "
                "a file of list sizes gives each practice once (one list size in force from "
                "the same day); nothing was imported",
            )
        seen[code] = row.line
    return plan.run(service, "list sizes")


def import_allocations(
    service: Runs,
    path: Path,
    *,
    actor: str,
    year: str,
    command_id: str | None = None,
    on: str | None = None,
    mapping: ColumnMap | None = None,
) -> ImportReport:
    """Allocate each row of a `practice,element,amount` file to the practice's budget.

    `mapping` says which published column holds which field (mapping.py); without
    it the columns are named as above."""
    year = str(FinancialYear.parse(year))
    file = CsvFile.read(path)
    plan = _plan(file, f"allocations:{year}", actor, command_id)
    for row in file.mapped_rows(mapping or ColumnMap(), ALLOCATION_FIELDS,
                                ALLOCATION_COLUMNS):
        args: dict[str, Any] = {
            "practice": _cell(row, "practice", file.source),
            "year": year,
            "element": {_cell(row, "element", file.source): _cell(row, "amount", file.source)},
            "basis": f"allocations file, line {row.line}",
        }
        if on:
            args["on"] = on
        plan.add(row.line, "", "budget allocate", args)
    return plan.run(service, "allocation rows")


def default_join_date(today: date) -> date:
    """When imported practices join their consortium unless `--on` says otherwise."""
    return FinancialYear.containing(today).first_day
