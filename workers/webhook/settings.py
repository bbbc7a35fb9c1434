"""The webhook server's configuration, read from the environment in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, ValidationError

from activities.config import data_dir, task_queue
from activities.forge.github_auth import webhook_secret

GITHUB_MAX_PAYLOAD = 25 * 1024 * 1024
"""GitHub caps webhook payloads at 25 MB and drops larger ones; anything bigger is not from GitHub."""
GITHUB_REDELIVERY_S = 3 * 24 * 3600.0
"""How far back GitHub lets people redeliver a delivery: the spool remembers delivery ids as long."""

DEFAULT_FACTORY_LABEL = "spec2ship"
ENV_FACTORY_LABEL = "SPEC2SHIP_FACTORY_LABEL"
ENV_SPOOL = "SPEC2SHIP_WEBHOOK_SPOOL"
ENV_DRAIN_CONCURRENCY = "SPEC2SHIP_WEBHOOK_DRAIN_CONCURRENCY"
DEFAULT_DRAIN_CONCURRENCY = 4
"""Few at once: deliveries are carried out a little later in a burst, and the burst's answers stay fast
(each one carried out costs the drain and Temporal several times the CPU of answering it; on a machine
they share, 32 at once made the answers wait). Raise it when Temporal is far away (each call's round
trip then bounds the drain: 4 at 20 ms is 200 a second)."""


def spool_path_from_env(env: Mapping[str, str] | None = None) -> Path:
    """SPEC2SHIP_WEBHOOK_SPOOL, else `webhook/spool.sqlite3` under the data folder (no secret needed:
    `spec2ship webhook spool` reads it too)."""
    env = os.environ if env is None else env
    configured = env.get(ENV_SPOOL)
    return Path(configured) if configured else data_dir() / "webhook" / "spool.sqlite3"


class DrainSettings(BaseModel):
    """What the drain needs: no webhook secret (it never sees a request), so it can run on its own."""

    task_queue: str = Field(default_factory=task_queue, description="Where SpecToShip runs are started.")
    github_timeout_s: float = Field(default=3.0, gt=0, description="Deadline for each GitHub call of the drain.")
    temporal_timeout_s: float = Field(default=5.0, gt=0, description="Deadline for each Temporal call.")
    spool_path: Path = Field(default_factory=spool_path_from_env, description="This process's spool (SQLite).")
    drain_concurrency: int = Field(default=DEFAULT_DRAIN_CONCURRENCY, gt=0, description="Carried out at once.")
    keep_s: float = Field(default=GITHUB_REDELIVERY_S, gt=0, description="How long finished deliveries are kept.")
    drain_grace_s: float = Field(default=10.0, ge=0, description="On shutdown, how long the drain may go on.")

    @classmethod
    def drain_from_env(cls, env: Mapping[str, str] | None = None) -> DrainSettings:
        return DrainSettings(**_drain_env(os.environ if env is None else env))


class WebhookSettings(DrainSettings):
    secret: SecretStr = Field(description="The webhook secret GitHub signs deliveries with.")
    factory_label: str = Field(default=DEFAULT_FACTORY_LABEL, min_length=1, description="Label that starts a run.")
    max_body_bytes: int = Field(default=GITHUB_MAX_PAYLOAD, gt=0)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebhookSettings:
        """Raises `activities.forge.github_auth.GitHubAuthError` when no webhook secret is configured."""
        env = os.environ if env is None else env
        return cls(
            secret=webhook_secret(env),
            factory_label=env.get(ENV_FACTORY_LABEL) or DEFAULT_FACTORY_LABEL,
            **_drain_env(env),
        )


def settings_problem(error: ValidationError) -> str:
    """One line naming the variable a ValidationError of these settings is about."""
    first = error.errors()[0]
    field = ".".join(map(str, first["loc"]))
    variable = {"drain_concurrency": ENV_DRAIN_CONCURRENCY, "spool_path": ENV_SPOOL,
                "factory_label": ENV_FACTORY_LABEL}.get(field, field)
    return f"{variable}: {first['msg']}"


def _drain_env(env: Mapping[str, str]) -> dict[str, object]:
    """The drain's settings that come from the environment (pydantic checks the concurrency is a number > 0)."""
    found: dict[str, object] = {"spool_path": spool_path_from_env(env)}
    if env.get(ENV_DRAIN_CONCURRENCY):
        found["drain_concurrency"] = env[ENV_DRAIN_CONCURRENCY]
    return found
