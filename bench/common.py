"""What every benchmark shares: its command line, how it reports, and a little statistics.

Nothing here imports spec2ship: the system under test is reached only through `bench/system.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import math
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
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
    """When and on what code the figures were taken, so a saved JSON file says what it measured."""
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", ""
    return {"commit": commit + ("+dirty" if dirty else ""), "date": datetime.date.today().isoformat()}


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
    """Counts warnings and errors the workers log, instead of printing hundreds of tracebacks.

    A benchmark reports the most frequent ones: a flood of the same failure is a finding, not noise.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            text = f"{text}: {type(error).__name__}: {error}"
        self.counts[" ".join(text.split())[:160]] += 1

    def matching(self, needle: str) -> int:
        return sum(count for text, count in self.counts.items() if needle in text)

    def top(self, n: int = 5) -> dict[str, int]:
        return dict(self.counts.most_common(n))


def tally_logs() -> LogTally:
    """Route every logger's warnings into a tally (and nowhere else)."""
    tally = LogTally()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(tally)
    root.setLevel(logging.WARNING)
    return tally


def spread(values: Iterable[float]) -> dict[str, float]:
    """Median, p90 and max of a list of durations, rounded for reading."""
    items = list(values)
    return {"median": rounded(median(items)), "p90": rounded(percentile(items, 90)),
            "max": rounded(max(items, default=0.0)), "n": len(items)}


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Processes started inside this block write their stdout to our stderr (the dev server prints a
    banner on its stdout, which would break the one JSON object --json promises on ours)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
