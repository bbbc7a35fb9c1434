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
