"""Every projection the ledger materialises, in the order `projections status` lists them."""

from __future__ import annotations

from projections.core import Projection
from projections.holders import HOLDERS, PORTFOLIO_PROJECTION, TIMELINES
from projections.organisations import OPEN_MEMBERSHIPS, ORGANISATIONS, PRACTICES
from projections.pools import POOLS
from projections.positions import COMMITMENTS, POSITIONS
from projections.quality import QUALITY, TAGGED  # issue 6: quality
from projections.trail import TRAIL_PROJECTION
from projections.variation import COMMITMENTS as VARIATION_COMMITMENTS  # issue 6
from projections.variation import VARIATION  # issue 6: variation

PROJECTIONS: tuple[Projection, ...] = (
    ORGANISATIONS,
    HOLDERS,
    PORTFOLIO_PROJECTION,
    POSITIONS,
    TRAIL_PROJECTION,
    QUALITY,  # issue 6
    VARIATION,  # issue 6
    POOLS,  # issue 6: risk pools
)

# Tables the folds read back (`State.get`); the others are only written.
READ_TABLES: frozenset[str] = frozenset(
    t.name for t in (PRACTICES, OPEN_MEMBERSHIPS, COMMITMENTS, TIMELINES)
) | {TAGGED.name, VARIATION_COMMITMENTS.name}  # issue 6: quality, variation
