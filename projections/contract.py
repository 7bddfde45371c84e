"""The service's contract: response shapes for the OpenAPI document, and each event's JSON
Schema exactly as the feed serves it (`ledger schema`, `GET /schemas`).

The models here describe rows the queries build as plain dicts; they are used
for documentation and for clients to generate from, and the test suite checks
every answer against them (schemathesis) so they cannot drift.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ledger.domain.events import EVENT_TYPES, LedgerEvent
from ledger.domain.values import Element, parse_whole_number

RENAMED = {"originator_id": "stream", "originator_version": "version"}


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(_Row):
    """Every error the service sends, whatever the status."""

    error: str = Field(description="what is wrong, one line")
    rule: str = Field(description="the rule that refused it")


class Health(_Row):
    status: str
    head: int = Field(ge=0)


class Ready(_Row):
    status: str
    head: int = Field(ge=0)
    lag: int = Field(ge=0, description="the most any projection lags the head")
    projected: bool = Field(description="reads come from a projector, never written here")
    projections: dict[str, int] = Field(description="each projection's lag")


class HolderRow(_Row):
    practice: str
    year: str
    element: Element
    holder: str
    since: date


class TrailRow(_Row):
    position: int = Field(ge=1)
    recorded_at: datetime
    effective_on: date
    actor: str
    event: str
    summary: str
    year: str | None


class _Money(_Row):
    year: str
    element: Element
    allocated_pence: int
    available_pence: int
    committed_pence: int
    settled_pence: int
    drawn_pence: int
    remaining_pence: int
    used_percent: float | None
    hard: bool
    overspent: bool


class PracticePositionRow(_Money):
    practice: str
    consortium: str | None


class _RolledUp(_Money):
    practices: int
    hard_practices: int
    overspent_practices: int


class ConsortiumPositionRow(_RolledUp):
    consortium: str | None


class AllocatorPositionRow(_RolledUp):
    allocator: str | None


PositionRow = PracticePositionRow | ConsortiumPositionRow | AllocatorPositionRow


class PoolRow(_Row):
    consortium: str
    year: str
    as_of: date
    top_slice_percent: float
    members: int
    capacity_pence: int
    drawn_pence: int
    draws: int
    headroom_pence: int


class QualityRow(_Row):
    consortium: str
    year: str
    qs_code: str
    adopted: bool
    adopted_on: date | None
    commitments: int
    spend_pence: int
    gap: bool


class VariationRow(_Row):
    consortium: str
    year: str
    element: Element
    practice: str
    weighted_population: int | str | None = Field(description="exact decimal as text, or whole")
    population_basis: str
    commitments: int
    spend_pence: int
    per_1000: float | None
    spend_per_1000_pence: int | None
    median_per_1000: float | None
    median_spend_per_1000_pence: int | None
    outlier: bool
    outlier_reason: str
    note: str


class ProjectionRow(_Row):
    projection: str
    position: int
    head: int
    lag: int
    holds: str


class EventRef(_Row):
    topic: str
    stream: str
    version: int


class AnswerBody(_Row):
    """What a write did: the command line's answer."""

    command: str
    command_id: str
    summary: str
    effective_on: date | None
    events: list[EventRef]
    already_applied: bool


class NewTokenBody(AnswerBody):
    token_id: str | None = Field(default=None, description="only when the token is new")
    secret: str | None = Field(default=None, description="only when the token is new: "
                               "the one time it is shown")


# --- events as the feed serves them ----------------------------------------------------


def feed_event_schema(cls: type[LedgerEvent]) -> dict[str, Any]:
    """The JSON Schema of one event type as a feed row (`/events`, `ledger events`):
    `position`, `event` (the topic), `schema_version`, `stream`, `version`, then the
    event's own fields; every field always present, nothing else."""
    base = copy.deepcopy(cls.model_json_schema(mode="serialization"))
    own = {k: v for k, v in base.get("properties", {}).items() if k not in RENAMED}
    properties: dict[str, Any] = {
        "position": {"type": "integer", "minimum": 1, "description": "place in the log"},
        "event": {"const": cls.topic, "type": "string"},
        "schema_version": {"const": cls.schema_version, "type": "integer"},
        "stream": {"type": "string", "format": "uuid", "description": "stream id"},
        "version": {"type": "integer", "minimum": 1,
                    "description": "position of the event in its stream"},
        **own,
    }
    schema: dict[str, Any] = {
        "title": f"{cls.topic} v{cls.schema_version}",
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    if cls.__doc__:
        schema["description"] = " ".join(cls.__doc__.split())
    if "$defs" in base:
        schema["$defs"] = base["$defs"]
    return schema


def feed_event_schemas() -> dict[str, dict[str, Any]]:
    """Every event type's feed schema, keyed by `Topic.v<version>`."""
    return {f"{cls.topic}.v{cls.schema_version}": feed_event_schema(cls) for cls in EVENT_TYPES}


# --- the OpenAPI document ----------------------------------------------------------------


def _hoisted(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `$defs` moved into `defs` and references pointed at components."""
    schema = copy.deepcopy(schema)
    defs.update(_retarget(schema.pop("$defs", {})))
    hoisted: dict[str, Any] = _retarget(schema)
    return hoisted


def _retarget(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (v.replace("#/$defs/", "#/components/schemas/")
                    if k == "$ref" and isinstance(v, str) else _retarget(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_retarget(v) for v in node]
    return node


def feed_page_schema() -> dict[str, Any]:
    events = [{"$ref": f"#/components/schemas/{name}"} for name in _feed_names()]
    return {
        "title": "FeedPage", "type": "object", "additionalProperties": False,
        "required": ["events", "next_after", "head", "ledger_id", "visible_to"],
        "properties": {
            "events": {"type": "array", "items": {"oneOf": events}},
            "next_after": {"type": "integer", "minimum": 0,
                           "description": "your next checkpoint"},
            "head": {"type": "integer", "minimum": 0, "description": "last position recorded"},
            "ledger_id": {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "null"}],
                          "description": "the ledger's identity (null while it is empty)"},
            "visible_to": {"anyOf": [{"type": "string"}, {"type": "null"}],
                           "description": "null for the whole feed; else the actor whose "
                           "part of it this is (positions have gaps)"},
        },
    }


def _feed_names() -> list[str]:
    return [f"{cls.topic}Row" for cls in EVENT_TYPES]


def extra_components(commands: Mapping[str, type[BaseModel]]) -> dict[str, Any]:
    """Schemas the routes refer to by name: each feed row, the feed page, each command."""
    defs: dict[str, Any] = {}
    found: dict[str, Any] = {}
    for cls, name in zip(EVENT_TYPES, _feed_names(), strict=True):
        found[name] = _hoisted(feed_event_schema(cls), defs)
    found["FeedPage"] = feed_page_schema()
    for command in commands.values():
        found[command.__name__] = _hoisted(command.model_json_schema(by_alias=True), defs)
    return {**defs, **found}


ERRORS: dict[int, str] = {
    400: "Malformed input (exit code 2 on the command line)",
    401: "No live bearer token",
    403: "The token's actor may not do this",
    404: "Unknown practice, consortium, year or commitment",
    409: "Refused by a rule of the ledger (exit code 1)",
    503: "The store is unavailable (exit code 3)",
}


def documented(ok: Any = None, *, schema: dict[str, Any] | None = None,
               statuses: tuple[int, ...] = tuple(ERRORS)) -> dict[int | str, Any]:
    """`responses=` for a route: its 200 body and the errors it can send."""
    found: dict[int | str, Any] = {}
    if schema is not None:
        found[200] = {"content": {"application/json": {"schema": schema}}}
    elif ok is not None:
        found[200] = {"model": ok}
    for status in statuses:
        found[status] = {"model": ErrorBody, "description": ERRORS[status]}
    return found


def query_number(text: str | None, name: str, default: int, *, minimum: int = 0,
                 maximum: int) -> int:
    """A position, count or limit given as a query parameter (`default` when absent), read
    as the command line reads its options: the digits 0-9 alone (parse_whole_number), so
    `+5`, ` 5`, `5_0` or Arabic-Indic digits are refused (400) where int() would read 5."""
    if text is None:
        return default
    return parse_whole_number(text, name, minimum=minimum, maximum=maximum,
                              malformed_rule="request")
