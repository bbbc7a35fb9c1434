"""FactoryRun: one pass of the software factory, started by a Temporal Schedule (`spec2ship schedule`).

List the open issues carrying the factory label, then start SpecToShip runs for them, at most
`max_in_flight` open runs per repository. The report (started, skipped with reasons) is the result,
so each scheduled pass can be read back in the Temporal UI. Nothing here waits for the runs: they
are independent workflows, not children, so a pass takes seconds and never overlaps the next.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.factory.activities import FactoryActivities
    from contracts.factory import FactoryReport, FactoryRunInput, ListReadyIssuesInput, StartSpecRunsInput
    from contracts.names import FACTORY_RUN

# GitHub listing: a page per repository; rate limits come back as retryable with GitHub's wait.
LIST_ISSUES_TIMEOUT = timedelta(minutes=2)
LIST_ISSUES_RETRY = RetryPolicy(maximum_attempts=5, initial_interval=timedelta(seconds=5))
# Starting runs: a handful of Temporal calls; a retry re-counts and skips what was already started.
START_RUNS_TIMEOUT = timedelta(minutes=1)
START_RUNS_RETRY = RetryPolicy(maximum_attempts=5, initial_interval=timedelta(seconds=2))


@workflow.defn(name=FACTORY_RUN)
class FactoryRun:
    @workflow.run
    async def run(self, request: FactoryRunInput) -> FactoryReport:
        ready = await workflow.execute_activity_method(
            FactoryActivities.list_ready_issues,
            ListReadyIssuesInput(repos=request.repos, label=request.label),
            start_to_close_timeout=LIST_ISSUES_TIMEOUT,
            retry_policy=LIST_ISSUES_RETRY,
        )
        if not ready.issues:
            return FactoryReport(problems=ready.problems)
        report = await workflow.execute_activity_method(
            FactoryActivities.start_spec_runs,
            StartSpecRunsInput(
                issues=ready.issues,
                max_in_flight=request.max_in_flight,
                task_queue=request.task_queue,
                requested_by=f"factory:{workflow.info().workflow_id}",
            ),
            start_to_close_timeout=START_RUNS_TIMEOUT,
            retry_policy=START_RUNS_RETRY,
        )
        report.problems = ready.problems
        return report
