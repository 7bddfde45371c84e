"""Messages and exit codes say what the README says they do."""

from __future__ import annotations

import pytest

from commands.errors import EXIT_USAGE
from tests.commands.conftest import Ledger

ALLOCATOR = "allocator:Q71"


def test_verify_refuses_a_format_it_does_not_write(invoke: Ledger) -> None:
    assert invoke("practice", "register", "A81001", "--name", "Densham", "--list-size", "1",
                  actor=ALLOCATOR).code == 0
    done = invoke("verify", "--format", "xml")
    assert done.code == EXIT_USAGE, done.stdout
    assert "xml" in done.stderr
    assert invoke("verify", "--format", "json").code == 0


@pytest.mark.parametrize("amount", ["", "   "])
def test_an_empty_amount_is_called_empty(invoke: Ledger, amount: str) -> None:
    done = invoke("spend", "vary", "R-0001", "--amount", amount, actor="practice:A81001")
    assert done.code == EXIT_USAGE
    line = done.one_line_error("amount is empty")
    assert "sign" not in line
