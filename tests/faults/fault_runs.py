"""One faulted run in a world of its own: a Temporal dev server, a `spec2ship worker` process, a repository
(the sample greeter on the local forge, or a repository on the fake GitHub), and what the run left behind
when it ended (`Ending`), taken before anything is stopped so that no graceful shutdown tidies up for it.

The sample greeter's spec is at L5 in its repository's policy: a run that meets no lasting fault merges.
The coder, reviewer and judge are scripted unless the case says otherwise, so every stage runs (write,
review agent, preview, validation agent).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from doubles.github_server import FakeGitHub
from fault_harness import (
    PREVIEW_MARKER,
    TOOL_MARKER,
    DevServer,
    GitShim,
    HistoryFacts,
    WorkerProcess,
    history_facts,
    marked_processes,
    merge_commits,
    processes_under,
    token_of,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from activities.forge.local import list_pull_requests
from contracts.agents import AgentChoice
from contracts.forge import ForgeKind, RepoRef
from contracts.names import STATUS
from contracts.runs import RunState, RunStatus
from workers.runs import submit_run
from workers.sample.repo import build_sample


@dataclass
class Ending:
    """What a run left when it ended: its status, its PRs and merges, and anything still running."""

    status: RunStatus
    pulls: list[str]  # "#1 merged"
    merges: list[str]  # merge commits on the default branch
    previews_running: list[int]
    commands_running: list[int]
    preview_records: list[str]
    history: HistoryFacts
    notes: list[str] = field(default_factory=list)  # what each fault point saw, for the matrix
    log: str = ""

    def assert_clean(self, states: Iterable[RunState], *, pulls: int = 1) -> None:
        """Ended as expected with `pulls` PRs, at most one merge (one exactly when merged), nothing left."""
        assert self.status.state in set(states), (self.status.state, self.status.reasons, self.log[-3000:])
        assert len(self.pulls) == pulls, self.pulls
        merged = self.status.state is RunState.merged
        assert len(self.merges) == (1 if merged else 0), self.merges
        assert sum(p.endswith(" merged") for p in self.pulls) == (1 if merged else 0), self.pulls
        assert self.previews_running == [], "a preview process outlived the run"
        assert self.commands_running == [], "an agent's command outlived the run"
        assert self.preview_records == [], "a preview record was left"

    def reason(self) -> str:
        return "; ".join(self.status.reasons)


async def ended(handle: WorkflowHandle[object, RunStatus], timeout: float) -> RunStatus:
    """The run's result within `timeout` s, asking again while the server is away (a restart)."""

    async def wait() -> RunStatus:
        while True:
            try:
                return await handle.result()
            except RPCError:
                await asyncio.sleep(0.5)

    return await asyncio.wait_for(wait(), timeout)


def _worker_env(address: str, queue: str, extra: Mapping[str, str]) -> dict[str, str]:
    """This machine's environment without any SPEC2SHIP_ setting of the test process's own, plus the run's."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SPEC2SHIP_", "TEMPORAL_"))}
    return {**base, "TEMPORAL_ADDRESS": address, "SPEC2SHIP_TASK_QUEUE": queue, **extra}


@dataclass
class LocalRun:
    """The sample greeter on the local forge, a worker on its own server, and the run once submitted."""

    name: str
    folder: Path
    dev: DevServer
    client: Client
    paths: dict[str, Path]
    worker: WorkerProcess
    shim: GitShim
    handle: WorkflowHandle[object, RunStatus] | None = None

    @property
    def repo(self) -> Path:
        return self.paths["repo"]

    @property
    def data(self) -> Path:
        return self.worker.data

    def spec(self, **replace: str) -> str:
        """greet-by-name.md, with texts replaced (a slower check, another model)."""
        text = self.paths["greet-by-name.md"].read_text()
        for old, new in replace.items():
            assert old in text, old
            text = text.replace(old, new)
        return text

    def script(self, name: str, turns: list[dict[str, object]]) -> Path:
        path = self.folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"model": f"scripted-{name}", "turns": turns}, sort_keys=False))
        return path

    async def submit(self, spec_text: str | None = None, agents: AgentChoice | None = None
                     ) -> WorkflowHandle[object, RunStatus]:
        paths = self.paths
        agents = agents or AgentChoice(coder=f"scripted:{paths['coder-greet.yaml']}",
                                       reviewer=f"scripted:{paths['reviewer-approve.yaml']}",
                                       judge=f"scripted:{paths['judge-fallback.yaml']}")
        self.handle = await submit_run(
            self.client, RepoRef(kind=ForgeKind.local, location=str(self.repo)),
            spec_text if spec_text is not None else self.spec(), "greet-by-name.md", agents,
            task_queue=self.worker.env["SPEC2SHIP_TASK_QUEUE"], workflow_id=f"faults-{self.name}-{uuid.uuid4().hex}")
        return self.handle

    async def ending(self, timeout: float = 420, notes: list[str] | None = None) -> Ending:
        assert self.handle is not None, "the run was not submitted"
        status = await ended(self.handle, timeout)
        pulls = [f"#{p.number} {p.state.value}" for p in list_pull_requests(self.repo)]
        return await _ending(self.client, self.handle, status, pulls, merge_commits(self.repo), self.data, notes,
                             self.worker.log_tail())


async def _ending(client: Client, handle: WorkflowHandle[object, RunStatus], status: RunStatus, pulls: list[str],
                  merges: list[str], data: Path, notes: list[str] | None, log: str) -> Ending:
    return Ending(
        status=status, pulls=pulls, merges=merges,
        previews_running=[p.pid for p in marked_processes(PREVIEW_MARKER, token_of(handle.id))],
        commands_running=[p.pid for p in processes_under(TOOL_MARKER, data)],
        preview_records=[p.name for p in (data / "previews").glob("*.json")],
        history=await history_facts(client, handle.id), notes=list(notes or []), log=log)


@contextlib.asynccontextmanager
async def local_run(folder: Path, name: str, env: Mapping[str, str] | None = None) -> AsyncIterator[LocalRun]:
    """A started server and sample repository; the worker is made but not started (a case may arm a fault
    first). Everything stops on the way out."""
    dev = DevServer(folder / "temporal")
    client = await dev.start()
    shim = GitShim(folder / "git-shim")
    worker = WorkerProcess(folder / "worker", shim.path_env(_worker_env(dev.address, f"faults-{name}", env or {})),
                           folder / "worker.log")
    try:
        yield LocalRun(name, folder, dev, client, build_sample(folder), worker, shim)
    finally:
        worker.stop()
        dev.stop()


# --- a repository on the fake GitHub ---------------------------------------------------------------

BOT = "spec2ship-bot"
README = "# shop\n\nThe shop service.\n"


def github_spec(service: str, *, check: str = "grep -q '/health' README.md") -> str:
    front = {
        "spec": 1, "title": "Document the health endpoint", "service": service, "team": "payments",
        "kind": "docs", "constraints": {"paths": ["README.md"]},
        "acceptance": [{"id": "readme-mentions-health", "run": check, "timeout": 60}],
    }
    return "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n" + textwrap.dedent("""\
        The README should tell people that `GET /health` answers 200 when the shop is up.
        """)


def github_coder() -> list[dict[str, object]]:
    written = README + "\n## Health\n\n`GET /health` answers 200 when the shop is up.\n"
    return [
        {"content": "Documenting /health.",
         "tool_calls": [{"name": "write_file", "arguments": {"path": "README.md", "content": written}}]},
        {"content": "The README documents /health."},
    ]


@dataclass
class GitHubRun:
    """A repository on the fake GitHub whose policy puts the shop at L5, and a worker that reaches it."""

    name: str
    folder: Path
    dev: DevServer
    client: Client
    fake: FakeGitHub
    full_name: str
    worker: WorkerProcess
    handle: WorkflowHandle[object, RunStatus] | None = None

    async def submit(self, spec_text: str) -> WorkflowHandle[object, RunStatus]:
        coder = self.folder / "coder.yaml"
        coder.write_text(yaml.safe_dump({"model": "scripted-coder", "turns": github_coder()}, sort_keys=False))
        self.handle = await submit_run(
            self.client, RepoRef(kind=ForgeKind.github, location=self.full_name), spec_text, "health.md",
            AgentChoice(coder=f"scripted:{coder}"), task_queue=self.worker.env["SPEC2SHIP_TASK_QUEUE"],
            workflow_id=f"faults-{self.name}-{uuid.uuid4().hex}")
        return self.handle

    def pr_number(self) -> int | None:
        pulls = self.fake.pulls(self.full_name)
        return pulls[0].number if pulls else None

    async def ending(self, timeout: float = 420, notes: list[str] | None = None) -> Ending:
        assert self.handle is not None, "the run was not submitted"
        status = await ended(self.handle, timeout)
        pulls = [f"#{p.number} {'merged' if p.pull and p.pull.merged else p.state}"
                 for p in self.fake.pulls(self.full_name)]
        bare = self.fake.repo(self.full_name).bare
        merges = subprocess.run(["git", "--git-dir", str(bare), "log", "--merges", "--format=%H %s", "main"],
                                capture_output=True, text=True, check=True).stdout.splitlines()
        return await _ending(self.client, self.handle, status, pulls, merges, self.worker.data, notes,
                             self.worker.log_tail())


@contextlib.asynccontextmanager
async def github_run(folder: Path, name: str) -> AsyncIterator[GitHubRun]:
    """A fake GitHub with one repository (the shop at L5), a server, and a worker (not started)."""
    dev = DevServer(folder / "temporal")
    client = await dev.start()
    with FakeGitHub(root=folder / "github") as fake:
        token = fake.add_token(BOT)
        full_name = f"acme/shop-{name}"
        service = f"shop-{name}"
        fake.add_repo(full_name, {"README.md": README, ".spec2ship/policy.yaml": yaml.safe_dump(
            {"default_autonomy": "L2", "services": {service: {"autonomy": "L5"}}})})
        fake.add_collaborator(full_name, BOT, "write")
        env = _worker_env(dev.address, f"faults-{name}", {
            "SPEC2SHIP_GITHUB_URL": fake.api_url, "SPEC2SHIP_GITHUB_TOKEN": token,
            "SPEC2SHIP_GITHUB_THROTTLE": "false"})
        worker = WorkerProcess(folder / "worker", env, folder / "worker.log")
        try:
            yield GitHubRun(name, folder, dev, client, fake, full_name, worker)
        finally:
            worker.stop()
            dev.stop()


async def stage_reached(handle: WorkflowHandle[object, RunStatus], stage: str, timeout: float = 180) -> None:
    """Until the run's status says it is in `stage` (or past it, which fails: the moment was missed)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status: RunStatus = await handle.query(STATUS, result_type=RunStatus)
        except RPCError as error:  # just after a server restart a query can time out while the worker reconnects
            assert time.monotonic() < deadline, f"gave up waiting for stage {stage}; the status query failed: {error}"
            await asyncio.sleep(0.5)
            continue
        if status.stage == stage:
            return
        assert status.state is RunState.running, f"the run ended before {stage}: {status.state} {status.reasons}"
        assert time.monotonic() < deadline, f"gave up waiting for stage {stage}; the run is at {status.stage}"
        await asyncio.sleep(0.1)
