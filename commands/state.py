"""What the global options carry to every sub-command."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

from ledger.domain.errors import InvalidInput, StoreUnavailable

if TYPE_CHECKING:
    from commands.client import ServiceClient
    from ledger.bootstrap import Ledger
    from projections.joint_queries import JointReads


@dataclass
class CliState:
    db: str
    actor: str | None
    command_id: str | None
    server: str | None = None
    token: str | None = field(default=None, repr=False)
    db_by_default: bool = False
    _ledger: Ledger | None = field(default=None, repr=False)

    def ledger(self, *, create: bool = True) -> Ledger:
        """Open the store on first use (the composition root builds it).

        Writes create a ledger where there is none; reads and verification
        (`create=False`, see `existing`) refuse: "no ledger at PATH", exit 3, saying
        how to name another when PATH is the default, `ledger.db` (no --db, no LEDGER_DB).
        Imported here, not at the top, so `ledger --help` never loads the store.
        """
        if self.server:
            raise InvalidInput(
                "server", "this command needs direct access to the store (--db); "
                "it is not available with --server")
        if self._ledger is None:
            from ledger.bootstrap import bootstrap  # noqa: PLC0415 - keeps --help fast

            try:
                # A write that records nothing leaves no new ledger file behind.
                self._ledger = bootstrap(self.db, create=create, discard_if_empty=create)
            except StoreUnavailable as missing:
                if not (self.db_by_default and missing.message.startswith("no ledger at")):
                    raise
                raise StoreUnavailable(missing.rule, f"{missing.message}, the default: name "
                                       "the ledger with --db PATH or LEDGER_DB") from None
        return self._ledger

    def existing(self) -> Ledger:
        """The ledger for a read: opened only if it exists, never created."""
        return self.ledger(create=False)

    def reads(self) -> JointReads:
        """The queries a read command calls: over the store, opened only if it exists, or
        with `--server` the same queries answered by the service (commands/client.py)."""
        if self.server:
            from commands.client import RemoteReads  # noqa: PLC0415 - keeps --help fast

            return cast("JointReads", RemoteReads(self.client()))
        from projections.joint_queries import JointReads  # noqa: PLC0415 - keeps --help fast

        return JointReads(self.existing().store, today=datetime.now(UTC).date())

    def client(self) -> ServiceClient:
        """The service this command line is a client of (`--server`)."""
        from commands.client import ServiceClient  # noqa: PLC0415 - keeps --help fast

        assert self.server is not None
        return ServiceClient(self.server, self.token)

    def require_actor(self) -> str:
        """The actor of a write made on the store itself (`--actor`): with `--server` the
        token's actor acts, so a command that asks for one needs the store itself."""
        if self.server:
            self.ledger()  # refuses: not available with --server
        if not self.actor:
            raise InvalidInput(
                "actor", "writes need an actor, who issues this one: --actor allocator:Q71, "
                "practice:A81001 or consortium:16C (or LEDGER_ACTOR)")
        return self.actor

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None
