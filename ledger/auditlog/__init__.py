"""The audit log in the store: sealing, verification, checkpoints, proofs (I/O side)."""
