"""The trust function: its promised properties (hypothesis) and hand-computed values."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.ledger import LaterOutcome, LaterSignal, OutcomeRecord
from contracts.runs import RunState
from rules.trust import TrustParams, explain, merges_to_clear, tally, trust, trust_report, wilson_lower_bound

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
PARAMS = TrustParams()
_ids = itertools.count()


def run(
    age_days: float = 0.0,
    state: RunState = RunState.merged,
    *,
    sha: str | None = None,
    agent: bool = True,
    checks: tuple[int, int] = (0, 0),
    decision: str = "merge",
    human_verdicts: tuple[str, ...] = (),
) -> OutcomeRecord:
    finished = NOW - timedelta(days=age_days)
    number = next(_ids)
    return OutcomeRecord(
        workflow_id=f"spec2ship/test/{number}",
        service="payments",
        team="core",
        spec_title=f"change {number}",
        kind="feature",
        state=state,
        decision=decision,
        level="L4",
        checks_passed=checks[0],
        checks_failed=checks[1],
        human_verdicts=list(human_verdicts),
        agent_made=agent,
        started_at=finished - timedelta(hours=2),
        finished_at=finished,
        merge_sha=sha if sha is not None else (f"sha{number}" if state is RunState.merged else None),
    )


def later(kind: LaterSignal, sha: str, age_days: float = 0.0) -> LaterOutcome:
    return LaterOutcome(kind=kind, sha=sha, at=NOW - timedelta(days=age_days))


ages = st.floats(min_value=0, max_value=400, allow_nan=False)
states = st.sampled_from(
    [RunState.merged, RunState.merged, RunState.rejected, RunState.failed, RunState.commented, RunState.expired]
)
records = st.lists(
    st.builds(
        run,
        age_days=ages,
        state=states,
        agent=st.booleans(),
        checks=st.tuples(st.integers(0, 3), st.integers(0, 3)),
    ),
    max_size=25,
)


@st.composite
def ledgers(draw: st.DrawFn) -> tuple[list[OutcomeRecord], list[LaterOutcome]]:
    """Records plus later outcomes, some tied to their merges and some to unknown shas."""
    found = draw(records)
    shas = [r.merge_sha for r in found if r.merge_sha] + ["unknown-sha"]
    items = draw(
        st.lists(
            st.builds(later, kind=st.sampled_from(list(LaterSignal)), sha=st.sampled_from(shas), age_days=ages),
            max_size=4,
        )
    )
    return found, items


# Float sums in a different order differ in the last bits; a real decrease is many orders larger.
EPSILON = 1e-12


@settings(max_examples=300, deadline=None)
@given(ledger=ledgers(), age=ages)
def test_adding_a_success_never_lowers_trust(
    ledger: tuple[list[OutcomeRecord], list[LaterOutcome]], age: float
) -> None:
    found, items = ledger
    before = trust(found, items, NOW)
    after = trust([*found, run(age)], items, NOW)
    assert after >= before - EPSILON


@settings(max_examples=300, deadline=None)
@given(ledger=ledgers(), age=st.floats(min_value=0, max_value=6.99))
def test_a_recent_incident_takes_trust_away_at_once(
    ledger: tuple[list[OutcomeRecord], list[LaterOutcome]], age: float
) -> None:
    found, items = ledger
    assert trust(found, [*items, later(LaterSignal.incident, "unknown-sha", age)], NOW) == 0.0


@settings(max_examples=300, deadline=None)
@given(ledger=ledgers(), age=st.floats(min_value=7, max_value=120), attach=st.booleans())
def test_an_older_incident_still_lowers_trust_strictly(
    ledger: tuple[list[OutcomeRecord], list[LaterOutcome]], age: float, attach: bool
) -> None:
    found, items = ledger
    agent_shas = [r.merge_sha for r in found if r.agent_made and r.merge_sha]
    sha = agent_shas[0] if attach and agent_shas else "unknown-sha"
    before = trust(found, items, NOW)
    after = trust(found, [*items, later(LaterSignal.incident, sha, age)], NOW)
    assert after < before or before == 0.0


@settings(max_examples=300, deadline=None)
@given(ledger=ledgers())
def test_trust_never_exceeds_the_weighted_point_estimate(
    ledger: tuple[list[OutcomeRecord], list[LaterOutcome]],
) -> None:
    found, items = ledger
    assert 0.0 <= trust(found, items, NOW) <= tally(found, items, NOW).point_estimate + EPSILON


@settings(max_examples=200, deadline=None)
@given(successes=st.lists(ages, min_size=0, max_size=10))
def test_a_handful_of_lucky_runs_stays_below_the_bar(successes: list[float]) -> None:
    assert trust([run(age) for age in successes], [], NOW) < 0.8


@given(found=st.lists(st.builds(run, age_days=ages, state=states, agent=st.just(False)), max_size=10))
def test_no_agent_record_means_no_trust(found: list[OutcomeRecord]) -> None:
    assert trust([], [], NOW) == 0.0
    assert trust(found, [], NOW) == 0.0  # human-made changes say nothing about the agents


def test_wilson_bound_matches_the_hand_computed_value() -> None:
    # p = 0.8, n = 10, z^2 = 2.706025: (0.9353 - 1.645 * sqrt(0.016 + 0.0067651)) / 1.2706025
    assert abs(wilson_lower_bound(8, 10, 1.645) - 0.54077) < 1e-4
    assert wilson_lower_bound(0, 0, 1.645) == 0.0


def test_clean_fresh_merges_reach_n_over_n_plus_z_squared() -> None:
    assert abs(trust([run() for _ in range(3)], [], NOW) - 3 / (3 + 1.645**2)) < 1e-12
    assert trust([run() for _ in range(10)], [], NOW) < 0.8 <= trust([run() for _ in range(11)], [], NOW)


def test_weights_halve_every_half_life() -> None:
    counts = tally([run(0), run(30), run(60, RunState.rejected)], [], NOW)
    assert abs(counts.n_eff - 1.75) < 1e-12
    assert abs(counts.weighted_successes - 1.5) < 1e-12
    longer = tally([run(60)], [], NOW, TrustParams(half_life=timedelta(days=60)))
    assert abs(longer.n_eff - 0.5) < 1e-12


def test_a_revert_turns_the_merge_into_a_failure_and_adds_a_fresh_penalty() -> None:
    reverted = run(20, sha="abc")
    counts = tally([reverted, run(0)], [later(LaterSignal.revert, "abc", 0)], NOW)
    assert counts.penalties == 1
    assert abs(counts.n_eff - (2 ** -(20 / 30) + 1 + 1)) < 1e-12
    assert abs(counts.weighted_successes - 1.0) < 1e-12
    assert tally([reverted], [later(LaterSignal.restored, "abc", 0)], NOW).weighted_successes > 0


def test_an_escalated_run_a_human_approved_counts_as_a_success() -> None:
    approved = run(0, decision="escalate", human_verdicts=("approve",))
    rejected = run(0, RunState.rejected, decision="escalate", human_verdicts=("reject",))
    assert tally([approved], [], NOW).weighted_successes == 1.0
    assert tally([rejected], [], NOW).weighted_successes == 0.0
    assert tally([rejected], [], NOW).n_eff == 1.0


def test_l1_comment_runs_count_the_share_of_passed_checks() -> None:
    counts = tally([run(0, RunState.commented, checks=(3, 1)), run(0, RunState.commented)], [], NOW)
    assert counts.runs == 1
    assert counts.weighted_successes == 0.75


def test_a_penalty_of_a_human_made_merge_does_not_count_against_the_agents() -> None:
    human = run(5, sha="human-sha", agent=False)
    counts = tally([human, run(0)], [later(LaterSignal.revert, "human-sha", 1)], NOW)
    assert counts.penalties == 0
    assert counts.n_eff == 1.0


def test_the_incident_cap_lifts_after_its_window() -> None:
    found = [run(1) for _ in range(20)]
    items = [later(LaterSignal.incident, "unknown-sha", 0)]
    assert trust(found, items, NOW) == 0.0
    assert trust(found, items, NOW + timedelta(days=7)) > 0.0
    shorter = TrustParams(incident_window=timedelta(days=1))
    assert trust(found, items, NOW + timedelta(days=1), shorter) > 0.0


def test_merges_to_clear_is_the_smallest_count_that_clears_the_bar() -> None:
    found = [run(age) for age in (1, 3, 10, 40)] + [run(2, RunState.rejected)]
    needed = merges_to_clear(tally(found, [], NOW), 0.8)
    assert needed is not None and needed > 0
    assert trust([*found, *(run(0) for _ in range(needed))], [], NOW) >= 0.8
    assert trust([*found, *(run(0) for _ in range(needed - 1))], [], NOW) < 0.8
    assert merges_to_clear(tally(found, [], NOW), 1.0) is None


def test_explain_says_what_was_counted_and_what_would_change_the_decision() -> None:
    found = [run(age) for age in (1, 2, 3)] + [run(4, RunState.rejected)]
    lines = explain(found, [], NOW)
    text = "\n".join(lines)
    needed = merges_to_clear(tally(found, [], NOW), 0.8)
    assert "4 runs counted: 3 clean merges, 0 merges undone by a revert or incident, 1 rejected or failed" in text
    undone = explain(found, [later(LaterSignal.revert, found[0].merge_sha or "", 0)], NOW)[0]
    assert undone.startswith("4 runs counted: 2 clean merges, 1 merges undone by a revert or incident, 1 rejected")
    assert "n_eff" in text and "Wilson lower bound at z=1.645" in text
    assert f"{needed} more clean merges would clear it" in lines[-1]

    clean = [run(0) for _ in range(30)]
    clean_lines = explain(clean, [], NOW)
    assert "clears the bar 0.80" in clean_lines[-2]
    assert clean_lines[-1].startswith("an incident now would hold trust at 0 until 2025-06-08 12:00 UTC")

    capped = explain(clean, [later(LaterSignal.incident, "unknown-sha", 1)], NOW)
    assert any(
        line.startswith("held at 0 until 2025-06-07 12:00 UTC by the incident on unknown-sha") for line in capped
    )
    assert explain([], [], NOW)[0].startswith("no record yet")


def test_trust_report_carries_the_figures_the_gate_and_cli_show() -> None:
    found = [run(0) for _ in range(4)]
    report = trust_report("payments", found, [], NOW)
    assert report.trust == trust(found, [], NOW)
    assert report.runs == 4 and report.successes == 4.0 and report.n_eff == 4.0
    assert report.point_estimate == 1.0
    assert report.merges_to_clear == 7  # 11 clean fresh merges clear 0.8
    assert report.as_of == NOW and report.capped_until is None
