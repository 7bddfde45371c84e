"""Access to the ledger service: bearer tokens, each bound to one actor.

One stream (`ACCESS_STREAM`) holds every grant and revocation, so the trail
shows who was given access, when and by whom, and two grants can never race.
Only the allocator grants and revokes; the very first token may be granted by an
administrator with direct access to the store (`bootstrap`), and only while no
token has ever been granted.

Secrets are never recorded, only their SHA-256 (`secret_digest`). A plain hash
(no salt, no slow KDF) is enough because the secret is 256 random bits, not a
password: there is no dictionary to try, and the digest cannot be turned back
into a secret the service would accept.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from ledger.domain.aggregate import Aggregate, Context, applies
from ledger.domain.errors import InvalidInput, NotFound, RuleViolation
from ledger.domain.events import ACCESS_STREAM, AccessGranted, AccessRevoked
from ledger.domain.values import READ_ONLY_ROLES, Actor, Role


def secret_digest(secret: str) -> str:
    """Hex SHA-256 of a token's secret, as recorded on `AccessGranted`."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Grant:
    """One token as the register knows it (never its secret)."""

    token_id: str
    grantee: Actor
    label: str | None
    read_only: bool
    expires_at: datetime | None
    granted_at: datetime
    granted_by: str
    digest: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    def live_at(self, moment: datetime) -> bool:
        """Usable at `moment`: not revoked and not expired."""
        if self.revoked_at is not None and self.revoked_at <= moment:
            return False
        return self.expires_at is None or moment < self.expires_at

    def status_at(self, moment: datetime) -> str:
        if self.revoked_at is not None and self.revoked_at <= moment:
            return "revoked"
        if self.expires_at is not None and moment >= self.expires_at:
            return "expired"
        return "active"


class AccessRegister(Aggregate):
    """Every token ever granted, by id and by the digest of its secret."""

    def __init__(self, aggregate_id: uuid.UUID = ACCESS_STREAM) -> None:
        super().__init__(aggregate_id)
        self.grants: dict[str, Grant] = {}
        self.by_digest: dict[str, Grant] = {}

    def grant(self, context: Context, *, token_id: str, grantee: str, digest: str,
              label: str | None = None, expires_at: datetime | None = None,
              read_only: bool = False, bootstrap: bool = False,
              grantee_known: bool) -> None:
        """Record a new token for `grantee`.

        Raises NotAuthorised unless the issuer is the allocator (or, with
        `bootstrap`, while no token exists yet and the grantee is an allocator);
        NotFound (rule `practice` or `consortium`) for a practice not registered or a
        consortium not formed (`grantee_known` False): a token for an unknown code (a
        typo) would never work, or would later work for whichever body came to have
        it; RuleViolation for a token id or digest already used or an expiry that has
        passed; InvalidInput for a malformed grantee.
        """
        actor = Actor.parse(grantee)
        if bootstrap:
            if self.grants:
                raise RuleViolation(
                    "token-bootstrap",
                    "a token has already been granted: only the allocator may grant more",
                )
            if actor.role is not Role.ALLOCATOR:
                raise InvalidInput(
                    "token-bootstrap", f"the first token must be the allocator's, not {actor}"
                )
        else:
            context.require_role(Role.ALLOCATOR, what="grant access tokens")
        if not grantee_known:
            first = "register it" if actor.role is Role.PRACTICE else "form it"
            raise NotFound(str(actor.role), f"no {actor.role} {actor.code}: a token is granted "
                           f"only to a {actor.role} the ledger knows; {first} first")
        if token_id in self.grants or digest in self.by_digest:
            raise RuleViolation("token", f"token {token_id} has already been granted")
        if expires_at is not None and expires_at <= context.recorded_at:
            raise RuleViolation("token-expiry", f"expiry {expires_at.isoformat()} has passed")
        self.trigger(
            AccessGranted, context, token_id=token_id, grantee=str(actor), label=label,
            expires_at=expires_at, read_only=read_only or actor.role in READ_ONLY_ROLES,
            secret_sha256=digest, bootstrap=bootstrap,
        )

    def revoke(self, context: Context, token_id: str) -> None:
        """Stop a token. NotAuthorised unless the allocator; NotFound for an unknown id;
        RuleViolation when it is already revoked."""
        context.require_role(Role.ALLOCATOR, what="revoke access tokens")
        grant = self.grants.get(token_id)
        if grant is None:
            raise NotFound("token", f"no token {token_id}")
        if grant.revoked_at is not None:
            raise RuleViolation("token", f"token {token_id} is already revoked")
        self.trigger(AccessRevoked, context, token_id=token_id)

    def find(self, digest: str) -> Grant | None:
        return self.by_digest.get(digest)

    @applies(AccessGranted)
    def _granted(self, event: AccessGranted) -> None:
        grant = Grant(
            token_id=event.token_id, grantee=Actor.recorded(event.grantee), label=event.label,
            read_only=event.read_only, expires_at=event.expires_at,
            granted_at=event.recorded_at, granted_by=event.actor,
            digest=event.secret_sha256,
        )
        self.grants[event.token_id] = grant
        self.by_digest[event.secret_sha256] = grant

    @applies(AccessRevoked)
    def _revoked(self, event: AccessRevoked) -> None:
        old = self.grants[event.token_id]
        new = replace(old, revoked_at=event.recorded_at, revoked_by=event.actor)
        self.grants[event.token_id] = new
        self.by_digest[old.digest] = new
