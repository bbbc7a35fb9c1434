"""The gateway's rules one by one: command reading, patch names, paths, redaction, run limits, and what
the workspace tools and the sandbox really do on a real repository (including that legitimate work
still works, confined and unconfined)."""

from __future__ import annotations

import ast
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from governance_env import ALLOWED, build_repo, canary_listener, coder_grant, git, new_canary, processes_with

from activities.forge.gitcli import Git
from activities.workspace import sandbox
from activities.workspace.dispatch import OUTPUT_CAP, execute
from activities.workspace.sandbox import Confinement, SandboxUnavailable, choose
from activities.workspace.tools import Workspace
from contracts.agent_run import RunLimits
from contracts.agents import Role, ToolCall
from contracts.workspace import ToolStatus
from rules.gateway.commands import check_command
from rules.gateway.governor import GovernorState, admit, check_call, repeated_call
from rules.gateway.grants import default_grant
from rules.gateway.patches import patch_targets
from rules.gateway.paths import PathRefused, normalise, read_refusal, write_refusal
from rules.redact import REDACTED, dotenv_values, redact
from specs.models import Constraints

GRANT = coder_grant()
NEEDS_BWRAP = pytest.mark.skipif(sandbox.bubblewrap_problem() is not None,
                                 reason=f"bubblewrap cannot run here: {sandbox.bubblewrap_problem()}")
MODES = [pytest.param("bubblewrap", marks=NEEDS_BWRAP), "none"]

ALLOWED_COMMANDS = [
    "python -m pytest -q", "python3 -m unittest -q 2>&1 | tail -5", "ls src", "ls -la", "grep -rn foo src | head -20",
    "cd src && ls *.py", "cat src/app.py", "sed -n '1,20p' src/app.py", "awk '{print $1}' src/app.py",
    "awk '$1 == \"a\" || $2 > 3 {print $1}' src/app.py", "git status", "git diff -- src", "git log --oneline -5",
    "git show HEAD:src/app.py", "git branch --show-current", "python tests/test_app.py", "node --test",
    "echo hello > src/out.txt", "chmod +x tests/run.sh", "timeout 10 python -m pytest", "sed -i 's/a/b/g' src/app.py",
    "find . -name '*.py'", "echo a >/dev/null 2>&1", "python -W ignore tests/x.py", "if true; then echo hi; fi",
    "true && false || echo x", "mkdir -p src/pkg && touch src/pkg/__init__.py", "PYTHONPATH=src python -m pytest",
    "(cd tests && ls)", "wc -l src/*.py", "diff src/a.py src/b.py", "make test", "npm test", "cargo test",
    "go test ./...", "python -m json.tool tests/data.json", "sort -o tests/sorted.txt tests/data.txt",
]
REFUSED_COMMANDS = {
    "cat .env": "never readable", "cat .e''nv": "never readable", "cat \"\".env": "never readable",
    "cat .en?": "can match '.env'", "cat .*": "can match", "echo $(cat .env)": "command substitution",
    "echo `id`": "command substitution", "echo \"$HOME\"": "variables", "eval 'ls'": "'eval'",
    "sh -c 'ls'": "inline program", "bash -lc id": "inline program", "python3 -Bc 'print(1)'": "inline program",
    "python -c 'import os'": "inline program", "node -e 1": "inline program", "perl -ne 'print' src/a": "inline",
    "echo 'print(1)' | python3": "from a pipe", "python3 < tests/x.py": "file redirect", "python3 - ": "standard input",
    "cat /proc/self/environ": "absolute path", "cat ~/.ssh/id_rsa": "home folder", "cat ../x": "leaves",
    "cd .. && ls": "leaves", "cd / && ls": "`cd`", "/usr/bin/curl x": "'curl'", "/opt/evil/run": "absolute path",
    "curl http://x": "'curl'", "wget x": "'wget'", "nc -l 1": "'nc'", "python3 -m pip install x": "installing",
    "pip install x": "'pip install'", "npm install": "'npm install'", "echo x > .github/a.yml": "would write",
    "tee README.md < src/a": "would write", "cp src/a .github/x": "would write", "mv src/a README.md": "would write",
    "rm README.md": "would write", "git push": "git push", "git -c core.pager=id log": "git -c",
    "git config a b": "git config", "git checkout main": "git checkout", "git branch -D main": "only list",
    "git show HEAD:.env": "never readable", "git grep -Ovim x": "not allowed", "find . -exec cat {} ;": "-exec",
    "find . -delete": "-delete", "echo .env | xargs cat": "never readable", "echo src | xargs cat": "'xargs'",
    "dd if=.env of=src/x": "never readable", ":(){ :|:& };:": "functions", "f() { ls; }": "functions",
    "cat <<EOF\nx\nEOF": "here-documents", "diff <(ls) x": "process substitution", "nohup sleep 1": "'nohup'",
    "setsid sleep 1": "'setsid'", "timeout 5 curl x": "'curl'", "nice -n 5 wget x": "'wget'",
    "sed 's/a/b/e' src/a": "sed scripts", "sed '1r .env' src/a": "sed scripts", "sed -n 'w out' src/a": "sed",
    "awk 'BEGIN{system(\"id\")}'": "awk programs", "awk '{print > \"x\"}' src/a": "awk programs",
    "awk '{ \"id\" | getline x }'": "awk programs", "ln -s ../.env src/link": "leaves", "ln -s .env src/l": "never",
    "HOME=/root git status": "setting HOME", "LD_PRELOAD=src/x.so ls": "LD_PRELOAD", "cat id_rsa": "never readable",
    "cat src/.git/config": "never readable", "cat .GIT/config": "never readable", "printenv": "'printenv'",
    "env": "'env'", "export A=1": "'export'", "cat file:///etc/passwd": "file: URLs", "grep -f.env src": "never",
    "cat x.pem": "never readable", "for f in src; do cat x; done": "`for`", "kill 1": "'kill'",
    "base64 src/a": "'base64'", "cat 'x\x00y'": "NUL", "for": "`for`", "exec 3<>/dev/tcp/1/1": "absolute path",
}


@pytest.mark.parametrize("command", ALLOWED_COMMANDS)
def test_ordinary_commands_pass(command: str) -> None:
    assert check_command(command, GRANT).refusal is None


@pytest.mark.parametrize(("command", "reason"), sorted(REFUSED_COMMANDS.items()))
def test_hostile_commands_are_refused_with_a_reason(command: str, reason: str) -> None:
    refusal = check_command(command, GRANT).refusal
    assert refusal is not None and reason in refusal, refusal


def test_command_allow_and_deny_lists_of_the_grant() -> None:
    strict = coder_grant(command_allow=["python -m pytest", "ls"], command_deny=["make"])
    assert check_command("python -m pytest -q", strict).refusal is None
    assert "allow-list" in (check_command("cat src/app.py", strict).refusal or "")
    assert "'make'" in (check_command("make", coder_grant(command_deny=["make"])).refusal or "")


def test_globs_are_left_for_the_workspace_to_expand() -> None:
    checked = check_command("cd src && wc -l *.py", GRANT)
    assert checked.refusal is None and checked.globs == ["*.py", "src/*.py"]


@pytest.mark.parametrize(("patch", "expected"), [
    ("diff --git a/src/x b/src/x\n--- a/src/x\n+++ b/src/x\n@@ -1,2 +1,2 @@\n--- comment\n+x\n a\n", ["src/x"]),
    ("--- x/.github/w.yml\n+++ x/.github/w.yml\n@@ -0,0 +1 @@\n+x\n", [".github/w.yml"]),
    ("diff --git a/src/a b/src/b\nsimilarity index 90%\nrename from src/a\nrename to .github/b\n",
     ["src/a", "src/b", ".github/b"]),
    ('diff --git "a/src/b c" "b/src/b c"\n--- "a/src/b c"\n+++ "b/src/b c"\n@@ -1 +1 @@\n-a\n+b\n', ["src/b c"]),
    ('--- "a/src/\\303\\251t\\303\\251"\n+++ "b/src/\\303\\251t\\303\\251"\n@@ -1 +1 @@\n-a\n+b\n', ["src/été"]),
    ("diff --git a/src/n b/src/n\nnew file mode 100644\n--- /dev/null\n+++ b/src/n\t\n@@ -0,0 +1 @@\n+x\n",
     ["src/n"]),
])
def test_patch_targets_are_what_git_apply_touches(patch: str, expected: list[str]) -> None:
    assert patch_targets(patch) == expected


@pytest.mark.parametrize(("patch", "reason"), [
    ("diff --git a/src/l b/src/l\nnew file mode 120000\n--- /dev/null\n+++ b/src/l\n", "symbolic link"),
    ("diff --git a/src/m b/src/m\nold mode 100644\nnew mode 160000\n", "submodule"),
    ("--- noprefix\n+++ noprefix\n@@ -1 +1 @@\n-a\n+b\n", "directory prefix"),
    ("--- a/src/x\n+++ b/src/x\n@@ -1,5 +1,5 @@\n-a\n+b\nnot a hunk line\n", "line counts"),
])
def test_unreadable_or_dangerous_patches_are_refused(patch: str, reason: str) -> None:
    with pytest.raises(PathRefused, match=reason):
        patch_targets(patch)


@pytest.mark.parametrize("path", ["/etc/passwd", "~/.ssh", "../x", "a/../../x", "C:/x", "file:///x", "a\nb", "a\x00b",
                                  " ", "\\\\server\\share"])
def test_paths_that_leave_the_workspace_are_refused(path: str) -> None:
    with pytest.raises(PathRefused):
        normalise(path)


def test_forbidden_paths_ignore_case_but_spec_globs_keep_it() -> None:
    assert read_refusal(".ENV") and read_refusal("deploy/.Env.production") and read_refusal("a/.git/config")
    assert read_refusal("certs/server.PEM") and read_refusal(".ssh") and read_refusal("home/.aws/credentials")
    assert read_refusal("src/app.py") is None and read_refusal("docs/environment.md") is None
    assert write_refusal("SRC/app.py", ALLOWED) is not None
    assert write_refusal("src/app.py", Constraints(paths=["**"], forbid=["src/**"])) is not None


def test_redaction_covers_tokens_keys_and_env_values() -> None:
    text = ("token ghp_" + "a" * 36 + " sk-proj-" + "b" * 30 + " AKIA" + "C" * 16 + " xoxb-1234567890-abc "
            "glpat-" + "d" * 20 + " npm_" + "e" * 36 + " hf_" + "f" * 34 + " https://bob:hunter2!@db.example/x "
            "Authorization: Bearer abcdefghijklmnopqrstu DB_PASSWORD=correct-horse \"api_key\": \"k-123456\"\n"
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\n S2S-VALUE-from-env")
    redacted, count = redact(text, ["S2S-VALUE-from-env"])
    for secret in ["ghp_", "sk-proj-", "AKIA", "xoxb-", "glpat-", "npm_e", "hf_f", "hunter2", "abcdefghijklmnopqrstu",
                   "correct-horse", "k-123456", "MIIEow", "S2S-VALUE"]:
        assert secret not in redacted, secret
    assert count >= 13 and "DB_PASSWORD=" + REDACTED in redacted
    assert redact("def secret_santa(): return names")[1] == 0


def test_redaction_stays_linear_on_hostile_output() -> None:
    for text in ["y" * 2_000_000, "token" * 400_000, "://" + "a" * 1_000_000 + "@", "-----BEGIN PRIVATE KEY-----" * 9]:
        redact(text)  # a quadratic pattern would hang here (pytest-timeout ends it)


def test_dotenv_values_skip_plain_settings() -> None:
    assert dotenv_values("PORT=8080\nDEBUG=true\nexport API_TOKEN=abcd\nHOST=localhost\nURL=postgres://u:p@h/db\n"
                         "# KEY=commented\nSALT=a1b2c3d4\n") == ["abcd", "postgres://u:p@h/db", "a1b2c3d4"]


def test_denials_are_counted_and_rate_and_loops_limited() -> None:
    grant = coder_grant(max_calls_per_minute=3)
    state, now = GovernorState(), datetime(2025, 1, 1, tzinfo=UTC)
    verdicts = [admit(state, ToolCall(id=str(i), name="read_file", arguments={"path": ".env"}), grant,
                      now + timedelta(seconds=i)) for i in range(3)]
    assert not any(v.allowed for v in verdicts) and state.denials == 3
    limited = admit(state, ToolCall(id="x", name="read_file", arguments={"path": "src/app.py"}), grant,
                    now + timedelta(seconds=10))
    assert not limited.allowed and "rate limit" in limited.reason and state.denials == 4
    later = admit(state, ToolCall(id="y", name="read_file", arguments={"path": "src/app.py"}), grant,
                  now + timedelta(minutes=2))
    assert later.allowed
    limits = RunLimits(loop_threshold=2)
    call = ToolCall(id="z", name="list_files", arguments={})
    assert repeated_call(state, call, limits) is None
    assert "loop detected" in (repeated_call(state, call, limits) or "")
    assert state.denials < RunLimits().max_denials  # AgentRun stops the run once it reaches max_denials


def test_roles_get_only_their_tools() -> None:
    reviewer = default_grant(Role.reviewer, ALLOWED)
    for name in ["write_file", "apply_patch", "run_command", "mcp__files__echo"]:
        assert not check_call(ToolCall(id="1", name=name, arguments={"path": "src/a", "command": "ls"}),
                              reviewer).allowed
    assert check_call(ToolCall(id="2", name="submit_review", arguments={"verdict": "approve"}), reviewer).allowed


def test_choose_refuses_when_confinement_is_required_but_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "bubblewrap_problem", lambda: "no user namespaces")
    assert choose("auto") is Confinement.none and choose("none") is Confinement.none
    with pytest.raises(SandboxUnavailable, match="no user namespaces"):
        choose("bubblewrap")


# --- the tools on a real repository ---------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return build_repo(tmp_path / "repo", new_canary())


def _call(name: str, **arguments: object) -> ToolCall:
    return ToolCall(id=name, name=name, arguments=arguments)


@pytest.mark.parametrize("mode", MODES)
def test_legitimate_work_still_works(mode: str, repo: Path) -> None:
    workspace = Workspace(repo, confinement=mode)
    patch = "--- a/src/app.py\n+++ b/src/app.py\n@@ -1,2 +1,2 @@\n def greeting() -> str:\n-    return 'hello'\n+" \
            "    return 'hello, world'\n"
    steps = [
        _call("write_file", path="tests/test_more.py", content=(
            "import unittest\nfrom pathlib import Path\n\n\nclass M(unittest.TestCase):\n"
            "    def test_it(self) -> None:\n        self.assertIn('hello, world', Path('src/app.py').read_text())\n")),
        _call("apply_patch", patch=patch),
        _call("run_command", command="python3 -m unittest discover -s tests -q 2>&1 | tail -3"),
        _call("run_command", command="git status --short -- src tests && git diff --stat -- src tests"),
        _call("run_command", command="mkdir -p src/pkg && echo x > src/pkg/data.txt && cat src/pkg/data.txt"),
        _call("search", pattern="hello, world"),
        _call("list_files", path="src"),
    ]
    results = [execute(workspace, step, GRANT) for step in steps]
    for step, result in zip(steps, results, strict=True):
        assert result.status is ToolStatus.ok, (step, result.output)
    assert "OK" in results[2].output
    assert "src/app.py" in results[3].output and "x" in results[4].output
    assert "src/app.py:2:" in results[5].output
    assert "src/env-link" in results[6].output and ".env" not in results[6].output.replace("src/env-link", "")
    assert (repo / "src/pkg/data.txt").read_text() == "x\n"


@pytest.mark.parametrize("mode", MODES)
def test_commands_get_a_scrubbed_environment_and_limits(mode: str, repo: Path, monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.setenv("SPEC2SHIP_GITHUB_TOKEN", "ghp_" + "z" * 36)
    monkeypatch.setenv("SOME_SECRET_SETTING", "s3cr3t-value")
    workspace = Workspace(repo, confinement=mode)
    script = ("import os, resource\nprint(sorted(os.environ))\nprint('HOME', os.environ['HOME'])\n"
              "print('NPROC', resource.getrlimit(resource.RLIMIT_NPROC)[0])\n"
              "print('FSIZE', resource.getrlimit(resource.RLIMIT_FSIZE)[0])\n")
    assert execute(workspace, _call("write_file", path="tests/env.py", content=script), GRANT).status is ToolStatus.ok
    result = execute(workspace, _call("run_command", command="python3 tests/env.py"), GRANT)
    assert result.status is ToolStatus.ok, result.output
    names = ast.literal_eval(result.output.splitlines()[2])
    assert "SPEC2SHIP_GITHUB_TOKEN" not in names and "SOME_SECRET_SETTING" not in names
    expected = {"PATH", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ", "PYTHONPATH", "VIRTUAL_ENV", "HOME", "TMPDIR",
                "XDG_CONFIG_HOME", "SPEC2SHIP_AGENT", "SPEC2SHIP_TOOL_RUN", "JAVA_HOME", "GOROOT", "CARGO_HOME",
                "RUSTUP_HOME", "PWD", "SHLVL", "_", "GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0",
                "PYTHONDONTWRITEBYTECODE", "PYTEST_ADDOPTS"}
    assert set(names) <= expected | {n for n in names if "PYENV" in n}  # pyenv's shim sets its own
    home = next(line for line in result.output.splitlines() if line.startswith("HOME "))
    assert home != f"HOME {os.path.expanduser('~')}"
    assert "NPROC -1" not in result.output and "FSIZE -1" not in result.output


@pytest.mark.parametrize("mode", MODES)
def test_links_onto_secrets_are_refused_at_read_time(mode: str, repo: Path) -> None:
    (repo / "build").mkdir()
    (repo / "build" / "notes.txt").symlink_to("../.env")  # in an ignored folder, so no revert removes it
    (repo / "build" / "etc").symlink_to("/etc")
    workspace = Workspace(repo, confinement=mode)
    for call in [_call("read_file", path="build/notes.txt"), _call("read_file", path="build/etc/passwd"),
                 _call("run_command", command="cat build/notes.txt"), _call("list_files", path="build/etc"),
                 _call("write_file", path="build/etc/x", content="x")]:
        result = execute(workspace, call, coder_grant(constraints=Constraints(paths=["**"])))
        assert result.status is ToolStatus.denied, (call, result.output)
    found = execute(workspace, _call("search", pattern="API_TOKEN", path="build"), GRANT)
    assert found.output == "(no matches)"


@pytest.mark.parametrize("mode", MODES)
def test_output_is_capped_and_redacted(mode: str, repo: Path) -> None:
    workspace = Workspace(repo, confinement=mode)
    script = "print('AKIA' + 'Q' * 16)\nprint('line\\n' * 300000)\nprint('tail ghp_' + 'k' * 36)\n"
    execute(workspace, _call("write_file", path="tests/loud.py", content=script), GRANT)
    result = execute(workspace, _call("run_command", command="python3 tests/loud.py"), GRANT)
    assert result.truncated and len(result.output) < OUTPUT_CAP + 200
    assert "AKIA" not in result.output and "ghp_" not in result.output and result.output.count(REDACTED) == 2
    execute(workspace, _call("write_file", path="src/settings.py", content="API_KEY = 'sk-proj-" + "x" * 30 + "'\n"),
            GRANT)
    canary = (repo / ".env").read_text().split("=", 1)[1].split()[0]
    (repo / "src" / "fixture.txt").write_text(f"copied by hand: {canary}\n")  # not through a tool
    hits = execute(workspace, _call("search", pattern="API_KEY|copied"), GRANT).output
    assert "src/settings.py:1:" in hits and "sk-proj-" not in hits and canary not in hits and REDACTED in hits
    assert canary not in execute(workspace, _call("read_file", path="src/fixture.txt"), GRANT).output


@NEEDS_BWRAP
def test_the_sandbox_has_no_network_no_home_and_read_only_git(repo: Path, tmp_path: Path) -> None:
    neighbour = tmp_path / "neighbour.txt"
    neighbour.write_text("next door\n")
    home_file = Path(os.path.expanduser("~")) / f".spec2ship-test-{uuid.uuid4().hex}"
    home_file.write_text("a worker's own file\n")
    try:
        _probe_sandbox(repo, neighbour, home_file)
    finally:
        home_file.unlink()


def _probe_sandbox(repo: Path, neighbour: Path, home_file: Path) -> None:
    script = (
        "import os, socket, sys\n"
        "def attempt(name, action):\n"
        "    try:\n"
        "        action()\n"
        "        print(name, 'ALLOWED')\n"
        "    except OSError as error:\n"
        "        print(name, 'BLOCKED', type(error).__name__)\n"
        f"attempt('connect', lambda: socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=2))\n"
        f"attempt('home', lambda: open({str(home_file)!r}).read())\n"
        f"attempt('neighbour', lambda: open({str(neighbour)!r}).read())\n"
        "attempt('git-config', lambda: open('.git/config', 'a').write('x'))\n"
        "attempt('env-file', lambda: open('.env').read())\n"
        "attempt('system', lambda: open('/usr/x', 'w'))\n"
        "attempt('workspace', lambda: open('src/ok.txt', 'w').write('ok'))\n"
        "attempt('tmp', lambda: open('/tmp/ok.txt', 'w').write('ok'))\n"
    )
    with canary_listener() as listener:
        for mode, expected_connect in [("bubblewrap", "BLOCKED"), ("none", "ALLOWED")]:
            workspace = Workspace(repo, confinement=mode)
            execute(workspace, _call("write_file", path="tests/probe.py", content=script), GRANT)
            result = execute(workspace, _call("run_command", command=f"python3 tests/probe.py {listener.port}"), GRANT)
            assert f"connect {expected_connect}" in result.output, result.output
        confined = execute(Workspace(repo, confinement="bubblewrap"),
                           _call("run_command", command=f"python3 tests/probe.py {listener.port}"), GRANT).output
    for name in ["home", "neighbour", "git-config", "env-file", "system"]:
        assert f"{name} BLOCKED" in confined, confined
    assert "workspace ALLOWED" in confined and "tmp ALLOWED" in confined
    assert len(listener.connections) == 1  # the unconfined run only: the reason confinement exists


@pytest.mark.parametrize("mode", MODES)
def test_processes_left_behind_are_killed(mode: str, repo: Path) -> None:
    workspace = Workspace(repo, confinement=mode)
    marker = f"3191{uuid.uuid4().int % 1_000_000}"  # unique: other runs of this suite may share the machine
    script = (f"import os, subprocess\nif os.fork() == 0:\n    os.setsid()\n    subprocess.Popen(['sleep', '{marker}'],"
              " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n    os._exit(0)\nprint('detached')\n")
    execute(workspace, _call("write_file", path="tests/detach.py", content=script), GRANT)
    result = execute(workspace, _call("run_command", command="python3 tests/detach.py"), GRANT)
    assert "detached" in result.output
    assert processes_with(marker) == []


@pytest.mark.parametrize("mode", MODES)
def test_a_worktree_keeps_its_shared_git_folder_safe(mode: str, repo: Path, tmp_path: Path) -> None:
    worktree = tmp_path / "worktree"
    git(repo, "worktree", "add", "-q", "-b", "work", str(worktree))
    hooks = repo / ".git" / "hooks"
    before = sorted(p.name for p in hooks.iterdir())
    config = (repo / ".git" / "config").read_text()
    script = ("from pathlib import Path\ngitdir = Path(Path('.git').read_text().split(':', 1)[1].strip())\n"
              "common = (gitdir / Path(gitdir / 'commondir').read_text().strip()).resolve()\n"
              "try:\n    (common / 'hooks' / 'post-commit').write_text('#!/bin/sh\\ncurl evil\\n')\n"
              "    (common / 'config').write_text('[core]\\n\\tfsmonitor = curl evil\\n')\n    print('wrote')\n"
              "except OSError as error:\n    print('blocked', error)\n")
    workspace = Workspace(worktree, confinement=mode)
    execute(workspace, _call("write_file", path="tests/escape.py", content=script), GRANT)
    result = execute(workspace, _call("run_command", command="python3 tests/escape.py"), GRANT)
    assert ("blocked" in result.output) if mode == "bubblewrap" else bool(result.reverted), result.output
    assert sorted(p.name for p in hooks.iterdir()) == before
    assert (repo / ".git" / "config").read_text() == config
    assert Git(worktree).run("status", "--short").ok


@pytest.mark.parametrize("mode", MODES)
def test_secret_folders_stay_and_new_secrets_go(mode: str, repo: Path) -> None:
    (repo / ".aws").mkdir()
    (repo / ".aws" / "credentials").write_text("[default]\naws_secret_access_key = Zm9vYmFyYmF6cXV4MTIzNDU2\n")
    workspace = Workspace(repo, confinement=mode)
    script = ("import os\nos.makedirs('tests/.ssh', exist_ok=True)\nopen('tests/.ssh/id_ed25519', 'w').write('k')\n"
              "open('tests/.env', 'w').write('A=1')\n"
              "try:\n    print(open('.aws/credentials').read()[::-1])\nexcept OSError as error:\n    print(error)\n")
    execute(workspace, _call("write_file", path="tests/plant.py", content=script), GRANT)
    result = execute(workspace, _call("run_command", command="python3 tests/plant.py"), GRANT)
    assert set(result.reverted) >= {"tests/.ssh", "tests/.env"}, result.output
    assert not (repo / "tests" / ".ssh").exists() and not (repo / "tests" / ".env").exists()
    assert (repo / ".aws" / "credentials").read_text().startswith("[default]")
    if mode == "bubblewrap":
        assert "Zm9vYmFyYmF6cXV4MTIzNDU2"[::-1] not in result.output


def test_a_starting_worker_kills_only_the_commands_left_in_its_own_workspaces(tmp_path: Path) -> None:
    """What an unconfined command leaves when its worker is SIGKILLed is found by the workspace its marker
    names; another folder's commands (another worker's) are left alone."""
    import subprocess

    ours, theirs = tmp_path / "ours" / "workspaces", tmp_path / "theirs" / "workspaces"
    started = []
    for base in (ours, theirs):
        (base / "run-1").mkdir(parents=True)
        env = {**os.environ, sandbox.MARKER: sandbox.new_marker(base / "run-1")}
        started.append(subprocess.Popen(["sleep", "60"], env=env, start_new_session=True))
    try:
        assert sandbox.reap_orphans(ours) == 1
        assert started[0].wait(timeout=10) == -9
        assert started[1].poll() is None
    finally:
        for process in started:
            process.kill()
            process.wait()
