"""Who may use the service: the access register, read from its one stream.

The register (ledger/domain/access.py) is a fold of `AccessGranted` /
`AccessRevoked`; `Gatekeeper` keeps it in memory and brings it up to date from
the store before each check (one indexed read of the events after the version
it holds), so a revocation takes effect on the next request.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledger.domain.access import AccessRegister, Grant, secret_digest
from ledger.domain.errors import NotAuthenticated, NotAuthorised
from ledger.domain.events import (
    ACCESS_STREAM,
    AccessEvent,
    BudgetEvent,
    HoldingDelegated,
    LedgerEvent,
    OptedOut,
    PracticeJoined,
)
from ledger.domain.values import (
    Actor,
    Role,
    parse_consortium_code,
    parse_holder,
    parse_practice_code,
)
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
        """Refuse (NotAuthorised) a filter naming what the actor may not see; a malformed
        one is InvalidInput (400), as for those who see everything, never a refusal
        that repeats what was sent."""
        practice = parse_practice_code(practice) if practice is not None else None
        consortium = parse_consortium_code(consortium) if consortium is not None else None
        holder = parse_holder(holder) if holder is not None else None
        if self.everything:
            return
        if practice is not None and practice not in self.practices:
            raise self.refuse(f"practice {practice}")
        if consortium is not None and consortium != self.consortium:
            raise self.refuse(f"consortium {consortium}")
        if holder is not None:
            kind, _, code = holder.partition(":")
            own = self.actor.holder.lower() == holder.lower()
            member = (kind == "practice" and self.consortium is not None
                      and code in self.practices)
            if not (own or member):
                raise self.refuse(f"holder {holder}")

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


@dataclass(slots=True)
class FeedView:
    """Which events of the feed one actor may see: the same scope as its reads.

    - allocator, auditor, service: every event;
    - a consortium: its own events (its stream and its risk pools') and the events of
      its member practices (ever members) and their budgets, plus every event of a budget
      it has held; never an event naming another consortium, nor the access stream;
    - a practice: every event about itself (its stream, its budgets, its memberships,
      its pool draws) and every event of a budget it has held for another practice.

    `practices` and `held` ((practice, year) budgets) are what the actor had when the
    view was made; `sees` adds a membership or a holding as the feed passes the event
    that grants it, so a live stream follows it from that event on.
    """

    scope: Scope
    practices: set[str] = field(default_factory=set)
    held: set[tuple[str, str]] = field(default_factory=set)

    @property
    def everything(self) -> bool:
        return self.scope.everything

    @property
    def visible_to(self) -> str | None:
        """`None` for the whole feed, else the actor whose part it is (positions gap)."""
        return None if self.everything else self.scope.actor.holder

    def sees(self, event: LedgerEvent) -> bool:
        if self.everything:
            return True
        if isinstance(event, AccessEvent):
            return False
        fields = event.__dict__
        consortium = self.scope.consortium
        practice = fields.get("practice")
        if isinstance(event, HoldingDelegated | OptedOut) and (
                event.holder == self.scope.actor.holder):
            self.held.add((event.practice, event.year))
        if consortium is not None:
            named = fields.get("consortium")
            if named is not None:
                if isinstance(event, PracticeJoined) and named == consortium:
                    self.practices.add(event.practice)
                return bool(named == consortium)
        if practice in self.practices:
            return True
        return isinstance(event, BudgetEvent) and (event.practice, event.year) in self.held
