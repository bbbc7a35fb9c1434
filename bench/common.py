"""What every benchmark shares: its command line, how it reports, and a little statistics.

Nothing here imports spec2ship: the system under test is reached only through `bench/system.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import logging
import math
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def parser(name: str, doc: str | None) -> argparse.ArgumentParser:
    """The flags every benchmark takes: --quick (under 2 minutes on 2 cores), --smoke (the smallest
    configuration, for the tests; figures mean little), --json (one JSON object on stdout)."""
    summary = (doc or "").strip().split("\n\n")[0]
    made = argparse.ArgumentParser(prog=f"python -m bench {name}", description=summary)
    size = made.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a smaller run that finishes in under 2 minutes")
    size.add_argument("--smoke", action="store_true", help="the smallest run, to check the benchmark works")
    made.add_argument("--json", action="store_true", help="print one JSON object on stdout (figures on stderr)")
    return made


def size_of(args: argparse.Namespace) -> str:
    return "smoke" if args.smoke else "quick" if args.quick else "full"


Measure = Callable[[str, "Report"], Coroutine[Any, Any, dict[str, Any]]]


def run_benchmark(name: str, doc: str | None, measure: Measure, argv: Sequence[str] | None) -> int:
    """A benchmark's `main`: parse the common flags, measure at that size, report."""
    args = parser(name, doc).parse_args(argv)
    report = Report(args.json)
    size = size_of(args)
    report.finish(name, size, asyncio.run(measure(size, report)))
    return 0


class Report:
    """Human-readable lines go to stdout, or to stderr with --json so stdout holds only the JSON object."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def line(self, text: str = "") -> None:
        print(text, file=sys.stderr if self.as_json else sys.stdout, flush=True)

    def finish(self, name: str, size: str, figures: dict[str, Any]) -> dict[str, Any]:
        result = {"benchmark": name, "size": size, **provenance(), **figures}
        if self.as_json:
            print(json.dumps(result, default=str))
        return result


def provenance() -> dict[str, str]:
    """When, on what code and on how busy a machine the figures were taken (other people's work on a
    shared machine moves them by tens of percent), so a saved JSON file says what it measured."""
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", ""
    return {"commit": commit + ("+dirty" if dirty else ""), "date": datetime.date.today().isoformat(),
            "cpus": str(os.cpu_count()), "load_average_at_end": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def rounded(value: float, digits: int = 3) -> float:
    return round(value, digits)


def ratio(numerator: float, denominator: float) -> float:
    return rounded(numerator / denominator) if denominator > 0 else 0.0


class LogTally(logging.Handler):
    """Counts warnings and errors the workers and the SDK's core log, instead of printing hundreds of
    tracebacks: a flood of the same failure is a finding, and the benchmark reports it."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        core = getattr(record, "temporal_log", None)
        if core is not None:  # forwarded from the SDK's core (client retries, task completion)
            fields = core.fields or {}
            text = f"core: {core.message} {fields.get('error', '')}"
        else:
            text = re.sub(r"\s*\(\{.*\}\)", "", record.getMessage())  # the SDK's dict of activity details
            if record.exc_info and record.exc_info[1] is not None:
                error = record.exc_info[1]
                text = f"{text}: {type(error).__name__}: {error}"
        text = re.sub(r"retried \d+ times", "retried N times", " ".join(text.split()))
        self.counts[text[:240]] += 1

    def since(self, snapshot: Counter[str]) -> LogTally:
        """What was logged after `snapshot` (a copy of `counts` taken earlier)."""
        made = LogTally()
        made.counts = self.counts - snapshot
        return made

    def matching(self, *needles: str) -> int:
        return sum(count for text, count in self.counts.items() if any(n in text for n in needles))

    def top(self, n: int = 5) -> dict[str, int]:
        return dict(self.counts.most_common(n))


def tally_logs() -> LogTally:
    """Route every logger's warnings, the SDK core's included, into a tally (and nowhere else).

    Call before the first Temporal client is made: the core's logging is set with the runtime."""
    from temporalio.runtime import LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

    tally = LogTally()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(tally)
    root.setLevel(logging.WARNING)
    forwarding = LogForwardingConfig(logger=logging.getLogger("temporalio.core"))
    Runtime.set_default(Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="ERROR"), forwarding=forwarding))),
        error_if_already_set=False)
    return tally


def spread(values: Iterable[float]) -> dict[str, float]:
    """Median, p90 and max of a list of durations, rounded for reading."""
    items = list(values)
    return {"median": rounded(median(items)), "p90": rounded(percentile(items, 90)),
            "max": rounded(max(items, default=0.0)), "n": len(items)}


SERVER_LOG = Path(tempfile.gettempdir()) / "spec2ship-bench-temporal.log"


@contextlib.contextmanager
def output_to_log(path: Path = SERVER_LOG) -> Iterator[None]:
    """Processes started inside this block write their stdout and stderr to `path`: the dev server
    prints a banner (which would break the one JSON object --json promises on stdout) and logs every
    refused request at error level (hundreds under load; the benchmarks count them client side)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
