"""Events built from already-validated values are the events validation would build.

A commitment's event is built from the parsed command's values without validating
them again (Aggregate.trigger_validated). Whatever a valid command says, that event
must equal the one built with validation, store as the same bytes, and read back
equal from those bytes.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.application.commands import SpendCommit, build_command
from ledger.domain.events import SpendCommitted
from ledger.domain.trusted import construct
from ledger.domain.values import ELEMENTS
from ledger.store.mapper import decode_event, encode_event
from tests.ledger.domain.builders import ME, budget, ctx

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1,
                 max_size=30).filter(lambda t: t.strip() != "")


@st.composite
def commit_args(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "practice": "a81001",
        "year": "2024-25",
        "element": draw(st.sampled_from([str(e) for e in ELEMENTS])),
        "ref": draw(st.from_regex(r"R-[A-Za-z0-9/]{1,12}", fullmatch=True)),
        "amount": draw(st.sampled_from(["1", "12.50", "£1,000", "99999.99"])),
        "provider": draw(texts),
        "service": draw(texts),
        "qs": draw(st.lists(st.sampled_from(["QS1", "qs3", "QS10", "QS2"]), max_size=3)),
        "on": "2024-06-01",
    }


@settings(max_examples=80, deadline=None)
@given(commit_args(), st.booleans())
def test_a_commitment_event_is_the_one_validation_would_build(
    args: dict[str, Any], overspend: bool
) -> None:
    try:
        command = build_command("spend commit", args)
    except Exception:  # noqa: BLE001 - only valid commands reach the domain
        return
    assert isinstance(command, SpendCommit)
    amount = 50_000_000_00 if overspend else command.amount
    b = budget()
    b.commit(ctx(ME, "2024-06-01"), ref=command.ref, element=command.element, amount=amount,
             provider=command.provider, service=command.service, qs_codes=command.qs)
    (event,) = b.collect_events()
    assert isinstance(event, SpendCommitted)
    validated = SpendCommitted(**dict(event))
    assert event == validated
    assert encode_event(event) == encode_event(validated)
    assert decode_event(event.topic, event.originator_id, event.originator_version,
                        encode_event(event)) == event


def test_an_event_is_not_built_without_a_required_field_nor_with_an_unknown_one() -> None:
    """A programming error, said as one (TypeError), never an event missing a value or
    holding one it has no field for; a missing field is named before an unknown one."""
    b = budget()
    b.commit(ctx(ME), ref="R-1", element=ELEMENTS[0], amount=100, provider="RTR",
             service="Hip")
    (event,) = b.collect_events()
    values = dict(event.__dict__)
    assert construct(SpendCommitted, values) == event
    without_ref = {k: v for k, v in values.items() if k != "ref"}
    with pytest.raises(TypeError, match=r"^SpendCommitted needs ref$"):
        construct(SpendCommitted, without_ref)
    with pytest.raises(TypeError, match=r"^SpendCommitted has no field colour$"):
        construct(SpendCommitted, {**values, "colour": "red"})
    with pytest.raises(TypeError, match=r"^SpendCommitted needs ref$"):
        construct(SpendCommitted, {**without_ref, "colour": "red"})
