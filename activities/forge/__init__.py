"""Forges: where specs come from and pull requests go (a local git repository, GitHub)."""
