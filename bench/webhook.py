"""Webhook ingress: labelled issues delivered at 50, 200 and 500 deliveries a second.

Every delivery is a signed `issues.labeled` delivery with the factory label for an issue of its own
(and a few issues are labelled twice, as when a person removes and adds the label again). They are
sent open loop, at the offered rate whatever the answers, to `spec2ship webhook serve` running in a
process of its own against a fresh dev server; GitHub is the project's double. No worker runs: ingress
is measured, so a run counts once its SpecToShip workflow exists.

    python -m bench webhook [--quick|--smoke] [--json]

Figures per offered rate: `p50_ms` and `p99_ms` (client side, from sending a delivery to its answer;
a delivery that got no answer within GitHub's 10 seconds counts as 10 s), answers by status, `lost`
(labelled issues with no SpecToShip workflow once the system has settled: polled for a grace period
after the last answer), `lost_acknowledged` (those of them whose delivery was answered 202: what ingress
promised and did not keep), `duplicates` (issues with more than one run), and `cpu_ms_per_delivery` (CPU
the generator, the webhook server, its drain and the Temporal dev server spent per delivery while the rate
ran and settled); `lost` at the top is the sum over rates. Floor: 0 lost, 0 duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
from temporalio.client import Client

from bench import system
from bench.common import Report, percentile, rounded, run_benchmark

GITHUB_TIMEOUT_S = 10.0  # GitHub gives up on a delivery after 10 seconds and marks it failed
RELABEL_SHARE = 0.05  # issues that get a second labelled delivery (label removed and added again)
SIZES = {  # offered rates, seconds of load per rate, longest wait for the system to settle
    "smoke": ((20,), 1.0, 10.0),
    "quick": ((50, 200, 500), 4.0, 60.0),
    "full": ((50, 200, 500), 15.0, 180.0),
}


@dataclass
class Sent:
    issue: int
    status: int | None  # None: no answer (timeout, connection refused or reset)
    ms: float
    lag_ms: float  # how late the generator sent it against the schedule
    error: str = ""


class Senders:
    """A pool of kept-alive HTTP/1.1 connections over asyncio streams, each carrying one request at a time.

    The generator shares two cores with what it measures, so it must cost as little per delivery as it
    can: httpx spent 1.5-3 ms of CPU per request here, and a starved generator measures its own queueing
    (`send_lag_p99_ms` says when it did). Requests are prebuilt bytes; an answer is read by its status
    line, its headers and `Content-Length`, which is all uvicorn sends."""

    def __init__(self, url: str) -> None:
        parsed = urlsplit(url)
        self._host, self._port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self._path = parsed.path or "/"
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._open: set[asyncio.StreamWriter] = set()

    def request(self, headers: dict[str, str], body: bytes) -> bytes:
        lines = [f"POST {self._path} HTTP/1.1", f"Host: {self._host}:{self._port}", f"Content-Length: {len(body)}",
                 *(f"{name}: {value}" for name, value in headers.items()), "", ""]
        return "\r\n".join(lines).encode("latin-1") + body

    async def _connection(self, fresh: bool = False) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._idle and not fresh:
            return self._idle.pop()
        reader, writer = await asyncio.open_connection(self._host, self._port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._open.add(writer)
        return reader, writer

    async def post(self, request: bytes) -> int:
        """The answer's status; raises OSError or asyncio.IncompleteReadError when the connection fails.
        A kept-alive connection the server closed meanwhile (uvicorn closes idle ones after 5 s) is
        replaced once, as every HTTP client does."""
        for attempt in (1, 2):
            reused = bool(self._idle) and attempt == 1
            reader, writer = await self._connection(fresh=attempt == 2)
            try:
                writer.write(request)
                first = await reader.readline()
            except OSError:
                self._drop(writer)
                if reused and attempt == 1:
                    continue
                raise
            if first or not reused:
                return await self._answer(first, reader, writer)
            self._drop(writer)
        raise AssertionError("unreachable")

    async def _answer(self, first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
        try:
            status = int(first.split(b" ", 2)[1])
            length, close = 0, False
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
                elif name.strip().lower() == b"connection" and value.strip().lower() == b"close":
                    close = True
            await reader.readexactly(length)
        except BaseException:
            self._drop(writer)
            raise
        if close:
            self._drop(writer)
        else:
            self._idle.append((reader, writer))
        return status

    def _drop(self, writer: asyncio.StreamWriter) -> None:
        self._open.discard(writer)
        writer.close()

    async def close(self) -> None:
        """Close every connection (also between rates: the server drops idle ones after 5 s anyway)."""
        for writer in list(self._open):
            self._drop(writer)
        self._idle.clear()


async def deliver(senders: Senders, issue: int, request: bytes, due: float) -> Sent:
    lag = (time.monotonic() - due) * 1000
    started = time.perf_counter()
    try:  # GitHub's 10 seconds are for the whole exchange
        status = await asyncio.wait_for(senders.post(request), GITHUB_TIMEOUT_S)
    except TimeoutError:
        return Sent(issue, None, GITHUB_TIMEOUT_S * 1000, lag, "timeout")
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as error:
        return Sent(issue, None, (time.perf_counter() - started) * 1000, lag, type(error).__name__)
    return Sent(issue, status, (time.perf_counter() - started) * 1000, lag)


async def offer(senders: Senders, github: system.GitHubDouble, repo: str, rate: int,
                seconds: float) -> tuple[list[Sent], list[int], float]:
    """Open loop: delivery i leaves at start + i/rate whether or not earlier ones were answered."""
    github.add_repo(repo)
    count = max(int(rate * seconds), 1)
    issues = [github.add_labelled_issue(repo, f"Friendlier greeting {n}") for n in range(count)]
    relabelled = set(random.Random(rate).sample(issues, int(len(issues) * RELABEL_SHARE)))
    plan = [(n, issue) for n, issue in enumerate(issues)]
    plan += [(n + int(rate * 0.5), issue) for n, issue in enumerate(issues) if issue in relabelled]  # ~0.5 s later
    plan.sort()
    deliveries = [(issue, senders.request(*system.labelled_delivery(repo, issue, str(uuid.uuid4()))))
                  for _, issue in plan]
    tasks: list[asyncio.Task[Sent]] = []
    start = time.monotonic() + 0.05
    for n, (issue, request) in enumerate(deliveries):
        due = start + n / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(deliver(senders, issue, request, due)))
    sent_for = time.monotonic() - start  # from the first delivery's schedule to the last one's leaving
    return list(await asyncio.gather(*tasks)), issues, sent_for


async def settle(client: Client, repo: str, issues: Sequence[int], grace_s: float,
                 spool: Path | None = None) -> tuple[list[str], int, float]:
    """Poll until every issue has its run, or the webhook's spool has nothing left to carry out (what is
    still missing then is lost, not late), or `grace_s` ends; (the lost runs' workflow ids, duplicates,
    seconds waited). Without a spool (an ingress that keeps none) only the grace period bounds the wait."""
    expected = {system.issue_workflow_id(repo, issue) for issue in issues}
    started = time.monotonic()
    drained = False
    while True:
        counts = await system.runs_started(client, repo)
        missing = sorted(expected - counts.keys())
        if not missing or drained or time.monotonic() - started >= grace_s:
            break
        drained = spool is not None and system.spool_pending(spool) == 0  # one more listing after it empties
        await asyncio.sleep(1.0)
    waited = time.monotonic() - started
    gate = asyncio.Semaphore(16)

    async def exists(workflow_id: str) -> bool:
        async with gate:
            return await system.run_exists(client, workflow_id)

    found = await asyncio.gather(*(exists(wid) for wid in missing))  # the listing may lag; describe is exact
    confirmed = [wid for wid, there in zip(missing, found, strict=True) if not there]
    duplicates = sum(1 for wid, n in counts.items() if wid in expected and n > 1)
    return confirmed, duplicates, waited


class CpuMeter:
    """CPU seconds spent by each party while one rate runs: the generator (this process), the webhook server,
    its drain (the server's child processes) and the Temporal dev server. Per delivery, these say where the
    machine's two cores went, which latency alone cannot: on a saturated machine every figure is queueing."""

    def __init__(self, webhook_pid: int) -> None:
        self._me = psutil.Process()
        self._webhook = psutil.Process(webhook_pid)

    def _parties(self) -> dict[str, list[psutil.Process]]:
        children = [p for p in self._me.children() if p.pid != self._webhook.pid]
        return {
            "generator": [self._me],
            "webhook_server": [self._webhook],
            "drain": self._webhook.children(recursive=True),
            "temporal": [p for p in children if "temporal" in p.name()],
        }

    def sample(self) -> dict[str, float]:
        spent: dict[str, float] = {}
        for party, processes in self._parties().items():
            total = 0.0
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    total += times.user + times.system
            spent[party] = total
        return spent


async def wait_quiet(base: str, limit_s: float = 30.0) -> None:
    """Until the server answers /healthz within 100 ms: a backlog from the last rate must not spill over."""
    async with httpx.AsyncClient(timeout=5.0) as http:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            started = time.perf_counter()
            with contextlib.suppress(httpx.HTTPError):
                await http.get(base + "/healthz")
                if time.perf_counter() - started < 0.1:
                    return
            await asyncio.sleep(0.5)


async def wait_ready(base: str, process: Any, log: Path) -> None:
    async with httpx.AsyncClient(timeout=2.0) as http:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise system.BenchSetupError(f"the webhook server exited ({process.returncode}); see {log}")
            try:
                if (await http.get(base + "/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
    raise system.BenchSetupError(f"the webhook server was not ready within 60 s; see {log}")


async def one_rate(senders: Senders, client: Client, github: system.GitHubDouble, repo: str, rate: int,
                   seconds: float, grace_s: float, cpu: CpuMeter, spool: Path) -> dict[str, Any]:
    await senders.close()  # what the last rate left open has gone stale
    before = cpu.sample()
    sent, issues, sent_for = await offer(senders, github, repo, rate, seconds)
    lost, duplicates, waited = await settle(client, repo, issues, grace_s, spool)
    after = cpu.sample()
    latencies = [s.ms if s.status is not None else GITHUB_TIMEOUT_S * 1000 for s in sent]
    acknowledged = {system.issue_workflow_id(repo, s.issue) for s in sent if s.status == 202}
    return {
        "offered_rate": rate, "deliveries": len(sent), "issues": len(issues),
        "achieved_rate": rounded((len(sent) - 1) / sent_for, 1) if sent_for > 0 else 0.0,
        "p50_ms": rounded(percentile(latencies, 50), 1),
        "p99_ms": rounded(percentile(latencies, 99), 1),
        "max_ms": rounded(max(latencies), 1),
        "answers": dict(Counter(str(s.status) if s.status is not None else s.error for s in sent)),
        "not_accepted": sum(1 for s in sent if s.status != 202),
        "lost": len(lost), "lost_acknowledged": len(acknowledged.intersection(lost)), "duplicates": duplicates,
        "settle_s": rounded(waited, 1),
        "send_lag_p99_ms": rounded(percentile([s.lag_ms for s in sent], 99), 1),
        "cpu_ms_per_delivery": {party: rounded((after[party] - before.get(party, 0.0)) * 1000 / max(len(sent), 1), 2)
                                for party in after},
    }


async def measure(size: str, report: Report) -> dict[str, Any]:
    rates, seconds, grace_s = SIZES[size]
    tag = uuid.uuid4().hex[:6]
    by_rate: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="spec2ship-bench-") as folder, system.github_double() as github:
        log = Path(folder) / "webhook.log"
        env = await system.start_server()
        port = system.free_port()
        spool = Path(folder) / "spool.sqlite3"
        process = system.webhook_process(port, system.server_address(env), f"bench-{tag}", github, log, spool)
        base = f"http://127.0.0.1:{port}"
        senders = Senders(base + "/webhooks/github")
        try:
            await wait_ready(base, process, log)
            await offer(senders, github, f"bench/warm-{tag}", 10, 1.0)  # warm-up
            for rate in rates:
                await wait_quiet(base)
                figure = await one_rate(senders, env.client, github, f"bench/ingress-{rate}-{tag}", rate,
                                        seconds, grace_s, CpuMeter(process.pid), spool)
                by_rate[str(rate)] = figure
                report.line(f"{rate:>4}/s offered ({figure['achieved_rate']}/s sent, {figure['deliveries']} "
                            f"deliveries, {figure['issues']} issues): p50 {figure['p50_ms']} ms, p99 "
                            f"{figure['p99_ms']} ms; answers {figure['answers']}; lost {figure['lost']} "
                            f"({figure['lost_acknowledged']} of them answered 202), duplicates {figure['duplicates']} "
                            f"(settled after {figure['settle_s']}s); CPU ms per delivery "
                            f"{figure['cpu_ms_per_delivery']}")
        finally:
            await senders.close()
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            await env.shutdown()
    total_lost = sum(figure["lost"] for figure in by_rate.values())
    acknowledged_lost = sum(figure["lost_acknowledged"] for figure in by_rate.values())
    report.line(f"lost over all rates: {total_lost} ({acknowledged_lost} of them answered 202)")
    return {"lost": total_lost, "lost_acknowledged": acknowledged_lost,
            "duplicates": sum(f["duplicates"] for f in by_rate.values()),
            "rates": by_rate, "seconds_per_rate": seconds, "grace_s": grace_s, "relabel_share": RELABEL_SHARE}


def main(argv: Sequence[str] | None = None) -> int:
    return run_benchmark("webhook", __doc__, measure, argv)


if __name__ == "__main__":
    sys.exit(main())
