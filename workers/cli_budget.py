"""`spec2ship budget`: set a team's budget and see what it has used, reserved and left.

The budget itself lives in the team's TeamBudget workflow; `set` creates it when needed
(update-with-start), so an operator can give a team a budget before its first run.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from activities.budget.activities import failure_message, initial_state
from activities.config import TemporalSettings, task_queue
from contracts.budget import BudgetConfig, BudgetPeriod, BudgetView
from contracts.names import CONFIGURE, SHOW, TEAM_BUDGET, budget_id
from workers.temporal_client import connect

budget_app = typer.Typer(
    help="Team budgets: tokens and dollars per team per period (admission control for runs).",
    no_args_is_help=True,
)

_QUERY_TIMEOUT = timedelta(seconds=10)
_LIST_QUERY = f"WorkflowType='{TEAM_BUDGET}' AND ExecutionStatus='Running'"


class BudgetCliError(Exception):
    """A budget command could not do what was asked; the message says why and what to do."""


def _fail(message: str) -> NoReturn:
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code=1)


async def _connect() -> Client:
    settings = TemporalSettings.from_env()
    try:
        return await connect(settings)
    except RuntimeError as error:
        raise BudgetCliError(
            f"cannot reach Temporal at {settings.address} ({error}); start it with `spec2ship up` "
            "or point TEMPORAL_ADDRESS at your server"
        ) from error


async def _configure(team: str, config: BudgetConfig) -> BudgetView:
    return await configure_budget(await _connect(), team, config)


async def configure_budget(client: Client, team: str, config: BudgetConfig, queue: str | None = None) -> BudgetView:
    """Create or change a team's budget through its `configure` update (the demo uses this too)."""
    start: WithStartWorkflowOperation[None, None] = WithStartWorkflowOperation(
        TEAM_BUDGET,
        initial_state(team),
        id=budget_id(team),
        task_queue=queue or task_queue(),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    try:
        view: BudgetView = await client.execute_update_with_start_workflow(
            CONFIGURE, config, start_workflow_operation=start, result_type=BudgetView
        )
    except WorkflowUpdateFailedError as refused:
        raise BudgetCliError(failure_message(refused)) from refused
    except RPCError as error:
        raise BudgetCliError(f"could not set team {team}'s budget: {error}") from error
    return view


async def _show_one(client: Client, team: str) -> BudgetView:
    handle = client.get_workflow_handle(budget_id(team))
    try:
        view: BudgetView = await handle.query(SHOW, result_type=BudgetView, rpc_timeout=_QUERY_TIMEOUT)
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise BudgetCliError(
                f"team {team} has no budget yet; its first run starts one with the org default, "
                f"or set one now: spec2ship budget set {team} --tokens N"
            ) from error
        raise BudgetCliError(f"could not read team {team}'s budget: {error}") from error
    return view


async def _show(team: str | None) -> list[BudgetView]:
    client = await _connect()
    if team is not None:
        return [await _show_one(client, team)]
    teams = [execution.id async for execution in client.list_workflows(_LIST_QUERY)]
    prefix = budget_id("")
    views = [await _show_one(client, workflow_id.removeprefix(prefix)) for workflow_id in sorted(set(teams))]
    return views


def _tokens(value: int | None) -> str:
    return "no cap" if value is None else f"{value:,}"


def _usd(value: float | None) -> str:
    return "no cap" if value is None else f"${value:,.2f}"


def _short(tokens: int | None) -> str:
    """Token counts as people read them in a table: 1.23M, 465k, 980."""
    if tokens is None:
        return "no cap"
    size = abs(tokens)
    if size >= 1_000_000:
        return f"{tokens / 1_000_000:.3g}M"
    if size >= 10_000:
        return f"{tokens / 1000:.0f}k"
    return f"{tokens:,}"


def _render(views: list[BudgetView], console: Console) -> None:
    """Readable at 80 columns: limits share a cell with what is left of them, the period sits under the team."""
    table = Table(title="Team budgets (tokens)")
    for column in ("team", "used", "reserved", "left of limit", "USD used of limit", "runs"):
        table.add_column(column, justify="left" if column == "team" else "right", no_wrap=True)
    for view in views:
        table.add_row(
            f"{view.team}\n[dim]{view.period.value} to {view.period_end:%m-%d}[/dim]",
            _short(view.used.tokens),
            _short(view.reserved.tokens),
            f"{_short(view.free_tokens)} of {_short(view.limits.tokens)}",
            f"${view.used.usd:,.2f} of {_usd(view.limits.usd)}",
            str(view.open_reservations),
        )
    console.print(table)
    if len(views) == 1 and views[0].history:
        past = Table(title=f"Earlier periods of team {views[0].team}")
        for column in ("from", "to", "tokens used of limit", "USD used of limit"):
            past.add_column(column)
        for closed in reversed(views[0].history):
            past.add_row(
                closed.start.strftime("%Y-%m-%d"),
                closed.end.strftime("%Y-%m-%d"),
                f"{_short(closed.used.tokens)} of {_short(closed.limits.tokens)}",
                f"${closed.used.usd:,.2f} of {_usd(closed.limits.usd)}",
            )
        console.print(past)


@budget_app.command("set")
def set_budget(
    team: Annotated[str, typer.Argument(help="The team, as runs name it (the spec's team).")],
    tokens: Annotated[int, typer.Option("--tokens", help="Tokens per period.")],
    usd: Annotated[float | None, typer.Option("--usd", help="US dollars per period; omit for no dollar cap.")] = None,
    period: Annotated[str, typer.Option("--period", help="month, week or day (calendar, UTC).")] = "month",
) -> None:
    """Replace a team's budget (limits and period); runs already admitted keep their reservations."""
    if not team.strip() or team != team.strip() or any(ch in team for ch in "/\\\n"):
        _fail(f"TEAM {team!r}: give the team's name as specs spell it (no spaces around it, no slashes)")
    try:
        chosen = BudgetPeriod(period.strip().lower())
    except ValueError:
        _fail(f"unknown period {period!r} for team {team}; use one of: month, week, day")
    config = BudgetConfig(tokens=tokens, usd=usd, period=chosen)
    problems = config.problems()
    if problems:
        _fail(f"budget for team {team} not changed: {'; '.join(problems)}")
    try:
        view = asyncio.run(_configure(team, config))
    except BudgetCliError as error:
        _fail(str(error))
    console = Console()
    console.print(f"budget for team {team} set: {_tokens(config.tokens)} tokens, {_usd(config.usd)} per {chosen.value}")
    _render([view], console)


@budget_app.command("show")
def show_budget(
    team: Annotated[str | None, typer.Argument(help="One team; omit to show every team with a budget.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object (a team) or array (all teams).")] = False,
) -> None:
    """What each team has used, reserved and left this period."""
    try:
        views = asyncio.run(_show(team))
    except BudgetCliError as error:
        _fail(str(error))
    if as_json:
        payload = views[0].model_dump(mode="json") if team is not None else [v.model_dump(mode="json") for v in views]
        typer.echo(json.dumps(payload))
        return
    if not views:
        Console().print("no team budgets yet: set one with `spec2ship budget set TEAM --tokens N`")
        return
    _render(views, Console())


if __name__ == "__main__":
    budget_app()
