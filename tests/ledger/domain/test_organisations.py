"""Practices and consortia: registration, closure, membership over time, pools, standards."""

from __future__ import annotations

from datetime import date

from ledger.domain.values import Element, FinancialYear
from tests.ledger.domain.builders import ALLOCATOR, YEAR, consortium, ctx, practice, refused

OFFICER = "consortium:16C"


def test_a_registered_practice_remembers_its_allocator() -> None:
    p = practice()
    assert (p.code, p.allocator, p.list_size) == ("A81001", "Q71", 4069)
    assert p.weighted_population == {Element.ACUTE: 4100}


def test_a_closed_practice_cannot_be_closed_again_or_funded_after_closing() -> None:
    p = practice()
    p.close(ctx(ALLOCATOR, "2024-09-01"))
    p.collect_events()
    refused(lambda: p.close(ctx(ALLOCATOR, "2024-10-01")), p, rule="practice-open")
    refused(lambda: p.require_open_on(date(2024, 9, 1)), p, rule="practice-open")
    p.require_open_on(date(2024, 8, 31))


def test_membership_covers_from_the_join_date_up_to_the_leave_date() -> None:
    c = consortium("16C", "A81001", joined="2024-04-01")
    c.leave(ctx(OFFICER, "2024-09-01"), "A81001")
    assert c.is_member("A81001", date(2024, 4, 1))
    assert c.is_member("A81001", date(2024, 8, 31))
    assert not c.is_member("A81001", date(2024, 9, 1))
    assert not c.is_member("A81001", date(2024, 3, 31))
    c.join(ctx(OFFICER, "2024-11-01"), "A81001")
    assert c.is_member("A81001", date(2024, 11, 1))
    assert not c.is_member("A81001", date(2024, 10, 1))


def test_joining_twice_or_rejoining_before_leaving_is_refused() -> None:
    c = consortium("16C", "A81001")
    refused(lambda: c.join(ctx(OFFICER, "2024-05-01"), "A81001"), c, rule="membership")
    c.leave(ctx(OFFICER, "2024-09-01"), "A81001")
    c.collect_events()
    refused(lambda: c.join(ctx(OFFICER, "2024-08-01"), "A81001"), c, rule="membership")


def test_leaving_needs_membership_and_a_date_after_joining() -> None:
    c = consortium("16C", "A81001", joined="2024-06-01")
    refused(lambda: c.leave(ctx(OFFICER, "2024-06-01"), "A81001"), c, rule="membership")
    refused(lambda: c.leave(ctx(OFFICER, "2024-07-01"), "A81002"), c, rule="membership")


def test_a_risk_pool_needs_members_and_a_top_slice_up_to_ten_percent() -> None:
    empty = consortium("07L")
    refused(lambda: empty.agree_risk_pool(ctx("consortium:07L"), YEAR, 100), empty,
            rule="risk-pool")
    c = consortium("16C", "A81001")
    refused(lambda: c.agree_risk_pool(ctx(OFFICER), YEAR, 0), c, rule="top-slice")
    refused(lambda: c.agree_risk_pool(ctx(OFFICER), YEAR, 1001), c, rule="top-slice")
    c.agree_risk_pool(ctx(OFFICER), YEAR, 1000)
    assert c.top_slices == {"2024-25": 1000}


def test_quality_standards_are_adopted_once_per_year() -> None:
    c = consortium("16C", "A81001")
    c.adopt_standards(ctx(OFFICER), YEAR, ["QS1", "QS2"])
    c.adopt_standards(ctx(OFFICER), YEAR, ["QS2", "QS3"])
    assert c.standards("2024-25") == ("QS1", "QS2", "QS3")
    assert c.standards(str(FinancialYear(2025))) == ()
    c.collect_events()
    refused(lambda: c.adopt_standards(ctx(OFFICER), YEAR, ["QS1"]), c, rule="qs-code")
    refused(lambda: c.adopt_standards(ctx(OFFICER), YEAR, []), c, rule="qs-code")
