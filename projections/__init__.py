"""The read side: projections of the ledger's events, their tables and queries.

Depends on `ledger` for event types and the store's read API only, never on its
write path (application service, handlers); `ledger` imports nothing from here.
"""
