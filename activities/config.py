"""All configuration read from the environment, in one place (temporal-ai-agent's habit)."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

from pydantic import BaseModel, Field

DEFAULT_TASK_QUEUE = "spec2ship"
DEFAULT_GPU_QUEUE = "gpu-inference"


class TemporalSettings(BaseModel):
    address: str = "localhost:7233"
    namespace: str = "default"
    api_key: str | None = Field(default=None, repr=False)
    tls: bool = False
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_ca_file: str | None = None

    @classmethod
    def from_env(cls) -> TemporalSettings:
        env = os.environ
        api_key = env.get("TEMPORAL_API_KEY") or None
        return cls(
            address=env.get("TEMPORAL_ADDRESS", "localhost:7233"),
            namespace=env.get("TEMPORAL_NAMESPACE", "default"),
            api_key=api_key,
            # Temporal Cloud needs TLS with API keys; an explicit TEMPORAL_TLS=false still wins.
            tls=_flag(env.get("TEMPORAL_TLS"), default=api_key is not None or "TEMPORAL_TLS_CERT" in env),
            tls_cert_file=env.get("TEMPORAL_TLS_CERT") or None,
            tls_key_file=env.get("TEMPORAL_TLS_KEY") or None,
            tls_ca_file=env.get("TEMPORAL_TLS_CA") or None,
        )


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def data_dir() -> Path:
    """Where the embedded default keeps its state: Temporal's database, workspaces, telemetry."""
    return Path(os.environ.get("SPEC2SHIP_DATA_DIR", ".spec2ship")).resolve()


def task_queue() -> str:
    return os.environ.get("SPEC2SHIP_TASK_QUEUE", DEFAULT_TASK_QUEUE)


# A model reference (`scripted:/abs/file.yaml`, `patch:FILE` or a registry name) per role, used when the
# run names none and the registry offers none for that role.
DEFAULT_MODEL_ENVS = {
    "coder": "SPEC2SHIP_DEFAULT_CODER",
    "reviewer": "SPEC2SHIP_DEFAULT_REVIEWER",
    "validator": "SPEC2SHIP_DEFAULT_JUDGE",
}


def default_model(role: str) -> tuple[str, str] | None:
    """The configured default model of `role` and the variable it came from, or None."""
    name = DEFAULT_MODEL_ENVS.get(role)
    value = os.environ.get(name, "").strip() if name else ""
    return (value, name) if name and value else None


def worker_id(base: Path | None = None) -> str:
    """A stable identity for this worker's workspace task queue.

    Stable across restarts on the same host and data folder, so a worker that crashed and came back
    picks up the activities queued for the workspaces it still holds on disk.
    """
    explicit = os.environ.get("SPEC2SHIP_WORKER_ID")
    if explicit:
        return explicit
    folder = str((base or data_dir()).resolve())
    digest = hashlib.sha256(folder.encode()).hexdigest()[:8]
    return f"{socket.gethostname()}-{digest}"


def workspace_queue(identity: str) -> str:
    return f"{task_queue()}-workspace-{identity}"


DEFAULT_TEAM_TOKENS = 2_000_000


def default_team_tokens() -> int | None:
    """The token limit a team gets before anyone configures its budget ("no budget, no run" still holds).

    SPEC2SHIP_DEFAULT_TEAM_TOKENS: a whole number per period, or `none` for no token cap.
    """
    raw = os.environ.get("SPEC2SHIP_DEFAULT_TEAM_TOKENS", "").strip().replace("_", "").replace(",", "")
    if raw == "":
        return DEFAULT_TEAM_TOKENS
    if raw.lower() in {"none", "unlimited"}:
        return None
    if not raw.isdigit():
        raise ValueError(f"SPEC2SHIP_DEFAULT_TEAM_TOKENS={raw!r} is not a whole number of tokens or 'none'")
    return int(raw)


def default_team_usd() -> float | None:
    """The USD limit a team gets by default; unset means no USD cap (SPEC2SHIP_DEFAULT_TEAM_USD)."""
    raw = os.environ.get("SPEC2SHIP_DEFAULT_TEAM_USD", "").strip()
    if raw == "" or raw.lower() in {"none", "unlimited"}:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"SPEC2SHIP_DEFAULT_TEAM_USD={raw!r} is not a number of dollars or 'none'") from None
    if value < 0:
        raise ValueError(f"SPEC2SHIP_DEFAULT_TEAM_USD={raw!r} is negative; give 0 or more, or 'none'")
    return value
