"""All configuration read from the environment, in one place (temporal-ai-agent's habit)."""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError

DEFAULT_TASK_QUEUE = "spec2ship"


class ConfigError(ValueError):
    """An environment variable holds what it cannot: the message names the variable and what to write."""

DEFAULT_GPU_QUEUE = "gpu-inference"


class CodecSettings(BaseModel):
    """Where the payload codec's keys come from; no source set means payloads are not encrypted.

    Exactly one source: `SPEC2SHIP_CODEC_KEYS` (`ID:BASE64,...`), `SPEC2SHIP_CODEC_KEYS_FILE` (a file
    in that format) or `SPEC2SHIP_CODEC_KEYS_DIR` (a mounted Kubernetes Secret: one file per key id).
    `SPEC2SHIP_CODEC_KEY_ID` names the key that encrypts; the others only decrypt. Checked and read by
    `workers.codec.keys.load_keyring`.
    """

    keys: SecretStr | None = None
    keys_file: str | None = None
    keys_dir: str | None = None
    key_id: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CodecSettings:
        env = os.environ if env is None else env
        return cls(keys=_env_secret(env, "SPEC2SHIP_CODEC_KEYS"), keys_file=_env_text(env, "SPEC2SHIP_CODEC_KEYS_FILE"),
                   keys_dir=_env_text(env, "SPEC2SHIP_CODEC_KEYS_DIR"), key_id=_env_text(env, "SPEC2SHIP_CODEC_KEY_ID"))


class CodecServerSettings(BaseModel):
    """Who may call the codec server: bearer tokens from `SPEC2SHIP_CODEC_SERVER_TOKENS` (comma-separated)
    or `SPEC2SHIP_CODEC_SERVER_TOKENS_FILE` (one per line, a mounted Secret). Never on the command line,
    where any local user could read them in the process list."""

    tokens: SecretStr | None = None
    tokens_file: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CodecServerSettings:
        env = os.environ if env is None else env
        return cls(tokens=_env_secret(env, "SPEC2SHIP_CODEC_SERVER_TOKENS"),
                   tokens_file=_env_text(env, "SPEC2SHIP_CODEC_SERVER_TOKENS_FILE"))


def _env_text(env: Mapping[str, str], name: str) -> str | None:
    return env.get(name, "").strip() or None


def _env_secret(env: Mapping[str, str], name: str) -> SecretStr | None:
    value = _env_text(env, name)
    return SecretStr(value) if value else None


class TemporalSettings(BaseModel):
    address: str = "localhost:7233"
    namespace: str = "default"
    api_key: str | None = Field(default=None, repr=False)
    tls: bool = False
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_ca_file: str | None = None
    codec: CodecSettings = Field(default_factory=CodecSettings)

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
            codec=CodecSettings.from_env(env),
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
        raise ConfigError(f"SPEC2SHIP_DEFAULT_TEAM_TOKENS={raw!r} is not a whole number of tokens or 'none'")
    return int(raw)


def default_team_usd() -> float | None:
    """The USD limit a team gets by default; unset means no USD cap (SPEC2SHIP_DEFAULT_TEAM_USD)."""
    raw = os.environ.get("SPEC2SHIP_DEFAULT_TEAM_USD", "").strip()
    if raw == "" or raw.lower() in {"none", "unlimited"}:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"SPEC2SHIP_DEFAULT_TEAM_USD={raw!r} is not a number of dollars or 'none'") from None
    if value < 0:
        raise ConfigError(f"SPEC2SHIP_DEFAULT_TEAM_USD={raw!r} is negative; give 0 or more, or 'none'")
    return value


# --- the blob store ------------------------------------------------------------------------------

STORE_BACKENDS = ("folder", "s3")
DEFAULT_STORE_RETENTION_S = 7 * 24 * 3600.0


class StoreSettings(BaseModel):
    """Where agent conversations and large tool results live (activities/store): every worker that runs
    `call_model` or `run_tool`, GPU workers included, must name the same store."""

    backend: Literal["folder", "s3"] = "folder"
    folder: str = Field(default="", description="The folder backend's root; empty: `<data dir>/store`.")
    bucket: str = ""
    prefix: str = "spec2ship/"
    endpoint_url: str | None = Field(default=None, description="S3 API endpoint (MinIO, GCS); None: AWS S3.")
    region: str | None = None
    path_style: bool = Field(default=False, description="Path-style addressing, as MinIO wants it.")
    access_key_id: str | None = Field(default=None, repr=False)
    secret_access_key: str | None = Field(default=None, repr=False)
    session_token: str | None = Field(default=None, repr=False)
    retention_s: float = Field(default=DEFAULT_STORE_RETENTION_S, ge=0,
                               description="How long blobs of a finished agent run are kept.")

    @classmethod
    def from_env(cls) -> StoreSettings:
        """SPEC2SHIP_STORE* variables; a bad value is a ConfigError naming the variable."""
        env = os.environ
        backend = env.get("SPEC2SHIP_STORE", "").strip().lower() or "folder"
        if backend not in STORE_BACKENDS:
            raise ConfigError(f"SPEC2SHIP_STORE={backend!r} is not a store; use folder or s3")
        endpoint = env.get("SPEC2SHIP_STORE_ENDPOINT", "").strip() or None
        path_style = env.get("SPEC2SHIP_STORE_PATH_STYLE", "").strip().lower()
        if path_style not in {"", "1", "0", "true", "false", "yes", "no", "on", "off"}:
            raise ConfigError(f"SPEC2SHIP_STORE_PATH_STYLE={path_style!r} is not true or false")
        retention = env.get("SPEC2SHIP_STORE_RETENTION", "").strip()
        return cls(
            backend=backend,
            folder=env.get("SPEC2SHIP_STORE_DIR", "").strip(),
            bucket=env.get("SPEC2SHIP_STORE_BUCKET", "").strip(),
            prefix=env.get("SPEC2SHIP_STORE_PREFIX", "spec2ship/").strip(),
            endpoint_url=endpoint,
            region=env.get("SPEC2SHIP_STORE_REGION", "").strip() or None,
            # An endpoint of one's own is usually MinIO or another store that wants path-style addressing.
            path_style=_flag(path_style, default=endpoint is not None),
            access_key_id=env.get("SPEC2SHIP_STORE_ACCESS_KEY_ID") or None,
            secret_access_key=env.get("SPEC2SHIP_STORE_SECRET_ACCESS_KEY") or None,
            session_token=env.get("SPEC2SHIP_STORE_SESSION_TOKEN") or None,
            retention_s=parse_retention("SPEC2SHIP_STORE_RETENTION", retention) if retention else (
                DEFAULT_STORE_RETENTION_S),
        )

    def folder_path(self, data: Path | None = None) -> Path:
        return Path(self.folder).expanduser().resolve() if self.folder else (data or data_dir()) / "store"


def parse_retention(name: str, raw: str) -> float:
    """Seconds in a retention period: whole days (`7d`, `0d`), or a duration like 90s, 30m, 4h."""
    text = raw.strip()
    if text.endswith("d") and text[:-1].isdigit():
        return float(int(text[:-1]) * 86400)
    return parse_duration(name, text)
# --- policy --------------------------------------------------------------------------------------


def policy_defaults() -> tuple[str, str] | None:
    """(file name, text) of the platform's policy defaults (SPEC2SHIP_POLICY_DEFAULTS), laid under every
    repository's `.spec2ship/policy.yaml`; None when unset."""
    raw = os.environ.get("SPEC2SHIP_POLICY_DEFAULTS", "").strip()
    if not raw:
        return None
    path = Path(raw)
    try:
        return path.name, path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"SPEC2SHIP_POLICY_DEFAULTS={raw!r} cannot be read: {error}") from None


# --- worker tuning -------------------------------------------------------------------------------


class WorkerTuning(BaseModel):
    """How much one worker process holds and runs at once. A run parked on a person, a budget or a CI
    build costs nothing while evicted from the cache (its next task replays it), so the cache bounds memory
    and the slots bound CPU; see docs/kubernetes.md#scaling."""

    workflow_cache: int = 1000  # workflows kept in memory between tasks (Temporal's max_cached_workflows)
    workflow_tasks: int = 100  # workflow tasks at once
    activities: int = 100  # activities at once (commands, previews and model calls among them)


_TUNING_ENVS = {"workflow_cache": "SPEC2SHIP_WORKFLOW_CACHE", "workflow_tasks": "SPEC2SHIP_MAX_WORKFLOW_TASKS",
                "activities": "SPEC2SHIP_MAX_ACTIVITIES"}


def worker_tuning(env: Mapping[str, str] | None = None) -> WorkerTuning:
    """The tuning from SPEC2SHIP_WORKFLOW_CACHE, SPEC2SHIP_MAX_WORKFLOW_TASKS and SPEC2SHIP_MAX_ACTIVITIES."""
    source = os.environ if env is None else env
    given: dict[str, int] = {}
    for field, name in _TUNING_ENVS.items():
        raw = source.get(name, "").strip().replace("_", "")
        if not raw:
            continue
        if not raw.isdigit() or (int(raw) == 0 and field != "workflow_cache"):
            least = "0 (no cache)" if field == "workflow_cache" else "1"
            raise ConfigError(f"{name}={raw!r} is not a whole number of {least} or more")
        given[field] = int(raw)
    return WorkerTuning(**given)


# --- previews ------------------------------------------------------------------------------------

PREVIEW_BACKENDS = ("local", "vcluster")
# The vCluster chart every preview installs, pinned so that previews do not change under a team's feet;
# the values it is given are checked against this line's values.schema.json.
VCLUSTER_CHART_VERSION = "0.36.1"
_DURATION = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")


def preview_backend() -> str:
    """Which PreviewBackend a worker runs (SPEC2SHIP_PREVIEW_BACKEND): `local` (default) or `vcluster`."""
    value = os.environ.get("SPEC2SHIP_PREVIEW_BACKEND", "").strip().lower() or "local"
    if value not in PREVIEW_BACKENDS:
        raise ConfigError(f"SPEC2SHIP_PREVIEW_BACKEND={value!r} is not a preview backend; use one of local, vcluster")
    return value


def parse_duration(name: str, raw: str) -> float:
    """Seconds in `raw`, written as Go and Flux write durations: 90s, 30m, 4h, 1h30m."""
    match = _DURATION.match(raw.strip())
    if not raw.strip() or match is None:
        raise ConfigError(f"{name}={raw!r} is not a duration; write it like 90s, 30m, 4h or 1h30m")
    hours, minutes, seconds = (int(match.group(key) or 0) for key in ("h", "m", "s"))
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ConfigError(f"{name}={raw!r} must be longer than zero")
    return float(total)


def _quantities(name: str, raw: str) -> dict[str, str]:
    """`requests.cpu=2,limits.memory=4Gi` into a mapping; Kubernetes checks the quantities themselves."""
    pairs: dict[str, str] = {}
    for item in raw.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(
                f"{name}: {item.strip()!r} is not KEY=QUANTITY; write e.g. requests.cpu=2,limits.memory=4Gi"
            )
        pairs[key.strip()] = value.strip()
    return pairs


class VClusterSettings(BaseModel):
    """How the Kubernetes preview backend reaches the host cluster and sizes each preview's virtual cluster."""

    controller: Literal["argocd", "flux"] = Field(default="argocd", description="The platform's GitOps controller.")
    kubeconfig: str | None = Field(default=None, description="Host kubeconfig; unset: in-cluster, then ~/.kube.")
    kube_context: str | None = None
    chart_repository: str = "https://charts.loft.sh"
    chart_version: str = VCLUSTER_CHART_VERSION
    argocd_namespace: str = "argocd"
    argocd_project: str = "default"
    argocd_destination: str = "https://kubernetes.default.svc"
    namespace_prefix: str = Field(default="s2s", pattern=r"^[a-z][a-z0-9-]{0,9}$")
    reach: Literal["auto", "dns", "port-forward"] = Field(
        default="auto", description="How the worker reaches a preview: auto is dns inside a pod, else port-forward."
    )
    ttl_s: float = Field(default=4 * 3600, gt=0, description="After this a preview counts as leftover for the janitor.")
    ready_timeout_s: float = Field(default=600, gt=0, description="For the virtual cluster itself to come up.")
    teardown_timeout_s: float = Field(default=300, gt=0)
    poll_s: float = Field(default=2.0, gt=0)
    quota: dict[str, str] = Field(
        default_factory=lambda: {
            "requests.cpu": "2",
            "requests.memory": "4Gi",
            "limits.cpu": "4",
            "limits.memory": "8Gi",
            "count/pods": "20",
            "count/services": "10",
            "services.loadbalancers": "0",
            "services.nodeports": "0",
            "requests.storage": "0",
        }
    )
    limit_default: dict[str, str] = Field(default_factory=lambda: {"cpu": "500m", "memory": "512Mi"})
    limit_default_request: dict[str, str] = Field(default_factory=lambda: {"cpu": "100m", "memory": "128Mi"})
    sleep_after: str | None = Field(
        default=None, description="vCluster's sleep after inactivity (an enterprise feature); off when unset."
    )

    @classmethod
    def from_env(cls) -> VClusterSettings:
        """Every variable in _VCLUSTER_ENV that is set; a bad value is a ValueError naming the variable."""
        values: dict[str, object] = {}
        for variable, (field, read) in _VCLUSTER_ENV.items():
            raw = os.environ.get(variable, "").strip()
            if raw:
                values[field] = read(variable, raw)
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(part) for part in first["loc"])
            variable = next((v for v, (f, _) in _VCLUSTER_ENV.items() if f == field), field)
            raise ConfigError(f"{variable}: {first['msg']}") from None


def _text(_: str, raw: str) -> str:
    return raw


def _sleep(name: str, raw: str) -> str:
    """Kept as written (the chart wants a Go duration), once it is known to be one."""
    parse_duration(name, raw)
    return raw


# variable -> (VClusterSettings field, how its text is read)
_VCLUSTER_ENV: dict[str, tuple[str, Callable[[str, str], object]]] = {
    "SPEC2SHIP_GITOPS_CONTROLLER": ("controller", _text),
    "SPEC2SHIP_KUBECONFIG": ("kubeconfig", _text),
    "SPEC2SHIP_KUBE_CONTEXT": ("kube_context", _text),
    "SPEC2SHIP_VCLUSTER_CHART_REPOSITORY": ("chart_repository", _text),
    "SPEC2SHIP_VCLUSTER_CHART_VERSION": ("chart_version", _text),
    "SPEC2SHIP_ARGOCD_NAMESPACE": ("argocd_namespace", _text),
    "SPEC2SHIP_ARGOCD_PROJECT": ("argocd_project", _text),
    "SPEC2SHIP_ARGOCD_DESTINATION": ("argocd_destination", _text),
    "SPEC2SHIP_PREVIEW_NAMESPACE_PREFIX": ("namespace_prefix", _text),
    "SPEC2SHIP_PREVIEW_REACH": ("reach", _text),
    "SPEC2SHIP_PREVIEW_TTL": ("ttl_s", parse_duration),
    "SPEC2SHIP_VCLUSTER_READY_TIMEOUT": ("ready_timeout_s", parse_duration),
    "SPEC2SHIP_PREVIEW_TEARDOWN_TIMEOUT": ("teardown_timeout_s", parse_duration),
    "SPEC2SHIP_VCLUSTER_QUOTA": ("quota", _quantities),
    "SPEC2SHIP_VCLUSTER_LIMIT_DEFAULT": ("limit_default", _quantities),
    "SPEC2SHIP_VCLUSTER_LIMIT_REQUEST": ("limit_default_request", _quantities),
    "SPEC2SHIP_VCLUSTER_SLEEP_AFTER": ("sleep_after", _sleep),
}
