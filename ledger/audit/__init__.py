"""Tamper evidence: RFC 6962 Merkle log over the stored events, checkpoints, bundles (pure)."""
