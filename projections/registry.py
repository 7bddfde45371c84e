"""Every projection the ledger materialises, in the order `projections status` lists them."""

from __future__ import annotations

from projections.core import Projection
from projections.holders import HOLDERS, PORTFOLIO_PROJECTION, TIMELINES
from projections.organisations import OPEN_MEMBERSHIPS, ORGANISATIONS, PRACTICES
from projections.pools import POOLS
from projections.positions import COMMITMENTS, POSITIONS
from projections.quality import QUALITY, TAGGED
from projections.trail import TRAIL_PROJECTION
from projections.variation import COMMITMENTS as VARIATION_COMMITMENTS
from projections.variation import VARIATION

PROJECTIONS: tuple[Projection, ...] = (
    ORGANISATIONS,
    HOLDERS,
    PORTFOLIO_PROJECTION,
    POSITIONS,
    TRAIL_PROJECTION,
    QUALITY,
    VARIATION,
    POOLS,
)

# Tables the folds read back (`State.get`); the others are only written.
READ_TABLES: frozenset[str] = frozenset(
    t.name for t in (PRACTICES, OPEN_MEMBERSHIPS, COMMITMENTS, TIMELINES)
) | {TAGGED.name, VARIATION_COMMITMENTS.name}
