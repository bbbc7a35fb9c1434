"""Every hostile call of the corpus goes through check_call + execute on a real workspace, and has no effect.

For each call: it is refused (denied by the gateway, or run and its effect reverted, or run confined with
nothing to show for it), and its effect count is zero: no form of the canary secret in any tool output,
no copy of it in the workspace, no file changed outside the writable paths (secret files and git
internals included), no connection to the canary listener, no process left behind, output within the cap.

Runs twice: confined with bubblewrap (when this machine can), and unconfined. Unconfined, the attacks
that only confinement can stop (code the agent wrote, reading outside the repository or connecting out)
are left out of the figures, run anyway, and must show their effect: the documented gap is checked, and
so are the detectors.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from corpus import ATTACKS, INJECTIONS, Attack
from governance_env import (
    Listener,
    build_repo,
    canary_listener,
    coder_grant,
    copy_repo,
    files_holding,
    leak_forms,
    new_canary,
    outside_state,
    processes_with,
)

from activities.workspace import tools
from activities.workspace.dispatch import OUTPUT_CAP, execute
from activities.workspace.mcp_tools import McpServerConfig, McpSettings
from activities.workspace.sandbox import bubblewrap_problem
from activities.workspace.tools import Workspace
from contracts.agents import ToolCall
from contracts.workspace import ToolGrant, ToolStatus

HAVE_MCP = True
try:
    import mcp  # noqa: F401
except ImportError:  # pragma: no cover - depends on the installed extras
    HAVE_MCP = False

MCP_SERVER = Path(__file__).with_name("governance_mcp_server.py")
MCP_GRANTED = ["mcp__files__read_text", "mcp__files__write_text", "mcp__files__echo", "mcp__files__env_dump",
               "mcp__files__connect", "mcp__files__big"]


@dataclass
class Outcome:
    attack: str
    category: str
    how: str  # denied | reverted | contained
    effects: list[str]


@dataclass
class World:
    template: Path
    canary: str
    env_canary: str
    listener: Listener
    settings: McpSettings
    grant: ToolGrant
    nonce: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    canary, env_canary = new_canary(), new_canary()
    template = build_repo(tmp_path_factory.mktemp("template") / "repo", canary)
    settings = McpSettings(servers=[McpServerConfig(name="files", command=sys.executable, args=[str(MCP_SERVER)],
                                                    timeout_s=20, writable=True, read_only_paths=[str(MCP_SERVER)])])
    previous = os.environ.get("SPEC2SHIP_GITHUB_TOKEN")
    os.environ["SPEC2SHIP_GITHUB_TOKEN"] = env_canary  # a worker credential: no command may see it
    old_search = tools.SEARCH_SECONDS
    tools.SEARCH_SECONDS = 0.5
    # Another process of the worker's user, started with a credential in its environment.
    neighbour = subprocess.Popen(["sleep", "600"], env={"PATH": os.environ.get("PATH", ""),
                                                        "SPEC2SHIP_GITHUB_TOKEN": env_canary})
    try:
        with canary_listener() as listener:
            yield World(template, canary, env_canary, listener, settings, coder_grant(mcp_tools=MCP_GRANTED),
                        nonce=str(random.randint(100_000, 999_999)))
    finally:
        neighbour.kill()
        neighbour.wait()
        tools.SEARCH_SECONDS = old_search
        if previous is None:
            os.environ.pop("SPEC2SHIP_GITHUB_TOKEN", None)
        else:
            os.environ["SPEC2SHIP_GITHUB_TOKEN"] = previous


def _fill(value: Any, world: World, outside: Path) -> Any:
    if isinstance(value, str):
        if value == "{port}":
            return world.listener.port
        return (value.replace("{port}", str(world.listener.port)).replace("{outside}", str(outside))
                .replace("{nonce}", world.nonce))
    if isinstance(value, dict):
        return {key: _fill(item, world, outside) for key, item in value.items()}
    return value


class Workspaces:
    """Fresh copies of the hostile repository; a copy is reused only after calls that were denied (and
    so, as the test checks each time, changed nothing)."""

    def __init__(self, world: World, base: Path) -> None:
        self.world, self.base, self.count = world, base, 0
        self.clean: Path | None = None

    def take(self, plant: tuple[str, str] | None) -> Path:
        if self.clean is not None and plant is None:
            root, self.clean = self.clean, None
            return root
        self.count += 1
        folder = self.base / f"w{self.count}"
        root = copy_repo(self.world.template, folder / "repo")
        (folder / "outside").mkdir()
        (folder / "outside" / "secret.txt").write_text(f"outside {self.world.canary}\n")
        if plant:
            (root / plant[0]).write_text(plant[1])
        return root

    def give_back(self, root: Path, untouched: bool) -> None:
        self.clean = root if untouched else None


def _run(world: World, mode: str, spaces: Workspaces, attack_id: str, category: str,
         setup: list[tuple[str, dict[str, Any]]], tool: str, arguments: dict[str, Any], marker: str,
         plant: tuple[str, str] | None = None) -> Outcome:
    root = spaces.take(plant)
    outside = root.parent / "outside"
    workspace = Workspace(root, confinement=mode)
    outputs: list[str] = []
    for number, (setup_tool, setup_args) in enumerate(setup):
        arguments_filled = _fill(setup_args, world, outside)
        call = ToolCall(id=f"setup-{number}", name=setup_tool, arguments=arguments_filled)
        result = execute(workspace, call, world.grant, mcp=world.settings)
        assert result.status is ToolStatus.ok, f"{attack_id}: setup {setup_tool} failed: {result.output}"
        outputs.append(result.output)
    before = outside_state(root)
    connections = len(world.listener.connections)
    call = ToolCall(id=attack_id, name=tool, arguments=_fill(arguments, world, outside))
    marker = _fill(marker, world, outside)
    result = execute(Workspace(root, confinement=mode), call, world.grant, mcp=world.settings)
    outputs.append(result.output)
    command = str(call.arguments.get("command", ""))
    if tool == "run_command" and command.startswith("python3 tests/") and result.status is not ToolStatus.denied:
        assert "RAN" in result.output, f"{attack_id}: the attack's script did not run at all: {result.output}"
    if tool.startswith("mcp__") and result.status is not ToolStatus.denied:
        assert "error: MCP server" not in result.output, f"{attack_id}: the MCP server did not answer: {result.output}"
    effects: list[str] = []
    for secret in (world.canary, world.env_canary):
        for form in leak_forms(secret):
            if any(form in output for output in outputs):
                effects.append(f"the output holds a form of the secret ({form[:12]}...)")
    copies = files_holding(root, world.canary, skip={".env", "id_rsa"})
    if copies:
        effects.append(f"copies of the secret in {copies}")
    after = outside_state(root)
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    if changed:
        effects.append(f"changed outside the writable paths: {changed}")
    if len(world.listener.connections) > connections:
        effects.append("the canary listener was contacted")
    if marker and processes_with(marker):
        effects.append(f"processes with {marker!r} survived")
    if len(result.output) > OUTPUT_CAP + 500:
        effects.append(f"output of {len(result.output)} characters passed the cap")
    how = "denied" if result.status is ToolStatus.denied else "reverted" if result.reverted else "contained"
    spaces.give_back(root, untouched=how == "denied" and not setup and not plant and not effects)
    return Outcome(attack_id, category, how, effects)


def _applicable(attack: Attack, mode: str) -> str | None:
    """Why this attack is left out in this mode, or None."""
    needs = set(attack.needs.split())
    if "mcp" in needs and not HAVE_MCP:
        return "the mcp package is not installed"
    if "bubblewrap" in needs and mode != "bubblewrap":
        return "only confinement stops it"
    return None


@pytest.mark.parametrize("mode", ["bubblewrap", "none"])
def test_hostile_corpus_has_no_effect(mode: str, world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    if mode == "bubblewrap" and bubblewrap_problem():
        pytest.skip(f"bubblewrap cannot confine commands on this machine: {bubblewrap_problem()}")
    outcomes: list[Outcome] = []
    left_out: list[str] = []
    gaps: list[Outcome] = []
    spaces = Workspaces(world, tmp_path)
    for attack in ATTACKS:
        reason = _applicable(attack, mode)
        if reason == "only confinement stops it":
            # Run it anyway: the gap must be real (and the detectors must see it), not assumed.
            gaps.append(_run(world, mode, spaces, attack.id, attack.category, list(attack.setup), attack.tool,
                             attack.arguments, attack.marker))
        if reason:
            left_out.append(f"{attack.id} ({reason})")
            continue
        outcomes.append(_run(world, mode, spaces, attack.id, attack.category, list(attack.setup), attack.tool,
                             attack.arguments, attack.marker))
    for injection in INJECTIONS:
        plant = None if injection.where == "issue" else (injection.where, injection.text + "\n")
        for number, (tool, arguments) in enumerate(injection.calls):
            if tool.startswith("mcp__") and not HAVE_MCP:
                left_out.append(f"{injection.id}/{number} (the mcp package is not installed)")
                continue
            setup = [("read_file", {"path": injection.where})] if plant else []
            outcomes.append(_run(world, mode, spaces, f"{injection.id}-{number}", "prompt_injection", setup, tool,
                                 arguments, "", plant=plant))

    figures: dict[str, Counter[str]] = {}
    for outcome in outcomes:
        figures.setdefault(outcome.category, Counter())[outcome.how] += 1
        figures[outcome.category]["executed"] += 1 if outcome.effects else 0
    lines = [f"hostile corpus, {mode} confinement:"]
    for category, counts in sorted(figures.items()):
        attempts = counts["denied"] + counts["reverted"] + counts["contained"]
        refused = attempts - counts["executed"]
        lines.append(f"  {category:18} attempts={attempts:3} refused={refused:3} (denied={counts['denied']}, "
                     f"reverted={counts['reverted']}, contained={counts['contained']}) executed={counts['executed']}")
    total = len(outcomes)
    executed = sum(1 for outcome in outcomes if outcome.effects)
    lines.append(f"  {'total':18} attempts={total:3} refused={total - executed:3} executed={executed}")
    if left_out:
        lines.append(f"  left out in this mode: {', '.join(left_out)}")
    for gap in gaps:
        lines.append(f"  not prevented without confinement: {gap.attack}: {'; '.join(gap.effects) or 'no effect?'}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    failures = [f"{o.attack} ({o.how}): {'; '.join(o.effects)}" for o in outcomes if o.effects]
    assert not failures, "hostile calls had an effect:\n" + "\n".join(failures)
    assert total >= 60
    assert all(gap.effects for gap in gaps), "an attack said to need confinement had no effect without it"
