"""Who may use the service: the access register, read from its one stream.

The register (ledger/domain/access.py) is a fold of `AccessGranted` /
`AccessRevoked`; `Gatekeeper` keeps it in memory and brings it up to date from
the store before each check (one indexed read of the events after the version
it holds), so a revocation takes effect on the next request.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.domain.access import AccessRegister, Grant, secret_digest
from ledger.domain.errors import NotAuthenticated, NotAuthorised
from ledger.domain.events import ACCESS_STREAM
from ledger.domain.values import Actor, Role
from ledger.store.eventstore import EventStore

Row = dict[str, Any]


def load_register(store: EventStore, register: AccessRegister | None = None) -> AccessRegister:
    """The register as recorded, fast-forwarding `register` when given."""
    register = register if register is not None else AccessRegister()
    for event in store.stream(ACCESS_STREAM, after_version=register.version):
        register.apply(event)
    return register


def token_rows(register: AccessRegister, now: datetime) -> list[Row]:
    """One row per token ever granted, oldest first; never a secret or its digest."""
    return [
        {"token_id": g.token_id, "actor": str(g.grantee), "label": g.label,
         "read_only": g.read_only, "status": g.status_at(now),
         "granted_at": g.granted_at, "granted_by": g.granted_by,
         "expires_at": g.expires_at, "revoked_at": g.revoked_at, "revoked_by": g.revoked_by}
        for g in register.grants.values()
    ]


class Gatekeeper:
    """Turns a presented bearer secret into the live grant it belongs to."""

    def __init__(self) -> None:
        self._register = AccessRegister()
        self._lock = threading.Lock()

    def any_granted(self, store: EventStore) -> bool:
        with self._lock:
            return bool(load_register(store, self._register).grants)

    def authenticate(self, store: EventStore, secret: str | None, now: datetime) -> Grant:
        """The live grant of `secret`. NotAuthenticated when there is none: no secret,
        an unknown one, or a token expired or revoked."""
        if not secret:
            raise NotAuthenticated(
                "authentication", "no bearer token: send Authorization: Bearer <token>")
        digest = secret_digest(secret)
        with self._lock:
            grant = load_register(store, self._register).find(digest)
        if grant is None:
            raise NotAuthenticated("authentication", "unknown bearer token")
        if not grant.live_at(now):
            raise NotAuthenticated(
                "authentication", f"token {grant.token_id} is {grant.status_at(now)}")
        return grant


# --- what each role may read -----------------------------------------------------------

EVERYTHING = frozenset({Role.ALLOCATOR, Role.AUDITOR, Role.SERVICE})


@dataclass(frozen=True, slots=True)
class Scope:
    """What one actor may read: everything (allocator, auditor, service), a consortium's
    member practices (ever members), or a practice's own budgets and those it holds."""

    actor: Actor
    practices: frozenset[str] = frozenset()
    read_only: bool = False

    @property
    def everything(self) -> bool:
        return self.actor.role in EVERYTHING

    @property
    def consortium(self) -> str | None:
        return self.actor.code if self.actor.role is Role.CONSORTIUM else None

    def refuse(self, what: str) -> NotAuthorised:
        return NotAuthorised("authorisation", f"{self.actor.holder} may not read {what}")

    def require(self, *roles: Role, what: str) -> None:
        """Only these roles (or those that see everything) may read `what`."""
        if not self.everything and self.actor.role not in roles:
            raise self.refuse(what)

    def check(self, *, practice: str | None = None, consortium: str | None = None,
              holder: str | None = None) -> None:
        """Refuse (NotAuthorised) a filter naming what the actor may not see."""
        if self.everything:
            return
        if practice is not None and _upper(practice) not in self.practices:
            raise self.refuse(f"practice {practice.strip()}")
        if consortium is not None and _upper(consortium) != self.consortium:
            raise self.refuse(f"consortium {consortium.strip()}")
        if holder is not None:
            kind, _, code = holder.strip().partition(":")
            kind = kind.lower()
            own = self.actor.holder.lower() == f"{kind}:{code.strip()}".lower()
            member = (kind == "practice" and self.consortium is not None
                      and _upper(code) in self.practices)
            if not (own or member):
                raise self.refuse(f"holder {holder.strip()}")

    def rows(self, found: list[Row]) -> list[Row]:
        """The rows the actor may see, by their `practice` (or `holder`, or `consortium`)."""
        if self.everything:
            return found
        return [r for r in found if self._sees(r)]

    def _sees(self, row: Row) -> bool:
        if "practice" in row:
            return (row["practice"] in self.practices
                    or row.get("holder") == self.actor.holder)
        return self.consortium is not None and row.get("consortium") == self.consortium


def _upper(code: str) -> str:
    return code.strip().upper()
