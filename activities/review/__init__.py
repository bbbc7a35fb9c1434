"""Review: deterministic checks that always run, then the review agent when one is configured."""
