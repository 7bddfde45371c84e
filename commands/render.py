"""Everything the write commands print, in one place (rich; money as £1,234.56).

Answers and reports go to stdout; errors go to stderr as one line. Text from the
ledger is printed literally (never read as rich markup), and lines are never
wrapped, so programs and people can rely on one line per message. Text that is
not printable (controls such as ESC or NUL, bidi overrides, zero-width characters:
ledger/domain/characters.py), which events recorded by older versions may hold, is
shown escaped (`\x1b`, `\u202e`) by `safe`, never sent to the terminal raw.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from time import monotonic
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table
    from rich.text import Text

    from commands.demo_ledger import DemoSummary
    from ledger.application.batch import ApplyReport, LineResult
    from ledger.application.formula import FormulaRun
    from ledger.application.imports import ImportReport
    from ledger.application.service import Answer
    from ledger.domain.errors import LedgerError

# Consoles resolve sys.stdout / sys.stderr when they print, so test runners that
# swap the streams see the output.
# Tables are for people: on a terminal rich fits them to its width; piped into a
# file or a pager (no width to ask), give them room rather than rich's 80 columns.
WIDTH_OFF_TERMINAL = 160


@functools.cache
def _consoles() -> tuple[Console, Console]:
    """The two consoles, made on first use, so importing this module (as every command
    does, and `ledger --help`) does not load rich."""
    import os  # noqa: PLC0415

    from rich.console import Console  # noqa: PLC0415 - rich only when printing

    # rich reads COLUMNS and LINES with isdigit() then int(), which `²` passes and then
    # fails: a size that is not a sensible count of ASCII digits is left unset instead.
    for name in ("COLUMNS", "LINES"):
        if name in os.environ and _size(os.environ[name]) is None:
            del os.environ[name]
    class RaisingConsole(Console):
        def on_broken_pipe(self) -> None:
            # rich would exit 1, the code of a refusal, even after a write was recorded:
            # a closed pipe is left to the command's handler, which ends as SIGPIPE would.
            self.quiet = True
            raise BrokenPipeError

    return (RaisingConsole(highlight=False, soft_wrap=True,
                           width=None if sys.stdout.isatty() else WIDTH_OFF_TERMINAL),
            RaisingConsole(stderr=True, highlight=False, soft_wrap=True))


if TYPE_CHECKING:
    out: Console  # answers and reports, on stdout
    err: Console  # errors and progress, on stderr


def __getattr__(name: str) -> Console:
    """`render.out` and `render.err` (and `from commands.render import out`)."""
    if name == "out":
        return _consoles()[0]
    if name == "err":
        return _consoles()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _out() -> Console:
    return _consoles()[0]


def _err() -> Console:
    return _consoles()[1]


# Above this many lines, `apply` lists refused lines one by one and the rest as
# runs of line numbers.
LIST_EACH_LINE_UP_TO = 50

_STATUS_STYLE = {"applied": "green", "already applied": "cyan", "refused": "bold red"}


def safe(text: str) -> str:
    """`text` with every character that is not printable escaped (`\x1b`, `\u202e`)."""
    from ledger.domain.characters import escaped  # noqa: PLC0415 - keeps --help fast

    return escaped(text)


def safe_json(text: str) -> str:
    """JSON text whose invisible characters are JSON escapes: the same value, printable."""
    from ledger.domain.characters import json_escaped  # noqa: PLC0415 - keeps --help fast

    return json_escaped(text)


def _line(text: str, style: str = "") -> Text:
    from rich.text import Text  # noqa: PLC0415 - rich only when printing

    return Text(safe(text), style=style)


# --- tables --------------------------------------------------------------------------

# Wider than any table: what "no width limit" means when measuring one.
UNLIMITED = 100_000


def terminal_width() -> int:
    """The terminal's width now: COLUMNS when set (read at each call), else rich's answer."""
    import os  # noqa: PLC0415

    return _size(os.environ.get("COLUMNS", "")) or _out().width


def _size(text: str) -> int | None:
    """A terminal size from the environment: 1 to 9999 in ASCII digits, else None."""
    text = text.strip()
    if text.isascii() and text.isdigit() and len(text) <= 4 and int(text) > 0:
        return int(text)
    return None


def table(build: Callable[[Sequence[str]], Table], columns: Sequence[str], *,
          droppable: Sequence[str] = (), label: Callable[[str], str] = str) -> None:
    """Print the table `build(columns)` makes, with no cell ever cut off.

    On a terminal it fits the width: text columns wrap; columns that must not
    wrap (money) never do. When it still does not fit, the columns named in
    `droppable` are left out, in that order, until it does, and a line under the
    table names them (by `label`); if it fits no way, it is printed whole and the
    terminal wraps the lines. Off a terminal (piped or redirected) it is printed as
    wide as its widest row needs, whatever COLUMNS says.
    """
    from rich.console import Console  # noqa: PLC0415 - rich only when printing
    from rich.measure import Measurement  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    out = _out()

    def widths(made: Table) -> Measurement:
        return Measurement.get(out, out.options.update_width(UNLIMITED), made)

    shown = list(columns)
    made = build(shown)
    hidden: list[str] = []
    width = widths(made).maximum
    if out.is_terminal:
        room = terminal_width()
        for name in droppable:
            if widths(made).minimum <= room:
                break
            if name in shown and len(shown) > 1:
                shown.remove(name)
                hidden.append(name)
                made = build(shown)
        if widths(made).minimum <= room:
            width = room
        else:  # no way to fit: every column, whole, and the terminal wraps the lines
            made, hidden = build(list(columns)), []
            width = widths(made).maximum
    Console(file=out.file, width=width, highlight=False, soft_wrap=True,
            force_terminal=out.is_terminal, no_color=out.no_color).print(made)
    if hidden:
        names = ", ".join(map(label, hidden))
        out.print(Text(f"(not shown, to fit the terminal: {names}; "
                       "widen it or use --format csv)", style="dim"))


# --- errors --------------------------------------------------------------------------


def error(problem: LedgerError | str) -> None:
    """One line on stderr: `error: <what> [rule: <rule>]`."""
    message = str(problem)
    if "://" in message:
        from ledger.store.eventstore import mask_password  # noqa: PLC0415 - error path only

        message = mask_password(message)
    # One line whatever the message holds: line breaks are escaped (safe), and runs of
    # spaces kept, as a refusal may quote input whose spacing is what is wrong with it.
    _err().print(_line(f"error: {safe(message)}", "bold red"))


# --- one command ---------------------------------------------------------------------


def answer(result: Answer) -> None:
    from rich.text import Text  # noqa: PLC0415 - rich only when printing

    status = "already applied" if result.already_applied else "done"
    style = "cyan" if result.already_applied else "green"
    summary = safe(result.summary)
    flagged = "OVERSPEND FLAGGED" in summary
    text = Text()
    text.append(f"{status}: ", style=style)
    text.append(summary, style="yellow" if flagged else "")
    _out().print(text)
    when = f"effective {result.effective_on.isoformat()}; " if result.effective_on else ""
    events = len(result.events)
    _out().print(
        _line(
            f"  {when}{events} event{'s' if events != 1 else ''}; "
            f"command id {result.command_id}",
            "dim",
        )
    )


def raw(text: str) -> None:
    """JSON for programs, written as is but for invisible characters (`safe_json`)."""
    sys.stdout.write(safe_json(text) + "\n")


def done(what: str) -> None:
    from rich.text import Text  # noqa: PLC0415 - rich only when printing

    _out().print(Text.assemble(("done: ", "green"), safe(what)))


def token_secret(token_id: str, secret: str) -> None:
    """A new token's secret: printed this once, never stored."""
    _out().print(_line(f"  token {token_id}: {secret}", "bold"))
    _out().print(_line("  keep it now: it cannot be shown again "
                       "(send it as Authorization: Bearer <token>)", "dim"))


# --- file imports --------------------------------------------------------------------


def import_report(report: ImportReport) -> None:
    from rich.text import Text  # noqa: PLC0415 - rich only when printing

    already = report.already_applied
    applied = report.applied
    if applied == 0 and already:
        status, style = "already applied", "cyan"
    else:
        status, style = "done", "green"
    text = Text()
    text.append(f"{status}: ", style=style)
    what = _ONE.get(report.what, report.what) if report.rows == 1 else report.what
    text.append(
        f"imported {report.rows} {what} from {safe(report.source)} "
        f"({applied} command{'s' if applied != 1 else ''} applied, {already} already applied)"
    )
    _out().print(text)
    _out().print(_line(f"  command ids {report.command_id}:line<N>", "dim"))


def formula_run(run: FormulaRun) -> None:
    """Each practice's allocation by formula: weighted population x rate = amount."""
    from rich.table import Table  # noqa: PLC0415 - rich only when printing
    from rich.text import Text  # noqa: PLC0415

    from ledger.domain.values import format_pence, format_weighted  # noqa: PLC0415

    table = Table(title=f"Allocation by formula, {run.year}, effective {run.effective_on}")
    for name in ("practice", "element", "weighted population", "rate per head", "amount"):
        table.add_column(name, justify="left" if name in ("practice", "element") else "right",
                         no_wrap=True)
    for line in run.lines:
        for element, term in line.terms.items():
            table.add_row(line.practice, str(element), format_weighted(term.weighted_population),
                          format_pence(term.rate_pence), format_pence(line.amounts[element]))
    _out().print(table)
    for skipped in run.left_out:
        _out().print(_line(f"  left out: {skipped}", "dim"))
    what = (f"{len(run.lines)} practice{'s' if len(run.lines) != 1 else ''}, "
            f"{format_pence(run.total)} in all")
    text = Text()
    if run.dry_run:
        text.append("dry run: ", style="yellow")
        text.append(f"would allocate {what}; nothing recorded")
    elif run.already_applied == len(run.lines):
        text.append("already applied: ", style="cyan")
        text.append(f"allocated {what} (0 commands applied)")
    else:
        text.append("done: ", style="green")
        text.append(f"allocated {what} ({len(run.lines) - run.already_applied} commands "
                    f"applied, {run.already_applied} already applied)")
    _out().print(text)
    _out().print(_line(f"  command ids {run.run_id}:<practice>", "dim"))


# --- apply ---------------------------------------------------------------------------


REDRAW_EVERY = 0.1
"""Seconds between redraws of `apply`'s progress bar at the most (rich's own rate): a
batch of one line takes far less."""


@contextmanager
def apply_progress(total: int, batch_size: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal; elsewhere a line on stderr per batch of a long file."""
    if _out().is_terminal:
        from rich.progress import (  # noqa: PLC0415 - only on a terminal
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        with Progress(
            TextColumn("applying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=_out(),
            transient=True,
            auto_refresh=False,  # no refresh thread: `apply` may fork its parse process
        ) as bar:
            task = bar.add_task("apply", total=total)
            drawn = monotonic()

            def advance(settled: int) -> None:
                nonlocal drawn
                bar.advance(task, settled)
                if monotonic() - drawn >= REDRAW_EVERY:  # a redraw costs some 0.4 ms of CPU
                    bar.refresh()
                    drawn = monotonic()

            yield advance
        return
    done = 0

    def log(settled: int) -> None:
        nonlocal done
        done += settled
        if total > batch_size:
            # Not "settled": to a finance reader that is paying a commitment.
            _err().print(_line(f"done {done:,} of {total:,} lines"))

    yield log


def _cut(text: str, limit: int = 130) -> str:
    """A line's own words (its command id, its command) as given, cut short when long: a
    refused line of megabytes is named, not echoed."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def _result_line(result: LineResult) -> Text:
    from rich.text import Text  # noqa: PLC0415 - rich only when printing

    text = Text()
    text.append(f"line {result.line}: ")
    text.append(result.status, style=_STATUS_STYLE.get(result.status, ""))
    text.append(f" {safe(_cut(result.command_id or '(no command id)'))}")
    message = result.message
    if result.command:
        text.append(f" {safe(_cut(result.command))}")
        # A refusal that names its command ("spend commit: unknown argument x") says it once.
        message = message.removeprefix(f"{result.command}: ")
    text.append(f": {safe(message)}")
    return text


_FLAGS = ("OVERSPEND FLAGGED", "drawn from consortium", "returned to consortium")


_ONE = {"practices": "practice", "list sizes": "list size",
        "allocation rows": "allocation row"}
"""What an import counts (ledger.application.imports), when it counts one."""


def _tells_staff(message: str) -> bool:
    """An applied line's answer carries a flag staff must see (ledger.application.handlers'
    spend flags), not only what was recorded."""
    return any(flag in message for flag in _FLAGS)


def apply_report(report: ApplyReport, source: str) -> None:
    from rich.text import Text  # noqa: PLC0415 - rich only when printing

    from ledger.domain.values import number_runs  # noqa: PLC0415 - keeps --help fast

    results = report.results
    if len(results) <= LIST_EACH_LINE_UP_TO:
        for result in results:
            _out().print(_result_line(result))
    else:
        for status in ("applied", "already applied"):
            chosen = [r for r in results if r.status == status]
            if chosen:
                _out().print(
                    _line(
                        f"{status}: {len(chosen):,} lines "
                        f"({number_runs([r.line for r in chosen])}), "
                        f"command ids {chosen[0].command_id} … {chosen[-1].command_id}",
                        _STATUS_STYLE[status],
                    )
                )
        # What a line's answer must tell staff (an overspend flagged on an indicative
        # budget, a risk pool drawn on or paid back) is not folded into the runs above.
        flagged = [r for r in results if r.status == "applied" and _tells_staff(r.message)]
        for result in flagged[:LIST_EACH_LINE_UP_TO]:
            _out().print(_result_line(result))
        if len(flagged) > LIST_EACH_LINE_UP_TO:
            _out().print(_line(
                f"… and {len(flagged) - LIST_EACH_LINE_UP_TO:,} more applied lines flagged an "
                "overspend or a risk-pool draw (`ledger position` shows the budgets)", "yellow"))
        for result in report.refused:
            _out().print(_result_line(result))
    refused = len(report.refused)
    total = Text()
    total.append(f"{safe(source)}: ")
    total.append(f"{report.applied:,} applied", style="green")
    total.append(", ")
    total.append(f"{report.already_applied:,} already applied", style="cyan")
    total.append(", ")
    total.append(f"{refused:,} refused", style="bold red" if refused else "")
    if report.stopped_early:
        total.append(" (stopped at the first refusal: --stop-on-error)")
    _out().print(total)


def nothing_to_apply(source: str) -> None:
    _out().print(_line(f"{source}: no commands to apply"))


def apply_cut_short(source: str, done: int, in_flight: int, total: int) -> None:
    """Under the report of the parts an `apply --server` sent before it failed or was
    stopped (`done` lines of `total`), on stderr: that the report covers those lines, and
    what became of the part being sent (`in_flight` lines) and of the rest."""
    rest = total - done - in_flight
    unsent = f"; the {rest:,} after it were not sent" if rest else ""
    _err().print(_line(
        f"{source}: the report above is of the first {done:,} of {total:,} lines, the parts "
        f"the service recorded; the service may have applied any of the {in_flight:,} lines of "
        f"the part being sent then, each whole or not at all{unsent}. Once the failure "
        "below is mended, run the same command again: each line already recorded answers "
        "'already applied', and only the rest are applied", "bold red"))


def apply_interrupted(source: str, done: int | None, total: int, *,
                      in_flight: int | None = None) -> None:
    """What an `apply` stopped by Ctrl-C got through (`done` lines of `total`, as the
    progress lines count them; with `--server`, the lines of the parts the service
    answered for, `in_flight` those of the part being sent, or None for both while the
    first part was), on stderr, and how to finish it."""
    if in_flight is not None:
        got = (f"{done:,} of {total:,} lines done before it (reported above), and the "
               f"service may have applied any of the {in_flight:,} being sent then")
    elif done is not None:
        got = (f"{done:,} of {total:,} lines done before it, and the batch being run then "
               "was recorded whole or not at all")
    else:
        got = (f"the service may have applied any of its {total:,} lines, each whole or "
               "not at all")
    _err().print(_line(
        f"interrupted: {source}: {got}. Run the same command again: each line already "
        "recorded answers 'already applied', and only the rest are applied", "bold red"))


# --- demo ----------------------------------------------------------------------------


def demo_summary(summary: DemoSummary) -> None:
    from rich.table import Table  # noqa: PLC0415 - rich only when printing
    from rich.text import Text  # noqa: PLC0415

    from ledger.domain.values import format_pence  # noqa: PLC0415 - keeps --help fast

    _out().print(
        _line(
            f"Demo ledger at {summary.location}: {summary.consortia} consortia, "
            f"{summary.practices} practices, year {summary.year}, "
            f"{format_pence(summary.allocated_pence)} allocated, "
            f"{format_pence(summary.committed_pence)} committed.",
            "bold",
        )
    )
    table = Table(title="Events recorded", title_justify="left")
    table.add_column("event")
    table.add_column("count", justify="right")
    for topic, count in summary.events_by_type.items():
        table.add_row(topic, f"{count:,}")
    table.add_row(Text("total", style="bold"), Text(f"{summary.events:,}", style="bold"))
    _out().print(table)
    _out().print(
        _line(
            f"{summary.commands:,} commands issued: {summary.commands - summary.refusals:,} "
            f"applied, {summary.refusals:,} refused by a rule; "
            f"{summary.flagged_overspends:,} overspends flagged on indicative budgets."
        )
    )
    for rule, examples in summary.refused_by_rule.items():
        _out().print(_line(f"  refused [{rule}] x{len(examples)}, e.g. {examples[0]}", "yellow"))


def tour_step(command: str, what: str) -> None:
    """One stop of the demo's tour: the command a person would type, and why."""
    _out().print()
    _out().print(_line(f"$ {command}", "bold cyan"))
    _out().print(_line(f"  {what}", "dim"))


def demo_highlights(summary: DemoSummary) -> None:
    _out().print(_line("Practices to look at:", "bold"))
    for what, practice in summary.highlights:
        _out().print(_line(f"  {practice}: {what}"))
