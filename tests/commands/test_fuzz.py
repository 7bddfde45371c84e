"""A fuzzer over the real command line: generated bad and borderline input, checked as a user
would check it.

Each example runs one `ledger` invocation in-process (typer's CliRunner, the same code as
the installed command) against a seeded ledger on each store, with numbers at and around
every documented bound, odd Unicode, malformed CSV rows and JSON lines, and options in odd
places. For every invocation:

- the exit code is one of the documented 0, 1, 2, 3, 4;
- a refusal prints one line `error: …` (or typer's own usage message), never a traceback;
- a refusal records nothing (the log's head is unchanged);
- every event stored so far decodes;

and after the run `ledger verify` passes.

The bounded run in the suite is deterministic (a fixed Hypothesis profile, tens of
seconds). The long run is `make fuzz` (`LEDGER_FUZZ_EXAMPLES=N`, random, N examples per
test and store).
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from commands.app import app
from ledger.application.commands import build_command
from ledger.bootstrap import bootstrap
from ledger.domain.characters import refuse_unprintable
from ledger.store.eventstore import EventStore, open_store

EXIT_CODES = {0, 1, 2, 3, 4}
LONG_RUN = int(os.environ.get("LEDGER_FUZZ_EXAMPLES", "0") or 0)

settings.register_profile(
    "ledger-fuzz-ci",
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=list(HealthCheck),
)
settings.register_profile(
    "ledger-fuzz-long",
    max_examples=max(LONG_RUN, 1),
    derandomize=False,
    deadline=None,
    print_blob=True,
    suppress_health_check=list(HealthCheck),
)
PROFILE = settings.get_profile("ledger-fuzz-long" if LONG_RUN else "ledger-fuzz-ci")

ALLOCATOR = "allocator:Q71"
PRACTICE = "practice:A81001"

# --- values at and around every bound ------------------------------------------------

BAD_TEXT = [
    "", " ", "\t", "\x00", "\x1b[31mred\x1b[0m", "a\nb", "a\rb", "\x7f", "\x85", "\x9b2J",
    "R-0001\u200b", "\u202eevil", "\u2066x\u2069", "\ufeffR-1", "a\u00adb", "\u2028",
    "\ud800", "\U000e0041", "\ue000", "\u0378", "x" * 201, "y" * 1001, "Z" * 20000,
    "943 476 5919", "9434765919", "e\u0301", "\u00e9", "\uff32-\uff10\uff10\uff10\uff11",
    "\u0420-0001", "🙂", "[red]x[/]",
    "%s%n", "{}", "' OR 1=1 --", "null", "true",
    # combining sequences and NFC/NFD pairs: one name however typed
    "Cafe\u0301", "Caf\u00e9", "A\u030a", "\u00c5", "\u212b", "Y\u0300\u0323s",
    "\u1100\u1161\u11a8", "\uac01", "\u0301", "e\u0301\u0301\u0301",
    "\U0001f469\u200d\U0001f4bb", "\u0627\u0644\u0639\u064a\u0627\u062f\u0629",
    "a\u034fb", "\ufe0f", " Caf\u00e9 ", "\u00a0Densham\u3000",
]
AMOUNTS = [
    "0", "0.00", "0.01", "1", "100", "100.00", "1,000", "£1,000.00", "1,00", "1.234", "-1",
    "+1", "-0", "1e3", "NaN", "inf", "-inf", "", " ", "\u0661\u0660\u0660",
    "\uff11\uff10\uff10", "1\u00a0000",
    "10000000000", "10000000000.00", "10000000000.01", "9999999999.99",
    "1000000000000", "1000000000000.00", "1000000000000.01", "92233720368547758.07",
    "92233720368547758.08", "99999999999999999999", "9" * 400, "0" * 400 + "1",
    "£", "£-1", "1..0", ".5", "5.",
]
INTEGERS = [
    "0", "1", "-1", "4069", "1000000", "1000001", "2147483648", "9223372036854775807",
    "9223372036854775808", "-9223372036854775809", "1" * 40, "1e3", "0x10", "1_000", "",
    "true", "nan", "inf", "\u0661", "4,069",
]
DATES = ["2024-06-01", "2024-04-01", "2025-03-31", "2024-03-31", "2025-04-01", "2024-13-01",
         "2024-02-30", "0001-01-01", "9999-12-31", "20240601", "2024-W23-1", "", "today"]
YEARS = ["2024-25", "2025-26", "2023-24", "2024-26", "9998-99", "9999-00", "0000-01",
         "1899-00", "1900-01", "2024", "24-25", ""]
PRACTICES = ["A81001", "A81002", "a81001", " A81001 ", "A8100", "A810011", "\u041081001",
             "A81001\u200b", "Z99999", ""]
CONSORTIA = ["16C", "16c", "X2C4Y", "ABC", "1C", "16C\u200b", ""]
ELEMENTS = ["acute", "ACUTE", "prescribing", "mental-health", "optics", "acute,prescribing",
            "", "acute\u200b"]
REFS = ["R-0001", "R-0002", "R-9999", "R-0001\u200b", "r-0001", "R 1", "R-" + "9" * 70, "",
        "\u200bR-0001", "R-0001\u2060", "R-000\u0661", "\u0420-0001", "R\u20110001",
        "R-0001\ufeff", "R-0001\u00ad", "R-\u00e9", "R-e\u0301", "PO/2024#7", " R-0001 "]
HOLDERS = ["consortium:16C", "practice:A81002", "practice:A81001", "16C", "consortium:",
           "CONSORTIUM:16c"]
ACTORS = [ALLOCATOR, PRACTICE, "practice:A81002", "consortium:16C", "auditor:jsmith",
          "allocator:Q99", "nobody", "", "practice:A81001/\x1b[2J", "allocator:Q71/\u202e"]
COMMAND_IDS = [None, "", " ", "c-1", "c-1 ", "c-\x00", "c-\u200b1", "x" * 300, "fuzz-fixed",
               "c-\u00e9", "c-e\u0301", "c\u202e1", "\t"]


def pick(values: list[str]) -> st.SearchStrategy[str]:
    """A listed borderline value, or now and then any text at all."""
    return st.one_of(st.sampled_from(values), st.sampled_from(values),
                     st.sampled_from(BAD_TEXT), st.text(max_size=30))


@st.composite
def cli_case(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    """(global options, command words and options) for one invocation."""
    amount = pick(AMOUNTS)
    year, day, element = pick(YEARS), pick(DATES), pick(ELEMENTS)
    practice, ref, text = pick(PRACTICES), pick(REFS), pick([*BAD_TEXT, "Densham", "RTR"])
    commands: list[Callable[[], list[str]]] = [
        lambda: ["practice", "register", draw(practice), "--name", draw(text),
                 "--list-size", draw(pick(INTEGERS))],
        lambda: ["consortium", "form", draw(pick(CONSORTIA)), "--name", draw(text),
                 "--officer", draw(text)],
        lambda: ["consortium", "join", draw(pick(CONSORTIA)), draw(practice), "--on",
                 draw(day)],
        lambda: ["budget", "allocate", draw(practice), "--year", draw(year), "--element",
                 f"{draw(element)}={draw(amount)}", "--on", draw(day)],
        lambda: ["budget", "adjust", draw(practice), "--year", draw(year), "--element",
                 draw(element), "--by", draw(st.sampled_from(["", "-"])) + draw(amount),
                 "--reason", draw(text)],
        lambda: ["budget", "delegate", draw(practice), "--year", draw(year), "--element",
                 draw(element), "--to", draw(pick(HOLDERS)), "--on", draw(day)],
        lambda: ["spend", "commit", draw(practice), "--year", draw(year), "--element",
                 draw(element), "--ref", draw(ref), "--amount", draw(amount), "--provider",
                 draw(text), "--service", draw(text), "--on", draw(day)],
        lambda: ["spend", "vary", draw(ref), "--amount", draw(amount), "--on", draw(day)],
        lambda: ["spend", "settle", draw(ref), "--amount", draw(amount),
                 *draw(st.sampled_from([[], ["--final"]]))],
        lambda: ["spend", "cancel", draw(ref), "--reason", draw(text)],
        lambda: ["events", "--after", draw(pick(INTEGERS))],
        lambda: ["position", "--by", draw(pick(["practice", "consortium", "allocator", "x"])),
                 "--year", draw(year), "--as-of", draw(day), "--format",
                 draw(pick(["table", "json", "csv", "xml"]))],
        lambda: ["holders", "--practice", draw(practice), "--as-of", draw(day)],
        lambda: ["trail", draw(practice), "--since", draw(day)],
    ]
    words = draw(st.sampled_from(commands))()
    global_options: list[str] = ["--actor", draw(pick(ACTORS))]
    command_id = draw(st.sampled_from(COMMAND_IDS))
    if command_id is not None:
        global_options += ["--command-id", command_id]
    return global_options, words


# --- running and checking ------------------------------------------------------------


@dataclass
class Checked:
    """Runs invocations on one ledger and checks each as the module's docstring says."""

    db: str
    store: EventStore
    seen: int = 0
    runs: int = 0

    def run(self, global_options: list[str], words: list[str], *, after: bool = False) -> int:
        args = [*words, *global_options] if after else [*global_options, *words]
        before = self.store.head()
        result = CliRunner().invoke(app, ["--db", self.db, *args],
                                    env={"LEDGER_DB": None, "LEDGER_ACTOR": None})
        self.runs += 1
        shown = f"ledger {' '.join(map(repr, args))}"
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"{shown} raised {result.exception!r}") from result.exception
        code, out, err = result.exit_code, result.stdout, result.stderr
        assert code in EXIT_CODES, (shown, code, err)
        for line in (out + err).splitlines():  # nothing unprintable reaches a terminal
            assert refuse_unprintable(line, "output") == line
        assert "Traceback" not in out + err, (shown, err)
        if code != 0:
            lines = [line for line in err.splitlines() if line.strip()]
            assert lines, (shown, "refused without a word", out)
            if lines[0].startswith("error: "):
                assert len(lines) == 1, (shown, err)
            else:
                assert code == 2, (shown, err)
                assert "Usage:" in err, (shown, err)
            if words[0] != "apply":
                assert self.store.head() == before, (shown, "a refusal recorded events")
        self.decode_new()
        return code

    def decode_new(self) -> None:
        """Every new event decodes, and every text it holds is NFC and printable."""
        for position, event in self.store.iter_events(self.seen):
            self.seen = position
            for text in strings(event.model_dump(mode="json")):
                assert unicodedata.is_normalized("NFC", text), (position, text)
                assert refuse_unprintable(text, "stored text") == text


def strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield str(key)
            yield from strings(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from strings(inner)


@pytest.fixture
def checked(db_url: str) -> Iterator[Checked]:
    """A ledger seeded with A81001 (and A81002) in 16C, a 2024-25 budget and R-0001."""
    ledger = bootstrap(db_url)
    service = ledger.service
    seed: list[tuple[str, str, dict[str, Any]]] = [
        (ALLOCATOR, "consortium form", {"consortium": "16C", "name": "Tees", "officer": "Dr A",
                                        "on": "2024-04-01"}),
        (ALLOCATOR, "practice register",
         {"practice": "A81001", "name": "Densham", "list_size": 4069, "on": "2024-04-01"}),
        (ALLOCATOR, "practice register",
         {"practice": "A81002", "name": "Queens Park", "list_size": 9000, "on": "2024-04-01"}),
        (ALLOCATOR, "consortium join", {"consortium": "16C", "practice": "A81001",
                                        "on": "2024-04-01"}),
        (ALLOCATOR, "budget allocate", {"practice": "A81001", "year": "2024-25",
                                        "element": {"acute": "1200000", "prescribing": "10"},
                                        "on": "2024-04-01"}),
        (PRACTICE, "spend commit", {"practice": "A81001", "year": "2024-25",
                                    "element": "acute", "ref": "R-0001", "amount": "12500",
                                    "provider": "RTR", "service": "Hips", "on": "2024-06-01"}),
    ]
    for actor, name, args in seed:
        service.execute(build_command(name, args), actor)
    ledger.close()
    store = open_store(db_url)
    try:
        yield Checked(db_url, store)
    finally:
        store.close()


def verified(checked: Checked) -> None:
    result = CliRunner().invoke(app, ["--db", checked.db, "verify"])
    assert result.exit_code == 0, result.stdout + result.stderr


def report(name: str, checked: Checked) -> None:
    if LONG_RUN:
        print(f"\nfuzz {name} on {checked.db.split('?')[0]}: {checked.runs:,} invocations")


def test_fuzz_the_command_line(checked: Checked) -> None:
    @PROFILE
    @given(case=cli_case(), options_after=st.booleans())
    def one(case: tuple[list[str], list[str]], options_after: bool) -> None:
        global_options, words = case
        checked.run(global_options, words, after=options_after)

    one()
    verified(checked)
    report("command line", checked)


# --- `ledger apply`: JSON lines ------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from(AMOUNTS + INTEGERS + BAD_TEXT) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)

TEMPLATES: list[tuple[str, dict[str, Any]]] = [
    ("spend commit", {"practice": "A81001", "year": "2024-25", "element": "acute",
                      "ref": "R-0100", "amount": "10", "provider": "RTR", "service": "Hips",
                      "qs": ["QS3"], "on": "2024-06-01"}),
    ("spend settle", {"ref": "R-0001", "amount": "1", "final": False}),
    ("spend vary", {"ref": "R-0001", "amount": "13000"}),
    ("budget allocate", {"practice": "A81001", "year": "2024-25",
                         "element": {"maternity": "5"}, "on": "2024-04-01"}),
    ("budget adjust", {"practice": "A81001", "year": "2024-25", "element": "acute",
                       "by": "-5", "reason": "r"}),
    ("practice register", {"practice": "A81003", "name": "New", "list_size": 10}),
    ("consortium risk-pool", {"consortium": "16C", "year": "2024-25", "top_slice": "1%"}),
    ("budget delegate", {"practice": "A81001", "year": "2024-25",
                         "element": ["prescribing"], "to": "consortium:16C"}),
]


@st.composite
def json_line(draw: st.DrawFn) -> str:
    """A command line of `apply` with one or two values changed, or a malformed line."""
    name, args = draw(st.sampled_from(TEMPLATES))
    args = dict(args)
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        key = draw(st.sampled_from([*args, "extra", "list_size", "final", "on"]))
        args[key] = draw(JSON_VALUES)
    line: dict[str, Any] = {"command": name,
                            "command_id": draw(st.sampled_from(["a-1", "a-2", "", " ", "a\x00"])
                                               | st.text(max_size=8)),
                            "actor": draw(st.sampled_from(ACTORS)), "args": args}
    text = json.dumps(line, ensure_ascii=draw(st.booleans()))
    mangle = draw(st.sampled_from(["none", "none", "cut", "dup", "nan", "bom", "array"]))
    if mangle == "cut":
        text = text[: draw(st.integers(min_value=0, max_value=len(text)))]
    elif mangle == "dup":
        text = text[:-1] + ', "command_id": "dup"}'
    elif mangle == "nan":
        text = text.replace('"10"', "NaN")
    elif mangle == "bom":
        text = "\ufeff" + text
    elif mangle == "array":
        text = f"[{text}]"
    return text


def test_fuzz_apply(checked: Checked, tmp_path: Path) -> None:
    path = tmp_path / "commands.jsonl"

    @PROFILE
    @given(lines=st.lists(json_line(), min_size=1, max_size=4))
    def one(lines: list[str]) -> None:
        path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
        checked.run(["--actor", ALLOCATOR], ["apply", str(path)])

    one()
    verified(checked)
    report("apply", checked)


# --- CSV imports ---------------------------------------------------------------------


@st.composite
def csv_text(draw: st.DrawFn) -> tuple[str, str]:
    kind = draw(st.sampled_from(["budget", "practice"]))
    if kind == "budget":
        header = draw(st.sampled_from(["practice,element,amount", "practice,element,amount,",
                                       "Practice,Element,Amount,note", "practice,amount",
                                       "practice,element,amount,amount"]))
        cells = [pick(PRACTICES), pick(ELEMENTS), pick(AMOUNTS)]
    else:
        header = draw(st.sampled_from(["practice,name,list_size",
                                       "practice,name,list_size,consortium,acute_weighted"]))
        cells = [pick(PRACTICES), pick([*BAD_TEXT, "Surgery"]), pick(INTEGERS)]
    rows = []
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        row = [draw(c) for c in cells]
        row += draw(st.lists(pick(AMOUNTS), max_size=2))
        quote = draw(st.booleans())
        rows.append(",".join(f'"{c}"' if quote else c for c in row))
    ending = draw(st.sampled_from(["\n", "\r\n", "", "\n\n,,\n"]))
    return kind, "\n".join([header, *rows]) + ending


def test_fuzz_imports(checked: Checked, tmp_path: Path) -> None:
    path = tmp_path / "file.csv"

    @PROFILE
    @given(case=csv_text())
    def one(case: tuple[str, str]) -> None:
        kind, text = case
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        extra = ["--year", "2024-25"] if kind == "budget" else []
        checked.run(["--actor", ALLOCATOR], [kind, "import", str(path), *extra])

    one()
    verified(checked)
    report("imports", checked)


def test_an_actor_that_is_not_text_is_refused_in_one_line(checked: Checked) -> None:
    """Found by the long run: a lone surrogate as the actor crashed the fingerprint."""
    code = checked.run(["--actor", "\ud800"], ["spend", "cancel", "R-0001", "--reason", "r"])
    assert code == 2
