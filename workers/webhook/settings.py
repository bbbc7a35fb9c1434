"""The webhook server's configuration, read from the environment in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, Field, SecretStr

from activities.config import task_queue
from activities.forge.github_auth import webhook_secret

GITHUB_MAX_PAYLOAD = 25 * 1024 * 1024
"""GitHub caps webhook payloads at 25 MB and drops larger ones; anything bigger is not from GitHub."""

DEFAULT_FACTORY_LABEL = "spec2ship"
ENV_FACTORY_LABEL = "SPEC2SHIP_FACTORY_LABEL"


class WebhookSettings(BaseModel):
    secret: SecretStr = Field(description="The webhook secret GitHub signs deliveries with.")
    factory_label: str = Field(default=DEFAULT_FACTORY_LABEL, min_length=1, description="Label that starts a run.")
    task_queue: str = Field(default_factory=task_queue, description="Where SpecToShip runs are started.")
    max_body_bytes: int = Field(default=GITHUB_MAX_PAYLOAD, gt=0)
    github_timeout_s: float = Field(default=3.0, gt=0, description="Deadline for the permission check.")
    temporal_timeout_s: float = Field(default=5.0, gt=0, description="Deadline for each Temporal call.")
    delivery_log_size: int = Field(default=4096, gt=0, description="Recent delivery ids kept for dedup.")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebhookSettings:
        """Raises `activities.forge.github_auth.GitHubAuthError` when no webhook secret is configured."""
        env = os.environ if env is None else env
        return cls(
            secret=webhook_secret(env),
            factory_label=env.get(ENV_FACTORY_LABEL) or DEFAULT_FACTORY_LABEL,
        )
