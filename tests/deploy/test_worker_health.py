"""The worker processes as a pod runs them: probes over HTTP, and a clean stop on SIGTERM.

Each command runs as a real process against the real dev server. SIGTERM goes to the process alone
(as the container's init forwards it), never to its group, so commands an activity started are not
signalled behind the worker's back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from doubles.processes import free_port, get, start, stop, wait_for_status
from doubles.tiny_model import build_tiny_model, skip_without_gpu_extra
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from contracts.agents import AgentChoice
from workers.health import HealthState
from workers.runs import start_run
from workers.sample.repo import build_sample

GRACE_S = 30


def _env(dev_env: WorkflowEnvironment, queue: str, **extra: str) -> dict[str, str]:
    return dict(os.environ, TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host,
                SPEC2SHIP_TASK_QUEUE=queue, **extra)


async def _probe_then_sigterm(process: subprocess.Popen[bytes], port: int, log: Path, within_s: float) -> None:
    """Both probes answer 200, an unknown path 404; SIGTERM ends the process with 0 within `within_s`."""
    base = f"http://127.0.0.1:{port}"
    live = await asyncio.to_thread(wait_for_status, f"{base}/healthz", 200, process, log)
    ready = await asyncio.to_thread(wait_for_status, f"{base}/readyz", 200, process, log)
    assert live.json()["status"] == "ok" and ready.json()["status"] == "ok", (live.text, ready.text)
    missing = get(f"{base}/metrics-or-anything")
    assert missing is not None and missing.status_code == 404
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(process.wait, within_s)
    assert code == 0, log.read_text()[-3000:]
    assert time.monotonic() - started < within_s


async def test_the_cpu_worker_answers_its_probes_and_stops_cleanly_on_sigterm(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    port, log = free_port(), tmp_path / "worker.log"
    process = start(["worker", "--data-dir", str(tmp_path / "data"), "--health-port", str(port),
                     "--shutdown-grace", str(GRACE_S)], _env(dev_env, f"health-{uuid.uuid4()}"), log)
    try:
        # Idle: nothing is in flight, so the stop is quick, far inside the grace period.
        await _probe_then_sigterm(process, port, log, within_s=15)
    finally:
        stop(process)


async def test_the_webhook_server_answers_its_probes_and_stops_cleanly_on_sigterm(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    port, log, spool = free_port(), tmp_path / "webhook.log", tmp_path / "spool.sqlite3"
    env = _env(dev_env, f"health-{uuid.uuid4()}", SPEC2SHIP_WEBHOOK_SECRET="probe-test-secret",
               SPEC2SHIP_WEBHOOK_SPOOL=str(spool))
    process = start(["webhook", "serve", "--host", "127.0.0.1", "--port", str(port), "--shutdown-grace", "5"],
                    env, log)
    try:
        base = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(wait_for_status, f"{base}/healthz", 200, process, log)
        ready = await asyncio.to_thread(wait_for_status, f"{base}/readyz", 200, process, log)
        assert ready.json()["spool"]["pending"] == 0  # ready: deliveries can be spooled
        assert spool.exists()
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 10)
        # uvicorn shuts down gracefully, then re-raises the signal it caught, so the exit status is SIGTERM's.
        assert code in (0, -signal.SIGTERM), log.read_text()[-3000:]
        assert "Application shutdown complete" in log.read_text(), log.read_text()[-3000:]
        assert time.monotonic() - started < 10
    finally:
        stop(process)


async def test_the_gpu_worker_answers_its_probes_and_stops_cleanly_on_sigterm(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    skip_without_gpu_extra()
    tiny = build_tiny_model(tmp_path / "tiny")
    port, log = free_port(), tmp_path / "gpu-worker.log"
    process = start(["gpu-worker", "--model", str(tiny), "--queue", f"gpu-{uuid.uuid4()}", "--health-port",
                     str(port), "--shutdown-grace", str(GRACE_S)],
                    _env(dev_env, f"health-{uuid.uuid4()}", SPEC2SHIP_DATA_DIR=str(tmp_path / "data")), log)
    try:
        await _probe_then_sigterm(process, port, log, within_s=15)
    finally:
        stop(process)


@pytest.mark.slow
async def test_sigterm_drains_the_worker_and_the_activity_in_flight_completes(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """SIGTERM while a preview's acceptance check runs: readiness turns false at once, liveness stays true,
    the check finishes (completed in the history, not cancelled), then the worker exits 0."""
    paths = build_sample(tmp_path)
    spec = tmp_path / "slow.md"
    spec.write_text(paths["greet-by-name.md"].read_text().replace(
        "run: python -m unittest -q", "run: sleep 6 && python -m unittest -q"))
    queue = f"drain-{uuid.uuid4()}"
    port, log, data = free_port(), tmp_path / "worker.log", tmp_path / "worker"
    process = start(["worker", "--data-dir", str(data), "--health-port", str(port), "--shutdown-grace",
                     str(GRACE_S)], _env(dev_env, queue), log)
    base = f"http://127.0.0.1:{port}"
    client: Client = dev_env.client
    handle = None
    try:
        await asyncio.to_thread(wait_for_status, f"{base}/readyz", 200, process, log)
        coder = AgentChoice(coder=f"scripted:{paths['coder-greet.yaml']}")
        handle, _ = await start_run(client, spec, paths["repo"], coder, task_queue=queue,
                                    workflow_id=f"drain-{uuid.uuid4()}")
        records = data / "previews"
        deadline = time.monotonic() + 120
        while not list(records.glob("*.json")) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert list(records.glob("*.json")), f"no preview started; worker log:\n{log.read_text()[-2000:]}"
        await asyncio.sleep(1.0)  # the checks are running: `sleep 6` has about 5 s to go

        process.send_signal(signal.SIGTERM)
        draining = await asyncio.to_thread(wait_for_status, f"{base}/readyz", 503, process, log, 5)
        assert "draining" in draining.json()["reason"]
        live = get(f"{base}/healthz")
        assert live is not None and live.status_code == 200, "liveness must hold while the drain runs"
        assert await asyncio.to_thread(process.wait, GRACE_S + 10) == 0, log.read_text()[-3000:]

        scheduled: dict[int, str] = {}
        endings: dict[str, list[str]] = {}
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
            for kind, attrs in (("completed", "activity_task_completed_event_attributes"),
                                ("failed", "activity_task_failed_event_attributes"),
                                ("timed out", "activity_task_timed_out_event_attributes"),
                                ("canceled", "activity_task_canceled_event_attributes")):
                if event.HasField(attrs):
                    name = scheduled[getattr(event, attrs).scheduled_event_id]
                    endings.setdefault(name, []).append(kind)
        assert endings.get("validate_in_preview") == ["completed"], endings
    finally:
        stop(process)
        if handle is not None:
            await handle.terminate("test over")


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_readiness_follows_polling_temporal_and_the_drain_and_liveness_follows_the_loop() -> None:
    clock = _Clock()
    state = HealthState(stall_after_s=60, temporal_stale_after_s=30, clock=clock)
    assert state.liveness().ok
    assert state.readiness().reason == "workers not started yet"
    state.polling(["spec2ship"])
    assert not state.readiness().ok and "spec2ship" in state.readiness().reason
    state.polling([])
    assert state.readiness().reason == "Temporal not checked yet"
    state.temporal_answered()
    assert state.readiness().ok
    clock.now += 31  # no successful Temporal check for longer than allowed
    assert not state.readiness().ok and "no successful Temporal health check" in state.readiness().reason
    state.temporal_answered()
    state.temporal_failed("Temporal health check failed: RPCError: unavailable")
    assert state.readiness().reason.startswith("Temporal health check failed")
    state.temporal_answered()
    state.beat()
    state.drain()
    assert not state.readiness().ok and state.liveness().ok
    clock.now += 61  # the loop stopped beating
    assert not state.liveness().ok and "61 s" in state.liveness().reason
