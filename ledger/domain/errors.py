"""Errors the domain and application raise; each names the rule it enforces.

The command line maps each class to one exit code (commands/errors.py); the read
API maps them to HTTP statuses. Messages are one line, for people.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose."""

    rule: str = "ledger"

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} [rule: {self.rule}]"


class InvalidInput(LedgerError):  # noqa: N818 - reads as a verdict, like the others
    """Malformed input: a code, an amount, a date, a file row. Nothing recorded."""


class RuleViolation(LedgerError):  # noqa: N818
    """A domain invariant refused the command. Nothing recorded."""


class NotFound(RuleViolation):
    """The command names a practice, consortium, budget or commitment that does not exist."""


class NotAuthorised(RuleViolation):
    """The actor has no authority for this command (invariant 3)."""


class IdempotencyConflict(RuleViolation):
    """The command id was already used for a different command (invariant 10)."""


class StoreUnavailable(LedgerError):  # noqa: N818
    """The event store cannot be reached or opened."""
