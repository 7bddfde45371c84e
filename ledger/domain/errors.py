"""Errors the domain and application raise; each names the rule it enforces.

`OUTCOMES` is the one mapping of each class to the command line's exit code and
the HTTP service's status; both read it. Messages are one line, for people.
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


class NotAuthenticated(NotAuthorised):
    """No identity established: no bearer token, or one unknown, expired or revoked."""


class IdempotencyConflict(RuleViolation):
    """The command id was already used for a different command (invariant 10)."""


class StoreUnavailable(LedgerError):  # noqa: N818
    """The event store cannot be reached or opened."""


class LogDamaged(LedgerError):  # noqa: N818
    """The stored events no longer match the Merkle log sealed over them.

    Raised when a write finds the log cannot be extended as asked (for example
    events removed after they were sealed). Nothing is recorded; `ledger verify`
    names the damage.
    """


class UnreadableEvent(LedgerError):  # noqa: N818
    """The log holds an event this version of the ledger cannot read exactly.

    An unknown topic, or a schema version newer than the code understands (a
    newer version of the ledger wrote it), or a stored form that does not decode.
    Reads and writes stop: nothing is read around it and nothing is recorded.
    `position` is the event's place in the log (None until the store knows it);
    `understood` the newest schema version this code reads (None: unknown topic).
    """

    def __init__(self, topic: str, stored: object, understood: int | None,
                 position: int | None = None, problem: str | None = None) -> None:
        self.topic = topic
        self.stored = stored
        self.understood = understood
        self.position = position
        self.problem = problem
        super().__init__("unreadable-event", self._describe())

    def _describe(self) -> str:
        where = f"the event at position {self.position}" if self.position else "an event"
        if self.understood is None:
            return (f"{where} has topic {self.topic!r} (schema version {self.stored}), which "
                    "this version does not know: it was written by a newer version; "
                    "upgrade the ledger")
        if self.problem is None:
            return (f"{where} ({self.topic}) is schema version {self.stored}; this version "
                    f"understands up to {self.understood}: upgrade the ledger")
        return (f"{where} ({self.topic}, schema version {self.stored}) cannot be read: "
                f"{self.problem}; run `ledger verify`, or upgrade the ledger if a newer "
                "version wrote it")

    def at(self, position: int) -> UnreadableEvent:
        """The same error, now that the event's position is known."""
        return UnreadableEvent(self.topic, self.stored, self.understood, position, self.problem)


# Most specific first; the first class an error is an instance of decides:
# (kind, exit code of the command line, HTTP status of the service).
OUTCOMES: tuple[tuple[type[LedgerError], int, int], ...] = (
    (UnreadableEvent, 5, 503),
    (StoreUnavailable, 3, 503),
    (LogDamaged, 4, 500),
    (InvalidInput, 2, 400),
    (NotAuthenticated, 1, 401),
    (NotAuthorised, 1, 403),
    (NotFound, 1, 404),
    (RuleViolation, 1, 409),
    (LedgerError, 1, 409),
)


def outcome_of(error: LedgerError) -> tuple[int, int]:
    """(exit code, HTTP status) of an error."""
    for kind, code, status in OUTCOMES:
        if isinstance(error, kind):
            return code, status
    return 1, 409


def error_for_status(status: int, rule: str, message: str) -> LedgerError:
    """The error a service's answer stands for: the first kind in `OUTCOMES` with that
    status (so its exit code is the one the command line would have given)."""
    for kind, _, sent in OUTCOMES:
        if sent == status and kind is not UnreadableEvent:  # it is built from its event
            return kind(rule, message)
    return StoreUnavailable(rule, f"the service answered {status}: {message}")
