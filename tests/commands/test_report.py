"""`ledger report`: one HTML file, pinned to a signed checkpoint, its figures the JSON reads'.

The report is written for joint_scenario.py's ledger plus a risk pool, a
delegation and an opt-out; its tables' rows are compared with what the JSON
reads print. The last test opens it in a real headless Chromium (the system
package; `.ci/ensure-chromium` installs it for `make test`): it must lay out
its charts, log nothing to the console, and show the same figures.
"""

from __future__ import annotations

import base64
import html
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pytest

from commands.report import write_report
from ledger.audit.note import open_checkpoint
from ledger.auditlog.proofs import store_signer
from ledger.bootstrap import Ledger, bootstrap
from projections.joint_queries import JointReads
from tests.projections import joint_scenario
from tests.projections.builders import YEAR
from tests.projections.joint_scenario import invoke, one_line_error, run_ledger
from tests.projections.test_variation import TODAY

EXTRA: list[joint_scenario.Step] = [
    ("consortium risk-pool", "consortium:16C",
     {"consortium": "16C", "year": YEAR, "top_slice": "1%", "on": "2024-04-01"}),
    ("budget delegate", "practice:A81002", {"practice": "A81002", "year": YEAR,
                                            "element": ["acute"], "to": "consortium:16C",
                                            "on": "2024-06-01"}),
    ("budget opt-out", "practice:A81004", {"practice": "A81004", "year": YEAR,
                                           "to": "practice:A81001", "reason": "Merger talks",
                                           "on": "2024-07-01"}),
]


def write(ledger: Ledger) -> None:
    joint_scenario.write(ledger)
    joint_scenario.write_steps(ledger, EXTRA)


class Page(HTMLParser):
    """The report's machine-readable parts: rows per table, charts, the checkpoint."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, list[dict[str, Any]]] = {}
        self.cells: dict[str, list[list[tuple[str, str]]]] = {}
        self.body: dict[str, str] = {}
        self.figures: list[str] = []
        self.svgs = 0
        self.checkpoint: dict[str, str] = {}
        self.scripts = 0
        self.external: list[str] = []
        self._table = ""
        self._cell: str | None = None
        self._text = ""
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        for key in ("src", "href"):
            if a.get(key) and not a[key].startswith("#"):
                self.external.append(a[key])
        if tag == "body":
            self.body = a
        elif tag == "table":
            self._table = a["data-table"]
            self.tables[self._table] = []
            self.cells[self._table] = []
        elif tag == "tr" and "data-row" in a:
            self.tables[self._table].append(json.loads(a["data-row"]))
            self.cells[self._table].append([])
        elif tag == "td" and "data-field" in a:
            self._cell, self._text = a["data-field"], ""
        elif tag == "figure":
            self.figures.append(a["data-chart"])
        elif tag == "svg":
            self.svgs += 1
        elif tag == "div" and a.get("id") == "checkpoint":
            self.checkpoint = a
        elif tag == "script":
            self.scripts += 1

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.cells[self._table][-1].append((self._cell, self._text))
            self._cell = None


def as_json(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads(orjson.dumps(rows))
    return loaded


def test_report_holds_the_reads_at_a_signed_checkpoint(ledger: Ledger, tmp_path: Path) -> None:
    write(ledger)
    path = write_report(ledger.store, consortium="16c", allocator=None, year=YEAR,
                        path=tmp_path / "report.html")
    page = Page(path.read_text(encoding="utf-8"))
    reads = JointReads(ledger.store, today=TODAY)

    # The checkpoint: the whole log, signed by the log's key.
    head = ledger.store.head()
    assert page.checkpoint["data-size"] == str(head)
    note = html.unescape(path.read_text().split('<pre data-field="note">')[1]
                         .split("</pre>")[0])
    checkpoint = open_checkpoint(note, store_signer(ledger.store).verifier)
    assert checkpoint.size == head
    assert page.checkpoint["data-root"] == base64.b64encode(checkpoint.root).decode()

    assert page.tables["positions"] == as_json(
        [r for r in reads.position(consortium="16C", by="consortium", year=YEAR)
         if r["consortium"] == "16C"])
    assert page.tables["practices"] == as_json(reads.position(consortium="16C", year=YEAR))
    assert page.tables["pools"] == as_json(reads.pools(consortium="16C", year=YEAR))
    assert page.tables["pools"][0]["top_slice_percent"] == 1.0
    assert page.tables["quality"] == as_json(reads.quality(consortium="16C", year=YEAR))
    assert [r["qs_code"] for r in page.tables["quality"] if r["gap"]] == ["QS1", "QS9"]
    assert page.tables["funnel-16C-acute"] == as_json(
        reads.funnel(consortium="16C", year=YEAR, element="acute"))
    holdings = page.tables["holdings"]
    assert [(r["practice"], r["element"], r["holder"], r["kind"]) for r in holdings] == [
        ("A81002", "acute", "consortium:16C", "delegation"),
        # The opt-out moves every element; A81004's budget has only acute.
        ("A81004", "acute", "practice:A81001", "opt-out")]
    # What people read is what programs read: money and counts as shown.
    first = dict(page.cells["positions"][0])
    assert first["element"] == "acute"
    assert first["allocated_pence"] == "£500,000.00"  # 5 members x £100,000
    assert page.figures == ["budget-16C", "funnel-16C-acute"]
    assert page.svgs == 2
    assert page.external == []  # nothing fetched from anywhere
    assert page.scripts == 1


def test_report_options_and_errors(sqlite_path: str, tmp_path: Path) -> None:
    with bootstrap(sqlite_path) as ledger:
        write(ledger)
    for args, code, message in [
        ([], 2, "give --consortium or --allocator"),
        (["--consortium", "16C", "--allocator", "Q71"], 2, "one of them"),
        (["--consortium", "99C"], 1, "no consortium 99C"),
        (["--allocator", "Q99"], 1, "no budgets allocated by Q99"),
        (["--consortium", "16C", "--out", str(tmp_path / "r.pdf")], 2, "must end in .html"),
        (["--consortium", "16C", "--out", str(tmp_path / "no" / "r.html")], 2, "no folder"),
    ]:
        done = invoke(sqlite_path, "report", "--year", YEAR, *args)
        assert done.exit_code == code, (args, done.stdout, done.stderr)
        assert message in one_line_error(done.stderr), args
    done = invoke(sqlite_path, "report", "--allocator", "q71", "--year", YEAR, "--out",
                  str(tmp_path / "q71.html"))
    assert done.exit_code == 0, done.stderr
    page = Page((tmp_path / "q71.html").read_text())
    assert [r["allocator"] for r in page.tables["positions"]] == ["Q71"]
    # Rolled up per consortium; A81007 belongs to none ("").
    assert {r["consortium"] for r in page.tables["practices"]} == {"16C", "00P", ""}
    assert page.figures.count("budget-16C") == 1
    assert "funnel-16C-acute" in page.figures
    assert "funnel-00P-acute" in page.figures


# --- in a real browser ----------------------------------------------------------------------


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Chromium is not installed: run .ci/ensure-chromium (make test does)"
    return found


def browse(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
               "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
               "--enable-logging=stderr", "--v=0", "--hide-scrollbars", *args,
               page.as_uri()]
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False,
                          env=env)


def cli_json(db: str, tmp_path: Path, *args: str) -> list[dict[str, Any]]:
    done = run_ledger(db, *args, "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


@pytest.mark.e2e
def test_report_renders_in_headless_chromium_with_the_json_figures(sqlite_path: str,
                                                                  tmp_path: Path) -> None:
    with bootstrap(sqlite_path) as ledger:
        write(ledger)
    report = tmp_path / "report.html"
    done = run_ledger(sqlite_path, "report", "--consortium", "16C", "--year", YEAR, "--out",
                      str(report), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"Report written to {report}" in " ".join(done.stdout.split())

    dumped = browse(report, tmp_path / "profile", "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr
    console = [line for line in dumped.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []  # no console errors (nor any other console output)
    page = Page(dumped.stdout)
    # The browser ran the page's self-check: both charts laid out with a size.
    assert page.body["data-charts"] == "2"
    assert int(page.body["data-rows"]) == sum(len(rows) for rows in page.tables.values())

    assert page.tables["positions"] == [
        r for r in cli_json(sqlite_path, tmp_path, "position", "--consortium", "16C", "--by",
                            "consortium", "--year", YEAR) if r["consortium"] == "16C"]
    assert page.tables["practices"] == cli_json(sqlite_path, tmp_path, "position",
                                                "--consortium", "16C", "--year", YEAR)
    assert page.tables["quality"] == cli_json(sqlite_path, tmp_path, "quality",
                                              "--consortium", "16C", "--year", YEAR)
    assert page.tables["funnel-16C-acute"] == cli_json(
        sqlite_path, tmp_path, "variation", "--consortium", "16C", "--year", YEAR)
    held = cli_json(sqlite_path, tmp_path, "holders", "--consortium", "16C", "--year", YEAR)
    assert [{k: v for k, v in r.items() if k != "kind"} for r in page.tables["holdings"]] == [
        r for r in held if r["holder"] != f"practice:{r['practice']}"]

    shot = tmp_path / "report.png"
    taken = browse(report, tmp_path / "profile2", f"--screenshot={shot}",
                   "--window-size=1280,2000")
    assert taken.returncode == 0, taken.stderr
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert shot.stat().st_size > 50_000  # a page of tables and charts, not a blank one


def test_a_year_without_budgets_is_refused_for_report_and_peer_review(
        ledger: Ledger, db_url: str, tmp_path: Path) -> None:
    """A year nobody was allocated a budget for has nothing to review: the report and
    the funnel and Tukey reviews say so (exit 1, HTTP 404, rule year) rather than show
    every member within its limits and sign a report of zeros."""
    from fastapi.testclient import TestClient  # noqa: PLC0415

    from projections.api import create_app  # noqa: PLC0415
    from tests.ledger.application.scenario import bearer, grant_token  # noqa: PLC0415

    write(ledger)
    secret = grant_token(ledger, "auditor:peer")
    out = tmp_path / "r.html"
    done = invoke(db_url, "report", "--consortium", "16C", "--year", "2040-41", "--out",
                  str(out))
    assert done.exit_code == 1, done.stdout
    assert f"no budgets in 2040-41 (years with budgets: {YEAR})" in one_line_error(
        done.stderr)
    assert not out.exists()
    for method in ("funnel", "tukey"):
        done = invoke(db_url, "variation", "--consortium", "16C", "--year", "2040-41",
                      "--element", "acute", "--method", method)
        assert done.exit_code == 1, (method, done.stdout)
        assert "no budgets in 2040-41" in one_line_error(done.stderr)
    with TestClient(create_app(db_url)) as client:
        answer = client.get("/variation", params={"consortium": "16C", "year": "2040-41"},
                            headers=bearer(secret))
        assert answer.status_code == 404, answer.text
        assert answer.json()["rule"] == "year"
        known = client.get("/variation", params={"consortium": "16C", "year": YEAR},
                           headers=bearer(secret))
        assert known.status_code == 200, known.text
