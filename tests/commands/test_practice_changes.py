"""Practices change during the year: new list sizes, closing, and nothing dated before it
existed. Through the real command line and `ledger apply`, on both stores."""

from __future__ import annotations

import json
from pathlib import Path

from commands.errors import EXIT_REFUSED
from tests.commands.conftest import Ledger, head

ALLOCATOR = "allocator:Q71"
ME = "practice:A81001"


def ok(result: object) -> None:
    assert getattr(result, "code") == 0, getattr(result, "stderr")  # noqa: B009


def setup(invoke: Ledger, *codes: str) -> None:
    ok(invoke("consortium", "form", "16C", "--name", "Tees Valley", "--officer", "Dr A",
              "--on", "2024-04-01", actor=ALLOCATOR))
    for code in codes:
        ok(invoke("practice", "register", code, "--name", f"Surgery {code}", "--list-size",
                  "4000", "--weighted", "acute=4000.5", "--on", "2024-04-01", actor=ALLOCATOR))
        ok(invoke("consortium", "join", "16C", code, "--on", "2024-04-01", actor=ALLOCATOR))
        ok(invoke("budget", "allocate", code, "--year", "2024-25", "--element",
                  "acute=100000", "--on", "2024-04-01", actor=ALLOCATOR))


def commit(invoke: Ledger, ref: str, on: str, practice: str = "A81001") -> object:
    return invoke("spend", "commit", practice, "--year", "2024-25", "--element", "acute",
                  "--ref", ref, "--amount", "1000", "--provider", "RTR", "--service", "Hips",
                  "--on", on, actor=f"practice:{practice}")


def test_peer_review_uses_the_population_in_force_on_its_date(invoke: Ledger) -> None:
    setup(invoke, "A81001")
    ok(commit(invoke, "R-1", "2024-05-01"))
    done = invoke("practice", "list-size", "A81001", "--list-size", "4,100", "--weighted",
                  "acute=2000.25", "--on", "2024-10-01", actor=ALLOCATOR)
    ok(done)
    assert "recorded list size 4,100, acute 2000.25 for A81001 from 2024-10-01" in done.stdout

    def population(as_of: str) -> tuple[str, float]:
        rows = json.loads(invoke("variation", "--method", "tukey", "--element", "acute",
                                 "--as-of", as_of, "--format", "json").stdout)
        return rows[0]["weighted_population"], rows[0]["per_1000"]

    assert population("2024-09-30") == ("4000.5", 0.25)
    assert population("2024-10-01") == ("2000.25", 0.5)
    trail = json.loads(invoke("trail", "A81001", "--format", "json").stdout)
    assert trail[-1]["event"] == "ListSizeRecorded"
    assert trail[-1]["summary"] == ("list size of A81001 recorded as 4,100; weighted "
                                    "population acute 2000.25")


def test_a_closed_practice_commits_nothing_after_it_and_stays_readable(invoke: Ledger,
                                                                      db_url: str) -> None:
    setup(invoke, "A81001")
    ok(commit(invoke, "R-1", "2024-05-01"))
    ok(commit(invoke, "R-2", "2024-12-01"))
    early = invoke("practice", "close", "A81001", "--on", "2024-11-01", actor=ALLOCATOR)
    assert early.code == EXIT_REFUSED
    early.one_line_error("commitments effective on or after 2024-11-01: R-2 (2024-12-01)",
                         "[rule: practice-open]")
    done = invoke("practice", "close", "A81001", "--on", "2025-01-01", "--reason", "Merged",
                  actor=ALLOCATOR)
    ok(done)
    assert "A81001 closed from 2025-01-01; its budgets stay accountable" in done.stdout
    before = head(db_url)
    late = commit(invoke, "R-3", "2025-01-02")
    assert getattr(late, "code") == EXIT_REFUSED  # noqa: B009
    late.one_line_error("A81001 closed on 2025-01-01", "[rule: practice-open]")  # type: ignore[attr-defined]
    up = invoke("spend", "vary", "R-1", "--amount", "2000", "--on", "2025-02-01", actor=ME)
    assert up.code == EXIT_REFUSED
    assert head(db_url) == before
    # Winding down: settling and reducing what was committed before the close is allowed.
    ok(invoke("spend", "settle", "R-1", "--amount", "1000", "--final", "--on", "2025-02-01",
              actor=ME))
    ok(invoke("spend", "vary", "R-2", "--amount", "500", "--on", "2025-02-01", actor=ME))
    position = json.loads(invoke("position", "--practice", "A81001", "--year", "2024-25",
                                 "--format", "json").stdout)
    acute = next(r for r in position if r["element"] == "acute")
    assert (acute["settled_pence"], acute["committed_pence"]) == (100_000, 50_000)
    trail = json.loads(invoke("trail", "A81001", "--format", "json").stdout)
    assert ("A81001 closed from 2025-01-01; nothing may be committed for it from that day, "
            "its budgets stay accountable — Merged") in [r["summary"] for r in trail]
    again = invoke("practice", "close", "A81001", "--on", "2025-02-01", actor=ALLOCATOR)
    assert again.code == EXIT_REFUSED


def test_nothing_takes_effect_before_a_practice_or_consortium_existed(
    invoke: Ledger, db_url: str
) -> None:
    setup(invoke, "A81001")
    ok(invoke("practice", "register", "A81002", "--name", "Late", "--list-size", "10",
              "--on", "2024-06-01", actor=ALLOCATOR))
    before = head(db_url)
    cases = [
        (["practice", "list-size", "A81002", "--list-size", "20", "--on", "2024-05-31"],
         "A81002 was registered on 2024-06-01; cannot list-size effective 2024-05-31"),
        (["budget", "allocate", "A81002", "--year", "2024-25", "--element", "acute=1",
          "--on", "2024-04-01"],
         "A81002 was registered on 2024-06-01; cannot allocate effective 2024-04-01"),
        (["consortium", "join", "16C", "A81002", "--on", "2024-05-01"],
         "A81002 was registered on 2024-06-01; cannot join effective 2024-05-01"),
        (["practice", "close", "A81002", "--on", "2024-05-01"],
         "A81002 was registered on 2024-06-01; cannot close effective 2024-05-01"),
        (["consortium", "adopt", "16C", "--year", "2023-24", "QS1", "--on", "2024-03-01"],
         "consortium 16C was formed on 2024-04-01; cannot adopt effective 2024-03-01"),
    ]
    for args, fragment in cases:
        done = invoke(*args, actor=ALLOCATOR)
        assert done.code == EXIT_REFUSED, args
        done.one_line_error(fragment, "[rule: effective-date]")
    assert head(db_url) == before


def test_apply_records_list_sizes_and_closures(invoke: Ledger, db_url: str,
                                               tmp_path: Path) -> None:
    setup(invoke, "A81001")
    lines = [
        {"command": "practice list-size", "command_id": "l-1", "actor": ALLOCATOR,
         "args": {"practice": "A81001", "list_size": "4,200",
                  "weighted": {"acute": "4100.123456"}, "on": "2024-07-01"}},
        {"command": "practice close", "command_id": "c-1", "actor": ALLOCATOR,
         "args": {"practice": "A81001", "on": "2025-03-01", "reason": "Retired"}},
    ]
    file = tmp_path / "commands.jsonl"
    file.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    ok(invoke("apply", str(file)))
    feed = [json.loads(line) for line in invoke("events").stdout.splitlines()]
    assert [e["event"] for e in feed[-2:]] == ["ListSizeRecorded", "PracticeClosed"]
    assert feed[-2]["weighted_population"] == {"acute": "4100.123456"}
    assert feed[-1]["reason"] == "Retired"
    again = invoke("apply", str(file))
    assert again.code == 0
    assert head(db_url) == feed[-1]["position"]
