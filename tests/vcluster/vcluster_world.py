"""The test world of the vCluster preview backend: two fake API servers (host and virtual cluster), a
controller double playing Argo CD or Flux and vCluster, a tiny HTTP service that plays the PR's image, a
decoy that plays whatever a wrongly chosen Service would reach, and a git repository with manifests.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doubles.http_server import ServerThread
from doubles.kube_gitops import GitOpsDouble, Knobs
from doubles.kube_server import kube_app
from doubles.kube_state import CORE_KINDS, FakeCluster, KindInfo
from kubernetes import client as k8s
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from activities.config import VClusterSettings
from activities.preview.vcluster.backend import VClusterPreviewBackend
from activities.preview.vcluster.kube import KubeApi
from activities.preview.vcluster.naming import PreviewIdentity
from contracts.preview import PreviewRequest
from specs.models import AcceptanceCriterion, HttpCheck, PreviewConfig
from workers.sample.repo import git

SCHEMAS = Path(__file__).parent / "schemas"
IMAGE = "ghcr.io/acme/inventory:{sha}"
SERVICE = "inventory"

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: inventory
spec:
  replicas: 1
  selector:
    matchLabels: {app: inventory}
  template:
    metadata:
      labels: {app: inventory}
    spec:
      containers:
        - name: app
          image: ghcr.io/acme/inventory:latest
          ports: [{containerPort: 8080, name: http}]
"""

SERVICE_YAML = """\
apiVersion: v1
kind: Service
metadata:
  name: inventory
spec:
  selector: {app: inventory}
  ports:
    - {name: http, port: 80, targetPort: http}
"""


def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text())


def host_kinds() -> list[KindInfo]:
    return [
        *CORE_KINDS,
        KindInfo("argoproj.io/v1alpha1", "Application", "applications", True,
                 schema("argoproj.io_application_v1alpha1.json")),
        KindInfo("helm.toolkit.fluxcd.io/v2", "HelmRelease", "helmreleases", True,
                 schema("helm.toolkit.fluxcd.io_helmrelease_v2.json")),
        KindInfo("source.toolkit.fluxcd.io/v1", "HelmRepository", "helmrepositories", True,
                 schema("source.toolkit.fluxcd.io_helmrepository_v1.json")),
    ]


def _answering(text: str, hits: list[str]) -> Starlette:
    async def health(request: Request) -> PlainTextResponse:
        hits.append(request.url.path)
        return PlainTextResponse("ok")

    async def items(request: Request) -> PlainTextResponse:
        hits.append(request.url.path)
        return PlainTextResponse(text)

    return Starlette(routes=[Route("/healthz", health), Route("/items", items)])


def make_repo(root: Path, manifests: dict[str, str] | None = None) -> tuple[Path, str]:
    """A repository whose head commit holds deploy/preview manifests; returns it and the head sha."""
    repo = root / "repo"
    (repo / "deploy" / "preview").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    files = manifests if manifests is not None else {"deployment.yaml": DEPLOYMENT, "service.yaml": SERVICE_YAML}
    for name, text in files.items():
        (repo / "deploy" / "preview" / name).write_text(text)
    (repo / "README.md").write_text("inventory\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "preview manifests")
    return repo, git(repo, "rev-parse", "HEAD").strip()


@dataclass
class KubeWorld:
    controller: str
    root: Path
    host: FakeCluster = field(init=False)
    virtual: FakeCluster = field(init=False)
    servers: list[ServerThread] = field(default_factory=list)
    double: GitOpsDouble = field(init=False)
    repo: Path = field(init=False)
    sha: str = field(init=False)
    app_hits: list[str] = field(init=False)
    decoy_hits: list[str] = field(init=False)

    def start(self, manifests: dict[str, str] | None = None) -> KubeWorld:
        self.host = FakeCluster(name="host", kinds=host_kinds())
        self.virtual = FakeCluster(name="virtual", git_version="v1.32.1")
        for cluster, names in ((self.host, ("default", "argocd")), (self.virtual, ("default", "kube-system"))):
            for name in names:
                cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        host_server, virtual_server = self._serve(kube_app(self.host)), self._serve(kube_app(self.virtual))
        self.app_hits, self.decoy_hits = [], []
        app = self._serve(_answering("widget from the PR head", self.app_hits))
        decoy = self._serve(_answering("decoy", self.decoy_hits))
        self.repo, self.sha = make_repo(self.root, manifests)
        self.app_address, self.decoy_address = f"127.0.0.1:{app.port}", f"127.0.0.1:{decoy.port}"
        self.double = GitOpsDouble(
            host=self.host, virtual=self.virtual, virtual_address=f"127.0.0.1:{virtual_server.port}",
            images={IMAGE.replace("{sha}", self.sha): self.app_address},
            values_schema=schema("vcluster_values.schema.json"), knobs=Knobs(),
        )
        self.host_url = f"http://127.0.0.1:{host_server.port}"
        self.double.start()
        return self

    def _serve(self, app: Any) -> ServerThread:
        server = ServerThread(app, name="kube-world")
        server.start()
        self.servers.append(server)
        return server

    def stop(self) -> None:
        self.double.stop()
        stopping = [threading.Thread(target=server.stop) for server in self.servers]  # in parallel: ~0.1s each
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()

    def settings(self, **changes: Any) -> VClusterSettings:
        base = {"controller": self.controller, "reach": "port-forward", "ready_timeout_s": 10.0, "poll_s": 0.02,
                "teardown_timeout_s": 5.0}
        return VClusterSettings.model_validate({**base, **changes})

    def host_api(self) -> KubeApi:
        return KubeApi(k8s.ApiClient(k8s.Configuration(host=self.host_url)))

    def backend(self, owner: str = "worker-1", **changes: Any) -> VClusterPreviewBackend:
        return VClusterPreviewBackend(self.settings(**changes), owner=owner, host=self.host_api(),
                                      heartbeat_every_s=0.05, grace_s=1.0)

    def request(self, *, criteria: list[AcceptanceCriterion] | None = None, ready_timeout: float = 5,
                pr: int = 7, **config: Any) -> PreviewRequest:
        preview = PreviewConfig.model_validate({"manifests": "deploy/preview", "image": IMAGE, "ready": "/healthz",
                                                "ready_timeout": ready_timeout, **config})
        return PreviewRequest(
            preview_id=f"run-{pr}-1", repo_path=str(self.repo), head_sha=self.sha, config=preview,
            criteria=criteria if criteria is not None else [ITEMS_CRITERION], service=SERVICE, pr_number=pr,
        )

    def preview_name(self, pr: int = 7) -> str:
        return PreviewIdentity.create(service=SERVICE, pr=pr, sha=self.sha, ttl_s=60).name

    def preview_objects(self) -> list[str]:
        """Every host object spec2ship's labels mark, and every namespace left apart from the world's own."""
        found = []
        for (_, kind, namespace, name), obj in sorted(self.host.objects.items()):
            labels = obj["metadata"].get("labels") or {}
            if labels.get("app.kubernetes.io/managed-by") == "spec2ship" or (
                kind == "Namespace" and name not in ("default", "argocd")
            ):
                found.append(f"{kind} {namespace}/{name}".replace(" /", " "))
        return found


ITEMS_CRITERION = AcceptanceCriterion(
    id="items", http=HttpCheck(path="/items", status=200, body_contains="widget from the PR head")
)
