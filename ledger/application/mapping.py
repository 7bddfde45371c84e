"""Column mappings: read a published CSV file as it is, by naming which column holds
which field (like hledger's CSV rules).

Rules, in order, for each column of the header:

1. Column names compare case-insensitively, with spaces, hyphens and underscores
   alike (`List Size` is `list_size`, `Acute Weighted` is `acute_weighted`).
2. A column named by a mapping (`--map FIELD=COLUMN`, or the `[map]` table of a
   mapping file) holds that field. `round(COLUMN)` rounds a column's decimals half
   up to a whole number (for list sizes published as averages).
3. A column named like a field holds that field, unless the field is mapped to
   another column.
4. A column named by `--ignore` (or the mapping file's `ignore` list) is skipped.
5. Any other column: with a mapping, it is refused, naming it (a published file
   is read only as far as it is understood). Without one, it is skipped, unless
   it looks like a field: it names an element (`Mental Health`), or holds
   `weighted`, `wp`, `list`, `patients` or `population`, or is `name` or `consortium`
   in a file of list sizes (which renames and joins nobody). Such a column is refused,
   naming it: map it or ignore it (in a file of practices or list sizes; in a file of
   allocations every other column is skipped).

Every import reads its file through these rules: practices and list sizes
(`practice import`) and allocations (`budget import`, fields practice, element,
amount).

A mapping file is TOML:

    ignore = ["Practice_Postcode", "Latitude"]
    [map]
    practice = "Practice_Code"
    acute_weighted = "G&A WP"
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from ledger.application.files import read_text
from ledger.domain.characters import refuse_unprintable
from ledger.domain.errors import InvalidInput
from ledger.domain.values import ELEMENTS, shown

WEIGHTED_SUFFIX = "_weighted"
_ROUND = re.compile(r"round\((?P<column>.+)\)", re.IGNORECASE)
_LOOKALIKE_WORDS = ("weighted", "wp", "list", "patients", "population")
_PRACTICE_FIELDS = ("name", "consortium")
"""Fields of a file of practices to register; a file of list sizes read with them (its
names or consortia would be dropped: a list size renames nobody, joins nobody) is refused."""


def normalise(name: str) -> str:
    """`Acute Weighted`, `acute-weighted` and `ACUTE_WEIGHTED` all read `acute_weighted`;
    names compare in Unicode NFC, as text is recorded."""
    return re.sub(r"[\s\-_]+", "_", unicodedata.normalize("NFC", name).strip().lower()
                  ).strip("_")


def weighted_field(element: str) -> str:
    return normalise(f"{element}{WEIGHTED_SUFFIX}")


ELEMENT_NAMES = {normalise(str(e)): str(e) for e in ELEMENTS}
WEIGHTED_FIELDS = {weighted_field(str(e)): str(e) for e in ELEMENTS}
PRACTICE_FIELDS = ("practice", "name", "list_size", "consortium", *WEIGHTED_FIELDS)
LIST_SIZE_FIELDS = ("practice", "list_size", *WEIGHTED_FIELDS)
ALLOCATION_FIELDS = ("practice", "element", "amount")


def _refuse_a_column_read_twice(columns: dict[str, str]) -> None:
    """InvalidInput (rule `mapping`) when two fields name one column (as `normalise`
    compares them): a row holds one value per column, so one of the fields would
    otherwise be dropped without a word."""
    first: dict[str, tuple[str, str]] = {}
    for name, column in columns.items():
        other, shown = first.setdefault(normalise(column), (name, column))
        if other != name:
            raise InvalidInput(
                "mapping",
                f"column {shown!r} is mapped to {other} and {name}: map each column to "
                "one field",
            )


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Which column holds which field, which columns to skip, which to round."""

    columns: dict[str, str] = field(default_factory=dict)  # field -> column as published
    rounded: frozenset[str] = frozenset()  # fields rounded half up to whole numbers
    ignore: frozenset[str] = frozenset()  # normalised column names

    @property
    def strict(self) -> bool:
        return bool(self.columns)

    @classmethod
    def build(
        cls,
        maps: Sequence[str] = (),
        ignore: Sequence[str] = (),
        file: Path | None = None,
    ) -> ColumnMap:
        """From `--map FIELD=COLUMN` options, `--ignore COLUMN` options and a mapping file
        (the options win over the file). Malformed input raises InvalidInput."""
        option_pairs: list[tuple[str, str]] = []
        for item in maps:
            name, sep, column = item.partition("=")
            if not sep or not name.strip() or not column.strip():
                raise InvalidInput("mapping", f"write --map FIELD=COLUMN, not {shown(item)}")
            option_pairs.append((name, column))
        file_pairs, file_ignore = _read_mapping_file(file) if file is not None else ([], [])
        _refuse_a_field_mapped_twice(option_pairs, "--map")
        if file is not None:
            _refuse_a_field_mapped_twice(file_pairs, file.name)
        texts = [text for pair in file_pairs + option_pairs for text in pair]
        for given in [*texts, *ignore, *file_ignore]:
            refuse_unprintable(given, "a mapping's column name")
        _refuse_a_column_mapped_and_ignored(option_pairs, ignore, "--map and --ignore")
        if file is not None:
            _refuse_a_column_mapped_and_ignored(file_pairs, file_ignore, file.name)
        # The options win over the file: an option's map or ignore of a column
        # replaces what the file says of that column.
        ignored_by_option = {normalise(c) for c in ignore}
        mapped_by_option = {normalise(_column_read(column)) for _, column in option_pairs}
        pairs = [p for p in file_pairs if normalise(_column_read(p[1])) not in ignored_by_option]
        pairs += option_pairs
        skipped = [c for c in file_ignore if normalise(c) not in mapped_by_option]
        skipped += ignore
        columns: dict[str, str] = {}
        rounded: set[str] = set()
        for name, column in pairs:
            key = _field_name(name)
            text = column.strip()
            match = _ROUND.fullmatch(text)
            if match:
                if key != "list_size":
                    raise InvalidInput(
                        "mapping", f"round(...) is for list_size only, not {name.strip()}"
                    )
                text = match["column"].strip()
                rounded.add(key)
            else:
                rounded.discard(key)
            columns[key] = text
        _refuse_a_column_read_twice(columns)
        return cls(columns, frozenset(rounded), frozenset(normalise(c) for c in skipped))

    def resolve(self, header: Sequence[str], fields: Sequence[str], required: Sequence[str],
                source: str) -> dict[str, str]:
        """Column -> field for this header (columns as `CsvFile.rows` keys them: trimmed,
        lower-cased), or InvalidInput naming the columns."""
        unknown_fields = sorted(set(self.columns) - set(fields))
        if unknown_fields:
            raise InvalidInput(
                "mapping",
                f"{source}: this import has no field {', '.join(unknown_fields)} "
                f"(its fields: {', '.join(fields)})",
            )
        by_column = {normalise(column): name for name, column in self.columns.items()}
        present = {normalise(h) for h in header}
        absent = [c for name, c in self.columns.items() if normalise(c) not in present]
        if absent:
            raise InvalidInput(
                "csv-header",
                f"{source} line 1: no column {', '.join(repr(c) for c in absent)} to map "
                f"(the header has: {', '.join(h for h in header if h)})",
            )
        chosen: dict[str, str] = {}
        refused: list[str] = []
        for column in header:
            key = normalise(column)
            if not column.strip():
                continue  # no name: CsvFile.rows refuses any value under it
            if key in by_column:
                chosen[column.strip().lower()] = by_column[key]
            elif key in self.ignore:
                continue
            elif key in fields and key not in self.columns:
                chosen[column.strip().lower()] = key
            elif self.strict or (key and _looks_like_a_field(key, fields)):
                # With a mapping this includes a column named like a field mapped elsewhere.
                refused.append(column.strip())
        if refused:
            raise _refusal(source, refused, strict=self.strict)
        taken: dict[str, str] = {}
        for column, name in chosen.items():
            if name in taken:
                raise InvalidInput(
                    "csv-header",
                    f"{source} line 1: columns {taken[name]!r} and {column!r} both hold {name}",
                )
            taken[name] = column
        missing = [f for f in required if f not in taken]
        if missing:
            raise missing_columns(source, missing, header, hint=_missing_hint(missing, taken))
        return chosen

    def values(self, chosen: dict[str, str], row: dict[str, str], where: str
               ) -> dict[str, str]:
        """A row's values by field, rounded where the mapping says so."""
        values = {name: row.get(column, "") for column, name in chosen.items()}
        for name in self.rounded:
            if values.get(name):
                values[name] = _round_half_up(values[name], name, where)
        return values


def _column_read(text: str) -> str:
    """The column a mapping reads: `Population` for `round(Population)`."""
    match = _ROUND.fullmatch(text.strip())
    return (match["column"] if match else text).strip()


def _refuse_a_field_mapped_twice(pairs: Sequence[tuple[str, str]], where: str) -> None:
    """InvalidInput (rule `mapping`) when one source maps a field twice (`practice` and
    `Practice`, or `acute` and `acute_weighted`, as `_field_name` reads them): only
    one of the two columns would be read, and which would be a guess."""
    first: dict[str, str] = {}
    for name, column in pairs:
        key = _field_name(name)
        if key in first:
            raise InvalidInput(
                "mapping",
                f"{where}: field {key} is mapped twice (to {first[key]!r} and "
                f"{column.strip()!r}): map it once",
            )
        first[key] = column.strip()


def _refuse_a_column_mapped_and_ignored(pairs: Sequence[tuple[str, str]],
                                        ignored: Sequence[str], where: str) -> None:
    """A column both mapped to a field and skipped is a contradiction: refuse it."""
    skipped = {normalise(c) for c in ignored}
    both = sorted({_column_read(column) for _, column in pairs
                   if normalise(_column_read(column)) in skipped})
    if both:
        raise InvalidInput(
            "mapping",
            f"{where}: column{'s' if len(both) > 1 else ''} "
            f"{', '.join(repr(c) for c in both)} both mapped and ignored: do one",
        )


def missing_columns(source: str, missing: Sequence[str], header: Sequence[str], *,
                    hint: str = "") -> InvalidInput:
    """The refusal of a CSV header without the `missing` required columns, naming the
    columns it has (`hint`, when given, ends the parenthesis: how to supply them)."""
    return InvalidInput(
        "csv-header",
        f"{source} line 1: missing column{'s' if len(missing) > 1 else ''} "
        f"{', '.join(missing)} (the header has: {', '.join(h for h in header if h)}{hint})",
    )


def _refusal(source: str, refused: list[str], *, strict: bool) -> InvalidInput:
    unread = [c for c in refused if normalise(c) in _PRACTICE_FIELDS]
    if unread and not strict:
        several = len(unread) > 1
        return InvalidInput(
            "csv-header",
            f"{source} line 1: column{'s' if several else ''} "
            f"{', '.join(repr(c) for c in unread)} of a file of practices: a file of list "
            "sizes renames and joins nobody (register practices without --list-sizes, "
            f"consortium join moves one); skip {'them' if several else 'it'} (--ignore COLUMN)")
    many = len(refused) > 1
    if strict:
        what = "are not mapped" if many else "is not mapped"
    else:
        what = "look like fields but are not" if many else "looks like a field but is not one"
    them = "them" if many else "it"
    return InvalidInput(
        "csv-header",
        f"{source} line 1: column{'s' if many else ''} {', '.join(repr(c) for c in refused)} "
        f"{what}: map {them} (--map FIELD=COLUMN) or skip {them} (--ignore COLUMN)",
    )


_DECIMAL = re.compile(r"(?P<units>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.(?P<fraction>[0-9]+))?")


def _round_half_up(text: str, name: str, where: str) -> str:
    """`text`, a non-negative decimal (`4068.906409`, `4,068.5`), rounded half up to a whole
    number; InvalidInput (rule `csv-row`) naming the field and line when it is not one.
    The whole number is then checked as the field (a list size's range) like any other."""
    match = _DECIMAL.fullmatch(text.strip())
    if not match:
        raise InvalidInput(
            "csv-row",
            f"{where}: malformed {name.replace('_', ' ')} {shown(text)} to round: a "
            "non-negative number like 4068.906409 (no sign or exponent); nothing was imported",
        )
    units = match["units"].replace(",", "").lstrip("0") or "0"
    if len(units) > 12:  # far out of any range: left whole for the field's own check
        return units
    number = Decimal(f"{units}.{match['fraction'] or '0'}")
    return str(number.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _field_name(name: str) -> str:
    key = normalise(name)
    if key in ELEMENT_NAMES:  # `--map acute=G&A WP` means the acute weighted population
        return weighted_field(ELEMENT_NAMES[key])
    return key


def _missing_hint(missing: Sequence[str], taken: dict[str, str]) -> str:
    """How to give the fields `missing`: by mapping a column; a file of list sizes and no
    names (NHS Digital's registered patients) is read by `practice import --list-sizes`."""
    hint = "; map a column with --map FIELD=COLUMN"
    if list(missing) == ["name"] and "list_size" in taken:
        hint += ", or give --list-sizes to record the list sizes of practices already registered"
    return hint


def _looks_like_a_field(key: str, fields: Sequence[str]) -> bool:
    """A column that names an element or a population figure (see the module's rule 5),
    in an import that reads population figures (an allocations file's other columns
    are skipped, as its element is a column's value, not its name)."""
    if not any(f in WEIGHTED_FIELDS for f in fields):
        return False
    if key in _PRACTICE_FIELDS:  # in a file of list sizes (a practices file has them)
        return True
    words = set(key.split("_"))
    return bool(words & set(_LOOKALIKE_WORDS)) or any(e in key for e in ELEMENT_NAMES)


def _read_mapping_file(path: Path) -> tuple[list[tuple[str, str]], list[str]]:
    try:
        # A byte-order mark (as Windows editors save UTF-8) is read as nothing, as in CSV.
        text = read_text(path, encoding="utf-8-sig")
    except InvalidInput as error:
        raise InvalidInput("mapping", error.message) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InvalidInput("mapping", f"{path.name} is not a TOML mapping file: {error}") from None
    except RecursionError:  # tomllib reads nested arrays and tables by recursion
        raise InvalidInput("mapping", f"{path.name} is not a TOML mapping file: its arrays or "
                           "tables are nested too deeply") from None
    extra = sorted(set(data) - {"map", "ignore"})
    mapped = data.get("map", {})
    ignore = data.get("ignore", [])
    if extra or not isinstance(mapped, dict) or not isinstance(ignore, list):
        raise InvalidInput(
            "mapping",
            f"{path.name}: a mapping file holds a [map] table (field = \"Column\") and an "
            "ignore list (ignore = [\"Column\", ...]) only",
        )
    pairs = []
    for name, column in mapped.items():
        if not isinstance(column, str) or not column.strip():
            raise InvalidInput("mapping", f"{path.name}: map.{name} must name a column")
        pairs.append((str(name), column))
    if not all(isinstance(c, str) for c in ignore):
        raise InvalidInput("mapping", f"{path.name}: ignore must list column names")
    return pairs, [str(c) for c in ignore]


def weighted_of(values: dict[str, str]) -> dict[str, str]:
    """The weighted populations of a row, by element, where given."""
    return {element: values[key] for key, element in WEIGHTED_FIELDS.items() if values.get(key)}
