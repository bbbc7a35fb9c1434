"""The trust gate: policy, evidence and track record in; merge, escalate or reject out, with reasons."""
