"""How the read commands print rows: a rich table for people, JSON or CSV for programs.

- table: money as £1,234.56 (columns named without `_pence`), flags as yes/no;
- json: one JSON array of row objects, money as integer pence, dates ISO 8601;
- csv: the same rows with a header; nested values (replay's holders) become one
  column per element (`holder_acute`, ...).

Tables are printed through commands/render.table, the one width rule.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import orjson

from commands import render  # one console for people: one width rule

if TYPE_CHECKING:
    from rich.text import Text


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


Row = dict[str, Any]

# Never wrapped in a table, like money: a date or an instant split over two lines misleads.
DATES = frozenset({"effective_on", "recorded_at", "since", "as_of", "adopted_on"})


def _flat(row: Row) -> Row:
    flat: Row = {}
    for key, value in row.items():
        if isinstance(value, dict):
            for inner, v in value.items():
                flat[f"holder_{inner}" if key == "holders" else f"{key}_{inner}"] = v
        else:
            flat[key] = value
    return flat


def is_rate(key: str) -> bool:
    """Whether a column holds a rate per 1,000 patients (funnel and Tukey alike)."""
    return key.endswith("per_1000")


def two_decimals(value: float | None) -> str:
    """A figure as people read it, with two decimals: a rate per 1,000 (whichever
    method made it), an expected count, a z score."""
    return "-" if value is None else f"{value:,.2f}"


def _csv_value(key: str, value: Any) -> Any:
    if value is None:
        return ""
    if is_rate(key) and isinstance(value, float) and round(value, 2) == value:
        return f"{value:.2f}"  # two decimals at least, as the tables show; never fewer
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        from ledger.domain.values import utc_text  # noqa: PLC0415 - fast --help

        return utc_text(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _cell_text(value: Any, shown: Any) -> Any:
    return shown(spreadsheet_inert(value)) if isinstance(value, str) else value


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet takes a cell to begin a formula with (OWASP, "CSV Injection")."""


def spreadsheet_inert(text: str) -> str:
    """A CSV text cell a spreadsheet shows rather than runs: text beginning as a formula
    does (`=HYPERLINK(...)`, `+`, `-`, `@`, a tab or carriage return) is written after an
    apostrophe, which spreadsheets take as "text follows", as OWASP's CSV injection
    guidance advises. A number written as text (`-12.50`) is left as it is."""
    if not text.startswith(FORMULA_STARTS):
        return text
    try:
        float(text)
    except ValueError:
        return "'" + text
    return text


def _instant(key: str, value: Any) -> Any:
    """An instant column (`recorded_at`) as the service's JSON rows carry it, ISO 8601
    text (`2024-07-15T09:30:00.123456Z`), read back as the instant the store's rows hold,
    so a table prints it the same way with or without `--server`; other values as given."""
    if key.endswith("_at") and isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def _cell(key: str, value: Any) -> Text:  # noqa: PLR0911 - one return per kind of value
    from rich.text import Text  # noqa: PLC0415 - rich only when printing

    from ledger.domain.values import format_pence  # noqa: PLC0415 - keeps --help fast

    if value is None:
        return Text("")
    value = _instant(key, value)
    if key.endswith("_pence") and isinstance(value, int):
        return Text(format_pence(value), style="red" if value < 0 else "")
    if isinstance(value, bool):
        return Text("yes" if value else "no", style="bold red" if value and key == "overspent"
                    else "")
    if isinstance(value, datetime):
        return Text(value.strftime("%Y-%m-%d %H:%M:%S"))
    if isinstance(value, date):
        return Text(value.isoformat())
    if isinstance(value, float):
        if is_rate(key):
            return Text(two_decimals(value))
        return Text(f"{value:.1f}%" if key.endswith("percent") else f"{value}")
    if isinstance(value, int):
        return Text(f"{value:,}" if key != "position" else str(value))
    if isinstance(value, dict):
        shown = [f"{k}={v}" for k, v in value.items()]
        return Text(render.safe(", ".join(shown)))
    return Text(render.safe(str(value)))


def _header(key: str) -> str:
    return key.removesuffix("_pence").replace("_percent", " %").replace("_", " ")


def rows(items: Sequence[Row], fmt: Format, *, columns: Sequence[str] | None = None,
         title: str = "", empty: str = "nothing to show", droppable: Sequence[str] = ()
         ) -> None:
    """Print rows in the chosen format; `columns` picks and orders the table's columns.

    JSON and CSV carry every field of the rows; the table shows `columns`, leaving
    out those in `droppable` (in that order) when a terminal is too narrow
    (commands/render.table: money is never cut off).
    """
    from rich.table import Table  # noqa: PLC0415 - rich only when printing
    from rich.text import Text  # noqa: PLC0415

    if fmt is Format.json:
        sys.stdout.write(render.safe_json(orjson.dumps(
            list(items), option=orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z).decode()) + "\n")
        return
    if fmt is Format.csv:
        flat = [_flat(r) for r in items]
        names = list(dict.fromkeys(k for r in flat for k in r)) or list(columns or [])
        writer = csv.DictWriter(sys.stdout, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        # CSV is data: its cells are written as stored, but not to a terminal, where
        # an escape sequence in a stored name would act rather than show, and no text
        # cell is written as a formula a spreadsheet opening the file would run.
        shown = render.safe if sys.stdout.isatty() else str
        for r in flat:
            writer.writerow({k: _cell_text(_csv_value(k, v), shown) for k, v in r.items()})
        return
    if not items:
        render.out.print(Text(render.safe(f"{title}: {empty}" if title else empty)))
        return

    def build(keys: Sequence[str]) -> Table:
        made = Table(title=render.safe(title) or None, title_justify="left")
        for key in keys:
            numeric = key.endswith(("_pence", "_percent")) or key in (
                "practices", "position", "lag", "head", "members", "draws")
            made.add_column(_header(key), justify="right" if numeric else "left",
                            no_wrap=key.endswith("_pence") or key in DATES)
        for item in items:
            made.add_row(*(_cell(k, item.get(k)) for k in keys))
        return made

    render.table(build, list(columns or items[0].keys()), droppable=droppable, label=_header)


def json_lines(items: Iterable[Row]) -> None:
    for item in items:
        sys.stdout.write(render.safe_json(orjson.dumps(item, option=orjson.OPT_UTC_Z).decode())
                         + "\n")
        sys.stdout.flush()
