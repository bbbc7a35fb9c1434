"""A scripted coder that takes many steps with large tool results: it reads a corpus slice by slice
(each slice longer than the tool output cap, so every result is the cap's size) and then makes the sample's
greet-by-name change (workers/sample/repo.py), so the run goes on through review, preview and the gate."""

from __future__ import annotations

from pathlib import Path

import yaml

from activities.workspace.dispatch import OUTPUT_CAP
from workers.sample.repo import CODER_GREET, git

CORPUS = "greeter/corpus.txt"
LINE = "{:07d} The greeter answers every request with a greeting; this line pads the corpus to a width.\n"
LINES_PER_SLICE = OUTPUT_CAP // len(LINE.format(0)) + 5
# Few tokens per read: the sample spec's budget (50,000 tokens) must still carry the review and the judge.
TURN_USAGE = {"input_tokens": 100, "output_tokens": 10}


def long_coder(repo: Path, folder: Path, steps: int) -> Path:
    """Commit the corpus to `repo` and write the script (`steps` model calls in all) to `folder`."""
    greet = list(CODER_GREET["turns"])  # type: ignore[call-overload]
    reads = steps - len(greet)
    assert reads > 0, f"a long coder needs more than {len(greet)} steps"
    (repo / CORPUS).write_text("".join(LINE.format(n) for n in range(LINES_PER_SLICE * reads)))
    git(repo, "add", CORPUS)
    git(repo, "commit", "-q", "-m", "a corpus to read")
    turns = [{"content": f"Reading slice {n + 1}.", "usage": TURN_USAGE, "tool_calls": [{
        "name": "read_file", "arguments": {"path": CORPUS, "start_line": n * LINES_PER_SLICE + 1,
                                           "end_line": (n + 1) * LINES_PER_SLICE}}]} for n in range(reads)]
    script = folder / f"coder-long-{steps}.yaml"
    script.write_text(yaml.safe_dump({"model": "scripted-long-coder", "turns": turns + greet}, sort_keys=False))
    return script
