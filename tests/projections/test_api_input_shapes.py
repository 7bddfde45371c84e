"""Requests that could be read two ways are refused by the service, on both stores.

A query parameter given twice that takes one value, two `Authorization` headers, an
instant past the calendar in UTC, a code written with a letter that only upper-cases
to ASCII, a figure named twice in a body: each is refused (400, or 401 for the
headers) with one line of JSON, and nothing is recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledger.application.commands import build_command
from ledger.bootstrap import bootstrap
from projections.api import create_app
from tests.ledger.application.scenario import grant_token

ALLOCATOR = "allocator:Q71"


@pytest.fixture
def served(db_url: str) -> Iterator[tuple[TestClient, str]]:
    """A client of the service over a ledger with A81001 registered, and the allocator's
    token's secret."""
    ledger = bootstrap(db_url)
    try:
        ledger.service.execute(build_command("practice register", {
            "practice": "A81001", "name": "Densham", "list_size": 4069,
            "weighted": {"acute": "5044.162762"}, "on": "2024-04-01"}), ALLOCATOR)
        secret = grant_token(ledger, ALLOCATOR)
    finally:
        ledger.close()
    with TestClient(create_app(db_url)) as client:
        yield client, secret


def refused(answer: object, status: int, *fragments: str) -> None:
    assert answer.status_code == status, answer.text  # type: ignore[attr-defined]
    body = answer.json()  # type: ignore[attr-defined]
    assert set(body) == {"error", "rule"}, body
    for fragment in fragments:
        assert fragment in body["error"], body


def head(client: TestClient, secret: str) -> int:
    answer = client.get("/health")
    assert answer.status_code == 200
    return int(answer.json()["head"])


def test_a_query_parameter_given_twice_is_refused_unless_it_is_repeatable(
        served: tuple[TestClient, str]) -> None:
    client, secret = served
    auth = {"Authorization": f"Bearer {secret}"}
    refused(client.get("/events?after=1&after=2", headers=auth), 400,
            "query parameter after given 2 times")
    refused(client.get("/events?limit=5&limit=5", headers=auth), 400, "limit given 2 times")
    refused(client.get("/holders?practice=A81001&practice=A81002", headers=auth), 400,
            "practice given 2 times")
    assert client.get("/events?after=1", headers=auth).status_code == 200
    assert client.get("/quality?qs=QS1&qs=QS2", headers=auth).status_code == 200


def test_two_authorization_headers_are_refused_whichever_comes_first(
        served: tuple[TestClient, str]) -> None:
    client, secret = served
    for pair in ([f"Bearer {secret}", "Bearer x"], ["Bearer x", f"Bearer {secret}"]):
        headers = [("Authorization", value) for value in pair]
        refused(client.get("/holders", headers=headers), 401, "Authorization given more")
    before = head(client, secret)
    headers = [("Authorization", f"Bearer {secret}"), ("Authorization", f"Bearer {secret}"),
               ("Idempotency-Key", "two-auth")]
    refused(client.post("/practice/register", headers=headers, json={
        "practice": "A81002", "name": "X", "list_size": 3}), 401)
    assert head(client, secret) == before


def test_an_instant_past_the_calendar_or_a_code_that_upper_cases_to_ascii_is_400(
        served: tuple[TestClient, str]) -> None:
    client, secret = served
    auth = {"Authorization": f"Bearer {secret}"}
    refused(client.get("/holders", params={"known_at": "9999-12-31T23:59:59-01:00"},
                       headers=auth), 400, "out of range")
    refused(client.get("/trail/\u013181001", headers=auth), 400, "malformed code '\u013181001'")
    refused(client.get("/holders", params={"consortium": "1\u017fC"}, headers=auth), 400,
            "malformed consortium code")
    before = head(client, secret)
    refused(client.post("/token/create", headers={**auth, "Idempotency-Key": "t-1"}, json={
        "actor": "service:x", "expires": "9999-12-31T23:00:00-05:00"}), 400, "out of range")
    refused(client.post("/practice/register", headers={**auth, "Idempotency-Key": "r-1"}, json={
        "practice": "\u013181002", "name": "X", "list_size": 3}), 400, "malformed practice code")
    assert head(client, secret) == before


def test_an_instant_without_a_zone_is_400_for_known_at_and_expires_alike(
        served: tuple[TestClient, str]) -> None:
    client, secret = served
    auth = {"Authorization": f"Bearer {secret}"}
    refused(client.get("/holders", params={"known_at": "2024-07-15T09:30:00"}, headers=auth),
            400, "has no zone")
    before = head(client, secret)
    refused(client.post("/token/create", headers={**auth, "Idempotency-Key": "t-z"}, json={
        "actor": "service:x", "expires": "2099-03-31T17:00:00"}), 400, "expiry", "has no zone")
    assert head(client, secret) == before


def test_a_body_naming_one_figure_twice_or_a_rate_as_a_fraction_is_refused(
        served: tuple[TestClient, str]) -> None:
    client, secret = served
    auth = {"Authorization": f"Bearer {secret}"}
    before = head(client, secret)
    refused(client.post("/practice/register", headers={**auth, "Idempotency-Key": "w-1"}, json={
        "practice": "A81002", "name": "X", "list_size": 3,
        "weighted": {"acute": "1", " ACUTE": "2"}}), 400, "weighted acute is given twice")
    for rate in (780.5, True):
        refused(client.post("/budget/allocate-formula",
                            headers={**auth, "Idempotency-Key": "f-1"},
                            json={"practice": "A81001", "year": "2024-25", "on": "2024-04-01",
                                  "rate": {"acute": rate}}),
                400, "must be written as text")
    refused(client.post("/budget/allocate-formula", headers={**auth, "Idempotency-Key": "f-2"},
                        json={"practice": "A81001", "year": "2024-25", "on": "2024-04-01",
                              "rate": {"acute": "780", "Acute": "780"}}),
            400, "the rate for acute is given twice")
    assert head(client, secret) == before


LiveFrom = Callable[..., Any]
"""Asks `/events/live` as the allocator with each raw value given as a `Last-Event-ID`
header, in order; the answer."""


@pytest.fixture
def live_from(served: tuple[TestClient, str]) -> LiveFrom:
    client, secret = served
    auth = (b"Authorization", f"Bearer {secret}".encode())

    def ask(*values: bytes) -> Any:
        return client.get("/events/live",
                          headers=[auth, *((b"Last-Event-ID", value) for value in values)])

    return ask


def test_a_last_event_id_given_twice_or_in_other_digits_is_refused(
        live_from: LiveFrom) -> None:
    refused(live_from(b"1", b"2"), 400, "Last-Event-ID given 2 times")
    for value in (b"\xb2", b"1\xb9", b"-1", b"1e3", b"9" * 19):
        refused(live_from(value), 400, "Last-Event-ID must be a position")


def test_a_last_event_id_refusal_names_what_the_client_sent(live_from: LiveFrom) -> None:
    """UTF-8 is read back as UTF-8 (an Arabic-Indic three, not two Latin-1 letters); bytes
    that are not UTF-8 are named as the server read them."""
    refused(live_from("\u0663".encode()), 400, "not '\u0663'")
    refused(live_from("\uff11".encode()), 400, "not '\uff11'")
    refused(live_from(b"1\xb9"), 400, "not '1\xb9'")


def test_a_token_is_read_only_by_a_json_boolean_alone(served: tuple[TestClient, str]) -> None:
    client, secret = served
    auth = {"Authorization": f"Bearer {secret}"}
    before = head(client, secret)
    for n, flag in enumerate(("yes", "no", 1, 0, "true", None)):
        refused(client.post("/token/create", headers={**auth, "Idempotency-Key": f"ro-{n}"},
                            json={"actor": "practice:A81001", "read_only": flag}),
                400, "read_only")
    assert head(client, secret) == before
    made = client.post("/token/create", headers={**auth, "Idempotency-Key": "ro-ok"},
                       json={"actor": "practice:A81001", "read_only": True})
    assert made.status_code == 201, made.text
    assert "(read-only)" in made.json()["summary"]


def test_an_idempotency_key_refusal_names_the_character_the_client_sent(
        served: tuple[TestClient, str]) -> None:
    client, secret = served
    auth = (b"Authorization", f"Bearer {secret}".encode())
    before = head(client, secret)
    body = b'{"practice": "A81002", "name": "X", "list_size": 3}'
    for sent, named in (("w\u200b1", "U+200B ZERO WIDTH SPACE"), ("w\u00e91", "U+00E9")):
        refused(client.post("/practice/register", content=body,
                            headers=[auth, (b"Content-Type", b"application/json"),
                                     (b"Idempotency-Key", sent.encode("utf-8"))]),
                400, "command id", named)
    # Bytes that are not UTF-8 are named as the server read them.
    refused(client.post("/practice/register", content=body,
                        headers=[auth, (b"Content-Type", b"application/json"),
                                 (b"Idempotency-Key", b"w\xff1")]),
            400, "command id", "U+00FF")
    assert head(client, secret) == before


def test_an_apply_line_whose_command_is_not_written_exactly_is_refused_naming_it(
        served: tuple[TestClient, str]) -> None:
    client, secret = served
    auth = {"Authorization": f"Bearer {secret}"}
    before = head(client, secret)
    written = ["practice\tclose", "practice  close", "practice close ", "practice\u2003close"]
    body = "".join(json.dumps({"command": name, "command_id": f"c-{n}",
                               "args": {"practice": "A81001"}}) + "\n"
                   for n, name in enumerate(written))
    answer = client.post("/apply", headers=auth, content=body.encode())
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["status"] for r in results] == ["refused"] * len(written), results
    for result, name in zip(results, written, strict=True):
        assert result["rule"] == "command", result
        assert result["error"].startswith(f"unknown command {name!r} (did you mean "
                                          "'practice close'?"), result
    assert head(client, secret) == before


def test_a_token_expiry_finer_than_a_microsecond_is_refused_not_cut(
        served: tuple[TestClient, str]) -> None:
    client, secret = served
    auth = {"Authorization": f"Bearer {secret}"}
    before = head(client, secret)
    refused(client.post("/token/create", headers={**auth, "Idempotency-Key": "ns-1"}, json={
        "actor": "service:x", "expires": "2099-03-31T17:00:00.123456789Z"}), 400,
        "9 decimals of a second, at most 6 (microseconds)")
    assert head(client, secret) == before
    made = client.post("/token/create", headers={**auth, "Idempotency-Key": "us-1"}, json={
        "actor": "service:x", "expires": "2099-03-31T17:00:00.123456Z"})
    assert made.status_code == 201, made.text
    assert "expires 2099-03-31T17:00:00.123456Z" in made.json()["summary"]


@pytest.mark.parametrize("given", ["5_0", "+5", " 5", "5 ", "\u0665", "0x5", "\u00b2", "",
                                   "1e3", "\uff15"])
def test_a_position_limit_or_batch_size_not_written_in_the_digits_0_to_9_is_400(
        served: tuple[TestClient, str], given: str) -> None:
    client, secret = served
    auth = {"Authorization": f"Bearer {secret}"}
    before = head(client, secret)
    for name in ("after", "limit"):
        refused(client.get("/events", params={name: given}, headers=auth), 400,
                f"{name} must be a whole number written in the digits 0-9 alone")
    refused(client.get("/events/live", params={"after": given}, headers=auth), 400,
            "after must be a whole number written in the digits 0-9 alone")
    line = json.dumps({"command": "practice close", "command_id": "c-1",
                       "args": {"practice": "A81001"}})
    refused(client.post("/apply", params={"batch_size": given}, headers=auth,
                        content=line.encode()), 400,
            "batch_size must be a whole number written in the digits 0-9 alone",
            "1 to 100000: not")
    assert head(client, secret) == before
    assert client.get("/events", params={"after": "01", "limit": "007"},
                      headers=auth).status_code == 200


CLOSE = b'{"practice": "A81001", "reason": "%s"}'
UNREADABLE_BODIES = {
    "latin-1": (CLOSE % b"caf\xe9", "not UTF-8 (byte 37 cannot be read)"),
    "an encoded surrogate": (CLOSE % b"\xed\xa0\x80", "not UTF-8 (byte 34 cannot be read)"),
    "an overlong slash": (CLOSE % b"\xc0\xaf", "not UTF-8 (byte 34 cannot be read)"),
    "cut inside a character": (b'{"practice": "A81001\xc3', "not UTF-8 (byte 20 cannot be read)"),
    "UTF-16 with its mark": ('{"practice": "A81001"}'.encode("utf-16"),
                             "not UTF-8 (byte 0 cannot be read)"),
    "UTF-16 without one": ('{"practice": "A81001"}'.encode("utf-16-le"),
                           "not UTF-8 (byte 1 is NUL: UTF-16 or UTF-32 text?)"),
    "UTF-32": ('{"practice": "A81001"}'.encode("utf-32-le"), "not UTF-8 (byte 1 is NUL"),
    "arrays 5,000 deep": (b'{"practice": "A81001", "reason": ' + b"[" * 5000 + b"]" * 5000
                          + b"}", "nested too deeply"),
    "objects 2,000 deep": (b'{"practice": "A81001", "reason": ' + b'{"a":' * 2000 + b"1"
                           + b"}" * 2000 + b"}", "nested too deeply"),
}


@pytest.mark.parametrize("case", list(UNREADABLE_BODIES))
def test_a_write_body_not_utf8_or_nested_too_deeply_is_400_saying_which(
        served: tuple[TestClient, str], case: str) -> None:
    client, secret = served
    body, problem = UNREADABLE_BODIES[case]
    before = head(client, secret)
    for path in ("/practice/close", "/token/create", "/token/revoke", "/budget/adjust"):
        for content_type in ("application/json", None):
            headers = {"Authorization": f"Bearer {secret}"} | (
                {"Content-Type": content_type} if content_type else {})
            refused(client.post(path, content=body, headers=headers), 400,
                    f"the body is not read: {problem}")
            # Who asks is known first: without a live token it is 401 whatever the body.
            refused(client.post(path, content=body, headers={
                "Authorization": "Bearer nope"} | ({"Content-Type": content_type}
                                                   if content_type else {})), 401)
    if "NUL" not in problem and "nested" not in problem:
        refused(client.post("/apply", content=body, headers={
            "Authorization": f"Bearer {secret}"}), 400, f"the body is {problem}")
    assert head(client, secret) == before


def test_a_write_body_with_a_byte_order_mark_reads_as_without_one(
        served: tuple[TestClient, str]) -> None:
    client, secret = served
    done = client.post("/practice/close", content=b"\xef\xbb\xbf" + CLOSE % b"merged",
                       headers={"Authorization": f"Bearer {secret}",
                                "Content-Type": "application/json"})
    assert done.status_code == 201, done.text


def test_a_last_event_id_int_would_read_is_refused_as_other_positions_are(
        live_from: LiveFrom) -> None:
    for value in (b"5_0", b"+1", b"0x1", b"\xa01", b"1\x0b"):
        refused(live_from(value), 400, "Last-Event-ID must be a position (the digits 0-9 alone")
