"""Prometheus metrics as an operator scrapes them, and the Grafana dashboard that reads them.

A real worker process serves /metrics (the Temporal runtime's Prometheus exporter) while it carries a run
through to its end; the scrape must hold every spec2ship metric the run produces, and every name the
dashboard queries must be one the scrape or the metric contract knows, so a renamed metric cannot leave
an empty panel behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

from doubles.processes import free_port, get, start, stop, wait_for_status
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import WorkflowEnvironment
from test_chart import MINIMAL  # the values the chart cannot default

from contracts import metrics
from contracts.agents import AgentChoice
from deploy.render import objects, render
from workers.runs import start_run
from workers.sample.repo import build_sample

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "spec2ship"
DASHBOARD = CHART / "dashboards" / "spec2ship.json"
# Set only once an incident of a merged change has been restored; a clean run cannot produce it.
NEEDS_AN_INCIDENT = {metrics.DORA_TIME_TO_RESTORE_SECONDS.name}
METRIC_NAME = re.compile(r"\b((?:spec2ship|temporal)_[a-z0-9_]+)\b")


def dashboard_expressions() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]
    queries += [var["query"]["query"] for var in board["templating"]["list"] if isinstance(var.get("query"), dict)]
    return queries


def dashboard_metric_names() -> set[str]:
    return {name for expr in dashboard_expressions() for name in METRIC_NAME.findall(expr)}


def series_names(exposition: str) -> set[str]:
    """Every sample name a scrape holds (histograms as their _bucket/_sum/_count series)."""
    return {sample.name for family in text_string_to_metric_families(exposition) for sample in family.samples}


def test_every_spec2ship_name_on_the_dashboard_is_a_declared_metric() -> None:
    declared = {m.exported for m in metrics.ALL} | {f"{m.name}_bucket" for m in metrics.ALL if m.kind == "histogram"}
    used = {name for name in dashboard_metric_names() if name.startswith("spec2ship_")}
    assert used and used <= declared, f"not declared in contracts/metrics.py: {sorted(used - declared)}"
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert len({p["id"] for p in panels}) == len(panels), "panel ids must be unique"


def test_the_dashboard_ships_in_a_config_map_grafana_picks_up() -> None:
    on = objects(render(CHART, {**MINIMAL, "metrics": {"dashboard": {"enabled": True}}}))
    [config_map] = [o for o in on if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-dashboard")]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["spec2ship.json"]) == json.loads(DASHBOARD.read_text())
    served = [o for o in on if o["kind"] in ("Deployment", "StatefulSet")
              and o["metadata"]["name"].endswith(("-worker", "-webhook"))]
    assert len(served) == 2
    for worker in served:
        template = worker["spec"]["template"]
        assert template["metadata"]["annotations"]["prometheus.io/port"] == "9464"
        env = {e["name"]: e.get("value") for e in template["spec"]["containers"][0]["env"]}
        assert env["SPEC2SHIP_METRICS_PORT"] == "9464"


def test_metrics_off_leaves_no_endpoint_no_annotations_and_no_dashboard() -> None:
    off = objects(render(CHART, {**MINIMAL, "metrics": {"enabled": False}}))
    assert not [o for o in off if o["metadata"]["name"].endswith("-dashboard")]
    for obj in off:
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        template: dict[str, Any] = obj["spec"]["template"]
        assert "prometheus.io/scrape" not in (template["metadata"].get("annotations") or {})
        for container in template["spec"]["containers"]:
            assert "SPEC2SHIP_METRICS_PORT" not in {e["name"] for e in container.get("env", [])}


async def test_a_worker_serves_every_metric_the_dashboard_reads_after_a_run(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    paths = build_sample(tmp_path)
    queue, port, log = f"metrics-{uuid.uuid4()}", free_port(), tmp_path / "worker.log"
    env = dict(os.environ, TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host,
               SPEC2SHIP_TASK_QUEUE=queue, SPEC2SHIP_METRICS_HOST="127.0.0.1")
    process = start(["worker", "--data-dir", str(tmp_path / "data"), "--metrics-port", str(port)], env, log)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        await asyncio.to_thread(wait_for_status, url, 200, process, log)
        coder = AgentChoice(coder=f"scripted:{paths['coder-greet.yaml']}")
        handle, _ = await start_run(dev_env.client, paths["greet-by-name.md"], paths["repo"], coder,
                                    task_queue=queue)
        status = await asyncio.wait_for(handle.result(), 240)
        assert status.state.value == "merged", (status, log.read_text()[-3000:])

        expected = {m.exported for m in metrics.ALL if m.name not in NEEDS_AN_INCIDENT}
        expected = {f"{name}_bucket" if name == metrics.STAGE_SECONDS.name else name for name in expected}
        seen: set[str] = set()
        for _ in range(50):  # gauges from the ledger workflow land a moment after the run ends
            answer = get(url)
            seen = series_names(answer.text) if answer is not None else set()
            if expected <= seen:
                break
            await asyncio.sleep(0.2)
        assert expected <= seen, f"missing from the scrape: {sorted(expected - seen)}"
        on_dashboard = dashboard_metric_names() - NEEDS_AN_INCIDENT
        assert on_dashboard <= seen, f"the dashboard queries names no scrape has: {sorted(on_dashboard - seen)}"
        text = get(url)
        assert text is not None and 'state="merged"' in text.text and 'service="greeter"' in text.text
    finally:
        stop(process)
