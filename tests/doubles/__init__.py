"""Local stand-ins for outside systems, each held to a public contract (see shared/CONTRACTS.md)."""
