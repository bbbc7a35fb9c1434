"""Model providers and the agent roles that use them."""
