"""The vCluster backend end to end: fake host and virtual API servers driven through the official client,
a controller double playing Argo CD or Flux and vCluster, and a local HTTP server playing the PR's image."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs

import pytest
from vcluster_world import IMAGE, KubeWorld, git

from activities.preview.local import PreviewError
from activities.preview.vcluster.backend import VClusterPreviewError
from activities.preview.vcluster.render import plan_preview
from contracts.evidence import CheckStatus
from rules.report import ReportInput, render_report
from specs.models import AcceptanceCriterion, HttpCheck

APPLY = "application/apply-patch+yaml"


async def test_vcluster_run_brings_up_probes_and_tears_down(world: KubeWorld) -> None:
    beats: list[str] = []
    evidence = await world.backend().run(world.request(), beats.append)
    assert evidence.start_error is None, evidence.start_error
    assert evidence.ready and evidence.backend == "vcluster"
    [result] = evidence.results
    assert result.status is CheckStatus.passed, result.summary
    assert "widget from the PR head" in result.evidence
    assert world.preview_objects() == [] and evidence.leftovers == []
    assert any("creating namespace" in beat for beat in beats)
    assert world.double.values_errors == []  # the controller double checked the values against the chart schema


async def test_vcluster_manifests_are_applied_with_server_side_apply_and_the_pr_image(argo_world: KubeWorld) -> None:
    world = argo_world
    evidence = await world.backend().run(world.request(), lambda _: None)
    assert evidence.ready, evidence.start_error
    writes = [r for r in world.virtual.requests if r[0] in ("POST", "PUT", "PATCH")]
    assert [r[1] for r in writes] == ["/apis/apps/v1/namespaces/default/deployments/inventory",
                                      "/api/v1/namespaces/default/services/inventory"]
    for method, _, query, content_type in writes:
        assert (method, content_type) == ("PATCH", APPLY)
        assert parse_qs(query)["fieldManager"] == ["spec2ship"]
    deployment = world.virtual.get("apps/v1", "Deployment", "default", "inventory")
    assert deployment is not None
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == IMAGE.replace("{sha}", world.sha)
    assert deployment["metadata"]["labels"]["spec2ship.dev/head-sha"] == world.sha
    host_writes = [r for r in world.host.requests if r[0] in ("POST", "PUT", "PATCH")]
    assert host_writes and all(r[3] == APPLY for r in host_writes)


async def test_vcluster_reaches_the_service_by_annotations_not_by_computed_name(argo_world: KubeWorld) -> None:
    world = argo_world
    world.double.knobs.hashed_names = True  # vCluster's real name is not the computed one...
    world.double.knobs.decoy_address = world.decoy_address  # ...and someone else's Service has the computed one
    evidence = await world.backend().run(world.request(), lambda _: None)
    assert evidence.ready, evidence.start_error
    assert evidence.results[0].status is CheckStatus.passed, evidence.results[0].summary
    assert world.decoy_hits == []
    assert "/items" in world.app_hits
    assert "behind host Service inventory-x-default-x-" in evidence.log_tail
    assert f"inventory-x-default-x-{world.preview_name()}" not in evidence.log_tail


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        ("controller", "not ready (controller): Argo CD reports health Progressing, sync OutOfSync"),
        ("kubeconfig", "not ready (kubeconfig): secret {name}/vc-{name} does not exist yet"),
        ("api", "not ready (api): the virtual cluster's /version does not answer: GET /version: 503"),
        ("pods", "not ready (pods): 1 of 1 pod(s) of Service default/inventory not ready: inventory-"),
        ("synced_service", "not ready (synced_service): no Service in host namespace {name} carries "
                           "vcluster.loft.sh/object-name=inventory"),
    ],
    ids=["controller", "kubeconfig", "api", "pods", "synced_service"],
)
async def test_vcluster_readiness_names_the_missing_condition(
    argo_world: KubeWorld, missing: str, expected: str
) -> None:
    world = argo_world
    knobs = world.double.knobs
    if missing == "controller":
        knobs.healthy = False
    elif missing == "kubeconfig":
        knobs.write_kubeconfig = False
    elif missing == "api":
        world.virtual.version_answers = False
    elif missing == "pods":
        knobs.pods_ready = False
    else:
        knobs.sync_services = False
    backend = world.backend(ready_timeout_s=0.5)
    evidence = await backend.run(world.request(ready_timeout=0.5), lambda _: None)
    assert not evidence.ready
    assert evidence.start_error is not None
    assert evidence.start_error.startswith(expected.format(name=world.preview_name())), evidence.start_error
    [result] = evidence.results
    assert result.status is CheckStatus.error
    assert result.summary.startswith("not run: the preview never became ready: not ready (")
    assert world.preview_objects() == []


async def test_vcluster_image_not_substituted_never_gets_ready(argo_world: KubeWorld) -> None:
    world = argo_world
    request = world.request(ready_timeout=0.5, image="ghcr.io/acme/other:{sha}")
    evidence = await world.backend().run(request, lambda _: None)
    assert evidence.start_error is not None
    assert "ImagePullBackOff" in evidence.start_error
    assert 'Back-off pulling image "ghcr.io/acme/inventory:latest"' in evidence.start_error


async def test_vcluster_teardown_after_a_failed_criterion(world: KubeWorld) -> None:
    wrong = AcceptanceCriterion(id="items", http=HttpCheck(path="/items", body_contains="gadget"))
    evidence = await world.backend().run(world.request(criteria=[wrong]), lambda _: None)
    assert evidence.ready
    assert evidence.results[0].status is CheckStatus.failed
    assert world.preview_objects() == [] and evidence.leftovers == []


async def test_vcluster_teardown_after_cancellation(argo_world: KubeWorld) -> None:
    world = argo_world
    world.double.knobs.pods_ready = False  # the run waits for pods that never come
    task = asyncio.create_task(world.backend().run(world.request(ready_timeout=60), lambda _: None))
    name = world.preview_name()
    async with asyncio.timeout(10):  # the preview is up and its pods are waiting
        while world.host.get("v1", "Secret", name, f"vc-{name}") is None or not world.virtual.list("v1", "Pod"):
            await asyncio.sleep(0.02)
    assert world.preview_objects() != []
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert world.preview_objects() == []


async def test_vcluster_teardown_after_a_platform_error(argo_world: KubeWorld) -> None:
    world = argo_world
    world.virtual.fail_writes = 500  # the virtual API server breaks while the manifests are applied
    with pytest.raises(VClusterPreviewError, match="applying Deployment default/inventory failed"):
        await world.backend().run(world.request(), lambda _: None)
    assert world.preview_objects() == []


async def test_vcluster_teardown_reports_what_it_could_not_delete(argo_world: KubeWorld) -> None:
    world = argo_world
    name = world.preview_name()
    world.host.refuse_delete[("Namespace", name)] = 403
    world.double.knobs.finalize = False  # Argo CD never finishes uninstalling either
    evidence = await world.backend(teardown_timeout_s=0.4).run(world.request(), lambda _: None)
    assert evidence.results[0].status is CheckStatus.passed
    assert evidence.leftovers == [
        f"Application argocd/{name}: still present (the controller has not finished uninstalling)",
        f"Namespace {name}: delete refused: 403 namespaces \"{name}\" cannot be deleted (refused by the test)",
    ]
    markdown = render_report(ReportInput(workflow_id="w", spec_title="t", service="inventory", team="t",
                                         preview=evidence))
    assert f"- not torn down: Application argocd/{name}" in markdown


async def test_vcluster_teardown_failure_is_noted_on_the_exception(argo_world: KubeWorld) -> None:
    world = argo_world
    world.virtual.fail_writes = 500
    world.host.refuse_delete[("Namespace", world.preview_name())] = 500
    with pytest.raises(VClusterPreviewError) as raised:
        await world.backend().run(world.request(), lambda _: None)
    assert any("NOT fully torn down" in note for note in getattr(raised.value, "__notes__", []))


async def test_vcluster_evidence_has_rollout_events_and_logs_cut_to_size(argo_world: KubeWorld) -> None:
    world = argo_world
    world.double.knobs.log_lines = 5000
    request = world.request().model_copy(update={"output_cap_bytes": 3000})
    evidence = await world.backend().run(request, lambda _: None)
    tail = evidence.log_tail
    assert len(tail.encode()) <= 3000
    assert "deployment default/inventory: 1/1 ready, 1 updated, Available=True" in tail
    assert "== events ==" in tail and "Pulled pod/inventory-" in tail
    assert "earlier bytes omitted]" in tail
    assert tail.rstrip().endswith(f"app log line 4999 for {IMAGE.replace('{sha}', world.sha)}")


async def test_vcluster_manifest_the_virtual_cluster_refuses_is_evidence(argo_world: KubeWorld) -> None:
    world = argo_world
    ingress = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web}\nspec: {}\n"
    (world.repo / "deploy" / "preview" / "ingress.yaml").write_text(ingress)
    git(world.repo, "add", ".")
    git(world.repo, "commit", "-q", "-m", "add an ingress")
    world.sha = git(world.repo, "rev-parse", "HEAD").strip()
    world.double.images[IMAGE.replace("{sha}", world.sha)] = world.app_address
    evidence = await world.backend().run(world.request(), lambda _: None)
    assert evidence.start_error is not None
    assert evidence.start_error.startswith("Ingress default/web from preview.manifests was refused: ")
    assert world.preview_objects() == []


async def test_vcluster_run_clears_an_earlier_preview_of_the_same_pr(argo_world: KubeWorld) -> None:
    world = argo_world
    host = world.host_api()
    older = world.backend().settings
    stale = plan_preview(config=world.request().config, service="inventory", pr=7, sha="b" * 40, manifest_files={},
                         settings=older, needs_service=False)
    for obj in stale.host_objects:
        host.apply(obj)
    other_pr = plan_preview(config=world.request().config, service="inventory", pr=8, sha="c" * 40,
                            manifest_files={}, settings=older, needs_service=False)
    for obj in other_pr.host_objects:
        host.apply(obj)
    evidence = await world.backend().run(world.request(), lambda _: None)
    assert evidence.ready
    names = {preview.split("/")[-1] for preview in world.preview_objects()}
    assert stale.identity.name not in names
    assert other_pr.identity.name in names  # another PR's preview is not this run's to remove


async def test_vcluster_requests_it_cannot_serve(argo_world: KubeWorld) -> None:
    world = argo_world
    with pytest.raises(PreviewError, match="needs the service and the PR number"):
        await world.backend().run(world.request().model_copy(update={"pr_number": None}), lambda _: None)
    no_manifests = world.request().model_copy(update={"config": None})
    evidence = await world.backend().run(no_manifests, lambda _: None)
    assert evidence.start_error == "preview.manifests is not set, so there is nothing to deploy and probe"
    assert evidence.results[0].status is CheckStatus.error
    assert world.host.requests == []  # nothing was created, nothing contacted
