"""Preview and validate: the PR head runs in a preview where the spec's http and run criteria are
checked, the validation agent judges the rest, and CI results reported by the forge join them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.activities import WorkspaceCalls
    from contracts.agents import AgentPlan, Role
    from contracts.evidence import CheckStatus, CriterionResult, PreviewEvidence
    from contracts.preview import PreviewRequest
    from contracts.runs import CheckSummary, ForgeEvent
    from contracts.workspace import PreviewInput
    from specs.models import Spec
    from workflows import prompts
    from workflows.options import IMAGE_BUILD_WAIT, PREVIEW_HEARTBEAT, PREVIEW_RETRY
    from workflows.spec_to_ship.agents import run_agent
    from workflows.spec_to_ship.context import RunContext


async def validate(run: RunContext, spec: Spec, plan: AgentPlan) -> list[CriterionResult]:
    assert run.workspace is not None
    executable = [c for c in spec.acceptance if c.kind in {"http", "run"}]
    results: list[CriterionResult] = []
    preview: PreviewEvidence | None = None
    head = run.pr.head_sha if run.pr else run.workspace.branch
    missing_image = await wait_for_image(run, spec, head) if executable else None
    if missing_image:
        preview = PreviewEvidence(backend="ci", start_error=missing_image, results=[
            CriterionResult(id=c.id, kind=c.kind, status=CheckStatus.error, summary=f"not run: {missing_image}")
            for c in executable])
        results.extend(preview.results)
    elif executable:
        attempt_id = f"{run.status.round}-{workflow.info().run_id[:8]}"
        preview = await run.stage("preview", workflow.execute_activity_method(
            WorkspaceCalls.validate_in_preview,
            PreviewInput(workspace=run.workspace, request=PreviewRequest(
                preview_id=f"{_safe(run.workflow_id)}-{attempt_id}", repo_path=run.workspace.path,
                head_sha=head, config=spec.preview, criteria=executable, service=spec.service,
                pr_number=run.pr.number if run.pr else None)),
            task_queue=run.workspace.task_queue,
            start_to_close_timeout=timedelta(seconds=_preview_budget(spec)),
            heartbeat_timeout=PREVIEW_HEARTBEAT, retry_policy=PREVIEW_RETRY,
            summary=f"preview {head[:10]} and run {len(executable)} check(s)"))
        results.extend(preview.results)
    run.preview = preview
    judges = [c for c in spec.acceptance if c.kind == "judge"]
    if judges:
        results.extend(await judge(run, spec, plan, judges, results))
    results.extend(ci_result(name, event) for name, event in run.ci_events.items())
    for criterion in spec.acceptance:
        for result in results:
            if result.id == criterion.id:
                result.key, result.weight = criterion.key, criterion.weight
    run.status.checks = [CheckSummary(id=r.id, status=r.status) for r in results]
    return results


async def wait_for_image(run: RunContext, spec: Spec, head: str) -> str | None:
    """Wait, durably and with a deadline, for the CI check that builds the preview's image of `head`.

    The forge reports checks as `ci_completed` signals (the webhook sends them). None when the image is
    there (or the spec names no such check); otherwise why the preview cannot run.
    """
    check = spec.preview.ci_check if spec.preview else None
    if not check:
        return None
    workflow.set_current_details(f"waiting for CI check {check!r} to build the preview image of {head[:10]}")

    def reported() -> ForgeEvent | None:
        event = run.ci_events.get(check)
        return event if event is not None and (event.head_sha or "") == head else None

    try:
        await workflow.wait_condition(lambda: reported() is not None, timeout=IMAGE_BUILD_WAIT,
                                      timeout_summary=f"CI check {check} builds the preview image")
    except TimeoutError:
        return f"CI check {check!r} did not report on {head[:12]} within {IMAGE_BUILD_WAIT}: no image to preview"
    event = reported()
    assert event is not None
    if event.conclusion != "success":
        return f"CI check {check!r} concluded {event.conclusion} on {head[:12]}: the preview image was not built"
    return None


def ci_result(name: str, event: ForgeEvent) -> CriterionResult:
    """A CI check's latest report (a `ci_completed` signal) as one of the run's criteria."""
    passed = event.conclusion in {"success", "neutral", "skipped"}
    return CriterionResult(
        id=f"ci:{name}", kind="ci", status=CheckStatus.passed if passed else CheckStatus.failed,
        summary=f"{name} concluded {event.conclusion} on {(event.head_sha or '')[:10]}",
        evidence=event.url or "",
    )


async def judge(run: RunContext, spec: Spec, plan: AgentPlan, judges: list[Any],
                evidence: list[CriterionResult]) -> list[CriterionResult]:
    """The validation agent's pass/fail per judge criterion; without one, they are not judged."""
    if plan.validator is None:
        return [CriterionResult(id=c.id, kind="judge", status=CheckStatus.not_judged,
                                summary="no validation agent configured") for c in judges]
    result = await run_agent(run, Role.validator, plan.validator, prompts.judge_task(spec, judges, evidence),
                             run.status.round)
    given = {}
    if result.final_tool:
        for item in result.final_tool.arguments.get("judgements") or []:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                given[item["id"]] = item
    judged: list[CriterionResult] = []
    for criterion in judges:
        item = given.get(criterion.id)
        if item is None:
            judged.append(CriterionResult(id=criterion.id, kind="judge", status=CheckStatus.not_judged,
                                          summary=f"the validation agent gave no judgement ({result.reason})"))
            continue
        passed = item.get("verdict") == "pass"
        judged.append(CriterionResult(
            id=criterion.id, kind="judge", status=CheckStatus.passed if passed else CheckStatus.failed,
            summary=str(item.get("reason", ""))[:200], evidence=f"judged by {plan.validator.model}"))
    return judged


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in text)[-60:]


def _preview_budget(spec: Spec) -> float:
    """Seconds the preview may take: readiness, every check's own timeout, and two minutes around them."""
    ready = spec.preview.ready_timeout if spec.preview else 0
    return ready + sum(c.timeout for c in spec.acceptance if c.kind in {"http", "run"}) + 120
