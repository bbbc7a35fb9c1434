"""Facts read from Temporal histories: size, largest payload, workflow-task time, shape.

Generic Temporal only (no spec2ship import), so these stay right when the workflows are redesigned:
a run is followed through its continue-as-new chain and into every child, whatever their names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory


@dataclass
class Execution:
    """One run of one workflow id, as its history shows it."""

    workflow_id: str
    run_id: str
    workflow_type: str
    history: WorkflowHistory
    size_bytes: int  # the server's own figure, the one its 10 MB warning and 50 MB limit apply to
    continued_as: str | None = None  # the next run of the chain, when this one continued as new
    children: list[tuple[str, str]] = field(default_factory=list)  # (workflow id, first run id), in start order

    @property
    def events(self) -> list[HistoryEvent]:
        return list(self.history.events)

    @property
    def started(self) -> datetime:
        return self.history.events[0].event_time.ToDatetime()

    @property
    def closed(self) -> datetime:
        return self.history.events[-1].event_time.ToDatetime()

    @property
    def wall_ms(self) -> float:
        return (self.closed - self.started).total_seconds() * 1000

    def activity_types(self) -> Counter[str]:
        return Counter(event.activity_task_scheduled_event_attributes.activity_type.name for event in self.events
                       if event.HasField("activity_task_scheduled_event_attributes"))

    def max_payload_bytes(self) -> int:
        return max((size for event in self.events for size in payload_sizes(event)), default=0)

    def activity_ms(self) -> float:
        """Time activities spent running (each one's last attempt, started to its end): the work itself,
        which no orchestration change removes; the rest of a run is waiting, dispatch and workflow code."""
        started: dict[int, datetime] = {}
        total = 0.0
        for event in self.events:
            if event.HasField("activity_task_started_event_attributes"):
                started[event.activity_task_started_event_attributes.scheduled_event_id] = event.event_time.ToDatetime()
            for name in ("activity_task_completed_event_attributes", "activity_task_failed_event_attributes",
                         "activity_task_timed_out_event_attributes", "activity_task_canceled_event_attributes"):
                if event.HasField(name):
                    began = started.pop(getattr(event, name).scheduled_event_id, None)
                    if began is not None:
                        total += (event.event_time.ToDatetime() - began).total_seconds() * 1000
        return total

    def workflow_task_ms(self) -> float:
        """Time from each workflow task's scheduling to its completion: queueing plus workflow code."""
        scheduled: dict[int, datetime] = {}
        total = 0.0
        for event in self.events:
            if event.HasField("workflow_task_scheduled_event_attributes"):
                scheduled[event.event_id] = event.event_time.ToDatetime()
            for name in ("workflow_task_completed_event_attributes", "workflow_task_failed_event_attributes",
                         "workflow_task_timed_out_event_attributes"):
                if event.HasField(name):
                    began = scheduled.pop(getattr(event, name).scheduled_event_id, None)
                    if began is not None:
                        total += (event.event_time.ToDatetime() - began).total_seconds() * 1000
        return total


def payload_sizes(message: Message) -> Iterator[int]:
    """The serialised size of every Payload anywhere inside `message` (inputs, results, memos, ...)."""
    for descriptor, value in message.ListFields():
        kind = descriptor.message_type
        if kind is None:
            continue
        if kind.GetOptions().map_entry:
            if kind.fields_by_name["value"].message_type is None:
                continue
            items = list(value.values())
        elif descriptor.is_repeated:
            items = list(value)
        else:
            items = [value]
        for item in items:
            if isinstance(item, Payload):
                yield item.ByteSize()
            else:
                yield from payload_sizes(item)


async def execution(client: Client, workflow_id: str, run_id: str | None = None) -> Execution:
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    history = await handle.fetch_history()
    described = await handle.describe()
    info = described.raw_description.workflow_execution_info
    children: list[tuple[str, str]] = []
    continued: str | None = None
    for event in history.events:
        if event.HasField("child_workflow_execution_started_event_attributes"):
            started = event.child_workflow_execution_started_event_attributes.workflow_execution
            children.append((started.workflow_id, started.run_id))
        if event.HasField("workflow_execution_continued_as_new_event_attributes"):
            continued = event.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return Execution(workflow_id=workflow_id, run_id=described.run_id, workflow_type=described.workflow_type,
                     history=history, size_bytes=info.history_size_bytes or history_proto_bytes(history),
                     continued_as=continued, children=children)


def history_proto_bytes(history: WorkflowHistory) -> int:
    return sum(event.ByteSize() for event in history.events)


async def chain(client: Client, workflow_id: str, run_id: str | None = None) -> list[Execution]:
    """Every run of one workflow id, following continue-as-new from `run_id` (the first run) on."""
    runs = [await execution(client, workflow_id, run_id)]
    while runs[-1].continued_as:
        runs.append(await execution(client, workflow_id, runs[-1].continued_as))
    return runs


async def tree(client: Client, workflow_id: str, run_id: str | None = None) -> list[Execution]:
    """The run, its continuations, and all its descendants' runs (depth first, in start order)."""
    found: list[Execution] = []
    for run in await chain(client, workflow_id, run_id):
        found.append(run)
        for child_id, child_run in run.children:
            found.extend(await tree(client, child_id, child_run))
    return found


@dataclass
class Shape:
    """What a run did, in order: each entry is one activity (0) or one child with that many activities."""

    steps: list[int]

    @property
    def activities(self) -> int:
        return sum(1 if step == 0 else step for step in self.steps)

    @property
    def children(self) -> int:
        return sum(1 for step in self.steps if step)


async def shape_of(client: Client, workflow_id: str, run_id: str | None = None) -> Shape:
    """The parent's activities and children in the order it scheduled them; a child counts all the
    activities of its own tree (it is replayed as one child running that many)."""
    steps: list[int] = []
    for run in await chain(client, workflow_id, run_id):
        child_runs = iter(run.children)
        for event in run.events:
            if event.HasField("activity_task_scheduled_event_attributes"):
                steps.append(0)
            elif event.HasField("child_workflow_execution_started_event_attributes"):
                child_id, child_run = next(child_runs)
                below = await tree(client, child_id, child_run)
                steps.append(max(1, sum(sum(r.activity_types().values()) for r in below)))
    return Shape(steps)
