"""Fresh bearer tokens (ledger.application.access.new_token)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ledger.application.access import new_token
from ledger.application.commands import build_command
from ledger.domain.access import secret_digest
from ledger.domain.errors import InvalidInput


def test_no_secret_begins_with_a_dash_that_argument_parsers_would_read_as_an_option() -> None:
    # Unfiltered, about 1 secret in 64 begins with '-': 3,000 draws meet one all but surely.
    secrets = [new_token().secret for _ in range(3000)]
    assert not [s for s in secrets if s.startswith("-")]


def test_a_secret_passes_through_argparse_as_the_value_of_its_option() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--token")
    for _ in range(500):
        secret = new_token().secret
        assert parser.parse_args(["--token", secret]).token == secret


def test_a_secret_keeps_its_strength_and_distinct_digest() -> None:
    tokens = [new_token() for _ in range(200)]
    assert all(len(t.secret) == 43 and len(t.token_id) == 12 for t in tokens)
    assert len({t.digest for t in tokens}) == 200
    assert all(t.digest == secret_digest(t.secret) for t in tokens)


def test_an_expiry_not_written_as_text_is_refused_not_read_as_seconds_since_1970() -> None:
    base = {"actor": "service:x", "token_id": "abcdefabcdef", "secret_sha256": "0" * 64}
    for value in (1_700_000_000, Decimal("1700000000.5"), True, [2099]):
        with pytest.raises(InvalidInput, match="must be written as text") as refused:
            build_command("token create", base | {"expires": value})
        assert refused.value.rule == "expires"
    made = build_command("token create", base | {"expires": "2099-03-31T17:00:00Z"})
    assert made.expires == datetime(2099, 3, 31, 17, tzinfo=UTC)  # type: ignore[attr-defined]
