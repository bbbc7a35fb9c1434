"""Builds the demo's sample service repository and its specs, scripts and patches in a folder.

Everything is real: a git repository with a tiny HTTP service and its unit tests, a policy file,
specs in the spec language, scripted model turns and a unified diff.
"""

from __future__ import annotations

import difflib
import textwrap
from pathlib import Path

import yaml

from activities.forge.gitcli import Git

APP_V1 = '''\
"""greeter: a tiny HTTP service used by the spec2ship demo."""

import argparse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def greeting(name: str | None = None) -> str:
    return "Hello, world"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/healthz":
            self._send(200, "ok")
        elif url.path == "/hello":
            name = parse_qs(url.query).get("name", [None])[0]
            self._send(200, greeting(name))
        else:
            self._send(404, "not found")

    def _send(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
'''

APP_V2 = APP_V1.replace(
    '''def greeting(name: str | None = None) -> str:
    return "Hello, world"''',
    '''def greeting(name: str | None = None) -> str:
    return f"Hello, {name}" if name else "Hello, world"''',
)

TESTS_V1 = '''\
import unittest

from greeter.app import greeting


class GreetingTest(unittest.TestCase):
    def test_default(self) -> None:
        self.assertEqual(greeting(), "Hello, world")
'''

TESTS_V2 = TESTS_V1 + '''

class GreetByNameTest(unittest.TestCase):
    def test_by_name(self) -> None:
        self.assertEqual(greeting("Ada"), "Hello, Ada")
'''

README = "# greeter\n\nSays hello. Run with `python -m greeter --port 8080`.\n"

POLICY = {
    "default_autonomy": "L3",
    "services": {"greeter": {"autonomy": "L5"}, "greeter-docs": {"autonomy": "L3"},
                 "greeter-api": {"autonomy": "L4"}},
    "escalation": {"remind_after": "4h", "escalate_after": "24h", "expire_after": "7d",
                   "owners": ["alice", "platform-oncall"]},
}


def _spec(front: dict[str, object], body: str) -> str:
    return "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n" + textwrap.dedent(body).lstrip()


GREET_BY_NAME = _spec(
    {
        "spec": 1, "title": "Greet by name", "service": "greeter", "team": "platform", "kind": "feature",
        "constraints": {"paths": ["greeter/**", "tests/**"], "forbid": [".github/**"], "max_changed_lines": 300,
                        "tech": ["no new dependencies"]},
        "acceptance": [
            {"id": "hello-by-name", "http": {"method": "GET", "path": "/hello?name=Ada", "status": 200,
                                             "body_contains": "Hello, Ada"}},
            {"id": "unit-tests", "run": "python -m unittest -q", "timeout": 120},
            {"id": "friendly-fallback", "judge": "Without a name the greeting falls back to 'world'."},
        ],
        "preview": {"start": "python -m greeter --port {port}", "ready": "/healthz", "ready_timeout": 30},
        "budget": {"tokens": 50000},
    },
    """
    # Greet by name
    `/hello?name=Ada` should answer "Hello, Ada". Without a name it keeps saying "Hello, world".
    Non-goals: localisation.
    """,
)

DOCS_USAGE = _spec(
    {
        "spec": 1, "title": "Document the hello endpoint", "service": "greeter-docs", "team": "platform",
        "kind": "docs", "constraints": {"paths": ["README.md", "docs/**"]},
        "acceptance": [{"id": "readme-mentions-hello", "run": "grep -q '/hello' README.md", "timeout": 30}],
    },
    """
    # Document the hello endpoint
    The README should say how to call `/hello` and what it answers.
    """,
)

SHOUT = _spec(
    {
        "spec": 1, "title": "Shout the greeting", "service": "greeter", "team": "platform", "kind": "feature",
        "constraints": {"paths": ["greeter/**", "tests/**"]},
        "acceptance": [{"id": "unit-tests", "run": "python -m unittest -q", "timeout": 120}],
    },
    """
    # Shout the greeting
    Greetings should be in capitals. (The demo's patch breaks the existing unit test, so the run is rejected.)
    """,
)

API_VERSION = _spec(
    {
        "spec": 1, "title": "Report the API version", "service": "greeter-api", "team": "platform",
        "kind": "feature", "constraints": {"paths": ["greeter/**"]},
        "acceptance": [{"id": "unit-tests", "run": "python -m unittest -q", "timeout": 120}],
    },
    """
    # Report the API version
    Add a VERSION constant to the greeter package.
    """,
)

BIG_FEATURE = _spec(
    {
        "spec": 1, "title": "Rewrite the greeter in Rust", "service": "greeter", "team": "research",
        "kind": "refactor", "acceptance": [{"id": "unit-tests", "run": "python -m unittest -q"}],
        "budget": {"tokens": 900000},
    },
    """
    # Rewrite the greeter in Rust
    A large change for a team whose budget cannot carry it: admission refuses it.
    """,
)

# Made against the greeter as the demo's first spec leaves it (greet by name merges first).
SHOUT_PATCH = "".join(
    difflib.unified_diff(
        APP_V2.splitlines(keepends=True),
        APP_V2.replace('"Hello, world"', '"HELLO, WORLD"').splitlines(keepends=True),
        "a/greeter/app.py",
        "b/greeter/app.py",
    )
)


def _turn(content: str, calls: list[dict[str, object]], tokens_in: int, tokens_out: int) -> dict[str, object]:
    return {"content": content, "tool_calls": calls, "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out}}


CODER_GREET = {
    "model": "scripted-coder",
    "turns": [
        _turn("Reading the service first.", [{"name": "read_file", "arguments": {"path": "greeter/app.py"}}], 1800, 40),
        _turn("Adding the name to the greeting, with a test.", [
            {"name": "write_file", "arguments": {"path": "greeter/app.py", "content": APP_V2}},
            {"name": "write_file", "arguments": {"path": "tests/test_greeter.py", "content": TESTS_V2}},
        ], 2600, 900),
        _turn("Running the tests.", [{"name": "run_command", "arguments": {"command": "python -m unittest -q"}}],
              3700, 30),
        _turn("greeting() now uses the name when one is given; tests added and passing.", [], 3900, 60),
    ],
}

REVIEWER_APPROVE = {
    "model": "scripted-reviewer",
    "turns": [
        _turn("Checking the change.", [{"name": "read_file", "arguments": {"path": "greeter/app.py"}}], 2100, 30),
        _turn("Looks right.", [{"name": "submit_review", "arguments": {
            "verdict": "approve", "summary": "Small, tested change within scope.", "comments": []}}], 2500, 80),
    ],
}

JUDGE_FALLBACK = {
    "model": "scripted-judge",
    "turns": [
        _turn("Reading greeting().", [{"name": "search", "arguments": {"pattern": "Hello, world"}}], 1500, 30),
        _turn("Judged.", [{"name": "submit_judgement", "arguments": {"judgements": [
            {"id": "friendly-fallback", "verdict": "pass",
             "reason": "greeting() returns 'Hello, world' when name is empty or missing."}]}}], 1900, 90),
    ],
}

CODER_DOCS = {
    "model": "scripted-coder",
    "turns": [
        _turn("Documenting /hello.", [{"name": "write_file", "arguments": {
            "path": "README.md",
            "content": README + "\n## API\n\n`GET /hello?name=Ada` answers `Hello, Ada`; without a name, "
            "`Hello, world`.\n"}}], 1200, 200),
        _turn("README documents /hello.", [], 1400, 20),
    ],
}

CODER_VERSION = {
    "model": "scripted-coder",
    "turns": [
        _turn("Adding VERSION.", [{"name": "write_file", "arguments": {
            "path": "greeter/version.py", "content": 'VERSION = "1.1.0"\n'}}], 1100, 60),
        _turn("Added greeter/version.py.", [], 1200, 15),
    ],
}


DEMO_IDENTITY = {"user.name": "demo", "user.email": "demo@spec2ship.local"}
# The machine's own git settings must not change what the sample is (a global gpgsign would fail it).
SAMPLE_CONFIG = {"commit.gpgsign": "false", "tag.gpgsign": "false"}


def git(repo: Path, *args: str) -> str:
    """git in the sample repository as its demo author (tests use it for their own repositories too)."""
    return Git(repo, config=SAMPLE_CONFIG, identity=DEMO_IDENTITY).run(*args).stdout


def build_sample(folder: Path) -> dict[str, Path]:
    """Create the repository and the inputs; returns named paths (repo, specs, scripts, patches)."""
    repo = folder / "greeter"
    (repo / "greeter").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / ".spec2ship").mkdir()
    (repo / "greeter" / "__init__.py").write_text('"""greeter service."""\n')
    (repo / "greeter" / "__main__.py").write_text("from greeter.app import main\n\nmain()\n")
    (repo / "greeter" / "app.py").write_text(APP_V1)
    (repo / "tests" / "__init__.py").write_text("")
    (repo / "tests" / "test_greeter.py").write_text(TESTS_V1)
    (repo / "README.md").write_text(README)
    (repo / ".gitignore").write_text("__pycache__/\n")
    (repo / ".spec2ship" / "policy.yaml").write_text(yaml.safe_dump(POLICY, sort_keys=False))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "greeter: first version")
    inputs = folder / "inputs"
    inputs.mkdir()
    paths: dict[str, Path] = {"repo": repo}
    for name, text in {
        "greet-by-name.md": GREET_BY_NAME, "document-hello.md": DOCS_USAGE, "shout.md": SHOUT,
        "api-version.md": API_VERSION, "rewrite-in-rust.md": BIG_FEATURE, "shout.diff": SHOUT_PATCH,
    }.items():
        (inputs / name).write_text(text)
        paths[name] = inputs / name
    for name, script in {
        "coder-greet.yaml": CODER_GREET, "reviewer-approve.yaml": REVIEWER_APPROVE,
        "judge-fallback.yaml": JUDGE_FALLBACK, "coder-docs.yaml": CODER_DOCS, "coder-version.yaml": CODER_VERSION,
    }.items():
        (inputs / name).write_text(yaml.safe_dump(script, sort_keys=False))
        paths[name] = inputs / name
    return paths
