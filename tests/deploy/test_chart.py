"""The Helm chart, rendered offline by Helm's own Go code (helm-python-sdk), held to published schemas.

Each values file under the chart's ci/ (the chart-testing convention) is rendered, linted strictly, and
every object is validated: core kinds with kubernetes-validate in strict mode (unknown fields fail),
KEDA's ScaledObject against the CRD's published schema. The containers must run real `spec2ship`
subcommands with options the CLI accepts, and every Secret key the chart reads must be documented.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import typer.main
import yaml

from activities.agents.registry import parse_registry
from activities.config import StoreSettings
from activities.workspace.mcp_tools import McpSettings
from contracts.github import OWNER_PATTERN, REPO_PATTERN
from deploy.render import RELEASE, RenderError, load_values, main, objects, render
from deploy.render import lint as lint_chart
from rules.policy import parse_policy
from workers.cli import app

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "spec2ship"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
DOCS = ROOT / "docs" / "kubernetes.md"
KEDA_SCHEMA = json.loads((Path(__file__).parent / "fixtures" / "keda.sh_scaledobject_v1alpha1.json").read_text())
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest the validator knows.
KUBE_VERSIONS = ["1.27.0", kubernetes_validate.latest_version()]
INIT_AND_CLI = ["/usr/bin/tini", "--", "spec2ship"]
MINIMAL = {"webhook": {"secret": {"secretName": "hook"}}, "store": {"s3": {
    "bucket": "blobs", "prefix": "spec2ship/", "endpoint": "", "region": "", "pathStyle": "auto",
    "credentials": {"secretName": "", "accessKeyIdKey": "access-key-id", "secretAccessKeyKey": "secret-access-key"}}}}


@pytest.fixture(scope="module", params=CI_VALUES, ids=lambda path: path.stem)
def rendered(request: pytest.FixtureRequest) -> tuple[Path, list[dict[str, Any]]]:
    values_file: Path = request.param
    return values_file, objects(render(CHART, load_values([values_file])))


POD_OWNERS = ("Deployment", "StatefulSet", "Job")


def containers(objs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for obj in objs:
        if obj["kind"] in POD_OWNERS:
            for container in obj["spec"]["template"]["spec"]["containers"]:
                yield obj, container


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objs if obj["kind"] == kind]


def named(objs: list[dict[str, Any]], kind: str, suffix: str) -> dict[str, Any]:
    """The one object of `kind` named `<release><suffix>` (the release's name is also the chart's)."""
    [found] = [obj for obj in by_kind(objs, kind) if obj["metadata"]["name"] == RELEASE + suffix]
    return found


def test_the_ci_values_files_cover_defaults_gpu_with_keda_and_temporal_cloud() -> None:
    names = {path.stem for path in CI_VALUES}
    assert {"defaults-values", "gpu-keda-values", "cloud-apikey-values"} <= names
    gpu_keda = load_values([CHART / "ci" / "gpu-keda-values.yaml"])
    assert gpu_keda["gpuWorker"]["enabled"] and gpu_keda["keda"]["enabled"]
    cloud = load_values([CHART / "ci" / "cloud-apikey-values.yaml"])
    assert cloud["temporal"]["apiKey"]["secretName"]
    assert cloud["temporal"]["address"].endswith((".api.temporal.io:7233", ".tmprl.cloud:7233"))


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda path: path.stem)
def test_the_chart_lints_clean_in_strict_mode(values_file: Path) -> None:
    assert lint_chart(CHART, load_values([values_file])) == []


def test_every_object_passes_kubernetes_validate_in_strict_mode(rendered: tuple[Path, list[dict[str, Any]]]) -> None:
    _, objs = rendered
    core = [obj for obj in objs if not obj["apiVersion"].startswith("keda.sh/")]
    assert core
    for version in KUBE_VERSIONS:
        for obj in core:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{obj['kind']} {obj['metadata']['name']} is invalid for Kubernetes {version}: {error}")


def test_strict_validation_catches_an_unknown_field() -> None:
    """The validator itself refuses a misspelt field, so the test above can fail."""
    objs = objects(render(CHART, MINIMAL))
    deployment = json.loads(json.dumps(named(objs, "Deployment", "-worker")))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[-1], strict=True)


def test_keda_objects_match_the_published_crd_schema(rendered: tuple[Path, list[dict[str, Any]]]) -> None:
    values_file, objs = rendered
    values = load_values([values_file])
    scaled = by_kind(objs, "ScaledObject")
    if not values.get("keda", {}).get("enabled"):
        assert scaled == [] and by_kind(objs, "TriggerAuthentication") == []
        return
    deployments = {obj["metadata"]["name"]: obj for obj in by_kind(objs, "Deployment")}
    assert len(scaled) == 1 + bool(values.get("gpuWorker", {}).get("enabled"))
    for obj in scaled:
        jsonschema.validate(obj, KEDA_SCHEMA)
        target = deployments[obj["spec"]["scaleTargetRef"]["name"]]
        assert "replicas" not in target["spec"], "KEDA owns the replica count; the chart must not fight it"
        [trigger] = obj["spec"]["triggers"]
        assert trigger["type"] == "temporal"
        meta = trigger["metadata"]
        assert meta["endpoint"] == values.get("temporal", {}).get("address", "temporal-frontend.temporal.svc."
                                                                           "cluster.local:7233")
        # The queue KEDA watches is the one the scaled Deployment polls.
        args = target["spec"]["template"]["spec"]["containers"][0]["args"]
        if args[0] == "gpu-worker":
            assert meta["taskQueue"] == args[args.index("--queue") + 1] and meta["queueTypes"] == "activity"
        else:
            env = {e["name"]: e.get("value") for e in target["spec"]["template"]["spec"]["containers"][0]["env"]}
            assert meta["taskQueue"] == env["SPEC2SHIP_TASK_QUEUE"]
        if values.get("temporal", {}).get("apiKey", {}).get("secretName"):
            assert meta["apiKeyFromEnv"] == "TEMPORAL_API_KEY"
            env_names = {e["name"] for e in target["spec"]["template"]["spec"]["containers"][0]["env"]}
            assert "TEMPORAL_API_KEY" in env_names, "KEDA resolves the key from the target container's env"
    auths = by_kind(objs, "TriggerAuthentication")
    if values.get("temporal", {}).get("tls", {}).get("enabled"):
        # No published schema for TriggerAuthentication is at hand: check the scaler's documented parameters.
        [auth] = auths
        assert {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]} <= {"cert", "key", "ca", "keyPassword"}
        assert all(t["authenticationRef"]["name"] == auth["metadata"]["name"]
                   for obj in scaled for t in obj["spec"]["triggers"])
    else:
        assert auths == []


def test_the_keda_schema_refuses_a_misspelt_field() -> None:
    objs = objects(render(CHART, {**MINIMAL, "keda": {"enabled": True}}))
    scaled = json.loads(json.dumps(by_kind(objs, "ScaledObject")[0]))
    scaled["spec"]["minReplicas"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, KEDA_SCHEMA)


def _resolve(args: list[str]) -> str:
    """Parse `args` with the CLI's own click tree, as `spec2ship ARGS` would; return the command path."""
    command: Any = typer.main.get_command(app)
    path: list[str] = []
    rest = list(args)
    while hasattr(command, "commands"):
        assert rest and rest[0] in command.commands, f"{' '.join(['spec2ship', *path, *rest[:1]])}: no such command"
        path.append(rest.pop(0))
        command = command.commands[path[-1]]
    command.make_context(" ".join(path), rest)  # raises on an unknown option, a bad value or a missing one
    return " ".join(path)


def test_every_container_runs_a_real_cli_subcommand_with_options_it_accepts(
    rendered: tuple[Path, list[dict[str, Any]]],
) -> None:
    _, objs = rendered
    seen = set()
    for obj, container in containers(objs):
        assert container["command"] == INIT_AND_CLI, (obj["metadata"]["name"], container["command"])
        seen.add(_resolve([str(arg) for arg in container["args"]]))
    assert {"worker", "webhook serve", "setup"} <= seen


def test_the_subcommand_check_refuses_what_the_cli_refuses() -> None:
    with pytest.raises(AssertionError, match="no such command"):
        _resolve(["wroker"])
    with pytest.raises(Exception, match="No such option"):
        _resolve(["worker", "--healthport", "8080"])
    with pytest.raises(Exception, match="valid integer"):
        _resolve(["worker", "--health-port", "eighty"])


def _secret_keys(objs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(where, key) for every Secret key the objects read: env refs, secret volumes, KEDA's auth refs."""
    keys: set[tuple[str, str]] = set()
    for _, container in containers(objs):
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                keys.add((env["name"], ref["key"]))
    for obj in objs:
        if obj["kind"] in POD_OWNERS:
            for volume in obj["spec"]["template"]["spec"].get("volumes", []):
                for item in volume.get("secret", {}).get("items", []):
                    keys.add((volume["name"], item["key"]))
        if obj["kind"] == "TriggerAuthentication":
            for ref in obj["spec"]["secretTargetRef"]:
                keys.add((f"keda {ref['parameter']}", ref["key"]))
    return keys


def _documented_secret_keys() -> set[str]:
    """The backquoted keys in the secret table of docs/kubernetes.md (its rows start with `| secret |`)."""
    section = DOCS.read_text().split("## Secrets", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`([^`]+)`", section))


def test_every_secret_key_the_chart_reads_is_documented(rendered: tuple[Path, list[dict[str, Any]]]) -> None:
    values_file, objs = rendered
    documented = _documented_secret_keys()
    values = load_values([values_file])
    # Keys named by the operator (model keys, extra env) are documented by the values that name them.
    own = set(values.get("modelKeys", {}).get("keys", [])) | {e["key"] for e in values.get("extraSecretEnv", [])}
    missing = sorted(f"{key} ({where})" for where, key in _secret_keys(objs) if key not in documented | own)
    assert missing == [], f"Secret keys the chart reads but {DOCS.name} does not document: {missing}"
    # Nothing secret is ever a literal value in a manifest.
    for _, container in containers(objs):
        for env in container.get("env", []):
            if re.search(r"(KEY|TOKEN|SECRET|PASSWORD)$", env["name"]) and not env["name"].endswith("_FILE"):
                mounted = str(env.get("value", "")).startswith("/etc/spec2ship/")  # a path to a mounted Secret
                assert "valueFrom" in env or mounted, f"{env['name']} is given as a literal value"


def test_every_worker_drains_within_its_termination_grace_period(rendered: tuple[Path, list[dict[str, Any]]]) -> None:
    _, objs = rendered
    for deployment in by_kind(objs, "Deployment") + by_kind(objs, "StatefulSet"):
        pod = deployment["spec"]["template"]["spec"]
        args = [str(arg) for arg in pod["containers"][0]["args"]]
        grace = float(args[args.index("--shutdown-grace") + 1])
        assert pod["terminationGracePeriodSeconds"] > grace, deployment["metadata"]["name"]
        container = pod["containers"][0]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert ports["metrics"] == 9464, "every pod reserves the metrics port"
        if args[0] in ("worker", "gpu-worker"):
            health = int(args[args.index("--health-port") + 1])
            assert ports["health"] == health
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        # Read-only root, non-root user, writable places on volumes.
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert {"/data", "/tmp"} <= {mount["mountPath"] for mount in container["volumeMounts"]}


def test_the_config_map_holds_what_the_workers_parse(rendered: tuple[Path, list[dict[str, Any]]]) -> None:
    _, objs = rendered
    config = named(objs, "ConfigMap", "-config")["data"]
    registry = parse_registry(config["spec2ship.yaml"], source="spec2ship.yaml")
    McpSettings.model_validate(yaml.safe_load(config["mcp.yaml"]) or {})
    worker = named(objs, "Deployment", "-worker")["spec"]["template"]["spec"]["containers"][0]
    env_names = {env["name"] for env in worker["env"]}
    for entry in registry.models:
        if entry.api_key_env:
            assert entry.api_key_env in env_names, f"model {entry.name} reads {entry.api_key_env}; the worker lacks it"
    if "policy-defaults.yaml" in config:  # what load_spec lays each repository's policy over
        parse_policy(None, config["policy-defaults.yaml"], defaults_name="policy-defaults.yaml")
        assert "SPEC2SHIP_POLICY_DEFAULTS" in env_names
    else:
        assert "SPEC2SHIP_POLICY_DEFAULTS" not in env_names


def test_every_worker_reaches_the_same_blob_store(rendered: tuple[Path, list[dict[str, Any]]],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent loop hands conversations between workers by reference: CPU and GPU workers must name one store,
    in settings the workers accept; a folder store is a shared volume, never a pod's own data folder."""
    _, objs = rendered
    stores = []
    for deployment in by_kind(objs, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        if container["args"][0] not in {"worker", "gpu-worker"}:
            continue
        env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]
               if e["name"].startswith("SPEC2SHIP_STORE")}
        stores.append(env)
        for name in [name for name in os.environ if name.startswith("SPEC2SHIP_STORE")]:
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value if isinstance(value, str) else "from-a-secret")
        settings = StoreSettings.from_env()
        if settings.backend == "folder":
            [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == settings.folder]
            [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
            assert volume["persistentVolumeClaim"]["claimName"], "a folder store must be a shared claim"
        else:
            assert settings.bucket
    assert stores and all(store == stores[0] for store in stores)


def test_the_gpu_worker_has_its_own_queue_gpus_and_gpu_nodes() -> None:
    values = load_values([CHART / "ci" / "gpu-keda-values.yaml"])
    objs = objects(render(CHART, values))
    gpu = named(objs, "Deployment", "-gpu-worker")["spec"]["template"]["spec"]
    container = gpu["containers"][0]
    assert container["args"][:5] == ["gpu-worker", "--model", "tiny", "--queue", "gpu-inference"]
    assert container["image"].endswith("-gpu")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu["tolerations"]
    assert not any(obj["metadata"]["name"].endswith("-gpu-worker")
                   for obj in objects(render(CHART, MINIMAL))), "the GPU worker is off unless enabled"


def test_the_webhook_is_replicated_behind_a_service_and_a_disruption_budget() -> None:
    objs = objects(render(CHART, load_values([CHART / "ci" / "cloud-apikey-values.yaml"])))
    webhook = named(objs, "StatefulSet", "-webhook")
    assert webhook["spec"]["replicas"] == 2
    pdb = named(objs, "PodDisruptionBudget", "-webhook")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == webhook["spec"]["selector"]["matchLabels"]
    service = named(objs, "Service", "-webhook")
    assert service["spec"]["selector"] == webhook["spec"]["selector"]["matchLabels"]
    governing = named(objs, "Service", webhook["spec"]["serviceName"].removeprefix(RELEASE))
    assert governing["spec"]["clusterIP"] == "None"
    [rule] = named(objs, "Ingress", "-webhook")["spec"]["rules"]
    assert rule["host"] == "spec2ship.example.com"
    assert [path["path"] for path in rule["http"]["paths"]] == ["/webhooks/github"]


def _spool(webhook: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Where the webhook's container keeps its spool, and the mount that holds it."""
    container = webhook["spec"]["template"]["spec"]["containers"][0]
    path = next(e["value"] for e in container["env"] if e["name"] == "SPEC2SHIP_WEBHOOK_SPOOL")
    [mount] = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"].rstrip("/") + "/")]
    return path, mount


def test_each_webhook_replica_keeps_its_spool_on_a_volume_claim_of_its_own() -> None:
    objs = objects(render(CHART, load_values([CHART / "ci" / "selfhosted-mtls-values.yaml"])))
    webhook = named(objs, "StatefulSet", "-webhook")
    path, mount = _spool(webhook)
    [claim] = webhook["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == mount["name"]
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast-ssd",
                             "resources": {"requests": {"storage": "2Gi"}}}
    assert mount["name"] not in {v["name"] for v in webhook["spec"]["template"]["spec"]["volumes"]}
    assert not mount.get("readOnly") and path.endswith(".sqlite3")
    env = {e["name"]: e.get("value") for e in webhook["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SPEC2SHIP_WEBHOOK_DRAIN_CONCURRENCY"] == "4"


def test_without_persistence_the_spool_is_an_empty_dir() -> None:
    objs = objects(render(CHART, load_values([CHART / "ci" / "gpu-keda-values.yaml"])))
    webhook = named(objs, "StatefulSet", "-webhook")
    _, mount = _spool(webhook)
    assert "volumeClaimTemplates" not in webhook["spec"]
    [volume] = [v for v in webhook["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
    assert volume == {"name": mount["name"], "emptyDir": {"sizeLimit": "1Gi"}}


def test_the_chart_checks_repository_names_as_the_code_does() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    repos = schema["properties"]["setup"]["properties"]["factory"]["properties"]["repos"]
    assert repos["items"]["pattern"] == f"^{OWNER_PATTERN}/{REPO_PATTERN}$"


def test_the_setup_job_is_a_post_install_and_upgrade_hook(rendered: tuple[Path, list[dict[str, Any]]]) -> None:
    values_file, objs = rendered
    job = named(objs, "Job", "-setup")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    repos = load_values([values_file]).get("setup", {}).get("factory", {}).get("repos", [])
    assert [args[i + 1] for i, arg in enumerate(args) if arg == "--factory-repo"] == repos


def test_rbac_grants_only_what_previews_need(rendered: tuple[Path, list[dict[str, Any]]]) -> None:
    values_file, objs = rendered
    previews = load_values([values_file]).get("previews", {}).get("kubernetes", {})
    roles = by_kind(objs, "ClusterRole") + by_kind(objs, "Role")
    if not previews.get("enabled"):
        assert roles == [] and by_kind(objs, "ClusterRoleBinding") == []
        assert named(objs, "ServiceAccount", "")["automountServiceAccountToken"] is False
        return
    allowed = {"namespaces", "services", "secrets", "applications", "helmreleases", "helmrepositories"}
    for role in roles:
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], role["metadata"]["name"]
            assert set(rule["resources"]) <= allowed
            if "secrets" in rule["resources"]:
                assert rule["verbs"] == ["get"], "Secrets are only ever read"
    cluster_secrets = any("secrets" in rule["resources"] for role in by_kind(objs, "ClusterRole")
                          for rule in role["rules"])
    assert cluster_secrets == (previews.get("kubeconfigSecrets") == "previewNamespaces")


@pytest.mark.parametrize(("values", "named_field"), [
    ({"worker": {"replicsa": 3}}, "replicsa"),
    ({"webhook": {"secret": {"secretName": ""}}}, "/webhook/secret/secretName"),
    ({"worker": {"replicas": "two"}}, "/worker/replicas"),
    ({"gpuWorker": {"enabled": True}}, "/gpuWorker/model"),
    ({"temporal": {"address": "https://temporal:7233"}}, "/temporal/address"),
    ({"setup": {"factory": {"repos": ["not-a-repo"]}}}, "/setup/factory/repos/0"),
    ({"setup": {"factory": {"repos": ["octo/.."]}}}, "/setup/factory/repos/0"),
    ({"webhook": {"drainConcurrency": 0}}, "/webhook/drainConcurrency"),
    ({"webhook": {"spool": {"persistence": {"enabled": True, "size": "lots", "storageClassName": "",
                                            "accessModes": ["ReadWriteOnce"]}}}}, "/webhook/spool/persistence/size"),
    ({"previews": {"kubernetes": {"gitops": "fluxcd"}}}, "/previews/kubernetes/gitops"),
    ({"store": {"s3": {**MINIMAL["store"]["s3"], "bucket": ""}}}, "/store/s3/bucket"),
    ({"store": {"backend": "folder"}}, "/store/folder/claim"),
    ({"store": {"retention": "a week"}}, "/store/retention"),
])
def test_a_mistyped_or_missing_value_fails_with_the_field_named(values: dict[str, Any], named_field: str) -> None:
    merged = load_values([]) | MINIMAL
    for key, value in values.items():
        merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    with pytest.raises(RenderError, match=re.escape(named_field)):
        render(CHART, merged)


def test_the_render_command_prints_the_manifests(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main([str(CHART), "--values", str(CHART / "ci" / "gpu-keda-values.yaml")]) == 0
    printed = list(yaml.safe_load_all(capsys.readouterr().out))
    assert {"Deployment", "ScaledObject", "Job"} <= {doc["kind"] for doc in printed if doc}
    broken = tmp_path / "broken.yaml"
    broken.write_text("worker:\n  replicas: many\n")
    assert main([str(CHART), "--values", str(broken)]) == 1
    assert "/worker/replicas" in capsys.readouterr().err
