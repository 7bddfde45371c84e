"""Fresh bearer tokens (ledger.application.access.new_token)."""

from __future__ import annotations

import argparse

from ledger.application.access import new_token
from ledger.domain.access import secret_digest


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
