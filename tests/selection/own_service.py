"""A sample spec for a service of its own, so that no other test module's entity workflows answer for it.

Ledgers are keyed by service and live on the queue of the test module that started them; a run for a
shared service name would query a ledger whose queue nobody polls once that module is done.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import yaml

from workers.sample.repo import git


def own_service(paths: dict[str, Path], kind: str = "feature", level: str = "L5") -> tuple[str, Path]:
    """Add a fresh service (at `level`) to the sample repository's policy and write the greet-by-name spec for
    it as a change of `kind`; returns the service and the spec file."""
    service = f"greeter-{uuid.uuid4().hex[:6]}"
    repo = paths["repo"]
    policy_file = repo / ".spec2ship" / "policy.yaml"
    policy = yaml.safe_load(policy_file.read_text())
    policy["services"][service] = {"autonomy": level}
    policy_file.write_text(yaml.safe_dump(policy, sort_keys=False))
    git(repo, "commit", "-qam", f"policy for {service}")
    text = paths["greet-by-name.md"].read_text()
    assert "service: greeter\n" in text and "kind: feature\n" in text, "the sample spec changed: update this helper"
    spec = paths["greet-by-name.md"].with_name(f"{service}.md")
    spec.write_text(text.replace("service: greeter\n", f"service: {service}\n").replace("kind: feature\n",
                                                                                        f"kind: {kind}\n"))
    return service, spec
