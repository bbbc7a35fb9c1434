"""When is a preview ready? Each condition is judged by a pure function from what the API returned, so a
test can take any one away and read the reason.

In order: the GitOps controller reports the release healthy; the secret `vc-<release>` holds a kubeconfig;
`/version` answers through it; the pods behind the probed Service run and are Ready inside the virtual
cluster; and vCluster has synced that Service to the host, where it is found by its annotations.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

from pydantic import BaseModel

from activities.config import VClusterSettings
from activities.preview.vcluster.gitops import release_status
from activities.preview.vcluster.manifests import ServiceTarget
from activities.preview.vcluster.reach import OBJECT_NAME, OBJECT_NAMESPACE, synced_service

KUBECONFIG_KEY = "config"  # the key vCluster writes the kubeconfig under
ConditionName = Literal["controller", "kubeconfig", "api", "pods", "synced_service", "answers"]


class Condition(BaseModel):
    name: ConditionName
    ok: bool
    reason: str
    final: bool = False  # the controller gave up: waiting longer will not help


class Readiness(BaseModel):
    conditions: list[Condition] = []

    @property
    def ready(self) -> bool:
        return bool(self.conditions) and all(condition.ok for condition in self.conditions)

    @property
    def blocking(self) -> Condition | None:
        return next((condition for condition in self.conditions if not condition.ok), None)

    def summary(self) -> str:
        blocking = self.blocking
        if blocking is None:
            return "ready: " + "; ".join(condition.reason for condition in self.conditions)
        return f"not ready ({blocking.name}): {blocking.reason}"


def controller_condition(settings: VClusterSettings, release: dict[str, Any] | None) -> Condition:
    status = release_status(settings, release)
    return Condition(name="controller", ok=status.ready, reason=status.reason, final=status.failed)


def kubeconfig_condition(secret: dict[str, Any] | None, name: str) -> tuple[Condition, str | None]:
    """The condition, and the kubeconfig's text when the secret holds one."""
    if secret is None:
        return Condition(name="kubeconfig", ok=False, reason=f"secret {name} does not exist yet"), None
    encoded = (secret.get("data") or {}).get(KUBECONFIG_KEY)
    if not encoded:
        return Condition(name="kubeconfig", ok=False, reason=f"secret {name} has no '{KUBECONFIG_KEY}' key"), None
    try:
        text = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return Condition(name="kubeconfig", ok=False, reason=f"secret {name}: '{KUBECONFIG_KEY}' is not base64"), None
    if "clusters:" not in text or "server:" not in text:
        return Condition(name="kubeconfig", ok=False, reason=f"secret {name} does not hold a kubeconfig"), None
    return Condition(name="kubeconfig", ok=True, reason=f"secret {name} holds a kubeconfig"), text


def api_condition(version: dict[str, Any] | None, error: str | None) -> Condition:
    if version is not None:
        return Condition(name="api", ok=True, reason=f"the virtual cluster answers /version ({version['gitVersion']})")
    return Condition(name="api", ok=False, reason=f"the virtual cluster's /version does not answer: {error}")


def pods_condition(
    target: ServiceTarget, service: dict[str, Any] | None, pods: list[dict[str, Any]]
) -> Condition:
    """The pods that the Service selects (inside the virtual cluster): at least one, all Ready."""
    where = f"Service {target.namespace}/{target.name}"
    if service is None:
        return Condition(name="pods", ok=False, reason=f"{where} does not exist in the virtual cluster")
    selector = (service.get("spec") or {}).get("selector") or {}
    if not selector:
        return Condition(name="pods", ok=False, reason=f"{where} has no selector, so no pods answer behind it")
    chosen = [pod for pod in pods if _selects(selector, pod)]
    if not chosen:
        shown = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        return Condition(name="pods", ok=False, reason=f"no pod matches {where}'s selector {shown}")
    waiting = [f"{pod['metadata']['name']}: {why}" for pod in chosen if (why := _not_ready(pod))]
    if waiting:
        return Condition(name="pods", ok=False, reason=f"{len(waiting)} of {len(chosen)} pod(s) of {where} not ready: "
                                                       + "; ".join(waiting[:3]))
    return Condition(name="pods", ok=True, reason=f"{len(chosen)} pod(s) of {where} ready")


def synced_condition(target: ServiceTarget, host_services: list[dict[str, Any]], namespace: str) -> Condition:
    found = synced_service(host_services, target)
    if found is None:
        return Condition(
            name="synced_service",
            ok=False,
            reason=f"no Service in host namespace {namespace} carries {OBJECT_NAME}={target.name} and "
            f"{OBJECT_NAMESPACE}={target.namespace} yet (vCluster syncs it)",
        )
    return Condition(
        name="synced_service", ok=True, reason=f"vCluster synced it to host Service {found['metadata']['name']}"
    )


def _selects(selector: dict[str, str], pod: dict[str, Any]) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in selector.items())


def _not_ready(pod: dict[str, Any]) -> str | None:
    """Why a pod is not Ready (the first waiting container's reason, else its phase), or None when it is."""
    status = pod.get("status") or {}
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "terminating"
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    if conditions.get("Ready") == "True":
        return None
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting:
            message = f" ({waiting['message']})" if waiting.get("message") else ""
            return f"container {container.get('name')} {waiting.get('reason', 'waiting')}{message}"
        terminated = (container.get("state") or {}).get("terminated")
        if terminated:
            return f"container {container.get('name')} exited {terminated.get('exitCode')} ({terminated.get('reason')})"
    return f"phase {status.get('phase', 'Pending')}"
