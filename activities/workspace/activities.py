"""Activities that act in a workspace. They run on the worker-specific task queue of the worker that
holds the working copy (see `activities.config.workspace_queue`)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.forge.activities import forge_failure
from activities.forge.base import Forge, ForgeError
from activities.heartbeats import beating, heartbeating
from activities.preview.base import PreviewBackend
from activities.review.checks import deterministic_checks, risk_checks
from activities.review.erosion import FileChange, wanted
from activities.store import BlobStore, StoreError, open_store, store_failure
from activities.store.conversation import store_tool_output
from activities.workspace.dispatch import execute
from activities.workspace.tools import Workspace
from contracts.activities import WorkspaceCalls
from contracts.evidence import CriterionResult, PreviewEvidence
from contracts.forge import RepoRef
from contracts.gate import Policy
from contracts.workspace import (
    CheckChangeInput,
    CliAgentOutcome,
    DiffStat,
    ListMcpToolsInput,
    McpToolset,
    PrepareWorkspaceInput,
    PreviewInput,
    PublishBranchInput,
    RunCliAgentInput,
    RunToolInput,
    ToolGrant,
    ToolResult,
    WorkspaceDiff,
    WorkspaceRef,
)
from rules.protected import rules_for
from rules.redact import redact

DIFF_CAP = 60_000
# The risk checks read both versions of test and configuration files; larger ones are not source.
RISK_FILE_CAP = 1_000_000


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:120] or "run"


class WorkspaceActivities(WorkspaceCalls):
    """Bound to one worker: its data folder, its queue name, its preview backend and the blob store."""

    def __init__(self, data_dir: Path, queue: str, preview: PreviewBackend, store: BlobStore | None = None) -> None:
        self.data_dir = data_dir
        self.queue = queue
        self.preview = preview
        self.store = store or open_store(data_dir)

    def _forge(self, repo: RepoRef) -> Forge:
        """The forge, with GitHub working copies kept under this worker's own workspace folder."""
        from activities.forge.registry import forge_for

        return forge_for(repo, workdir_base=self.data_dir / "workspaces")

    @activity.defn(name="claim_workspace_queue")
    async def claim_workspace_queue(self) -> str:
        """Runs on the shared queue; whichever worker takes it lends its own queue to the run."""
        return self.queue

    @activity.defn(name="prepare_workspace")
    async def prepare_workspace(self, request: PrepareWorkspaceInput) -> WorkspaceRef:
        """Clone or resume the branch in a thread, heartbeating meanwhile, so a crash is noticed in seconds."""
        dest = self.data_dir / "workspaces" / safe_name(request.run_key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        forge = self._forge(request.repo)
        try:
            base_sha = await heartbeating(asyncio.to_thread(forge.prepare_workspace, request.branch, dest),
                                          f"preparing {request.branch}")
        except ForgeError as error:
            raise forge_failure(error) from error
        return WorkspaceRef(
            path=str(dest), task_queue=self.queue, branch=request.branch, base_sha=base_sha, repo=request.repo
        )

    @activity.defn(name="run_tool")
    def run_tool(self, request: RunToolInput) -> ToolResult:
        root = Path(request.workspace.path)
        if not root.is_dir():
            raise ApplicationError(f"workspace {root} is gone", type="WorkspaceLost", non_retryable=True)
        activity.logger.info("tool %s (step %d)", request.call.name, request.step)
        from activities.telemetry.genai import tool_attribution, tool_call_span

        # The GenAI `execute_tool` span, under the activity's own span from Temporal's tracing interceptor.
        with tool_call_span(request.call.name, tool_attribution(request.grant.role, request.attribution),
                            call_id=request.call.id, arguments=request.call.arguments) as span:
            result = execute(Workspace(root), request.call, request.grant)
            span.set_attribute("spec2ship.tool.status", result.status.value)
        if request.output_scope is None:
            return result
        try:
            return store_tool_output(self.store, request.output_scope, result)
        except StoreError as error:
            raise store_failure(error) from error

    @activity.defn(name="list_mcp_tools")
    def list_mcp_tools(self, request: ListMcpToolsInput) -> McpToolset:
        """Grants come from the worker's MCP configuration (never from a spec), read once per agent run."""
        from activities.workspace.mcp_tools import McpConfigError, mcp_tool_specs, settings_from_env

        try:
            settings = settings_from_env()
        except McpConfigError as error:
            raise ApplicationError(str(error), type="config", non_retryable=True) from error
        names = list(settings.grants.get(request.role.value, []))
        if not names:
            return McpToolset()
        grant = ToolGrant(role=request.role, tools=[], mcp_tools=names)
        return McpToolset(names=names, specs=mcp_tool_specs(Workspace(Path(request.workspace.path)), grant, settings))

    @activity.defn(name="run_cli_agent")
    async def run_cli_agent(self, request: RunCliAgentInput) -> CliAgentOutcome:
        """A CLI coding agent (Claude Code, Codex, aider) as one heartbeating, cancellable activity.

        Its edits are not governed call by call; the deterministic review checks (scope, size, secrets)
        judge the change it leaves, like any other coder's.
        """
        from activities.agents.cli_agent import CliAgent, CliAgentError
        from activities.agents.registry import ConfigError, UnknownModelError, load_registry

        try:
            entry = load_registry().get(request.model)
        except (ConfigError, UnknownModelError) as error:
            raise ApplicationError(str(error), type="config", non_retryable=True) from error
        log_path = self.data_dir / "logs" / f"{safe_name(request.log_name)}.log"
        try:
            result = await CliAgent(entry).run(workspace=Path(request.workspace.path), prompt=request.prompt,
                                               heartbeat=activity.heartbeat, log_path=log_path)
        except CliAgentError as error:
            raise ApplicationError(str(error), type="config", non_retryable=True) from error
        tail, _ = redact(result.log_tail[-4000:], Workspace(Path(request.workspace.path)).known_secrets())
        return CliAgentOutcome(exit_code=result.exit_code, timed_out=result.timed_out, log_tail=tail,
                               duration_s=round(result.duration_s, 2))

    @activity.defn(name="diff_workspace")
    @beating
    def diff_workspace(self, workspace: WorkspaceRef) -> WorkspaceDiff:
        diff, stat = _change(Path(workspace.path), workspace.base_sha)
        return WorkspaceDiff(diff=diff[:DIFF_CAP], truncated=len(diff) > DIFF_CAP, stat=stat)

    @activity.defn(name="check_change")
    @beating
    def check_change(self, request: CheckChangeInput) -> list[CriterionResult]:
        # The whole diff, not the copy capped for prompts: a credential past the cap must still be found.
        root, base = Path(request.workspace.path), request.workspace.base_sha
        diff, stat = _change(root, base)
        rules = request.risk or rules_for(Policy())
        changes = _file_changes(root, base, rules.test_patterns)
        return deterministic_checks(diff, stat, request.constraints) + risk_checks(stat.files, changes, rules)

    @activity.defn(name="publish_branch")
    @beating
    def publish_branch(self, request: PublishBranchInput) -> str:
        try:
            return self._forge(request.workspace.repo).publish_branch(
                Path(request.workspace.path), request.workspace.branch, request.message
            )
        except ForgeError as error:
            raise forge_failure(error) from error

    @activity.defn(name="validate_in_preview")
    async def validate_in_preview(self, request: PreviewInput) -> PreviewEvidence:
        """Bring up the PR head, run the http and run criteria, and always take the preview down.

        Heartbeats carry progress, and carry cancellation in: a cancelled run kills its preview.
        """
        preview_request = request.request.model_copy(update={"repo_path": request.workspace.path})
        return await self.preview.run(preview_request, activity.heartbeat)

    @activity.defn(name="remove_workspace")
    @beating
    def remove_workspace(self, workspace: WorkspaceRef) -> None:
        try:
            self._forge(workspace.repo).remove_workspace(Path(workspace.path))
        except ForgeError as error:
            raise forge_failure(error) from error


def _change(root: Path, base_sha: str) -> tuple[str, DiffStat]:
    """Everything in the working copy against the base: the full unified diff and its numbers."""
    _git(root, "add", "-A")
    diff = _git(root, "diff", "--cached", "--no-color", "--no-ext-diff", "--no-textconv", base_sha)
    numstat = _git(root, "diff", "--cached", "--numstat", base_sha)
    files, added, removed = [], 0, 0
    for line in numstat.splitlines():
        plus, minus, path = line.split("\t", 2)
        files.append(path)
        added += int(plus) if plus.isdigit() else 0
        removed += int(minus) if minus.isdigit() else 0
    return diff, DiffStat(files=files, added=added, removed=removed)


def _file_changes(root: Path, base_sha: str, test_patterns: list[str]) -> list[FileChange]:
    """Both versions of every changed test or test-configuration file (after `_change` staged all)."""
    changes: list[FileChange] = []
    fields = _git(root, "diff", "--cached", "--name-status", "-z", "-M", base_sha).split("\0")
    while len(fields) > 1:
        status = fields.pop(0)
        old = fields.pop(0)
        new = fields.pop(0) if status[:1] in {"R", "C"} else old
        if not (wanted(new, test_patterns) or wanted(old, test_patterns)):
            continue
        letter = status[:1]
        before = None if letter == "A" else _blob(root, f"{base_sha}:{old}")
        after = None if letter == "D" else _text(root / new)
        changes.append(FileChange(path=new, old_path=old if old != new else None, status=letter, before=before,
                                  after=after))
    return changes


def _blob(root: Path, spec: str) -> str | None:
    result = Workspace(root).git(["cat-file", "blob", spec])
    if not result.ok or len(result.stdout) > RISK_FILE_CAP:
        return None
    return result.stdout


def _text(path: Path) -> str | None:
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > RISK_FILE_CAP:
            return None
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return None


def _git(root: Path, *args: str) -> str:
    """git in the agent's workspace, hardened like the tools' (no hooks, no planted configuration)."""
    result = Workspace(root).git(list(args))
    if not result.ok:
        raise ApplicationError(
            f"git {' '.join(args)} failed in {root}: {result.stderr.strip()}", type="GitError", non_retryable=False
        )
    return result.stdout

