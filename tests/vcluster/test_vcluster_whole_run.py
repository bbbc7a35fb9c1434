"""Whole SpecToShip runs on the `vcluster` preview backend, in the world of fake host and virtual clusters.

The Service vCluster syncs to the host leads to the PR head itself: when the controller double is asked
for the image `ghcr.io/acme/greeter:<sha>`, the sample service is started from that commit. A good change
merges, a bad one is rejected, a failed image build ends the preview with its reason, and after every
ending nothing spec2ship labelled is left in the host cluster.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from pipeline.pipeline_harness import running_workers, start_run, wait_for_decision
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from vcluster_world import KubeWorld

from activities.forge.local import list_pull_requests
from contracts.agents import AgentChoice
from contracts.names import CI_COMPLETED, STATUS
from contracts.runs import ForgeEvent, RunState, RunStatus
from workers.sample.repo import APP_V2, GREET_BY_NAME, build_sample, git

pytestmark = pytest.mark.slow

IMAGE = "ghcr.io/acme/greeter"
MANIFESTS = {
    "deployment.yaml": f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: greeter}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: greeter}}}}
  template:
    metadata: {{labels: {{app: greeter}}}}
    spec:
      containers:
        - name: app
          image: {IMAGE}:latest
          ports: [{{containerPort: 8080, name: http}}]
""",
    "service.yaml": """\
apiVersion: v1
kind: Service
metadata: {name: greeter}
spec:
  selector: {app: greeter}
  ports: [{name: http, port: 80, targetPort: http}]
""",
}


class PRHeads(dict[str, str]):
    """Image reference -> address, answered for any greeter commit by starting the service from that commit:
    the controller double's stand-in for a registry plus a kubelet."""

    def __init__(self, repo: Path, folder: Path) -> None:
        super().__init__()
        self.repo, self.folder = repo, folder
        self.processes: list[subprocess.Popen[bytes]] = []

    def _address(self, image: str) -> str | None:
        if not image.startswith(f"{IMAGE}:") or image.endswith(":latest"):
            return None
        if image not in self.keys():
            sha = image.rsplit(":", 1)[1]
            tree = self.folder / sha[:12]
            if not tree.exists():
                git(self.repo, "worktree", "add", "-q", "--detach", str(tree), sha)
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            self.processes.append(subprocess.Popen([sys.executable, "-m", "greeter", "--port", str(port)], cwd=tree))
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            super().__setitem__(image, f"127.0.0.1:{port}")
        return super().get(image)

    def __contains__(self, image: object) -> bool:
        return isinstance(image, str) and self._address(image) is not None

    def get(self, image: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self._address(image) or default

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def task_queue() -> str:
    return f"vcluster-run-{uuid.uuid4()}"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[KubeWorld, dict[str, Path], PRHeads]]:
    paths = build_sample(tmp_path / "sample")
    repo = paths["repo"]
    (repo / "deploy" / "preview").mkdir(parents=True)
    for name, text in MANIFESTS.items():
        (repo / "deploy" / "preview" / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "preview manifests")
    kube = KubeWorld("argocd", tmp_path / "kube").start()
    heads = PRHeads(repo, tmp_path / "heads")
    kube.double.images = heads
    try:
        yield kube, paths, heads
    finally:
        kube.stop()
        heads.stop()


def _spec(folder: Path, ci_check: str | None = None) -> Path:
    front, body = GREET_BY_NAME.split("---\n", 2)[1:]
    data = yaml.safe_load(front)
    data["constraints"] = {"paths": ["greeter/**", "tests/**"]}
    data["acceptance"] = [{"id": "hello-by-name", "http": {"path": "/hello?name=Ada", "body_contains": "Hello, Ada"}}]
    data["preview"] = {"manifests": "deploy/preview", "image": f"{IMAGE}:{{sha}}", "ready": "/healthz",
                       "ready_timeout": 20, **({"ci_check": ci_check} if ci_check else {})}
    spec = folder / "greet-on-kubernetes.md"
    spec.write_text("---\n" + yaml.safe_dump(data, sort_keys=False) + "---\n" + body)
    return spec


def _coder(folder: Path, app: str) -> AgentChoice:
    script = folder / "coder.yaml"
    script.write_text(yaml.safe_dump({"turns": [
        {"content": "Changing the greeting.", "tool_calls": [{"name": "write_file", "arguments": {
            "path": "greeter/app.py", "content": app}}]},
        {"content": "Done."}]}))
    return AgentChoice(coder=f"scripted:{script}")


async def _announce_build(client: Client, handle_id: str, check: str, conclusion: str) -> None:
    """What the webhook does when the CI check on the PR head completes."""
    handle = client.get_workflow_handle(handle_id)
    for _ in range(600):
        status: RunStatus = await handle.query(STATUS, result_type=RunStatus)
        if status.pr is not None:
            await handle.signal(CI_COMPLETED, ForgeEvent(kind="ci_completed", name=check, conclusion=conclusion,
                                                         head_sha=status.pr.head_sha))
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the run never opened its PR")


async def test_vcluster_backend_merges_a_good_change_and_tears_down(
        dev_client: Client, task_queue: str, tmp_path: Path, world: tuple[KubeWorld, dict[str, Path], PRHeads]) -> None:
    kube, paths, heads = world
    async with running_workers(dev_client, tmp_path / "data", task_queue, preview=kube.backend()):
        handle = await start_run(dev_client, task_queue, paths["repo"], _spec(tmp_path, ci_check="build-image"),
                                 _coder(tmp_path, APP_V2))
        await _announce_build(dev_client, handle.id, "build-image", "success")
        status = await wait_for_decision(handle)
    assert status.state is RunState.merged, status.reasons
    assert [(c.id, c.status.value) for c in status.checks] == [("hello-by-name", "passed"),
                                                                ("ci:build-image", "passed")]
    assert len(heads.processes) == 1, "the service ran the PR head's image"
    assert kube.preview_objects() == [], "the preview was not torn down"
    assert list_pull_requests(paths["repo"])[0].state == "merged"


async def test_vcluster_backend_rejects_a_bad_change_and_tears_down(
        dev_client: Client, task_queue: str, tmp_path: Path, world: tuple[KubeWorld, dict[str, Path], PRHeads]) -> None:
    kube, paths, _heads = world
    broken = APP_V2.replace('f"Hello, {name}"', '"Hello, nobody"')
    async with running_workers(dev_client, tmp_path / "data", task_queue, preview=kube.backend()):
        handle = await start_run(dev_client, task_queue, paths["repo"], _spec(tmp_path), _coder(tmp_path, broken))
        status = await wait_for_decision(handle)
    assert status.state is RunState.rejected, status.reasons
    assert any("deterministic checks failed: hello-by-name" in reason for reason in status.reasons), status.reasons
    assert kube.preview_objects() == []


async def test_vcluster_backend_does_not_deploy_when_the_image_build_failed(
        dev_client: Client, task_queue: str, tmp_path: Path, world: tuple[KubeWorld, dict[str, Path], PRHeads]) -> None:
    kube, paths, heads = world
    async with running_workers(dev_client, tmp_path / "data", task_queue, preview=kube.backend()):
        handle = await start_run(dev_client, task_queue, paths["repo"], _spec(tmp_path, ci_check="build-image"),
                                 _coder(tmp_path, APP_V2))
        await _announce_build(dev_client, handle.id, "build-image", "failure")
        status = await wait_for_decision(handle)
        evidence = await handle.query("evidence", result_type=str)
    assert status.state is RunState.rejected, status.reasons
    assert "CI check 'build-image' concluded failure" in evidence
    assert heads.processes == [] and kube.preview_objects() == [], "nothing may be deployed without an image"


async def test_vcluster_preview_of_a_killed_worker_is_torn_down_and_the_run_still_merges(
        own_dev_env: WorkflowEnvironment, tmp_path: Path, world: tuple[KubeWorld, dict[str, Path], PRHeads]) -> None:
    kube, paths, _heads = world
    queue = f"vcluster-crash-{uuid.uuid4()}"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": kube.host_url}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        "users": [{"name": "fake", "user": {"token": "fake"}}]}))
    env = dict(os.environ, TEMPORAL_ADDRESS=own_dev_env.client.service_client.config.target_host,
               SPEC2SHIP_TASK_QUEUE=queue, SPEC2SHIP_PREVIEW_BACKEND="vcluster", SPEC2SHIP_KUBECONFIG=str(kubeconfig),
               SPEC2SHIP_PREVIEW_REACH="port-forward", SPEC2SHIP_GITOPS_CONTROLLER="argocd")
    data, log = tmp_path / "worker", tmp_path / "worker.log"
    spec2ship = str(Path(sys.executable).parent / "spec2ship")

    def worker() -> subprocess.Popen[bytes]:
        return subprocess.Popen([spec2ship, "worker", "--data-dir", str(data)], env=env, stdout=log.open("ab"),
                                stderr=subprocess.STDOUT, start_new_session=True)

    async def diagnosis() -> str:
        """What a failure message needs: where the run is and what the worker said last."""
        try:
            where = await asyncio.wait_for(handle.query(STATUS, result_type=RunStatus), timeout=10)
        except Exception as error:  # a diagnosis reports whatever it finds
            where = error
        return f"run at {where}; preview objects {kube.preview_objects()}; worker log:\n{log.read_text()[-3000:]}"

    first, second = worker(), None
    try:
        handle = await start_run(own_dev_env.client, queue, paths["repo"], _spec(tmp_path), _coder(tmp_path, APP_V2))
        for _ in range(1200):  # a worker process starting on a busy machine can take a while
            if any(name.startswith("Namespace") for name in kube.preview_objects()):
                break
            await asyncio.sleep(0.1)
        assert kube.preview_objects(), f"no preview was created within 120 s; {await diagnosis()}"
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        assert kube.preview_objects(), "the killed worker's preview outlives it until someone reaps it"
        second = worker()
        try:  # both waits stay inside pytest-timeout's 300 s, so a stuck run fails with its diagnosis
            status: RunStatus = await asyncio.wait_for(handle.result(), timeout=150)
        except TimeoutError:
            raise AssertionError(f"the run did not end within 150 s of the restart; {await diagnosis()}") from None
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
    assert status.state is RunState.merged, (status.reasons, log.read_text()[-3000:])
    assert kube.preview_objects() == [], "a preview of the killed worker was left behind"
    assert [pr.state for pr in list_pull_requests(paths["repo"])] == ["merged"]
