"""Model selection from the evidence of earlier runs: Thompson sampling on a Beta posterior.

For each role with no explicit choice, the planner picks among the registry's models for that role.
Each model's record on this kind of change (successes and failures of its stage) gives a
Beta(1 + successes, 1 + failures) posterior; one draw per model, minus a small cost penalty, picks
the model. With little evidence the draws spread out, so every model keeps getting tried; with much
evidence the best one wins nearly always. The random source is seeded from the run and the role,
so a retried planning activity picks the same model. Pure functions only: the ModelEvidence entity
workflow and the planning activity share them, and the tests exercise them without a server.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from datetime import UTC, datetime

from contracts.agents import Role, is_builtin
from contracts.ledger import OutcomeRecord
from contracts.runs import RunState
from contracts.selection import EvidenceState, EvidenceStats, ModelOutcome, ModelStat, Selection

# Success first: the cost penalty (relative to the most expensive candidate) only breaks near-ties.
COST_WEIGHT = 0.05


def record_outcome(state: EvidenceState, outcome: ModelOutcome) -> bool:
    """Count an outcome once (by key); True when it was new."""
    if outcome.key in state.recent_keys:
        return False
    stat = next((s for s in state.stats if s.role is outcome.role and s.model == outcome.model), None)
    if stat is None:
        stat = ModelStat(role=outcome.role, model=outcome.model)
        state.stats.append(stat)
        state.stats.sort(key=lambda s: (s.role.value, s.model))
    stat.runs += 1
    stat.successes += int(outcome.success)
    stat.cost_usd = round(stat.cost_usd + outcome.cost_usd, 8)
    stat.tokens += outcome.tokens
    stat.last_at = outcome.at if stat.last_at is None else max(_utc(stat.last_at), _utc(outcome.at))
    state.recent_keys.append(outcome.key)
    del state.recent_keys[: max(0, len(state.recent_keys) - state.max_keys)]
    return True


def stats_of(state: EvidenceState) -> EvidenceStats:
    return EvidenceStats(kind=state.kind, runs=sum(s.runs for s in state.stats), stats=list(state.stats))


def stage_success(record: OutcomeRecord, role: Role) -> bool | None:
    """Did this role's stage succeed in this run? None: the run says nothing about it.

    The coder and the validator share the run's fate: merged (or, at L1, commented with no failed
    check) is a success, rejected or failed a failure; expired and cancelled runs are not counted.
    The reviewer succeeded when its last verdict agreed with how the change fared.
    """
    if record.state is RunState.merged:
        good: bool | None = True
    elif record.state is RunState.commented:
        good = record.checks_failed == 0
    elif record.state in {RunState.rejected, RunState.failed}:
        good = False
    else:
        good = None
    if good is None or role is not Role.reviewer:
        return good
    if record.review_verdict not in {"approve", "request_changes"}:
        return None
    return (record.review_verdict == "approve") == good


def model_outcomes(record: OutcomeRecord) -> list[ModelOutcome]:
    """What a finished run teaches about each registry model it used (file-based agents are skipped)."""
    outcomes = []
    run_key = f"{record.workflow_id}@{_utc(record.started_at).isoformat()}"
    for role_name, model in sorted(record.models.items()):
        if role_name not in Role.__members__ or not model or is_builtin(model):
            continue
        role = Role(role_name)
        success = stage_success(record, role)
        if success is None:
            continue
        outcomes.append(ModelOutcome(
            key=f"{run_key}/{role.value}", kind=record.kind, role=role, model=model, success=success,
            cost_usd=max(record.cost_usd, 0.0), tokens=max(record.tokens, 0), at=record.finished_at,
        ))
    return outcomes


def select_model(
    role: Role,
    kind: str,
    candidates: Sequence[str],
    stats: Sequence[ModelStat],
    seed: str,
    avoid: Collection[str] = (),
) -> Selection | None:
    """Pick one of `candidates` for `role` by a seeded Thompson draw; None when there is none.

    Models in `avoid` (the coder's, for the reviewer and validator) are left out unless nothing else
    is on offer. The same arguments always give the same answer.
    """
    names = sorted(set(candidates))
    if not names:
        return None
    others = [name for name in names if name not in avoid]
    pool = others or names
    record = {s.model: s for s in stats if s.role is role and s.model in pool}
    top_cost = max((s.mean_cost_usd for s in record.values()), default=0.0)

    def penalty(name: str) -> float:
        stat = record.get(name)
        return COST_WEIGHT * stat.mean_cost_usd / top_cost if stat and top_cost > 0 else 0.0

    def mean(name: str) -> float:
        stat = record.get(name) or ModelStat(role=role, model=name)
        return (1 + stat.successes) / (2 + stat.runs) - penalty(name)

    rng = random.Random(f"{seed}/{role.value}")
    draws = {}
    for name in pool:
        stat = record.get(name) or ModelStat(role=role, model=name)
        draws[name] = rng.betavariate(1 + stat.successes, 1 + stat.failures) - penalty(name)
    chosen = max(pool, key=lambda name: (draws[name], -pool.index(name)))
    best = max(pool, key=lambda name: (mean(name), -pool.index(name)))
    explored = chosen != best
    reason = _reason(role, kind, chosen, best, pool, record, explored, avoided=0 < len(others) < len(names),
                     shared=not others and bool(avoid))
    return Selection(model=chosen, explored=explored, reason=reason)


def _reason(role: Role, kind: str, chosen: str, best: str, pool: list[str], record: dict[str, ModelStat],
            explored: bool, *, avoided: bool, shared: bool) -> str:
    stat = record.get(chosen)
    runs = sum(s.runs for s in record.values())
    if stat is not None and stat.runs:
        parts = [f"{role.value}: {chosen}, success {stat.successes}/{stat.runs} on {kind}, "
                 f"${stat.mean_cost_usd:.4f}/run"]
    else:
        parts = [f"{role.value}: {chosen}, no runs yet on {kind}"]
    if len(pool) == 1:
        if avoided:
            parts.append(f"the only {role.value} model other than the coder's")
        else:
            parts.append(f"the only {role.value} model in the registry" + (" (it is also the coder's)" if shared
                                                                           else ""))
    else:
        how = f"Thompson draw over {len(pool)} models with {runs} run(s) of evidence"
        if explored:
            best_stat = record.get(best)
            best_record = f"{best_stat.successes}/{best_stat.runs}" if best_stat and best_stat.runs else "no runs"
            parts.append(f"explored ({how}; best record: {best} {best_record})")
        else:
            parts.append(f"best record ({how})" if stat is not None and stat.runs else how)
    if avoided and len(pool) > 1:
        parts.append("the coder's model left out")
    return "; ".join(parts)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
