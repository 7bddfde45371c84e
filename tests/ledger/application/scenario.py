"""Helpers for integration tests: run commands by their CLI names against a Ledger."""

from __future__ import annotations

from typing import Any

from ledger.application.commands import build_command
from ledger.application.service import Answer
from ledger.bootstrap import Ledger
from ledger.domain.events import ACCESS_STREAM, LedgerEvent

ALLOCATOR = "allocator:Q71"
A1, A2, A3 = "A81001", "A81002", "A81003"
ME = f"practice:{A1}"
YEAR = "2024-25"


def run(ledger: Ledger, command: str, actor: str, command_id: str | None = None, /,
        **args: Any) -> Answer:
    """Run `command` (CLI words) with `args` (CLI names) as `actor`."""
    return ledger.service.execute(build_command(command, args), actor, command_id)


def seed(ledger: Ledger, *, amount: str = "10000", practices: tuple[str, ...] = (A1, A2, A3),
         consortium: str | None = "16C", members: tuple[str, ...] = (A1,)) -> None:
    """Practices registered and allocated `amount` per element; a consortium with members."""
    for code in practices:
        run(ledger, "practice register", ALLOCATOR, practice=code, name=f"Surgery {code}",
            list_size=4000, on="2024-04-01")
        run(ledger, "budget allocate", ALLOCATOR, practice=code, year=YEAR, on="2024-04-01",
            element=dict.fromkeys(("acute", "prescribing", "community"), amount))
    if consortium:
        run(ledger, "consortium form", ALLOCATOR, consortium=consortium, name="Tees Valley",
            officer="Dr A Officer", on="2024-04-01")
        for code in members:
            run(ledger, "consortium join", f"consortium:{consortium}", consortium=consortium,
                practice=code, on="2024-04-01")


def commit(ledger: Ledger, ref: str, amount: str, *, practice: str = A1,
           actor: str | None = None, element: str = "acute", on: str = "2024-07-01",
           command_id: str | None = None, service: str = "Hip replacement") -> Answer:
    return run(ledger, "spend commit", actor or f"practice:{practice}", command_id,
               practice=practice, year=YEAR, element=element, ref=ref, amount=amount,
               provider="RTR", service=service, qs=["QS3"], on=on)


def events(ledger: Ledger) -> list[tuple[int, LedgerEvent]]:
    return list(ledger.store.iter_events())


def topics(ledger: Ledger) -> list[str]:
    return [e.topic for _, e in ledger.store.iter_events()]


def grant_token(ledger: Ledger, grantee: str, *, issuer: str = ALLOCATOR,
                **extra: Any) -> str:
    """A live token for `grantee`, granted by `issuer`; returns its secret."""
    from ledger.application.access import new_token  # noqa: PLC0415

    token = new_token()
    bootstrap = not ledger.store.stream(ACCESS_STREAM) and grantee == issuer == ALLOCATOR
    run(ledger, "token create", issuer, actor=grantee, token_id=token.token_id,
        secret_sha256=token.digest, bootstrap=bootstrap, **extra)
    return token.secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}
