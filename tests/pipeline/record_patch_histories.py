"""Record, once per patch in `workflows/patches.py`, a history that takes the patched (new) branch.

The histories `record_histories.py` made predate every patch, so they prove the old branch replays; these
prove the new one does. Run by hand when a patch is added, for that patch only, never to make a change pass:

    .venv/bin/python tests/pipeline/record_patch_histories.py offer-mcp-tools

Files are written as `histories/patch-<id>*.json`; the patch's register entry names them in `after`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import yaml
from pipeline_harness import start_run, wait_for_decision
from record_histories import OUT, recording, save
from temporalio.client import Client

from contracts.agents import AgentChoice
from contracts.forge import ForgeKind, RepoRef, SpecSource
from contracts.names import APPROVE, REJECT, SPEC_TO_SHIP
from contracts.runs import HumanAction, RunStatus, SpecToShipInput
from workers.runs import submit_run
from workers.sample.repo import build_sample, git

Scenario = Callable[[Client, str, Path], Awaitable[str]]


async def offer_mcp_tools(client: Client, queue: str, tmp: Path) -> str:
    """Every AgentRun started today asks for its MCP tools: the L5 run of the sample."""
    paths = build_sample(tmp)
    handle = await start_run(client, queue, paths["repo"], paths["greet-by-name.md"], AgentChoice(
        coder=f"scripted:{paths['coder-greet.yaml']}", reviewer=f"scripted:{paths['reviewer-approve.yaml']}",
        judge=f"scripted:{paths['judge-fallback.yaml']}"))
    await handle.result()
    return handle.id


async def conversation_in_store(client: Client, queue: str, tmp: Path) -> str:
    """Every AgentRun started today keeps its conversation in the blob store: the L5 run of the sample again."""
    return await offer_mcp_tools(client, queue, tmp)


async def cli_agent_coder(client: Client, queue: str, tmp: Path) -> str:
    """A coder whose registry entry is a CLI agent: one run_cli_agent activity."""
    agent = tmp / "fake_agent.py"
    agent.write_text(textwrap.dedent("""\
        import pathlib
        readme = pathlib.Path("README.md")
        readme.write_text(readme.read_text() + "\\n## API\\n\\n`GET /hello?name=Ada` answers `Hello, Ada`.\\n")
    """))
    config = tmp / "spec2ship.yaml"
    config.write_text(yaml.safe_dump({"models": [{"name": "local-cli", "provider": "cli", "roles": ["coder"],
                                                  "command": f"{sys.executable} {agent}", "timeout_s": 60}]}))
    os.environ["SPEC2SHIP_CONFIG"] = str(config)
    try:
        paths = build_sample(tmp)
        handle = await start_run(client, queue, paths["repo"], paths["document-hello.md"], AgentChoice())
        await wait_for_decision(handle)
        await handle.execute_update(APPROVE, HumanAction(actor="alice", reason="recorded"))
        await handle.result()
    finally:
        del os.environ["SPEC2SHIP_CONFIG"]
    return handle.id


async def count_tool_denials(client: Client, queue: str, tmp: Path) -> str:
    """The tool activity itself refuses a call the workflow let through: a link onto a secret."""
    paths = build_sample(tmp)
    repo = paths["repo"]
    (repo / ".env").write_text("API_TOKEN=recorded-not-a-secret\n")
    (repo / "docs").mkdir()
    (repo / "docs" / "settings").symlink_to("../.env")
    git(repo, "add", "-f", ".env", "docs/settings")
    git(repo, "commit", "-qm", "settings")
    script = tmp / "coder-link.yaml"
    script.write_text(yaml.safe_dump({"model": "scripted-coder", "turns": [
        {"content": "Reading the settings.", "tool_calls": [{"name": "read_file", "arguments": {
            "path": "docs/settings"}}], "usage": {"input_tokens": 100, "output_tokens": 10}},
        {"content": "Documenting.", "tool_calls": [{"name": "write_file", "arguments": {
            "path": "README.md", "content": "# greeter\n\n`GET /hello` answers.\n"}}],
         "usage": {"input_tokens": 100, "output_tokens": 10}},
        {"content": "Done.", "tool_calls": [], "usage": {"input_tokens": 100, "output_tokens": 10}}]}))
    handle = await start_run(client, queue, repo, paths["document-hello.md"], AgentChoice(coder=f"scripted:{script}"))
    await wait_for_decision(handle)
    await handle.execute_update(REJECT, HumanAction(actor="alice", reason="recorded"))
    await handle.result()
    return handle.id


async def tell_issue_no_coder(client: Client, queue: str, tmp: Path) -> str:
    """A run from an issue with no coder configured says so on the issue, then fails."""
    paths = build_sample(tmp)
    ref = RepoRef(kind=ForgeKind.local, location=str(paths["repo"]))
    handle = await client.start_workflow(
        SPEC_TO_SHIP, SpecToShipInput(repo=ref, spec=SpecSource(kind="inline", text=paths["shout.md"].read_text(),
                                                                path="shout.md"), issue_number=7),
        id=f"spec2ship/recorded/issue-7-{uuid.uuid4().hex[:6]}", task_queue=queue, result_type=RunStatus)
    await handle.result()
    return handle.id


async def issue_ending_label(client: Client, queue: str, tmp: Path) -> str:
    """A run from an issue that fails before a PR (no coder configured) labels the issue spec2ship:failed."""
    return await tell_issue_no_coder(client, queue, tmp)


async def stage_failure_ends_run(client: Client, queue: str, tmp: Path) -> str:
    """A coder named that no registry knows: planning fails for good, the run ends as failed and cleans up."""
    paths = build_sample(tmp)
    handle = await start_run(client, queue, paths["repo"], paths["greet-by-name.md"],
                             AgentChoice(coder="no-such-model"))
    await handle.result()
    return handle.id


async def four_eyes(client: Client, queue: str, tmp: Path) -> str:
    """The requester's own approve Signal is ignored; another person's Update approves."""
    paths = build_sample(tmp)
    ref = RepoRef(kind=ForgeKind.local, location=str(paths["repo"]))
    handle = await submit_run(client, ref, paths["document-hello.md"].read_text(), "document-hello.md",
                              AgentChoice(coder=f"scripted:{paths['coder-docs.yaml']}"), task_queue=queue,
                              workflow_id=f"spec2ship/recorded/four-eyes-{uuid.uuid4().hex[:6]}", requested_by="alice")
    await wait_for_decision(handle)
    await handle.signal(APPROVE, HumanAction(actor="alice", reason="my own change"))
    await handle.execute_update(APPROVE, HumanAction(actor="bob", reason="recorded"))
    await handle.result()
    return handle.id


async def admission_by_signal(client: Client, queue: str, tmp: Path) -> str:
    """Any run today is admitted by signal: the L3 docs run, approved."""
    paths = build_sample(tmp)
    handle = await start_run(client, queue, paths["repo"], paths["document-hello.md"],
                             AgentChoice(coder=f"scripted:{paths['coder-docs.yaml']}"))
    await wait_for_decision(handle)
    await handle.execute_update(APPROVE, HumanAction(actor="bob", reason="recorded"))
    await handle.result()
    return handle.id


SCENARIOS: dict[str, Scenario] = {
    "offer-mcp-tools": offer_mcp_tools, "cli-agent-coder": cli_agent_coder,
    "count-tool-denials": count_tool_denials, "tell-issue-no-coder": tell_issue_no_coder,
    "stage-failure-ends-run": stage_failure_ends_run, "four-eyes": four_eyes,
    "conversation-in-store": conversation_in_store,
    "admission-by-signal": admission_by_signal, "issue-ending-label": issue_ending_label,
}


async def main(names: list[str]) -> None:
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown or not names:
        raise SystemExit(f"name one or more patches to record: {', '.join(SCENARIOS)}")
    async with recording() as (client, queue, tmp):
        for name in names:
            (tmp / name).mkdir(parents=True)
            workflow_id = await SCENARIOS[name](client, queue, tmp / name)
            await save(client, workflow_id, f"patch-{name}")
            print(f"recorded {name}: {sorted(p.name for p in OUT.glob(f'patch-{name}*.json'))}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
