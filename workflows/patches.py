"""The register of every `workflow.patched` id: why it exists, when it came, how it retires.

A change that alters the commands a workflow emits is guarded with `workflow.patched(ID)` so that runs
started before it replay the old way. Lifecycle of an id: `patched` while runs that predate it may be
open; then `workflow.deprecate_patch(ID)` (new runs no longer record the marker's branch choice) once
the oldest open run started after the patch shipped; then removal of the old branch and of the id
once no run that predates the deprecation can be open (the longest a run lives: its escalation
policy's `expire_after`, 7 days by default, plus the retention period of histories you replay).

`tests/pipeline/test_patch_register.py` checks that every `workflow.patched` call in workflows/ uses an
id listed here, that every id here is used, and that the committed histories named for each id replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Patch:
    id: str
    workflow: str
    why: str
    added: date
    # Committed histories (tests/pipeline/histories/) of the workflow, recorded before the patch: no marker,
    # so they replay the old way.
    before: tuple[str, ...]
    # A committed history recorded with the patch's marker (tests/pipeline/record_patch_histories.py): it
    # replays the new branch.
    after: str


COUNT_TOOL_DENIALS = Patch(
    id="count-tool-denials", workflow="AgentRun", added=date(2026, 11, 21),
    why="the tool activity's own refusals (a symlink onto a secret, a glob onto one) count toward max_denials",
    before=("l5-merged.agent-coder-0-4",), after="patch-count-tool-denials.agent-coder-0-4")
OFFER_MCP_TOOLS = Patch(
    id="offer-mcp-tools", workflow="AgentRun", added=date(2026, 11, 21),
    why="agents are offered the MCP tools the worker's configuration grants their role (one more activity)",
    before=("l5-merged.agent-coder-0-4", "l5-merged.agent-reviewer-0-9"), after="patch-offer-mcp-tools.agent-coder-0-4")
CLI_AGENT_CODER = Patch(
    id="cli-agent-coder", workflow="AgentRun", added=date(2026, 11, 21),
    why="a coder whose registry entry is a CLI agent runs as one heartbeating activity",
    before=("l5-merged.agent-coder-0-4",), after="patch-cli-agent-coder.agent-coder-0-4")
TELL_ISSUE_NO_CODER = Patch(
    id="tell-issue-no-coder", workflow="SpecToShip", added=date(2026, 11, 21),
    why="a run started from an issue with no coder configured says so on the issue before it fails",
    before=("l5-merged", "rejected"), after="patch-tell-issue-no-coder")

STAGE_FAILURE_ENDS_RUN = Patch(
    id="stage-failure-ends-run", workflow="SpecToShip", added=date(2026, 12, 3),
    why="a stage whose activity fails for good (an unknown model, a forge that keeps refusing) ends the run as "
        "failed with the reason, closes what it made and cleans up, instead of failing the workflow",
    before=("l5-merged", "l3-approved", "rejected"), after="patch-stage-failure-ends-run")
FOUR_EYES = Patch(
    id="four-eyes", workflow="SpecToShip", added=date(2026, 12, 3),
    why="an approve or override Signal from the person who asked for the change is ignored (the Update's "
        "validator refuses it without touching history)",
    before=("l3-approved",), after="patch-four-eyes")

CONVERSATION_IN_STORE = Patch(
    id="conversation-in-store", workflow="AgentRun", added=date(2026, 12, 3),
    why="the conversation and large tool results live in the blob store: call_model carries a reference and the "
        "messages added since, run_tool stores large outputs; long runs continue as new with their state",
    before=("l5-merged.agent-coder-0-4", "l5-merged.agent-reviewer-0-9", "l3-approved.agent-coder-0-4"),
    after="patch-conversation-in-store.agent-coder-0-4")
ADMISSION_BY_SIGNAL = Patch(
    id="admission-by-signal", workflow="SpecToShip", added=date(2026, 12, 3),
    why="admission asks the team budget by signal and waits for its answer by signal: an Update per run "
        "capped a team at 10 runs being admitted at once",
    before=("l5-merged", "l3-approved", "rejected"), after="patch-admission-by-signal")

ISSUE_ENDING_LABEL = Patch(
    id="issue-ending-label", workflow="SpecToShip", added=date(2026, 12, 3),
    why="a run from an issue that ends without a PR (a bad spec, no change, refused admission) leaves its status "
        "label on the issue, so that once Temporal forgets the run the factory's sweep does not start it again",
    before=("l5-merged", "patch-tell-issue-no-coder"), after="patch-issue-ending-label")

REGISTER: list[Patch] = [COUNT_TOOL_DENIALS, OFFER_MCP_TOOLS, CLI_AGENT_CODER, TELL_ISSUE_NO_CODER,
                         STAGE_FAILURE_ENDS_RUN, FOUR_EYES, CONVERSATION_IN_STORE, ADMISSION_BY_SIGNAL,
                         ISSUE_ENDING_LABEL]
