"""Faults of a model endpoint: each ends in a retry that succeeds, or in a clear reason in the run's status.

The coder is an OpenAI-compatible model named only in `spec2ship.yaml` (`max_retries: 0`, so every fault
is one failed `call_model` attempt that Temporal retries, and `timeout_s: 5`), served by the local OpenAI
double (real HTTP; success bodies validated with the official `openai` types). Everything else is real:
the worker process, the agent loop, the tools, the preview, the gate.

- model-transient: every turn of the coder meets a different fault first: 429 with Retry-After, 500, a
  connection reset, an answer slower than the timeout, then a completion cut off mid-body. The double's
  script holds each fault followed by the right reply, so the run merges only if each fault was retried
  exactly once.
- model-429-persistent, model-500-persistent, model-timeout-persistent: the fault never clears; the
  coder fails after MODEL_RETRY's attempts and the run fails saying which model answered what.
- model-truncated-json: a complete answer whose JSON is cut short: not retried (the same bytes would come
  back; a body cut on the wire is the transient `Cut` above), the run fails naming the model and what it
  answered.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import yaml
from doubles.openai_server import Cut, Fail, Garbage, OpenAIDouble, Reply, Reset, ScriptedToolCall, Stall, Step
from fault_cases import FaultCases
from fault_runs import Ending, local_run

from contracts.agents import AgentChoice
from contracts.runs import RunState
from workers.sample.repo import APP_V2, TESTS_V2
from workflows.options import MODEL_RETRY

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
KEY = "sk-test-faults-0123456789abcdefghij"
TIMEOUT_S = 5.0  # generous for a local answer on a loaded machine; the stalls outlast it

TURNS = [
    Reply(content="Reading the service first.",
          tool_calls=[ScriptedToolCall(name="read_file", arguments={"path": "greeter/app.py"})]),
    Reply(content="Adding the name to the greeting, with a test.", tool_calls=[
        ScriptedToolCall(name="write_file", arguments={"path": "greeter/app.py", "content": APP_V2}),
        ScriptedToolCall(name="write_file", arguments={"path": "tests/test_greeter.py", "content": TESTS_V2})]),
    Reply(content="Running the tests.",
          tool_calls=[ScriptedToolCall(name="run_command", arguments={"command": "python -m unittest -q"})]),
    Reply(content="greeting() now uses the name when one is given; tests added and passing."),
]
TRANSIENT: list[Step] = [
    Fail(status=429, message="Rate limit reached for requests", retry_after="1"), TURNS[0],
    Fail(status=500, message="The server had an error while processing your request."), TURNS[1],
    Reset(), TURNS[2],
    Stall(seconds=TIMEOUT_S + 3), Cut(reply=TURNS[3], keep=60), TURNS[3],
]
ATTEMPTS = MODEL_RETRY.maximum_attempts
TRUNCATED = '{"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "qwen", "choices": [{"ind'


async def model_run(folder: Path, name: str, steps: list[Step]) -> tuple[Ending, int]:
    """A run whose coder is the double playing `steps`; returns the ending and how many requests it got."""
    with OpenAIDouble(api_key=KEY, steps=steps) as model:
        config = folder / "spec2ship.yaml"
        config.write_text(yaml.safe_dump({"models": [{
            "name": "faulty-coder", "provider": "openai", "base_url": model.base_url, "model": "qwen2.5-coder",
            "api_key_env": "TEST_OPENAI_KEY", "roles": ["coder"], "timeout_s": TIMEOUT_S, "max_retries": 0}]}))
        async with local_run(folder, name, env={"SPEC2SHIP_CONFIG": str(config), "TEST_OPENAI_KEY": KEY}) as run:
            run.worker.start()
            await run.submit(agents=AgentChoice(reviewer=f"scripted:{run.paths['reviewer-approve.yaml']}",
                                                judge=f"scripted:{run.paths['judge-fallback.yaml']}"))
            ending = await run.ending()
        return ending, len(model.requests)


CASES = {
    "model-transient": functools.partial(model_run, name="model-transient", steps=TRANSIENT),
    "model-429-persistent": functools.partial(model_run, name="model-429", steps=[
        Fail(status=429, message="Rate limit reached for requests", retry_after="1")] * ATTEMPTS),
    "model-500-persistent": functools.partial(model_run, name="model-500", steps=[
        Fail(status=500, message="The server had an error while processing your request.")] * ATTEMPTS),
    "model-timeout-persistent": functools.partial(model_run, name="model-timeout", steps=[
        Stall(seconds=TIMEOUT_S + 3)] * ATTEMPTS),
    "model-truncated-json": functools.partial(model_run, name="model-json", steps=[
        Garbage(body=TRUNCATED, media_type="application/json")]),
}


@pytest.mark.parametrize("case", ["model-transient"])
async def test_each_transient_model_fault_is_retried_once_and_the_run_merges(case: str, fault_cases: FaultCases
                                                                            ) -> None:
    ending, requests = await fault_cases.outcome(case)
    print(f"\n{case}: {requests} requests for {len(TURNS)} turns; {ending.reason()}")
    ending.assert_clean([RunState.merged])
    assert requests == len(TRANSIENT)  # each fault, then exactly one retry that got its turn
    assert "coder:call_model" in ending.history.retried()  # by Temporal: the entry allows no in-process retry


@pytest.mark.parametrize(("case", "says"), [
    ("model-429-persistent", "answered HTTP 429: Rate limit reached for requests"),
    ("model-500-persistent", "answered HTTP 500: The server had an error while processing your request."),
    ("model-timeout-persistent", f"no answer from {{url}} within the deadline ({TIMEOUT_S:g}s"),
])
async def test_a_model_fault_that_never_clears_ends_the_run_with_the_reason(
        case: str, says: str, fault_cases: FaultCases) -> None:
    ending, requests = await fault_cases.outcome(case)
    print(f"\n{case}: {requests} requests; {ending.reason()}")
    ending.assert_clean([RunState.failed], pulls=0)
    assert requests == ATTEMPTS
    [reason] = ending.status.reasons
    assert reason.startswith("the coder failed: model call failed: model 'faulty-coder'"), reason
    assert says.split("{url}")[-1] in reason, reason


@pytest.mark.parametrize("case", ["model-truncated-json"])
async def test_a_complete_answer_with_truncated_json_is_not_retried_and_says_so(
        case: str, fault_cases: FaultCases) -> None:
    ending, requests = await fault_cases.outcome(case)
    print(f"\n{case}: {requests} requests; {ending.reason()}")
    ending.assert_clean([RunState.failed], pulls=0)
    assert requests == 1
    [reason] = ending.status.reasons
    assert "model 'faulty-coder'" in reason and "answered 200 with JSON that does not parse" in reason, reason
