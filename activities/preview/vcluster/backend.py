"""The vCluster PreviewBackend: one namespace and virtual cluster per PR head, the head's image deployed
into it, the spec's criteria run against it, everything removed again whatever happens.

A run: clear what an earlier attempt of the same PR left; create the labelled namespace and the GitOps
controller's objects; wait until the controller reports the release healthy, the `vc-<release>` secret
holds a kubeconfig and `/version` answers through it; apply the manifests with server-side apply; wait
for the Service's pods and for vCluster to sync the Service to the host; reach it (DNS inside the
cluster, a port-forward outside); run the http and run criteria (checks.py, unchanged); collect rollout,
events and logs; tear down. Teardown runs on success, failure and cancellation, and what it could not
remove is reported in `PreviewEvidence.leftovers` (or as a note on the exception).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from kubernetes.config.config_exception import ConfigException

from activities.config import VClusterSettings
from activities.preview.base import Heartbeat
from activities.preview.checks import check_command, check_http, finish_despite_cancel, not_run
from activities.preview.janitor import MARKER
from activities.preview.local import INHERITED_ENV, PreviewError
from activities.preview.vcluster import evidence as shown
from activities.preview.vcluster.gitops import release_ref
from activities.preview.vcluster.janitor import find_previews, reap_expired
from activities.preview.vcluster.kube import KubeApi, KubeError, host_api_client, kubeconfig_client, kubeconfig_server
from activities.preview.vcluster.manifests import ManifestError, files_at_commit
from activities.preview.vcluster.naming import owner_selector, pr_selector
from activities.preview.vcluster.objects import ObjectRef, ref_of
from activities.preview.vcluster.portforward import PortForwarder
from activities.preview.vcluster.reach import ReachError, backing_pod, dns_url, reach_mode, service_port, synced_service
from activities.preview.vcluster.readiness import (
    Condition,
    Readiness,
    api_condition,
    controller_condition,
    kubeconfig_condition,
    pods_condition,
    synced_condition,
)
from activities.preview.vcluster.render import PreviewPlan, plan_preview
from activities.preview.vcluster.teardown import TeardownReport, teardown_preview
from contracts.evidence import CriterionResult, PreviewEvidence
from contracts.preview import PreviewRequest

log = logging.getLogger(__name__)

T = TypeVar("T")
_PROBE_TIMEOUT_S = 2.0
_LOG_LINES = 200
# limitBytes keeps the first bytes of the tail; this only guards against absurd lines, the cut keeps the newest.
_LOG_BYTES = 256 * 1024
_MAX_LOGGED_PODS = 5
# Applied first so that what depends on them finds them.
_APPLY_ORDER = {"Namespace": 0, "CustomResourceDefinition": 1, "ServiceAccount": 2, "ConfigMap": 3, "Secret": 3}


class VClusterPreviewError(PreviewError):
    """The platform side failed (API server, controller): not the change's fault, worth a retry."""


@dataclass
class _Session:
    """What one run holds open; teardown closes all of it."""

    started: float = field(default_factory=time.monotonic)
    virtual: KubeApi | None = None
    forwarders: list[PortForwarder] = field(default_factory=list)
    readiness: Readiness = field(default_factory=Readiness)
    url: str | None = None
    route: str | None = None
    applied: bool = False

    def close(self) -> None:
        for forwarder in self.forwarders:
            forwarder.close()
        self.forwarders.clear()
        if self.virtual is not None:
            self.virtual.close()
            self.virtual = None


class _NotReady(Exception):
    """The preview did not come up; the message is the evidence's start_error."""


class VClusterPreviewBackend:
    """PreviewBackend on Kubernetes. `host` is injected by tests; by default it comes from `settings`."""

    name = "vcluster"

    def __init__(
        self,
        settings: VClusterSettings,
        *,
        owner: str = "",
        host: KubeApi | None = None,
        heartbeat_every_s: float = 2.0,
        grace_s: float = 3.0,
    ) -> None:
        self.settings = settings
        self.owner = owner
        self._host = host
        self.heartbeat_every_s = heartbeat_every_s
        self.grace_s = grace_s

    @property
    def host(self) -> KubeApi:
        if self._host is None:
            self._host = KubeApi(host_api_client(self.settings))
        return self._host

    # --- janitor -------------------------------------------------------------------------------------

    def reap(self, force: bool = False) -> list[str]:
        """Tear down expired previews; with `force` (a restarted worker) also every preview this owner made.
        Returns one line per preview, saying what was removed or what is still left."""
        try:
            reports = reap_expired(self.host, self.settings)
            if force and self.owner:
                done = {report.preview for report in reports}
                for preview in find_previews(self.host, self.settings, owner_selector(self.owner)):
                    if preview.name not in done:
                        reports.append(teardown_preview(self.host, preview.name, self.settings))
        except (KubeError, ConfigException, OSError) as error:  # a worker starts even when the cluster is away
            log.error("janitor: the host cluster could not be searched for leftover previews: %s", error)
            return [f"leftover previews not searched: {error}"]
        for report in reports:
            (log.info if report.complete else log.error)("janitor: %s", report.summary())
        return [report.summary() for report in reports]

    # --- one run -------------------------------------------------------------------------------------

    async def run(self, request: PreviewRequest, heartbeat: Heartbeat) -> PreviewEvidence:
        """One result per http and run criterion, in spec order. Raises PreviewError for a request this
        backend cannot serve and VClusterPreviewError when the platform fails; a change whose preview
        does not come up is answered with evidence (start_error), not an exception."""
        try:
            plan = await asyncio.to_thread(self._plan, request)
        except ManifestError as error:
            return self._refused(request, f"preview.manifests cannot be applied: {error}")
        if plan is None:
            return self._refused(request, "preview.manifests is not set, so there is nothing to deploy and probe")
        session = _Session()
        try:
            await self._thread_with_heartbeats(heartbeat, self._clear_earlier, plan)
            evidence = await self._run(plan, request, heartbeat, session)
        except BaseException as error:
            report = await finish_despite_cancel(self._teardown(plan, session, heartbeat))
            if not report.complete:
                error.add_note(report.summary())
            raise
        report = await finish_despite_cancel(self._teardown(plan, session, heartbeat))
        return evidence.model_copy(update={"leftovers": report.left})

    def _plan(self, request: PreviewRequest) -> PreviewPlan | None:
        if request.service is None or request.pr_number is None:
            raise PreviewError(
                f"preview {request.preview_id}: the vcluster backend needs the service and the PR number "
                "(PreviewRequest.service, PreviewRequest.pr_number); the PR must be open before its preview"
            )
        config = request.config
        if config is None or config.manifests is None:
            return None
        files = files_at_commit(Path(request.repo_path), request.head_sha, config.manifests)
        return plan_preview(
            config=config,
            service=request.service,
            pr=request.pr_number,
            sha=request.head_sha,
            manifest_files=files,
            settings=self.settings,
            needs_service=any(criterion.kind == "http" for criterion in request.criteria),
            owner=self.owner,
            preview_id=request.preview_id,
        )

    def _refused(self, request: PreviewRequest, reason: str) -> PreviewEvidence:
        results = [not_run(criterion, reason) for criterion in request.criteria if criterion.kind in ("http", "run")]
        return PreviewEvidence(backend=self.name, ready=False, start_error=reason, results=results)

    def _clear_earlier(self, plan: PreviewPlan, progress: Callable[[str], object]) -> None:
        """Previews of the same PR that are still there (an older head, or this one's crashed attempt)."""
        selector = pr_selector(plan.identity.service, plan.identity.pr)
        for preview in find_previews(self.host, self.settings, selector):
            log.warning("preview %s: removing an earlier preview of the same PR first", preview.name)
            report = teardown_preview(self.host, preview.name, self.settings, progress=progress)
            if not report.complete:
                raise VClusterPreviewError(f"an earlier preview of this PR could not be removed: {report.summary()}")

    async def _run(
        self, plan: PreviewPlan, request: PreviewRequest, heartbeat: Heartbeat, session: _Session
    ) -> PreviewEvidence:
        config = request.config
        assert config is not None  # _plan returned a plan
        start_error: str | None = None
        try:
            await self._create(plan, heartbeat, session)
            await self._wait(
                heartbeat, session, self.settings.ready_timeout_s, lambda: self._cluster_conditions(plan, session)
            )
            await self._apply_manifests(plan, heartbeat, session)
            if plan.target is not None:
                await self._wait(
                    heartbeat, session, config.ready_timeout, lambda: self._workload_conditions(plan, session)
                )
                await self._reach(plan, config.port, config.ready, config.ready_timeout, heartbeat, session)
        except _NotReady as not_ready:
            start_error = str(not_ready)
        except KubeError as error:  # the host API failing is the platform's trouble, not the change's
            raise VClusterPreviewError(f"preview {plan.identity.name}: the Kubernetes API failed: {error}") from None
        ready = start_error is None
        ready_after = round(time.monotonic() - session.started, 3) if ready else None
        results = await self._check_all(plan, request, session, heartbeat, start_error)
        log_tail = await asyncio.to_thread(self._collect, plan, session, request.output_cap_bytes)
        return PreviewEvidence(
            backend=self.name,
            url=session.url,
            ready=ready,
            ready_after_s=ready_after,
            start_error=start_error,
            log_tail=log_tail,
            results=results,
        )

    # --- bring-up ------------------------------------------------------------------------------------

    async def _create(self, plan: PreviewPlan, heartbeat: Heartbeat, session: _Session) -> None:
        heartbeat(f"preview {plan.identity.name}: creating namespace and {plan.controller} objects")
        session.applied = True
        for obj in plan.host_objects:
            try:
                await asyncio.to_thread(self.host.apply, obj)
            except KubeError as error:
                raise VClusterPreviewError(f"could not create {ref_of(obj)} on the host cluster: {error}") from None

    async def _wait(
        self, heartbeat: Heartbeat, session: _Session, timeout_s: float, observe: Callable[[], list[Condition]]
    ) -> None:
        """Poll `observe` until all its conditions hold; _NotReady with the blocking reason on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            conditions = await asyncio.to_thread(observe)
            session.readiness = Readiness(conditions=_merge(session.readiness.conditions, conditions))
            blocking = session.readiness.blocking
            if blocking is None:
                return
            if blocking.final:
                raise _NotReady(session.readiness.summary())
            if time.monotonic() >= deadline:
                raise _NotReady(f"{session.readiness.summary()} (gave up after {timeout_s:g}s)")
            heartbeat(session.readiness.summary())
            await asyncio.sleep(min(self.settings.poll_s, max(deadline - time.monotonic(), 0)))

    def _cluster_conditions(self, plan: PreviewPlan, session: _Session) -> list[Condition]:
        """Controller healthy → kubeconfig secret → /version; a later one is only asked once the earlier holds."""
        identity = plan.identity
        release = self._get(release_ref(identity.name, self.settings))
        controller = controller_condition(self.settings, release)
        if not controller.ok:
            return [controller]
        secret = self._get(ObjectRef(api_version="v1", kind="Secret", name=identity.kubeconfig_secret,
                                     namespace=identity.namespace))
        kubeconfig, text = kubeconfig_condition(secret, f"{identity.namespace}/{identity.kubeconfig_secret}")
        if text is None:
            return [controller, kubeconfig]
        try:
            if session.virtual is None:
                session.virtual = self._virtual_client(text, session)
            version, error = session.virtual.version(), None
        except (KubeError, ReachError, ValueError) as failure:
            version, error = None, str(failure)
            session.close()  # a stale port-forward or client: make a new one next time
        return [controller, kubeconfig, api_condition(version, error)]

    def _virtual_client(self, kubeconfig: str, session: _Session) -> KubeApi:
        """The virtual cluster's API: as the kubeconfig says inside the cluster, through a port-forward outside."""
        if reach_mode(self.settings) == "dns":
            return KubeApi(kubeconfig_client(kubeconfig))
        server = urlsplit(kubeconfig_server(kubeconfig))
        parts = (server.hostname or "").split(".")
        if len(parts) < 3 or parts[2] != "svc":
            raise ReachError(f"the kubeconfig's server {server.geturl()} is not an in-cluster Service address")
        service = self._get(ObjectRef(api_version="v1", kind="Service", name=parts[0], namespace=parts[1]))
        if service is None:
            raise ReachError(f"the virtual cluster's Service {parts[1]}/{parts[0]} does not exist")
        port = service_port(service, server.port or (443 if server.scheme == "https" else 80))
        pods = self.host.list_objects("v1", "Pod", namespace=parts[1])
        pod, target = backing_pod(service, port, pods)
        forwarder = PortForwarder(self.host.api_client, parts[1], pod, target)
        session.forwarders.append(forwarder)
        return KubeApi(kubeconfig_client(
            kubeconfig, server=f"{server.scheme}://127.0.0.1:{forwarder.local_port}", tls_server_name=server.hostname
        ))

    async def _apply_manifests(self, plan: PreviewPlan, heartbeat: Heartbeat, session: _Session) -> None:
        virtual = session.virtual
        assert virtual is not None  # the cluster conditions held
        ordered = sorted(plan.virtual_objects, key=lambda obj: _APPLY_ORDER.get(str(obj.get("kind")), 9))
        for obj in ordered:
            heartbeat(f"preview {plan.identity.name}: applying {ref_of(obj, 'default')}")
            try:
                await asyncio.to_thread(virtual.apply, obj, default_namespace="default")
            except KubeError as error:
                if 400 <= error.status < 500:  # the manifest's fault: evidence, not a retry
                    raise _NotReady(f"{ref_of(obj, 'default')} from preview.manifests was refused: {error}") from None
                raise VClusterPreviewError(f"applying {ref_of(obj, 'default')} failed: {error}") from None

    def _workload_conditions(self, plan: PreviewPlan, session: _Session) -> list[Condition]:
        target, virtual = plan.target, session.virtual
        assert target is not None and virtual is not None
        service = virtual.get(ObjectRef(api_version="v1", kind="Service", name=target.name,
                                        namespace=target.namespace))
        pods = virtual.list_objects("v1", "Pod", namespace=target.namespace)
        host_services = self.host.list_objects("v1", "Service", namespace=plan.identity.namespace)
        return [pods_condition(target, service, pods), synced_condition(target, host_services,
                                                                        plan.identity.namespace)]

    async def _reach(
        self, plan: PreviewPlan, wanted_port: int | None, ready_path: str, timeout_s: float, heartbeat: Heartbeat,
        session: _Session,
    ) -> None:
        target = plan.target
        assert target is not None
        host_services = await asyncio.to_thread(
            self.host.list_objects, "v1", "Service", namespace=plan.identity.namespace
        )
        try:
            service = synced_service(host_services, target)
            if service is None:
                raise ReachError(f"the synced Service of {target.namespace}/{target.name} disappeared")
            port = service_port(service, wanted_port)
            if reach_mode(self.settings) == "dns":
                session.url = dns_url(service, port)
                session.route = f"reached at {session.url} (host Service {service['metadata']['name']})"
            else:
                pods = await asyncio.to_thread(self.host.list_objects, "v1", "Pod", namespace=plan.identity.namespace)
                pod, target_port = backing_pod(service, port, pods)
                forwarder = PortForwarder(self.host.api_client, plan.identity.namespace, pod, target_port)
                session.forwarders.append(forwarder)
                session.url = forwarder.url
                session.route = (f"reached through a port-forward to pod {pod}:{target_port} behind host Service "
                                 f"{service['metadata']['name']} ({dns_url(service, port)} inside the cluster)")
        except ReachError as error:
            raise _NotReady(str(error)) from None
        await self._ready_path(session.url, ready_path, timeout_s, heartbeat, session)

    async def _ready_path(
        self, url: str, path: str, timeout_s: float, heartbeat: Heartbeat, session: _Session
    ) -> None:
        """The spec's `preview.ready` must answer 2xx through the chosen route before any criterion runs."""
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        async with httpx.AsyncClient(base_url=url, trust_env=False) as client:
            while True:
                remaining = deadline - time.monotonic()
                try:
                    response = await client.get(path, timeout=max(min(_PROBE_TIMEOUT_S, remaining), 0.1))
                    if response.is_success:
                        condition = Condition(name="answers", ok=True, reason=f"{path} answered {response.status_code}")
                        session.readiness = Readiness(conditions=_merge(session.readiness.conditions, [condition]))
                        return
                    last = f"HTTP {response.status_code}"
                except httpx.HTTPError as error:
                    last = type(error).__name__
                if remaining <= 0:
                    condition = Condition(name="answers", ok=False, reason=f"{path} did not answer 2xx ({last})")
                    session.readiness = Readiness(conditions=_merge(session.readiness.conditions, [condition]))
                    raise _NotReady(f"{session.readiness.summary()} within {timeout_s:g}s")
                heartbeat(f"waiting for {path} ({last})")
                await asyncio.sleep(min(self.settings.poll_s, max(deadline - time.monotonic(), 0)))

    # --- criteria --------------------------------------------------------------------------------------

    async def _check_all(
        self, plan: PreviewPlan, request: PreviewRequest, session: _Session, heartbeat: Heartbeat,
        start_error: str | None,
    ) -> list[CriterionResult]:
        env = {k: v for k, v in os.environ.items() if k in INHERITED_ENV or k.startswith("LC_")}
        env[MARKER] = request.preview_id
        if session.url is not None:
            env["PREVIEW_URL"] = session.url
        results: list[CriterionResult] = []
        async with httpx.AsyncClient(base_url=session.url or "http://127.0.0.1", trust_env=False) as client:
            for criterion in request.criteria:
                heartbeat(f"preview {plan.identity.name}: criterion {criterion.id}")
                if criterion.kind == "http":
                    if start_error is not None:
                        results.append(not_run(criterion, f"the preview never became ready: {start_error}"))
                    elif session.url is None:
                        results.append(not_run(criterion, "no Service to probe: name it in preview.service"))
                    else:
                        results.append(await check_http(client, criterion, request.output_cap_bytes))
                elif criterion.kind == "run":
                    results.append(await check_command(
                        criterion, cwd=Path(request.repo_path), env=env, cap=request.output_cap_bytes,
                        heartbeat=heartbeat, heartbeat_every_s=self.heartbeat_every_s, grace_s=self.grace_s,
                    ))
        return results

    # --- evidence --------------------------------------------------------------------------------------

    def _collect(self, plan: PreviewPlan, session: _Session, cap: int) -> str:
        """Rollout, events and logs, as far as they can be read; a part that cannot be read says why."""
        rollouts = [f"preview: {session.readiness.summary()}"] if session.readiness.conditions else []
        if session.route:
            rollouts.append(f"service: {session.route}")
        events: list[tuple[str, dict[str, Any]]] = []
        logs: list[shown.PodLog] = []
        events += self._events(self.host, plan.identity.namespace, "host", rollouts)
        virtual = session.virtual
        if virtual is not None:
            namespaces = sorted({obj["metadata"].get("namespace") or "default" for obj in plan.virtual_objects})
            for obj in plan.virtual_objects:
                if obj.get("kind") in ("Deployment", "StatefulSet"):
                    ref = ref_of(obj, "default")
                    rollouts.append(shown.rollout_line(self._quiet_get(virtual, ref), ref.kind, str(ref.namespace),
                                                       ref.name))
            for namespace in namespaces:
                events += self._events(virtual, namespace, "virtual", rollouts)
            logs = self._logs(virtual, plan, namespaces, cap, rollouts)
        return shown.format_evidence(rollouts, shown.sort_events(events), logs, cap)

    @staticmethod
    def _quiet_get(api: KubeApi, ref: ObjectRef) -> dict[str, Any] | None:
        try:
            return api.get(ref)
        except KubeError:
            return None

    @staticmethod
    def _events(api: KubeApi, namespace: str, where: str, notes: list[str]) -> list[tuple[str, dict[str, Any]]]:
        try:
            return [(where, event) for event in api.list_objects("v1", "Event", namespace=namespace)]
        except KubeError as error:
            notes.append(f"(events of {where} namespace {namespace} could not be read: {error})")
            return []

    def _logs(
        self, virtual: KubeApi, plan: PreviewPlan, namespaces: list[str], cap: int, notes: list[str]
    ) -> list[shown.PodLog]:
        """Logs of the probed Service's pods, or of the first pods of the manifests when there is no Service."""
        selector: dict[str, str] = {}
        if plan.target is not None:
            for obj in plan.virtual_objects:
                meta = obj["metadata"]
                if obj.get("kind") == "Service" and meta["name"] == plan.target.name:
                    selector = (obj.get("spec") or {}).get("selector") or {}
        logs: list[shown.PodLog] = []
        for namespace in namespaces:
            try:
                pods = virtual.list_objects("v1", "Pod", namespace=namespace)
            except KubeError as error:
                notes.append(f"(pods of {namespace} could not be listed: {error})")
                continue
            for pod in pods:
                labels = pod["metadata"].get("labels") or {}
                if selector and any(labels.get(k) != v for k, v in selector.items()):
                    continue
                for container in (pod.get("spec") or {}).get("containers") or []:
                    if len(logs) >= _MAX_LOGGED_PODS:
                        return logs
                    try:
                        text = virtual.pod_log(namespace, pod["metadata"]["name"], container["name"],
                                               tail_lines=_LOG_LINES, limit_bytes=_LOG_BYTES)
                    except Exception as error:  # the kubelet may be gone already; say so in place of the log
                        text = f"(log not available: {error})"
                    logs.append(shown.PodLog(pod=f"{namespace}/{pod['metadata']['name']}", container=container["name"],
                                             text=text))
        return logs

    # --- teardown ---------------------------------------------------------------------------------------

    async def _teardown(self, plan: PreviewPlan, session: _Session, heartbeat: Heartbeat) -> TeardownReport:
        session.close()
        if not session.applied:
            return TeardownReport(preview=plan.identity.name)
        report = await self._thread_with_heartbeats(
            heartbeat, lambda progress: teardown_preview(self.host, plan.identity.name, self.settings,
                                                         progress=progress)
        )
        (log.info if report.complete else log.error)("%s", report.summary())
        return report

    async def _thread_with_heartbeats(self, heartbeat: Heartbeat, work: Callable[..., T], *args: Any) -> T:
        """Run blocking `work(*args, progress)` in a thread, heartbeating its latest progress from this loop
        (an activity may only heartbeat from its own task)."""
        latest = ["working"]

        def progress(line: str) -> None:
            latest[0] = line

        task = asyncio.ensure_future(asyncio.to_thread(work, *args, progress))
        while not task.done():
            heartbeat(latest[0])
            await asyncio.wait({task}, timeout=self.heartbeat_every_s)
        return task.result()

    def _get(self, ref: ObjectRef) -> dict[str, Any] | None:
        return self.host.get(ref)


def _merge(earlier: list[Condition], newer: list[Condition]) -> list[Condition]:
    """Conditions in bring-up order, the newest observation of each."""
    by_name = {condition.name: condition for condition in earlier}
    by_name.update({condition.name: condition for condition in newer})
    order = ["controller", "kubeconfig", "api", "pods", "synced_service", "answers"]
    return [by_name[name] for name in order if name in by_name]
