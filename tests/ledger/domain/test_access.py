"""The access register: who was given a token, by whom, and whether it still works."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ledger.domain.access import AccessRegister, secret_digest
from ledger.domain.errors import InvalidInput, NotAuthorised, NotFound, RuleViolation
from ledger.domain.events import AccessGranted, AccessRevoked
from ledger.domain.values import Actor
from tests.ledger.domain.builders import ALLOCATOR, ME, RECORDED_AT, ctx

TOKEN = "0123456789ab"
SECRET = "k2V9-qXo4LmWzP0aTu7s"


def granted(grantee: str = "consortium:16C", **extra: object) -> AccessRegister:
    register = AccessRegister()
    register.grant(ctx(ALLOCATOR), token_id=TOKEN, grantee=grantee, grantee_known=True,
                   digest=secret_digest(SECRET), **extra)  # type: ignore[arg-type]
    return register


def test_a_grant_records_the_grantee_the_issuer_and_only_the_digest() -> None:
    register = granted(label="finance")
    [event] = register.collect_events()
    assert isinstance(event, AccessGranted)
    assert (event.grantee, event.actor, event.label) == ("consortium:16C", ALLOCATOR, "finance")
    assert event.secret_sha256 == secret_digest(SECRET) != SECRET
    assert SECRET not in event.model_dump_json()
    grant = register.find(secret_digest(SECRET))
    assert grant is not None
    assert grant.grantee == Actor.parse("consortium:16C")
    assert grant.live_at(RECORDED_AT)


@pytest.mark.parametrize("issuer", [ME, "consortium:16C", "auditor:jo", "service:feed"])
def test_only_the_allocator_grants(issuer: str) -> None:
    with pytest.raises(NotAuthorised, match="only allocator may grant"):
        AccessRegister().grant(ctx(issuer), token_id=TOKEN, grantee=ME, grantee_known=True,
                               digest=secret_digest("x"))


def test_bootstrap_gives_the_first_token_only_and_only_to_an_allocator() -> None:
    register = AccessRegister()
    with pytest.raises(InvalidInput, match="first token must be the allocator"):
        register.grant(ctx(ME), token_id=TOKEN, grantee=ME, grantee_known=True,
                       digest=secret_digest("x"), bootstrap=True)
    register.grant(ctx(ALLOCATOR), token_id=TOKEN, grantee=ALLOCATOR, grantee_known=True,
                   digest=secret_digest("x"), bootstrap=True)
    with pytest.raises(RuleViolation, match="already been granted"):
        register.grant(ctx(ALLOCATOR), token_id="bbbbbbbbbbbb", grantee=ALLOCATOR,
                       grantee_known=True, digest=secret_digest("y"), bootstrap=True)


@pytest.mark.parametrize(("grantee", "first"), [(ME, "register it first"),
                                                 ("consortium:16C", "form it first")])
def test_a_practice_or_consortium_the_ledger_does_not_know_is_granted_no_token(
        grantee: str, first: str) -> None:
    register = AccessRegister()
    with pytest.raises(NotAuthorised, match="only allocator may grant"):
        register.grant(ctx(ME), token_id=TOKEN, grantee=grantee, grantee_known=False,
                       digest=secret_digest("x"))
    with pytest.raises(NotFound, match=f"a token is granted only .*; {first}") as refused:
        register.grant(ctx(ALLOCATOR), token_id=TOKEN, grantee=grantee, grantee_known=False,
                       digest=secret_digest("x"))
    assert refused.value.rule == grantee.partition(":")[0]
    assert not register.collect_events()


def test_read_only_roles_always_get_read_only_tokens() -> None:
    for grantee in ("auditor:jo", "service:dashboard"):
        [event] = granted(grantee).collect_events()
        assert isinstance(event, AccessGranted)
        assert event.read_only
    [event] = granted(ME).collect_events()
    assert isinstance(event, AccessGranted)
    assert not event.read_only


def test_a_used_id_or_a_past_expiry_is_refused() -> None:
    register = granted()
    with pytest.raises(RuleViolation, match="already been granted"):
        register.grant(ctx(ALLOCATOR), token_id=TOKEN, grantee=ME, grantee_known=True,
                       digest=secret_digest("z"))
    with pytest.raises(RuleViolation, match="has passed"):
        register.grant(ctx(ALLOCATOR), token_id="cccccccccccc", grantee=ME, grantee_known=True,
                       digest=secret_digest("z"), expires_at=RECORDED_AT)


def test_expiry_and_revocation_end_a_token() -> None:
    register = granted(expires_at=RECORDED_AT + timedelta(days=1))
    grant = register.grants[TOKEN]
    assert grant.status_at(RECORDED_AT) == "active"
    assert grant.status_at(RECORDED_AT + timedelta(days=1)) == "expired"
    register.revoke(ctx(ALLOCATOR), TOKEN)
    assert isinstance(register.collect_events()[-1], AccessRevoked)
    assert register.grants[TOKEN].status_at(RECORDED_AT) == "revoked"
    assert not register.find(secret_digest(SECRET)).live_at(RECORDED_AT)  # type: ignore[union-attr]
    with pytest.raises(RuleViolation, match="already revoked"):
        register.revoke(ctx(ALLOCATOR), TOKEN)
    with pytest.raises(NotFound, match="no token"):
        register.revoke(ctx(ALLOCATOR), "ffffffffffff")
    with pytest.raises(NotAuthorised):
        granted().revoke(ctx("consortium:16C"), TOKEN)


def test_service_actors_parse_and_malformed_names_are_refused() -> None:
    assert str(Actor.parse("service:feed-1.prod")) == "service:feed-1.prod"
    with pytest.raises(InvalidInput, match="service name"):
        Actor.parse("service:bad name!")
