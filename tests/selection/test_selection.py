"""Model selection as pure functions: Thompson draws, evidence counting, and what a run teaches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.agents import Role
from contracts.ledger import OutcomeRecord
from contracts.runs import RunState
from contracts.selection import EvidenceState, ModelOutcome, ModelStat
from rules.selection import model_outcomes, record_outcome, select_model, stage_success, stats_of

NOW = datetime(2025, 5, 1, 12, tzinfo=UTC)
names = st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,11}", fullmatch=True), min_size=1, max_size=5, unique=True)
seeds = st.text(min_size=0, max_size=40)
roles = st.sampled_from(list(Role))


@st.composite
def evidence(draw: st.DrawFn, models: list[str], role: Role) -> list[ModelStat]:
    stats = []
    for model in models:
        runs = draw(st.integers(0, 30))
        stats.append(ModelStat(role=role, model=model, runs=runs, successes=draw(st.integers(0, runs)),
                               cost_usd=draw(st.floats(0, 5, allow_nan=False))))
    return stats


@given(data=st.data(), models=names, seed=seeds, role=roles)
def test_the_same_seed_and_evidence_give_the_same_pick_whatever_the_order(
    data: st.DataObject, models: list[str], seed: str, role: Role
) -> None:
    stats = data.draw(evidence(models, role))
    first = select_model(role, "bugfix", models, stats, seed)
    again = select_model(role, "bugfix", list(reversed(models)), list(reversed(stats)), seed)
    assert first is not None and first == again
    assert first.model in models


@given(models=st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), min_size=2, max_size=5, unique=True),
       seed=seeds, role=roles, best=st.integers(0, 4))
def test_overwhelming_evidence_picks_the_best(models: list[str], seed: str, role: Role, best: int) -> None:
    winner = models[best % len(models)]
    stats = [ModelStat(role=role, model=m, runs=300, successes=300 if m == winner else 30,
                       cost_usd=300 * (5.0 if m == winner else 0.01)) for m in models]  # even when it costs more
    picked = select_model(role, "feature", models, stats, seed)
    assert picked is not None and picked.model == winner and not picked.explored
    assert "success 300/300 on feature" in picked.reason


@settings(max_examples=30)
@given(models=st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), min_size=2, max_size=4, unique=True),
       run=st.text(min_size=1, max_size=10), role=roles)
def test_with_thin_evidence_every_model_gets_tried(models: list[str], run: str, role: Role) -> None:
    thin = [ModelStat(role=role, model=models[0], runs=2, successes=2)]  # a head start, not a verdict
    picks = [select_model(role, "feature", models, thin, f"{run}-{n}") for n in range(120)]
    assert {p.model for p in picks if p is not None} == set(models)
    assert any(p is not None and p.explored for p in picks)


@given(data=st.data(), models=st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), min_size=2, max_size=5,
                                        unique=True), seed=seeds)
def test_the_reviewer_never_gets_the_coders_model_when_another_exists(
    data: st.DataObject, models: list[str], seed: str
) -> None:
    coder = data.draw(st.sampled_from(models))
    # Even when the coder's model has the best review record by far.
    stats = [ModelStat(role=Role.reviewer, model=m, runs=100, successes=100 if m == coder else 0) for m in models]
    for role in (Role.reviewer, Role.validator):
        picked = select_model(role, "feature", models, stats, seed, avoid={coder})
        assert picked is not None and picked.model != coder
        assert ("the coder's model left out" if len(models) > 2 else "other than the coder's") in picked.reason


def test_the_coders_model_is_used_when_it_is_the_only_one() -> None:
    picked = select_model(Role.reviewer, "feature", ["solo"], [], "wf", avoid={"solo"})
    assert picked is not None and picked.model == "solo"
    assert "the only reviewer model in the registry (it is also the coder's)" in picked.reason
    assert select_model(Role.coder, "feature", [], [], "wf") is None


def test_the_reason_says_the_record_the_cost_and_whether_it_explored() -> None:
    stats = [ModelStat(role=Role.coder, model="model-a", runs=9, successes=8, cost_usd=0.09),
             ModelStat(role=Role.coder, model="model-b", runs=9, successes=7, cost_usd=0.108)]
    picks = {}
    for n in range(200):
        picked = select_model(Role.coder, "bugfix", ["model-a", "model-b"], stats, f"wf-{n}")
        assert picked is not None
        picks.setdefault(picked.explored, picked)
    assert picks[False].reason == ("coder: model-a, success 8/9 on bugfix, $0.0100/run; best record (Thompson draw "
                                   "over 2 models with 18 run(s) of evidence)")
    assert picks[True].reason == ("coder: model-b, success 7/9 on bugfix, $0.0120/run; explored (Thompson draw over "
                                  "2 models with 18 run(s) of evidence; best record: model-a 8/9)")


def record(state: RunState, models: dict[str, str], verdict: str = "approve", checks_failed: int = 0,
           workflow_id: str = "spec2ship/x/y", kind: str = "bugfix") -> OutcomeRecord:
    return OutcomeRecord(workflow_id=workflow_id, service="svc", team="t", spec_title="s", kind=kind, state=state,
                         decision="merge", level="L5", review_verdict=verdict, checks_failed=checks_failed,
                         models=models, tokens=1200, cost_usd=0.02, started_at=NOW - timedelta(minutes=5),
                         finished_at=NOW)


def test_what_counts_as_a_stage_success() -> None:
    merged, rejected = record(RunState.merged, {}), record(RunState.rejected, {}, verdict="approve")
    assert stage_success(merged, Role.coder) is True and stage_success(merged, Role.validator) is True
    assert stage_success(rejected, Role.coder) is False
    assert stage_success(rejected, Role.reviewer) is False  # it approved a change that was then rejected
    assert stage_success(record(RunState.rejected, {}, verdict="request_changes"), Role.reviewer) is True
    assert stage_success(record(RunState.merged, {}, verdict="none"), Role.reviewer) is None
    assert stage_success(record(RunState.expired, {}), Role.coder) is None
    assert stage_success(record(RunState.cancelled, {}), Role.coder) is None
    assert stage_success(record(RunState.commented, {}, checks_failed=1), Role.coder) is False
    assert stage_success(record(RunState.failed, {}), Role.coder) is False


def test_a_run_teaches_about_its_registry_models_only() -> None:
    run = record(RunState.merged, {"coder": "model-a", "reviewer": "scripted:/x/r.yaml", "validator": "patch:/d"})
    [outcome] = model_outcomes(run)
    assert (outcome.role, outcome.model, outcome.success, outcome.kind) == (Role.coder, "model-a", True, "bugfix")
    assert outcome.key == "spec2ship/x/y@2025-05-01T11:55:00+00:00/coder"
    assert (outcome.cost_usd, outcome.tokens) == (0.02, 1200)


def test_evidence_counts_each_outcome_once_and_stays_bounded() -> None:
    state = EvidenceState(kind="bugfix", max_keys=3)
    outcomes = [ModelOutcome(key=f"run-{n}/coder", kind="bugfix", role=Role.coder, model="m", success=n % 2 == 0,
                             cost_usd=0.01, tokens=10, at=NOW + timedelta(minutes=n)) for n in range(5)]
    assert all(record_outcome(state, o) for o in outcomes)
    assert not record_outcome(state, outcomes[-1])  # a retried signal
    [stat] = stats_of(state).stats
    assert (stat.runs, stat.successes, stat.tokens, stat.last_at) == (5, 3, 50, NOW + timedelta(minutes=4))
    assert round(stat.mean_cost_usd, 6) == 0.01
    assert state.recent_keys == ["run-2/coder", "run-3/coder", "run-4/coder"]
