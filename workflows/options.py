"""Timeouts and retry sets of every activity and child a workflow starts, named after what they protect.

Set where the call is made (`**FORGE_CALL`), never copied from call to call; SpecToShip and AgentRun
share them. Each entry says why it is sized as it is.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

from temporalio.common import RetryPolicy


class ActivityOptions(TypedDict, total=False):
    start_to_close_timeout: timedelta
    schedule_to_start_timeout: timedelta
    schedule_to_close_timeout: timedelta
    heartbeat_timeout: timedelta
    retry_policy: RetryPolicy


# A worker that died mid-activity (SIGKILL, OOM, a lost node) is noticed when its activity stops beating
# (activities/heartbeats.py), not when the start-to-close timeout runs out minutes later.
LOST_WORKER = timedelta(seconds=30)
# The forge (GitHub or a local repository): rate limits come back with GitHub's own wait; a spec or
# policy that does not validate will not validate on a retry.
FORGE_CALL: ActivityOptions = {
    "start_to_close_timeout": timedelta(minutes=2), "heartbeat_timeout": LOST_WORKER,
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=2),
                                maximum_attempts=8, non_retryable_error_types=["InvalidSpec", "InvalidPolicy"]),
}
# git in the worker's workspace: waits for that worker to poll; a lost workspace is not coming back.
WORKSPACE_GIT: ActivityOptions = {
    "start_to_close_timeout": timedelta(minutes=5), "heartbeat_timeout": LOST_WORKER,
    "schedule_to_start_timeout": timedelta(minutes=10),
    "retry_policy": RetryPolicy(maximum_attempts=5, non_retryable_error_types=["WorkspaceLost"]),
}
# Making the working copy: a clone can take minutes; a worker that crashed mid-clone is noticed after
# LOST_WORKER and the retry waits for that worker to come back.
PREPARE_WORKSPACE: ActivityOptions = {**WORKSPACE_GIT}
# Finding a worker to hold the workspace: any worker on the shared queue answers at once.
CLAIM_WORKSPACE: ActivityOptions = {"start_to_close_timeout": timedelta(seconds=30)}
# Removing the workspace at the end: a janitor removes what this cannot, so it gives up after 30 minutes.
REMOVE_WORKSPACE: ActivityOptions = {
    "start_to_close_timeout": timedelta(minutes=2), "schedule_to_close_timeout": timedelta(minutes=30),
    "heartbeat_timeout": LOST_WORKER,
    "retry_policy": RetryPolicy(maximum_attempts=5),
}
# Entity workflows (ledger, budget): quick Temporal calls, retried while the entity starts or moves on.
LEDGER_CALL: ActivityOptions = {"start_to_close_timeout": timedelta(seconds=30),
                                "retry_policy": RetryPolicy(maximum_attempts=10)}
# The team budget's answer to an admission request: seconds normally; past this the run fails, and its
# cleanup releases whatever a late answer may have granted.
ADMISSION_WAIT = timedelta(minutes=30)
# Pure decisions (model plan, gate): seconds of CPU at most.
GATE_CALL: ActivityOptions = {"start_to_close_timeout": timedelta(seconds=30),
                              "retry_policy": RetryPolicy(maximum_attempts=5)}
# How long a run waits for the CI check that builds the PR's preview image (preview.ci_check) to report.
IMAGE_BUILD_WAIT = timedelta(minutes=45)
# A preview that fails twice is evidence; more attempts only delay the decision.
PREVIEW_RETRY = RetryPolicy(maximum_attempts=2, initial_interval=timedelta(seconds=5))
PREVIEW_HEARTBEAT = timedelta(seconds=20)

# One model turn: providers rate limit and fail transiently; auth, bad requests and bad patches do not heal.
MODEL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=1),
    maximum_attempts=6, non_retryable_error_types=["auth", "bad_request", "config", "bad_patch"],
)
MODEL_CALL: ActivityOptions = {
    "start_to_close_timeout": timedelta(minutes=10), "schedule_to_close_timeout": timedelta(minutes=30),
    "heartbeat_timeout": timedelta(minutes=2), "retry_policy": MODEL_RETRY,
}
# One tool call in the workspace: its own timeout is set per call (commands say how long they may run).
TOOL_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3,
                         non_retryable_error_types=["WorkspaceLost"])
TOOL_SCHEDULE_TO_START = timedelta(minutes=5)
# Asking the workspace's worker for its MCP tools.
LIST_MCP_TOOLS: ActivityOptions = {
    "start_to_close_timeout": timedelta(minutes=2), "schedule_to_start_timeout": timedelta(minutes=5),
    "retry_policy": TOOL_RETRY,
}
# A CLI coding agent: up to two hours, heartbeating; never retried (a half-edited workspace is not idempotent).
CLI_AGENT: ActivityOptions = {
    "start_to_close_timeout": timedelta(hours=2), "heartbeat_timeout": timedelta(seconds=60),
    "retry_policy": RetryPolicy(maximum_attempts=1),
}
# Usage committed to the team budget after each model call: must land, so it retries longer.
COMMIT_USAGE: ActivityOptions = {"start_to_close_timeout": timedelta(seconds=30),
                                 "retry_policy": RetryPolicy(maximum_attempts=10)}
# Extending a run's reservation mid-run.
EXTEND_BUDGET: ActivityOptions = {"start_to_close_timeout": timedelta(seconds=30),
                                  "retry_policy": RetryPolicy(maximum_attempts=5)}
# The store's janitor: one pass lists every scope and asks Temporal about each; it heartbeats per scope, and a
# pass that fails is simply the next hour's to do.
SWEEP_STORE: ActivityOptions = {
    "start_to_close_timeout": timedelta(minutes=30), "heartbeat_timeout": timedelta(minutes=2),
    "retry_policy": RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=30)),
}

# An AgentRun continues as new when the server suggests it or its own history passes either bound, whichever
# comes first: well under Temporal's warning (10,240 events, 10 MB), so a long run never gets near it. A step
# on a stored conversation adds about 20 events and 10-20 kB. Changing these changes where running workflows
# continue as new: guard such a change with a patch.
AGENT_RUN_MAX_EVENTS = 2_000
AGENT_RUN_MAX_HISTORY_BYTES = 2_000_000
