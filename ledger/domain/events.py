"""Domain events: the public contract of the ledger.

Each event is a frozen pydantic model with an explicit, exportable JSON Schema.
`topic` is the stable stored name and `schema_version` its version: once an event
has been released its meaning never changes; a new version gets an upcaster in
`UPCASTERS` that turns the old stored form into the new one.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ledger.domain.values import Element, FreeText, WeightedPopulation

LEDGER_NAMESPACE = uuid.UUID("6f1c3b0e-8a53-5d2f-9c41-0d7f3a9e2b15")


# Stream ids are uuid5 of natural keys: deterministic, so any process finds the
# same stream for the same practice, consortium or budget. Cached: uuid5 hashes.
@functools.lru_cache(maxsize=65_536)
def practice_stream(practice: str) -> uuid.UUID:
    return uuid.uuid5(LEDGER_NAMESPACE, f"practice:{practice}")


@functools.lru_cache(maxsize=65_536)
def consortium_stream(consortium: str) -> uuid.UUID:
    return uuid.uuid5(LEDGER_NAMESPACE, f"consortium:{consortium}")


@functools.lru_cache(maxsize=65_536)
def budget_stream(practice: str, year: str) -> uuid.UUID:
    return uuid.uuid5(LEDGER_NAMESPACE, f"budget:{practice}:{year}")


@functools.lru_cache(maxsize=4_096)
def pool_stream(consortium: str, year: str) -> uuid.UUID:
    return uuid.uuid5(LEDGER_NAMESPACE, f"pool:{consortium}:{year}")


@functools.lru_cache(maxsize=65_536)
def stream_text(stream_id: uuid.UUID) -> str:
    """A stream id as text (`str`), cached: the same few streams are named on every line."""
    return str(stream_id)


ACCESS_STREAM = uuid.uuid5(LEDGER_NAMESPACE, "access")
"""The one stream of access grants: every token granted or revoked, in order."""


class LedgerEvent(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    topic: ClassVar[str] = "LedgerEvent"
    schema_version: ClassVar[int] = 1

    originator_id: uuid.UUID = Field(description="stream (aggregate) id")
    originator_version: int = Field(ge=1, description="position of the event in its stream")
    recorded_at: datetime = Field(description="UTC instant the ledger stored the event")
    effective_on: date = Field(description="business date the event takes effect")
    actor: str = Field(description="role:code, optionally /person")
    command_id: str = Field(min_length=1, description="idempotency key of the command")
    reason: FreeText | None = None

    @property
    def event_id(self) -> uuid.UUID:
        """Deterministic: one stream position is one event, forever."""
        return uuid.uuid5(self.originator_id, str(self.originator_version))

    @property
    def timestamp(self) -> datetime:
        # eventsourcing's protocols call the recording instant `timestamp`.
        return self.recorded_at


# --- practice stream -----------------------------------------------------------------


class PracticeEvent(LedgerEvent):
    practice: str


class PracticeRegistered(PracticeEvent):
    """v2: weighted populations are exact decimals, stored as strings ("5044.162762");
    v1 stored whole numbers (upcast unchanged in value)."""

    topic: ClassVar[str] = "PracticeRegistered"
    schema_version: ClassVar[int] = 2
    name: FreeText
    list_size: int = Field(ge=0)
    weighted_population: dict[Element, WeightedPopulation] = Field(default_factory=dict)
    allocator: str


class ListSizeRecorded(PracticeEvent):
    """The practice's list size and weighted populations in force from `effective_on`
    (every element's figure, not only the changed ones). v2 as PracticeRegistered."""

    topic: ClassVar[str] = "ListSizeRecorded"
    schema_version: ClassVar[int] = 2
    list_size: int = Field(ge=0)
    weighted_population: dict[Element, WeightedPopulation] = Field(default_factory=dict)


class PracticeClosed(PracticeEvent):
    topic: ClassVar[str] = "PracticeClosed"


# --- consortium stream ---------------------------------------------------------------


class ConsortiumEvent(LedgerEvent):
    consortium: str


class ConsortiumFormed(ConsortiumEvent):
    topic: ClassVar[str] = "ConsortiumFormed"
    name: FreeText
    accountable_officer: FreeText


class PracticeJoined(ConsortiumEvent):
    topic: ClassVar[str] = "PracticeJoined"
    practice: str


class PracticeLeft(ConsortiumEvent):
    topic: ClassVar[str] = "PracticeLeft"
    practice: str


class RiskPoolAgreed(ConsortiumEvent):
    topic: ClassVar[str] = "RiskPoolAgreed"
    year: str
    top_slice_basis_points: int = Field(ge=0, le=1000, description="1% = 100")


class QualityStandardsAdopted(ConsortiumEvent):
    topic: ClassVar[str] = "QualityStandardsAdopted"
    year: str
    codes: tuple[str, ...]


# --- budget stream (one per practice per financial year) -----------------------------


class BudgetEvent(LedgerEvent):
    practice: str = Field(description="the accountable practice; never changes")
    year: str


class FormulaTerm(BaseModel):
    """How one element's allocation was set by formula: weighted population x rate."""

    # Built when first validated, as the events are: most runs never decode an allocation.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    weighted_population: WeightedPopulation = Field(
        description="the practice's weighted population in force on the effective date")
    rate_pence: int = Field(gt=0, description="pence per weighted head")


class BudgetAllocated(BudgetEvent):
    """v2 adds `formula`: per element, the weighted population and rate an allocation by
    formula was computed from (amount = weighted population x rate, rounded half up to
    the penny); absent (None) for amounts given directly and for every v1 event."""

    topic: ClassVar[str] = "BudgetAllocated"
    schema_version: ClassVar[int] = 2
    allocator: str
    amounts_pence: dict[Element, int]
    basis: FreeText | None = None
    formula: dict[Element, FormulaTerm] | None = None


class AllocationAdjusted(BudgetEvent):
    topic: ClassVar[str] = "AllocationAdjusted"
    element: Element
    delta_pence: int


class HoldingDelegated(BudgetEvent):
    topic: ClassVar[str] = "HoldingDelegated"
    elements: tuple[Element, ...]
    holder: str


class DelegationRevoked(BudgetEvent):
    topic: ClassVar[str] = "DelegationRevoked"
    elements: tuple[Element, ...]


class OptedOut(BudgetEvent):
    topic: ClassVar[str] = "OptedOut"
    holder: str


class OptedIn(BudgetEvent):
    topic: ClassVar[str] = "OptedIn"


class MadeHard(BudgetEvent):
    topic: ClassVar[str] = "MadeHard"


class MadeIndicative(BudgetEvent):
    topic: ClassVar[str] = "MadeIndicative"


class SpendCommitted(BudgetEvent):
    topic: ClassVar[str] = "SpendCommitted"
    ref: str
    element: Element
    amount_pence: int = Field(gt=0)
    provider: FreeText
    service: FreeText
    qs_codes: tuple[str, ...] = ()
    overspend_pence: int = Field(
        default=0, ge=0, description="by how much an indicative budget was overspent"
    )


class CommitmentVaried(BudgetEvent):
    topic: ClassVar[str] = "CommitmentVaried"
    ref: str
    amount_pence: int = Field(gt=0, description="the commitment's new total")
    overspend_pence: int = Field(default=0, ge=0)


class CommitmentSettled(BudgetEvent):
    topic: ClassVar[str] = "CommitmentSettled"
    ref: str
    amount_pence: int = Field(gt=0)
    final: bool = False


class CommitmentCancelled(BudgetEvent):
    topic: ClassVar[str] = "CommitmentCancelled"
    ref: str


class RiskPoolDrawn(BudgetEvent):
    """A hard budget's overspend on a commitment, covered by its consortium's risk pool."""

    topic: ClassVar[str] = "RiskPoolDrawn"
    ref: str
    consortium: str
    amount_pence: int = Field(gt=0)


class RiskPoolReturned(BudgetEvent):
    """Part or all of a commitment's draw given back: it was reduced, cancelled or closed."""

    topic: ClassVar[str] = "RiskPoolReturned"
    ref: str
    consortium: str
    amount_pence: int = Field(gt=0)


# --- risk pool stream (one per consortium per financial year) ------------------------


class PoolEvent(LedgerEvent):
    consortium: str
    year: str
    practice: str
    ref: str
    amount_pence: int = Field(gt=0)


class PoolDrawRecorded(PoolEvent):
    """The pool's side of a RiskPoolDrawn: every draw on one pool goes through one stream,
    so two members overspending at once cannot both take the last of the headroom."""

    topic: ClassVar[str] = "PoolDrawRecorded"


class PoolDrawReturned(PoolEvent):
    topic: ClassVar[str] = "PoolDrawReturned"


# --- access stream (who may use the service, granted by whom) ------------------------


class AccessEvent(LedgerEvent):
    token_id: str = Field(pattern=r"^[a-z0-9]{12}$", description="public id of the token")


class AccessGranted(AccessEvent):
    """A bearer token given to one actor. The secret is never recorded: only its SHA-256,
    which, for a 256-bit random secret, cannot be turned back into it."""

    topic: ClassVar[str] = "AccessGranted"
    grantee: str = Field(description="the actor the token acts as (role:code)")
    label: FreeText | None = Field(default=None, description="what the token is for")
    expires_at: datetime | None = Field(default=None, description="UTC instant it stops")
    read_only: bool = False
    secret_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bootstrap: bool = Field(default=False, description="the first token, given by an "
                            "administrator with direct access to the store")


class AccessRevoked(AccessEvent):
    topic: ClassVar[str] = "AccessRevoked"


EVENT_TYPES: tuple[type[LedgerEvent], ...] = (
    PracticeRegistered,
    ListSizeRecorded,
    PracticeClosed,
    ConsortiumFormed,
    PracticeJoined,
    PracticeLeft,
    RiskPoolAgreed,
    QualityStandardsAdopted,
    BudgetAllocated,
    AllocationAdjusted,
    HoldingDelegated,
    DelegationRevoked,
    OptedOut,
    OptedIn,
    MadeHard,
    MadeIndicative,
    SpendCommitted,
    CommitmentVaried,
    CommitmentSettled,
    CommitmentCancelled,
    RiskPoolDrawn,
    RiskPoolReturned,
    PoolDrawRecorded,
    PoolDrawReturned,
    AccessGranted,
    AccessRevoked,
)

EVENTS_BY_TOPIC: dict[str, type[LedgerEvent]] = {cls.topic: cls for cls in EVENT_TYPES}

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def _weighted_as_decimal_text(state: dict[str, Any]) -> dict[str, Any]:
    """v1 -> v2 of the practice events: whole-number weighted populations become the
    decimal strings v2 stores (4310 -> "4310"); the values do not change."""
    weighted = state.get("weighted_population") or {}
    return state | {"weighted_population": {k: str(v) for k, v in weighted.items()}}


# (topic, stored version) -> function returning the state at version + 1.
# Add entries, never edit released ones.
UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("PracticeRegistered", 1): _weighted_as_decimal_text,
    ("ListSizeRecorded", 1): _weighted_as_decimal_text,
    # v1 allocations were never by formula: v2 reads them with no formula.
    ("BudgetAllocated", 1): lambda state: state | {"formula": None},
}


def upcast(topic: str, version: int, state: dict[str, Any]) -> dict[str, Any]:
    target = EVENTS_BY_TOPIC[topic].schema_version
    while version < target:
        state = UPCASTERS[(topic, version)](state)
        version += 1
    return state


def event_schemas() -> dict[str, Any]:
    """JSON Schema of every event, keyed by `topic/v<version>`."""
    return {
        f"{cls.topic}/v{cls.schema_version}": cls.model_json_schema() for cls in EVENT_TYPES
    }
