"""The composition root: the one place infrastructure is built."""

from __future__ import annotations

from dataclasses import dataclass

from ledger.application.service import Clock, LedgerService, system_clock
from ledger.auditlog.seal import MerkleSealing
from ledger.store.eventstore import EventStore, open_store

DEFAULT_DB = "ledger.db"


@dataclass
class Ledger:
    """A store and the service that writes to it, opened together, closed together."""

    store: EventStore
    service: LedgerService

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def bootstrap(db: str = DEFAULT_DB, clock: Clock = system_clock, *, create: bool = True
              ) -> Ledger:
    """Open the ledger at `db` with every write sealed into its Merkle log.

    With `create` (writes), a missing ledger is created; without it (reads,
    verification), a missing ledger is refused: StoreUnavailable "no ledger at".
    """
    store = open_store(db, hooks=(MerkleSealing(),), create=create)
    return Ledger(store=store, service=LedgerService(store=store, clock=clock))
