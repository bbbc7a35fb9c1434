"""Deterministic orchestration: SpecToShip, the agent loop, and the entity workflows."""
