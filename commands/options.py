"""Shared argument and option types, so every command spells them the same way.

Values stay strings here: the application's command models parse them, so the
command line and `ledger apply` accept exactly the same forms and give the same
errors.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

# --- paths -------------------------------------------------------------------------


def path_text(option: str, what: str) -> Callable[[str], str]:
    """A typer `parser` for a path kept as typed (an input file where `-` alone is
    standard input): an empty or blank value is refused as a missing path (InvalidInput,
    rule `path`, exit 2, nothing recorded) rather than read as the current folder `.`,
    which is what an empty path becomes as a Path. `option` names it (`--out`, `FILE`);
    `what` says what to give (`the file to write`)."""

    def parse(value: str) -> str:
        from commands.errors import handled  # noqa: PLC0415 - fast --help
        from ledger.domain.errors import InvalidInput  # noqa: PLC0415

        if value.strip():
            return value
        with handled():  # the one mapping of errors to messages and exit codes
            raise InvalidInput("path", f"missing path: {option} is empty; name {what}")
        raise AssertionError("handled() raises")  # pragma: no cover

    return parse


def path(option: str, what: str, *, dir_okay: bool = True, file_okay: bool = True
         ) -> Callable[[str | Path], Path]:
    """A typer `parser` for every option or argument naming a file or folder to read or
    write (`--out`, `--plot`, `--mapping`, `--key`, `--state`, a bundle): an empty or
    blank value is refused as a missing path (`path_text`); so is an existing folder
    where a file is wanted (`dir_okay=False`) or an existing file where a folder is
    (`file_okay=False`). InvalidInput, rule `path`, exit 2, nothing written."""
    present = path_text(option, what)

    def parse(value: str | Path) -> Path:
        if isinstance(value, Path):  # the option's default
            return value
        named = Path(present(value))
        wrong = ("a folder" if not dir_okay and named.is_dir() else
                 "a file" if not file_okay and named.exists() and not named.is_dir() else None)
        if wrong is None:
            return named
        from commands.errors import handled  # noqa: PLC0415 - fast --help
        from ledger.domain.errors import InvalidInput  # noqa: PLC0415
        from ledger.domain.values import shown  # noqa: PLC0415

        with handled():  # the one mapping of errors to messages and exit codes
            raise InvalidInput("path", f"{option} {shown(str(value))} is {wrong}: name {what}")
        raise AssertionError("handled() raises")  # pragma: no cover

    return parse


# --- repeatable NAME=VALUE options ----------------------------------------------------


def name_values(example: str = "") -> Callable[..., list[str] | None]:
    """A callback for a repeatable NAME=VALUE option (--element acute=5000): a value with
    no `=` is refused (exit 2, one line, nothing recorded) with how to write it. Most
    often it is NAME VALUE written with a space, which click would otherwise report as
    an unexpected extra argument, or pass VALUE on as a positional argument; click runs
    the callback before either. What NAME and VALUE may be is the application's to say,
    as for `ledger apply`."""

    def check(param: typer.CallbackParam, values: list[str] | None) -> list[str] | None:
        for value in values or ():
            if "=" not in value:
                from commands.errors import handled  # noqa: PLC0415 - fast --help
                from ledger.application.commands import name_value_written  # noqa: PLC0415
                from ledger.domain.errors import InvalidInput  # noqa: PLC0415

                option = max(param.opts, key=len)
                metavar = str(param.metavar)
                how = f", e.g. {option} {example}" if example else ""
                with handled():  # the one mapping of errors to messages and exit codes
                    raise InvalidInput(option.lstrip("-"), (
                        f"{option} takes {metavar}{how}: write {option} "
                        f"{name_value_written(value, metavar)}"))
        return values

    return check


# --- positional arguments ------------------------------------------------------------

Practice = Annotated[
    str, typer.Argument(help="ODS code of the practice: one letter and five digits (A81001).")
]
OtherPractice = Annotated[str, typer.Argument(help="ODS code of the practice (A81001).")]
Consortium = Annotated[
    str, typer.Argument(help="Consortium code: 3 characters with a digit (16C) or 5 (X2C4Y).")
]
Ref = Annotated[str, typer.Argument(
    help="Reference of the commitment (R-0001): ASCII letters, digits and . _ - : / # @ + =.")]
QsCodes = Annotated[
    list[str], typer.Argument(help="NICE quality standards: QS and a number (QS1 QS2).")
]
# Text as typed, not a Path: a Path makes `./-` (the file named -) into `-` (standard input).
CsvFile = Annotated[
    str,
    typer.Argument(
        help="UTF-8 CSV file with a header row; extra columns are ignored. - reads "
        "standard input.",
        parser=path_text("FILE", "the CSV file (- reads standard input)"),
        show_default=False,
    ),
]

# --- reading a published CSV file as it is (imports) ---------------------------------
# Every import names its columns the same way; ledger/application/mapping.py reads them.

PracticeColumnMap = Annotated[
    list[str] | None,
    typer.Option(
        "--map",
        metavar="FIELD=COLUMN",
        help="Which column holds a field (practice, name, list_size, consortium, "
        "<element>_weighted or just <element>): --map acute=\"G&A WP\". "
        "round(COLUMN) rounds a list size published with decimals. Repeat per field.",
        show_default=False,
        callback=name_values('list_size="Registered patients"'),
    ),
]
AllocationColumnMap = Annotated[
    list[str] | None,
    typer.Option(
        "--map",
        metavar="FIELD=COLUMN",
        help="Which column holds a field (practice, element, amount): "
        "--map amount=\"Allocation (GBP)\". Repeat per field.",
        show_default=False,
        callback=name_values('amount="Allocation (GBP)"'),
    ),
]
MappingFile = Annotated[
    Path | None,
    typer.Option(
        "--mapping",
        metavar="FILE",
        help="A TOML mapping file: a \\[map] table (field = \"Column\") and an ignore "
        "list; --map and --ignore add to it.",
        parser=path("--mapping", "the mapping file", dir_okay=False),
        show_default=False,
    ),
]
IgnoredColumns = Annotated[
    list[str] | None,
    typer.Option(
        "--ignore",
        metavar="COLUMN",
        help="A column to skip; repeat per column.",
        show_default=False,
    ),
]

JsonLinesFile = Annotated[
    str, typer.Argument(help="JSON-lines file: one command a line, each with its command_id; "
                        "- reads standard input.",
                        parser=path_text("FILE", "the commands file (- reads standard "
                                         "input)"))
]

# --- options every write takes -------------------------------------------------------

On = Annotated[
    str | None,
    typer.Option(
        "--on",
        metavar="DATE",
        help="Effective date, YYYY-MM-DD (default: today, kept inside the budget's year). "
        "May lie in the past: backdating is recorded as such.",
        show_default=False,
    ),
]

# --- options shared by several commands ----------------------------------------------

Year = Annotated[
    str, typer.Option("--year", metavar="YYYY-YY", help="Financial year, written 2024-25.")
]
Element = Annotated[
    str,
    typer.Option(
        "--element",
        metavar="ELEMENT",
        help="Budget element: acute, community, mental-health, maternity, prescribing, "
        "health-inequalities or primary-care.",
    ),
]
Elements = Annotated[
    list[str],
    typer.Option(
        "--element",
        metavar="ELEMENT",
        help="Budget element(s); repeat the option (or separate with commas).",
    ),
]
ElementAmounts = Annotated[
    list[str],
    typer.Option(
        "--element",
        metavar="ELEMENT=AMOUNT",
        help="An element and its amount in pounds (acute=1200000 or acute=£1,200,000.00); "
        "repeat for each element.",
        callback=name_values("acute=5000"),
    ),
]
Amount = Annotated[
    str,
    typer.Option(
        "--amount",
        metavar="AMOUNT",
        help="Pounds, positive, at most two decimals: 12500, 12500.5 or £12,500.50.",
    ),
]
Holder = Annotated[
    str,
    typer.Option(
        "--to", metavar="HOLDER", help="The new holder: practice:A81002 or consortium:16C."
    ),
]
Reason = Annotated[
    str,
    typer.Option("--reason", metavar="REASON",
                 help="Why (recorded on the event; no patient-identifiable data; "
                 "printable text, at most 1,000 characters)."),
]
OptionalReason = Annotated[
    str | None,
    typer.Option(
        "--reason",
        metavar="REASON",
        help="Why (recorded on the event; no patient-identifiable data; printable text, "
        "at most 1,000 characters).",
        show_default=False,
    ),
]
Name = Annotated[str, typer.Option(
    "--name", metavar="NAME",
    help="Name as it should appear in reports (printable text, at most 200 "
    "characters; recorded in Unicode NFC, trimmed).")]

ListSize = Annotated[
    str,
    typer.Option(
        "--list-size",
        metavar="N",
        help="Registered patients: a whole number from 0 to 1,000,000 (4069 or 4,069).",
    ),
]
Weighted = Annotated[
    list[str] | None,
    typer.Option(
        "--weighted",
        metavar="ELEMENT=N",
        help="Weighted population for an element (list size adjusted for need), exact as "
        "published: 0 to 10,000,000 with at most six decimals (acute=5044.162762); "
        "repeat per element.",
        show_default=False,
        callback=name_values("acute=5044.162762"),
    ),
]
# --- numbers -------------------------------------------------------------------------


def whole_number(option: str, minimum: int, maximum: int) -> Callable[[str | int], int]:
    """A typer `parser` for an integer option (a position, count, limit or port): the ASCII
    digits 0-9 alone, `minimum` to `maximum`, read by the one function the service's query
    parameters use too (ledger.domain.values.parse_whole_number). click's own integers
    are Python's int(), which reads `+5`, ` 5`, `5_0` and Arabic-Indic digits as 5; here
    each is refused (exit 2, one line saying what is expected, nothing recorded)."""

    def parse(value: str | int) -> int:
        from commands.errors import handled  # noqa: PLC0415 - fast --help
        from ledger.domain.values import parse_whole_number  # noqa: PLC0415

        with handled():  # the one mapping of errors to messages and exit codes
            return parse_whole_number(value, option, minimum=minimum, maximum=maximum)
        raise AssertionError("handled() raises or returns")  # pragma: no cover

    return parse


MAX_POSITION = 2**63 - 1
"""The largest log position (ledger.store.eventstore.MAX_POSITION, kept here so `--help`
stays fast)."""


def seconds(option: str, minimum: float, maximum: float | None = None
            ) -> Callable[[str | float], float]:
    """A typer `parser` for an option in seconds: the digits 0-9 with an optional decimal
    point, `minimum` to `maximum` (ledger.domain.values.parse_seconds). click's own
    floats are Python's float(), which reads `1_0`, `+2`, ` 2`, `2e1` and other scripts'
    digits; here each is refused (exit 2, one line saying what is expected)."""

    def parse(value: str | float) -> float:
        if isinstance(value, float):  # the option's default
            return value
        from commands.errors import handled  # noqa: PLC0415 - fast --help
        from ledger.domain.values import parse_seconds  # noqa: PLC0415

        with handled():  # the one mapping of errors to messages and exit codes
            return parse_seconds(value, option, minimum=minimum, maximum=maximum)
        raise AssertionError("handled() raises or returns")  # pragma: no cover

    return parse


