"""The README's commands run as written, in order, on a fresh ledger.

Every ```sh block of README.md is a part of one tour: its commands run one after
another in a single shell, in a fresh directory holding a copy of `examples/`
(as a fresh clone has), through the installed `ledger` command. Each must exit
0, or the code its comment names (`# exit 1: ...`). A block is left out only
when the line before it is an HTML comment `<!-- not run: why -->` (the demo,
the whole test suite, a server that blocks, a client of one).

On PostgreSQL the same tour runs with every ledger file the README names
(`ledger.db`, `national.db`) replaced by a PostgreSQL URL with a schema of its own.
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from tests.commands.conftest import REPO, clean_env
from tests.conftest import PG_BASE_URL, STORES, _drop_schema

README = REPO / "README.md"
NOT_RUN = re.compile(r"^<!--\s*not run:\s*\S.*-->$")
EXPECTED_EXIT = re.compile(r"\bexit (\d+)\b")
LEDGER_FILE = re.compile(r"(?<![\w./-])([a-z][a-z0-9_-]*)\.db\b")


@dataclass(frozen=True)
class Command:
    line: int  # of the README, where the command starts
    text: str
    exit_code: int


def _comment_of(line: str) -> str:
    """The shell comment ending `line` (after an unquoted `#` that starts a word), or ''."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[i + 1:]
    return ""


def _complete(text: str) -> bool:
    """Whether `text` is a whole command: no open quote, no trailing backslash."""
    if text.endswith("\\"):
        return False
    try:
        shlex.split(text, comments=True)
    except ValueError:
        return False
    return True


def sh_blocks(markdown: str) -> Iterator[tuple[int, list[str], bool]]:
    """Each ```sh block: its first line's number, its lines, whether it is marked not run."""
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```sh":
            before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()),
                          "")
            end = lines.index("```", i + 1)
            yield i + 2, lines[i + 1:end], bool(NOT_RUN.match(before))
            i = end
        i += 1


def commands_of(first_line: int, block: list[str]) -> Iterator[Command]:
    """A block's commands, a continued or quoted command joined across its lines."""
    pending: list[str] = []
    start = first_line
    for number, line in enumerate(block, first_line):
        if not pending:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            start = number
        pending.append(line)
        text = "\n".join(pending)
        if _complete(text):
            found = EXPECTED_EXIT.search(_comment_of(line))
            yield Command(start, text, int(found.group(1)) if found else 0)
            pending = []
    assert not pending, f"README line {start}: a command is never finished"


def tour() -> list[Command]:
    """Every command of the README's ```sh blocks not marked as not run, in order."""
    found: list[Command] = []
    for first_line, block, not_run in sh_blocks(README.read_text(encoding="utf-8")):
        if not not_run:
            found += commands_of(first_line, block)
    return found


def script(commands: list[Command], ledger_file: dict[str, str]) -> str:
    """One bash script running `commands` in order, stopping at the first unexpected exit."""
    parts = ["set -u"]
    for command in commands:
        text = LEDGER_FILE.sub(lambda m: ledger_file.get(m.group(1), m.group(0)), command.text)
        parts += [
            f"printf '%s\\n' {shlex.quote(f'$ {text}')} | tee /dev/stderr",
            text,
            "status=$?",
            f'if [ "$status" -ne {command.exit_code} ]; then',
            f"  echo 'README line {command.line} exited '$status', expected "
            f"{command.exit_code}' >&2; exit 97",
            "fi",
        ]
    return "\n".join(parts) + "\n"


# --- the parser, on made-up Markdown -------------------------------------------------


def test_commands_are_read_from_sh_blocks_joined_across_lines_with_their_exit_codes() -> None:
    markdown = "\n".join([
        "text", "```sh", "export LEDGER_DB=ledger.db", "# a comment line",
        "ledger a \\", "    --b c   # exit 1: refused", "ledger d 'e", "f'", "```",
        "<!-- not run: blocks -->", "```sh", "ledger serve", "```", "```", "not sh", "```",
    ])
    blocks = list(sh_blocks(markdown))
    assert [(b[0], b[2]) for b in blocks] == [(3, False), (12, True)]
    first, lines, _ = blocks[0]
    assert list(commands_of(first, lines)) == [
        Command(3, "export LEDGER_DB=ledger.db", 0),
        Command(5, "ledger a \\\n    --b c   # exit 1: refused", 1),
        Command(7, "ledger d 'e\nf'", 0),
    ]


def test_a_hash_inside_quotes_is_no_comment() -> None:
    assert _comment_of("ledger x --reason 'no # exit 1 here'") == ""
    assert _comment_of("ledger x --reason a  # exit 1") == " exit 1"


def test_the_readme_marks_blocks_not_run_with_a_reason_and_runs_the_rest() -> None:
    blocks = list(sh_blocks(README.read_text(encoding="utf-8")))
    assert any(not_run for _, _, not_run in blocks)
    assert len(tour()) >= 40  # the tour itself, not only its outline


def test_the_sample_allocations_are_weighted_populations_times_the_rates_the_readme_names(
) -> None:
    rates = {"acute": Decimal(780), "prescribing": Decimal(170), "community": Decimal("99.50")}
    with (REPO / "examples" / "practices.csv").open(encoding="utf-8") as file:
        practices = {row["practice"]: row for row in csv.DictReader(file)}
    with (REPO / "examples" / "allocations.csv").open(encoding="utf-8") as file:
        allocations = list(csv.DictReader(file))
    assert {(r["practice"], r["element"]) for r in allocations} == {
        (p, e) for p in practices for e in rates}
    for row in allocations:
        weighted = Decimal(practices[row["practice"]][f"{row['element']}_weighted"])
        expected = (weighted * rates[row["element"]]).quantize(Decimal("0.01"), ROUND_HALF_UP)
        assert Decimal(row["amount"]) == expected, row


# --- the tour, on each store ---------------------------------------------------------


@pytest.fixture(params=STORES)
def ledger_files(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """What each ledger file the README names stands for on the store under test."""
    if request.param == "sqlite":
        yield {}
        return
    names = sorted({m.group(1) for c in tour() for m in LEDGER_FILE.finditer(c.text)})
    base = f"t_{uuid.uuid4().hex[:12]}"
    yield {name: shlex.quote(f"{PG_BASE_URL}?schema={base}_{name}") for name in names}
    for name in names:
        _drop_schema(f"{base}_{name}")


@pytest.mark.e2e
@pytest.mark.timeout(1800)  # some sixty commands, each a new interpreter
def test_the_readme_tour_runs_as_written(ledger_files: dict[str, str], tmp_path: Path) -> None:
    ledger = Path(sys.executable).parent / "ledger"
    assert ledger.exists(), "the tour runs the installed `ledger` command: pip install -e ."
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    env = clean_env()
    env["PATH"] = f"{ledger.parent}{os.pathsep}{env.get('PATH', '')}"
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")  # PostgreSQL ledgers' signing keys
    env["COLUMNS"] = "120"
    (tmp_path / "tour.sh").write_text(script(tour(), ledger_files), encoding="utf-8")
    done = subprocess.run(["bash", "tour.sh"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=1700, check=False)
    assert done.returncode == 0, done.stderr[-6000:]
    assert "Traceback" not in done.stdout + done.stderr
