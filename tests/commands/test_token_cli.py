"""`ledger token`: the first token by bootstrap, then only the allocator; secrets shown once."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from commands.errors import EXIT_REFUSED, EXIT_USAGE
from ledger.domain.access import secret_digest
from tests.commands.conftest import Ledger, head, topics

ALLOCATOR = "allocator:Q71"


def secret_of(stdout: str) -> tuple[str, str]:
    match = re.search(r"token ([a-z0-9]{12}): (\S+)", stdout)
    assert match, stdout
    return match[1], match[2]


def test_bootstrap_then_allocator_grants_list_and_revoke(invoke: Ledger, db_url: str) -> None:
    refused = invoke("token", "create", "--actor", "consortium:16C", actor="consortium:16C")
    assert refused.code == EXIT_REFUSED
    refused.one_line_error("only allocator may grant access tokens")
    first = invoke("token", "create", "--actor", ALLOCATOR, "--bootstrap")
    assert first.code == 0, first.stderr
    first_id, first_secret = secret_of(first.stdout)
    again = invoke("token", "create", "--actor", ALLOCATOR, "--bootstrap")
    assert again.code == EXIT_REFUSED
    again.one_line_error("already been granted", "[rule: token-bootstrap]")
    by_practice = invoke("token", "create", "--actor", "practice:A81001",
                         actor="practice:A81001")
    by_practice.one_line_error("only allocator may grant access tokens")
    made = invoke("token", "create", "--actor", "service:dash", "--name", "dashboard",
                  "--expires", "2099-01-01", actor=ALLOCATOR)
    assert made.code == 0, made.stderr
    token_id, secret = secret_of(made.stdout)
    assert "read-only" in made.stdout
    listed = invoke("token", "list", "--format", "json")
    assert listed.code == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["token_id"], r["actor"], r["status"]) for r in rows] == [
        (first_id, ALLOCATOR, "active"), (token_id, "service:dash", "active")]
    assert rows[1]["granted_by"] == ALLOCATOR
    assert rows[1]["label"] == "dashboard"
    for hidden in (secret, first_secret, secret_digest(secret)):
        assert hidden not in listed.stdout
    revoked = invoke("token", "revoke", token_id, actor=ALLOCATOR)
    assert revoked.code == 0, revoked.stderr
    assert json.loads(invoke("token", "list", "--format", "json").stdout)[1]["status"] == (
        "revoked")
    twice = invoke("token", "revoke", token_id, actor=ALLOCATOR)
    twice.one_line_error("already revoked")
    assert topics(db_url) == {"AccessGranted": 2, "AccessRevoked": 1}


def test_malformed_grantees_and_expiries_are_usage_errors(invoke: Ledger) -> None:
    for args, words in [(["--actor", "wizard:1"], "malformed actor"),
                        (["--actor", ALLOCATOR, "--expires", "soon"], "malformed expiry"),
                        (["--actor", ALLOCATOR, "--expires", "2099-01-01T00:00:00"],
                         "expiry '2099-01-01T00:00:00' has no zone")]:
        done = invoke("token", "create", *args, "--bootstrap")
        assert done.code == EXIT_USAGE, done.stderr
        done.one_line_error(words)


def test_the_help_examples_run_as_written_on_a_fresh_ledger(run_ledger: Ledger) -> None:
    """Each example of `token create --help`, in order, through the real `ledger`, once the
    consortium the example grants a token to is formed."""
    formed = run_ledger("consortium", "form", "16C", "--name", "Tees Valley", "--officer",
                        "Dr A", actor=ALLOCATOR)
    assert formed.code == 0, formed.stderr
    shown = run_ledger("token", "create", "--help")
    assert shown.code == 0, shown.stderr
    examples = [" ".join(p.split()) for p in shown.stdout.partition("Examples:")[2].split("\n\n")
                if p.strip()]
    assert len(examples) == 2, examples
    for example in examples:
        words = shlex.split(re.sub(r"\s+\([^)]*\)$", "", example))  # less a note after it
        assert words[0] == "ledger"
        done = run_ledger(*words[1:])
        assert done.code == 0, (example, done.stderr)
    assert tokens_listed(run_ledger) == 2


def tokens_listed(run: Ledger) -> int:
    listed = run("token", "list", "--format", "json")
    assert listed.code == 0, listed.stderr
    return len(json.loads(listed.stdout))


def test_a_tokens_expiry_is_answered_in_utc_ending_in_z(invoke: Ledger) -> None:
    assert invoke("token", "create", "--actor", ALLOCATOR, "--bootstrap").code == 0
    by_date = invoke("token", "create", "--actor", "service:dash", "--expires", "2099-03-31",
                     actor=ALLOCATOR)
    assert by_date.code == 0, by_date.stderr
    assert ("works through 2099-03-31 UTC, expires 2099-04-01T00:00:00Z)"
            in " ".join(by_date.stdout.split()))
    in_a_zone = invoke("token", "create", "--actor", "service:feed",
                       "--expires", "2099-03-31T12:30:00+01:00", actor=ALLOCATOR)
    assert in_a_zone.code == 0, in_a_zone.stderr
    assert "expires 2099-03-31T11:30:00Z)" in " ".join(in_a_zone.stdout.split())


@pytest.mark.e2e
def test_a_token_given_a_date_works_through_that_day_and_an_instant_is_kept_exact(
        run_ledger: Ledger) -> None:
    assert run_ledger("token", "create", "--actor", ALLOCATOR, "--bootstrap").code == 0
    by_date = run_ledger("token", "create", "--actor", "service:dash", "--expires",
                         "2099-03-31", actor=ALLOCATOR)
    assert by_date.code == 0, by_date.stderr
    assert ("(read-only, works through 2099-03-31 UTC, expires 2099-04-01T00:00:00Z)"
            in by_date.stdout), by_date.stdout
    at_midnight = run_ledger("token", "create", "--actor", "service:feed", "--expires",
                             "2099-03-31T00:00:00Z", actor=ALLOCATOR)
    assert at_midnight.code == 0, at_midnight.stderr
    assert ("works through 2099-03-30 UTC, expires 2099-03-31T00:00:00Z)"
            in at_midnight.stdout), at_midnight.stdout
    exact = run_ledger("token", "create", "--actor", "service:bi", "--expires",
                       "2099-03-31T17:30:00+01:00", actor=ALLOCATOR)
    assert exact.code == 0, exact.stderr
    assert "(read-only, expires 2099-03-31T16:30:00Z)" in exact.stdout, exact.stdout
    listed = run_ledger("token", "list", "--format", "json")
    assert listed.code == 0, listed.stderr
    expiry = {row["actor"]: row["expires_at"] for row in json.loads(listed.stdout)}
    assert expiry == {ALLOCATOR: None, "service:dash": "2099-04-01T00:00:00Z",
                      "service:feed": "2099-03-31T00:00:00Z",
                      "service:bi": "2099-03-31T16:30:00Z"}
    shown = run_ledger("token", "create", "--help")
    assert "--expires DATE|INSTANT" in shown.stdout
    assert "works through" in " ".join(shown.stdout.split())


def test_a_token_expiring_on_a_date_is_live_all_that_day_and_not_after() -> None:
    from datetime import UTC, datetime  # noqa: PLC0415

    from ledger.application.commands import parse_expiry  # noqa: PLC0415
    from ledger.domain.access import Grant  # noqa: PLC0415
    from ledger.domain.values import Actor  # noqa: PLC0415

    ends = parse_expiry("2099-03-31")
    grant = Grant(token_id="abcdefabcdef", grantee=Actor.parse("service:dash"), label=None,
                  read_only=True,
                  expires_at=ends, granted_at=datetime(2024, 1, 1, tzinfo=UTC),
                  granted_by=ALLOCATOR, digest="0" * 64)
    assert grant.live_at(datetime(2099, 3, 31, 23, 59, 59, 999999, tzinfo=UTC))
    assert not grant.live_at(datetime(2099, 4, 1, tzinfo=UTC))
    assert parse_expiry("2099-03-31T17:00:00Z") == datetime(2099, 3, 31, 17, tzinfo=UTC)
    assert parse_expiry("9999-12-31") == datetime.max.replace(tzinfo=UTC)


def test_an_expiry_finer_than_a_microsecond_is_refused_not_cut(
        run_ledger: Ledger, db_url: str) -> None:
    assert run_ledger("token", "create", "--actor", ALLOCATOR, "--bootstrap").code == 0
    before = head(db_url)
    for instant, decimals in (("2099-03-31T17:00:00.123456789Z", 9),
                              ("2099-03-31T17:00:00.1234567+01:00", 7),
                              ("2099-03-31T17:00:00,0000000Z", 7)):
        done = run_ledger("token", "create", "--actor", "service:bi", "--expires", instant,
                          actor=ALLOCATOR)
        assert done.code == EXIT_USAGE, (instant, done.stdout, done.stderr)
        done.one_line_error(f"{decimals} decimals of a second, at most 6 (microseconds)",
                            "[rule: expires]")
    assert head(db_url) == before
    exact = run_ledger("token", "create", "--actor", "service:bi", "--expires",
                       "2099-03-31T17:00:00.123456Z", actor=ALLOCATOR)
    assert exact.code == 0, exact.stderr
    listed = run_ledger("token", "list", "--format", "json")
    expiry = {row["actor"]: row["expires_at"] for row in json.loads(listed.stdout)}
    assert expiry["service:bi"] == "2099-03-31T17:00:00.123456Z"
    assert "to the microsecond at most" in " ".join(
        run_ledger("token", "create", "--help").stdout.split())


def test_a_token_for_a_practice_or_consortium_not_registered_is_refused(
        invoke: Ledger, db_url: str) -> None:
    assert invoke("token", "create", "--actor", ALLOCATOR, "--bootstrap").code == 0
    before = head(db_url)
    for grantee, rule, first in (("practice:A81009", "practice", "register it first"),
                                 ("consortium:16X", "consortium", "form it first")):
        done = invoke("token", "create", "--actor", grantee, actor=ALLOCATOR)
        assert done.code == EXIT_REFUSED, (done.stdout, done.stderr)
        done.one_line_error(f"no {grantee.replace(':', ' ')}", "a token is granted only",
                            first, f"[rule: {rule}]")
    assert head(db_url) == before
    assert invoke("practice", "register", "A81009", "--name", "Densham", "--list-size", "4069",
                  actor=ALLOCATOR).code == 0
    assert invoke("consortium", "form", "16X", "--name", "Tees", "--officer", "Dr A",
                  actor=ALLOCATOR).code == 0
    for grantee in ("practice:A81009", "consortium:16X/Dr A"):
        made = invoke("token", "create", "--actor", grantee, actor=ALLOCATOR)
        assert made.code == 0, (made.stdout, made.stderr)
