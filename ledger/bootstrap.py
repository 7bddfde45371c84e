"""The composition root: the one place infrastructure is built."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ledger.auditlog.seal import MerkleSealing
from ledger.store.eventstore import EventStore, open_store

if TYPE_CHECKING:
    from ledger.application.service import Clock, LedgerService

DEFAULT_DB = "ledger.db"


@dataclass
class Ledger:
    """A store and the service that writes to it, opened together, closed together.

    The service (the write side: commands, handlers, rules) is built on first use,
    so a read opens the store without loading the write side.
    """

    store: EventStore
    clock: Clock | None = None
    _service: LedgerService | None = field(default=None, repr=False)

    @property
    def service(self) -> LedgerService:
        if self._service is None:
            from ledger.application.service import (  # noqa: PLC0415 - reads never need it
                LedgerService,
                system_clock,
            )

            self._service = LedgerService(store=self.store, clock=self.clock or system_clock)
        return self._service

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def bootstrap(db: str = DEFAULT_DB, clock: Clock | None = None, *, create: bool = True,
              discard_if_empty: bool = False) -> Ledger:
    """Open the ledger at `db` with every write sealed into its Merkle log.

    `clock` defaults to the system clock (UTC). With `create` (writes), a missing
    ledger is created; without it (reads, verification), a missing ledger is
    refused: StoreUnavailable "no ledger at". With `discard_if_empty`, a SQLite
    file created here is removed on close if nothing was recorded in it.
    """
    store = open_store(db, hooks=(MerkleSealing(),), create=create,
                       discard_if_empty=discard_if_empty)
    return Ledger(store=store, clock=clock)
