"""The tool gateway's decisions: which tool call an agent may make, and when a run must stop.

Everything here is pure and deterministic, so the AgentRun workflow can call it directly (no I/O, time
comes in as an argument) and the tool activity (tools.execute) calls the same rules again before it acts.

The security model, layer by layer: what each layer stops, and what it does not.

1. **Grants** (here): a role gets a fixed tool list (`ROLE_TOOLS`) and, by name, the MCP tools
   (`mcp__<server>__<tool>`) its grant lists; everything else is refused. Calls are rate limited per
   minute, the same call repeated `loop_threshold` times stops the run, and `max_denials` refused calls
   stop it too (an injected agent that keeps probing is cut off).
2. **Path rules** (paths.py, here, tools.py): every path argument of every tool, every path-shaped word
   of a command and every path-shaped MCP argument must be relative, stay inside the repository, avoid
   the always-forbidden secret and git paths (matched case-insensitively) and, for writes, fall inside
   `constraints.paths` minus `constraints.forbid`. The activity checks the *real* path too: a symbolic
   link onto a secret or out of the repository is refused by read_file, search, list_files, write_file,
   apply_patch and run_command alike. Patches are checked on every name git would use (`diff --git`,
   `---`/`+++` with git's one-component strip, rename/copy lines, C-quoted names, and `git apply
   --numstat` in the activity); symbolic links and submodules in patches are refused.
3. **Command parsing** (shell.py, here): deny by default what cannot be seen through. Refused: `$`
   expansion and command substitution (`$x`, `$(..)`, backticks, also in double quotes), here-docs,
   process substitution, functions, `for`/`case`, `eval`-style builtins, interpreters given inline code
   or a program on a pipe (`sh -c`, `python -c`, `node -e`, `perl -e`, `echo .. | python`), programs that
   run other programs out of sight (`xargs`, `find -exec`, `env`, `nohup`, `setsid`, `strace`, ...),
   network clients, package installers, git outside a read-only subcommand list (and `git -c`, `-a`,
   `--text`, `--binary`), `GIT_*`/`LD_*`/`PATH`/`HOME` assignments, absolute paths other than `/dev/null`
   and its kind, `~`, redirections and write-type programs (`tee`, `cp`, `mv`, `rm`, `sed -i`, ...) aimed
   outside the writable paths, awk/sed programs that run commands or touch other files. Globs that could
   match a hidden secret (`.en?`, `.*`) are refused here; other globs are expanded by the activity
   against the real files before the command runs.
4. **Confinement** (sandbox.py, activity side): where bubblewrap works, commands and MCP servers run
   with no network (a private loopback only), no capabilities, their own PID namespace (every process
   dies with the command), a read-only system, only the workspace and a private /tmp writable, the
   workspace's secret files replaced by an unreadable device, git internals read-only, and the home
   folders, other workspaces, /run sockets and the worker's other files absent. This is what holds
   against code the agent writes and then runs (`python tests/leak.py`), which parsing cannot judge.
5. **Scrubbed environment and limits** (tools.py): commands get PATH, LANG and a few harmless
   variables, a private HOME and TMPDIR, nothing else: `os.environ`, `/proc/self/environ`, `printenv`
   show no worker credentials. Every git they run treats secret paths as binary (`git log -p`, `show`,
   `diff`, `grep` print "Binary files differ"). Resource limits cap file size and process count;
   timeouts and an output limit kill the whole process group, and any process still carrying the run's
   marker is killed afterwards (setsid and double forks included).
6. **Post-hoc revert** (tools.py): after every command, MCP call and patch, files changed outside the
   writable paths are restored or removed (also when a changed .gitignore tried to hide them), secret
   files are restored byte for byte and new ones removed, git configuration, hooks and info are
   restored, new symbolic links onto secrets or out of the repository are removed (in ignored folders
   too), and files the command wrote that contain a known secret value are removed. The agent sees
   `refused: ... reverted: ...`; ToolResult.reverted lists the paths.
7. **Redaction and caps** (redact.py, tools.py): every tool's output (commands, file reads, search
   hits, MCP results, error messages) has known secret values (the workspace's secret files, the
   worker's own credentials) and credential shapes replaced, in linear time, and is capped; a
   command's output is read into a bounded buffer and the command is killed past a hard limit.

What is NOT prevented (said plainly):
- Without bubblewrap (no user namespaces, e.g. a default container seccomp profile) layer 4 is absent:
  a script the agent writes inside the allowed paths and runs can read any file the worker's user can
  read (outside the repository, other processes' environments), connect to the network, and print a
  secret transformed (reversed, encoded) so that redaction does not recognise it. Its out-of-scope
  writes inside the workspace are still reverted; its writes elsewhere (the worker's home) are not.
  The hostile corpus test runs these attacks unconfined and checks that they do get through.
- Secrets committed to the repository's history live in the object database, which commands can read:
  git's own commands will not print them (layer 3 and 5), but a script the agent writes can, in a
  transformed form, also inside the sandbox. Values no longer in a secret file are redacted only by
  shape. `git show <blob id>` is not refused.
- Inside the sandbox, agent code can still read every non-secret file of the workspace, burn CPU and
  memory until the timeout, fill the disk under the workspace and /tmp (only single files are capped),
  and write misleading content into the files it may write. Git-ignored files outside the writable
  paths (build output, caches) are left alone unless they are links onto secrets or hold a secret
  value: they never reach the change, so they are not treated as scope violations.
- Secrets that live neither in a recognised secret file nor in a recognised shape (a password
  hard-coded in `src/settings.py`) are readable and not redacted.
- An MCP server is trusted code configured by the operator: the gateway governs which tools are called
  and with which paths, confines the server where bubblewrap works, and reverts its out-of-scope writes,
  but what the server does with its own credentials (`network: true`) is its business, and its whole
  answer is read into memory before it is capped. Tool descriptions and results, issue bodies and
  repository files can carry prompt injections; the gateway limits what an injected agent can DO, it
  cannot stop the agent from reading such text.
- awk and sed program checks are pattern-based; subtler programs rely on confinement.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from pydantic import BaseModel, Field

from activities.agents.base import Role, ToolCall
from activities.workspace.models import ToolGrant
from activities.workspace.paths import PathRefused, normalise, read_refusal, write_refusal
from activities.workspace.redact import contains_secret
from activities.workspace.shell import Redirect, ShellRefused, SimpleCommand, Word, simple_commands

READ_TOOLS = {"list_files", "read_file", "search"}
WRITE_TOOLS = {"write_file", "apply_patch"}
EXEC_TOOLS = {"run_command"}
FINAL_TOOLS = {"submit_review", "submit_judgement"}
MCP_PREFIX = "mcp__"

ROLE_TOOLS: dict[Role, list[str]] = {
    Role.coder: ["list_files", "read_file", "search", "write_file", "apply_patch", "run_command"],
    Role.reviewer: ["list_files", "read_file", "search", "submit_review"],
    Role.validator: ["list_files", "read_file", "search", "submit_judgement"],
}

# Programs (or program + first arguments) refused for every role: they move data off the machine,
# change who we are, install code from the internet, persist beyond the command, or run other
# programs out of the gateway's sight.
DEFAULT_COMMAND_DENY = [
    "curl", "wget", "nc", "ncat", "netcat", "socat", "ssh", "scp", "sftp", "rsync", "ftp", "tftp", "telnet",
    "openssl", "nslookup", "dig", "host", "ping", "ping6", "traceroute", "whois", "lynx", "links", "w3m",
    "sudo", "su", "doas", "pkexec", "runuser", "setpriv", "chroot", "unshare", "nsenter", "bwrap", "capsh",
    "printenv", "env", "set", "export", "unset", "readonly", "declare", "typeset", "local", "alias", "trap",
    "eval", "xargs", "parallel", "watch", "nohup", "setsid", "disown", "screen", "tmux", "script", "expect",
    "flock", "strace", "ltrace", "gdb", "busybox", "crontab", "at", "batch", "systemctl", "service",
    "launchctl", "kill", "pkill", "killall", "mount", "umount", "mkfifo", "mknod", "ssh-add", "ssh-agent",
    "ssh-keygen", "gpg", "gpg-agent", "pushd", "popd", "pwsh", "powershell", "osascript",
    "docker", "podman", "kubectl", "helm", "aws", "gcloud", "az", "gh", "hub", "twine", "base64", "base32",
    "pip install", "pip3 install", "pip download", "pip3 download", "uv pip", "uv add", "uv tool", "pipx",
    "poetry add", "poetry install", "npm install", "npm i", "npm ci", "npm add", "npm publish", "npm exec",
    "npx", "yarn add", "yarn install", "pnpm add", "pnpm install", "pnpm dlx", "bun add", "bun install",
    "bunx", "gem install", "cargo install", "go install", "go get", "apt", "apt-get", "yum", "dnf", "apk",
    "brew", "conda install", "mamba install", "deno install", "deno eval", "bun eval",
]

# Interpreters and the options that hand them program text on the command line.
_SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "csh", "tcsh", "ash", "yash"}
_INLINE_OPTIONS: dict[str, set[str]] = {
    **{name: {"-c", "-s", "-i"} for name in _SHELLS},
    "python": {"-c"}, "pypy": {"-c"}, "node": {"-e", "--eval", "-p", "--print"}, "nodejs": {"-e", "--eval", "-p"},
    "deno": {"-e", "--eval"}, "bun": {"-e", "--eval", "-p", "--print"}, "perl": {"-e", "-E"},
    "ruby": {"-e"}, "php": {"-r", "-a"}, "lua": {"-e"}, "luajit": {"-e"}, "Rscript": {"-e"}, "R": {"-e"},
    "julia": {"-e", "-E", "--eval", "--print"}, "groovy": {"-e"}, "scala": {"-e"}, "tclsh": set(),
    "jshell": set(), "irb": set(), "ghci": {"-e"}, "guile": {"-c"}, "racket": {"-e"}, "sbcl": {"--eval"},
}
# Short options whose value follows (so `python -W ignore x.py` runs x.py, not `ignore`).
_VALUE_OPTIONS: dict[str, set[str]] = {"python": {"-W", "-X", "-Q"}, "node": {"-r", "--require", "--import"}}
_PYTHON = re.compile(r"^(?:python|pypy)(?:\d+(?:\.\d+)?)?[a-z]?$")

# Programs that run the rest of their words as a command.
_WRAPPERS: dict[str, tuple[set[str], int]] = {  # name: (options taking a value, positional words to skip)
    "timeout": ({"-s", "--signal", "-k", "--kill-after"}, 1),
    "nice": ({"-n", "--adjustment"}, 0),
    "time": ({"-f", "--format", "-o", "--output"}, 0),
    "command": (set(), 0),
    "builtin": (set(), 0),
    "exec": ({"-a"}, 0),
    "stdbuf": ({"-i", "-o", "-e", "--input", "--output", "--error"}, 0),
    "ionice": ({"-c", "-n", "-p", "--class", "--classdata"}, 0),
}

_GIT_READ_ONLY = {
    "status", "diff", "log", "show", "ls-files", "ls-tree", "grep", "blame", "annotate", "rev-parse", "describe",
    "shortlog", "rev-list", "merge-base", "diff-tree", "diff-files", "diff-index", "whatchanged", "check-ignore",
    "check-attr", "show-ref", "name-rev", "cherry", "count-objects", "version", "help", "branch",
}
_GIT_REFUSED_OPTIONS = ("-c", "--config-env", "--git-dir", "--work-tree", "--exec-path", "--namespace",
                        "--super-prefix", "--bare", "-O", "--open-files-in-pager", "--ext-diff", "--upload-pack",
                        "--exec", "--receive-pack", "--attr-source",
                        # Secret files are marked binary for git (tools.py); these would print them anyway.
                        "-a", "--text", "--binary", "--textconv")
_GIT_SHOWS = {"diff", "log", "show", "grep", "whatchanged", "diff-tree", "diff-files", "diff-index", "blame"}
_GIT_BRANCH_LIST = {"-a", "-r", "-v", "-vv", "--list", "--all", "--remotes", "--show-current", "--contains",
                    "--merged", "--no-merged", "--no-color", "--color", "-l"}

# Programs whose plain arguments are files they write (all of them, or the last).
_WRITES_ALL = {"tee", "mv", "rm", "rmdir", "touch", "mkdir", "truncate", "shred", "unlink", "chmod", "chown",
               "chgrp", "chattr", "setfacl"}
_WRITES_LAST = {"cp", "install", "ln", "link"}
_SAFE_ABSOLUTE = {"/dev/null", "/dev/stdin", "/dev/stdout", "/dev/stderr", "/dev/zero", "/dev/random",
                  "/dev/urandom", "/dev/tty"}
_SAFE_PROGRAM_DIRS = ("/bin/", "/usr/bin/", "/usr/local/bin/", "/sbin/", "/usr/sbin/")

# Names that must never be produced by a glob: a pattern that matches one of these is refused.
_HIDDEN_SAMPLES = [".env", ".env.local", ".envrc", ".git", ".git-credentials", ".netrc", ".npmrc", ".pypirc",
                   ".ssh", ".aws", ".gnupg", ".docker", ".dockercfg", ".kube"]

_AWK = {"awk", "gawk", "mawk", "nawk", "busybox-awk"}
# awk: running commands (system, pipes), reading other files (getline) or writing them (print > file).
_AWK_DANGER = re.compile(r"\bsystem\s*\(|\bgetline\b|(?<!\|)\|(?!\|)|\|&|\bprintf?\b[^;{}]{0,500}>")

MAX_COMMAND_CHARS = 16_000
MAX_CONTENT_CHARS = 1_000_000
MAX_MCP_ARGUMENT_CHARS = 64_000
_MCP_NAME = re.compile(r"^mcp__(?P<server>[A-Za-z0-9][A-Za-z0-9-]*(?:_[A-Za-z0-9-]+)*)__(?P<tool>[A-Za-z0-9][\w.-]*)$")
_MCP_PATH_KEYS = {"path", "paths", "file", "files", "filename", "file_name", "filepath", "file_path", "dir", "dirs",
                  "directory", "folder", "cwd", "root", "source", "src", "input", "uri", "location", "include"}
_MCP_WRITE_KEYS = {"dest", "destination", "output", "out", "target", "new_path", "to", "write_path", "save_as"}


class GateVerdict(BaseModel):
    allowed: bool
    reason: str = ""
    path: str | None = None


class RunLimits(BaseModel):
    max_steps: int = Field(default=40, gt=0)
    max_tokens: int = Field(default=400_000, gt=0)
    max_tokens_per_call: int = Field(default=4096, gt=0)
    loop_threshold: int = Field(default=3, ge=2, description="The same call this many times stops the run.")
    max_denials: int = Field(default=8, gt=0, description="A run that keeps hitting denials is stopped.")


class GovernorState(BaseModel):
    """What the gateway remembers about one run: it travels inside the AgentRun workflow."""

    digests: dict[str, int] = Field(default_factory=dict)
    denials: int = 0
    recent_calls: list[datetime] = Field(default_factory=list)


# --- patches -------------------------------------------------------------------------------------

_DIFF_GIT = re.compile(r"^diff --git (?P<rest>.+)$")
_FILE_LINE = re.compile(r"^(?:\+\+\+|---) (?P<name>.+)$")
_RENAME = re.compile(r"^(?:rename|copy) (?:from|to) (?P<name>.+)$")
_MODE = re.compile(
    r"^(?:new file mode|new mode|old mode|deleted file mode|index [0-9a-f]+\.\.[0-9a-f]+) ?(?P<mode>\d+)?")
_HUNK = re.compile(r"^@@ -\d+(?:,(?P<old>\d+))? \+\d+(?:,(?P<new>\d+))? @@")
_C_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", '"': '"', "\\": "\\"}


def _unquote(name: str) -> str:
    """Git's C-style quoting of unusual file names (`"a/sp\\303\\251cial"`)."""
    body, out, i = name[1:-1], bytearray(), 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            octal = body[i + 1 : i + 4]
            if len(octal) == 3 and all(c in "01234567" for c in octal):
                out.append(int(octal, 8) & 0xFF)
                i += 4
                continue
            out.extend(_C_ESCAPES.get(body[i + 1], body[i + 1]).encode())
            i += 2
            continue
        out.extend(char.encode())
        i += 1
    return out.decode(errors="replace")


def _header_name(raw: str) -> str:
    """A file name as written in a patch header: quoted, or up to a tab (git adds one after names with spaces)."""
    raw = raw.strip(" ")
    if raw.startswith('"'):
        end = 1
        while end < len(raw) and raw[end] != '"':
            end += 2 if raw[end] == "\\" else 1
        if end >= len(raw):
            raise PathRefused(f"unbalanced quotes in patch header name {raw!r}")
        return _unquote(raw[: end + 1])
    return raw.split("\t", 1)[0].rstrip()


def _strip_one(name: str) -> str:
    """What `git apply` (default -p1) makes of a header name: drop the first component."""
    if name == "/dev/null":
        return name
    if "/" not in name:
        raise PathRefused(f"patch names {name!r} without a directory prefix (expected a/... and b/...)")
    return name.split("/", 1)[1]


def _diff_git_names(rest: str) -> list[str]:
    if rest.startswith('"'):
        first = _header_name(rest)
        tail = rest[rest.index('"', 1) :]
        second_raw = tail.split(" ", 1)[1] if " " in tail else ""
        while second_raw and not second_raw.startswith(('"', "b/")) and " " in second_raw:
            second_raw = second_raw.split(" ", 1)[1]
        return [first, _header_name(second_raw)] if second_raw else [first]
    half = rest.split(" b/", 1)
    if len(half) == 2:
        return [half[0], "b/" + half[1].split("\t", 1)[0]]
    parts = rest.split(" ")
    return [_header_name(parts[0]), _header_name(parts[-1])]


def patch_targets(patch: str) -> list[str]:
    """Every path a unified diff touches (old and new names, as git apply would use them), or PathRefused.

    Hunk bodies are skipped by their line counts, so a removed line `-- comment` is not taken for a
    header. Symbolic links (mode 120000) and submodules (160000) are refused: a link can point anywhere,
    and a later read through it would escape the path rules.
    """
    found: list[str] = []

    def add(name: str, strip: bool = True) -> None:
        path = _strip_one(name) if strip else name
        if path != "/dev/null" and path not in found:
            found.append(path)

    old = new = 0
    for line in patch.splitlines():
        if old > 0 or new > 0:
            marker = line[:1]
            if marker in {" ", ""}:
                old, new = old - 1, new - 1
            elif marker == "-":
                old -= 1
            elif marker == "+":
                new -= 1
            elif marker != "\\":
                raise PathRefused("the patch has a hunk whose line counts do not match its @@ header")
            continue
        if match := _HUNK.match(line):
            old = int(match.group("old") or 1)
            new = int(match.group("new") or 1)
        elif match := _DIFF_GIT.match(line):
            for name in _diff_git_names(match.group("rest")):
                add(name)
        elif match := _FILE_LINE.match(line):
            add(_header_name(match.group("name")))
        elif match := _RENAME.match(line):
            add(_header_name(match.group("name")), strip=False)
        elif (match := _MODE.match(line)) and match.group("mode") in {"120000", "160000"}:
            kind = "symbolic link" if match.group("mode") == "120000" else "submodule"
            raise PathRefused(f"the patch creates or changes a {kind}; agents may only change regular files")
    return found


def patch_paths(patch: str) -> list[str]:
    """The paths of `patch_targets`, or [] when the patch cannot be read (kept for callers that only list)."""
    try:
        return patch_targets(patch)
    except PathRefused:
        return []


# --- commands ------------------------------------------------------------------------------------


@dataclass
class CommandCheck:
    """What the command checker found: a refusal, or the globs the activity must expand to decide."""

    refusal: str | None = None
    globs: list[str] = field(default_factory=list)  # workspace-relative glob patterns, expanded by the activity
    paths: list[str] = field(default_factory=list)  # workspace-relative paths the words name (links checked later)
    programs: list[str] = field(default_factory=list)


class _Refused(Exception):
    pass


def _base(program: str) -> str:
    if "/" not in program:
        return program
    if program.startswith("/"):
        if not program.startswith(_SAFE_PROGRAM_DIRS):
            raise _Refused(f"program {program!r} is named by an absolute path outside the system bin folders")
        return program.rsplit("/", 1)[-1]
    return program.rsplit("/", 1)[-1]


def _interpreter(name: str) -> str | None:
    if _PYTHON.match(name):
        return "python"
    return name if name in _INLINE_OPTIONS else None


class _Checker:
    def __init__(self, grant: ToolGrant) -> None:
        self.grant = grant
        self.deny = [entry.strip() for entry in DEFAULT_COMMAND_DENY + grant.command_deny if entry.strip()]
        self.cwds: list[str] = [""]
        self.result = CommandCheck()

    # paths ---------------------------------------------------------------------------------------

    def _resolved(self, candidate: str) -> list[str]:
        if "\x00" in candidate:
            raise _Refused("a word contains a NUL byte")
        if candidate.lower().startswith("file:"):
            raise _Refused(f"{candidate!r}: file: URLs are not allowed; use a path relative to the repository")
        if "://" in candidate:
            return []  # a URL: the program decides what to do with it (network clients are refused)
        if candidate.startswith("/"):
            if candidate in _SAFE_ABSOLUTE or candidate.startswith("/dev/fd/"):
                return []
            raise _Refused(f"absolute path {candidate!r} is not allowed; use a path relative to the repository root")
        out: list[str] = []
        for cwd in self.cwds:
            try:
                out.append(normalise(posixpath.join(cwd, candidate) if cwd else candidate))
            except PathRefused as refused:
                if "/" in candidate or candidate in {"..", "."}:
                    raise _Refused(str(refused)) from refused
        return out

    def read(self, word: Word) -> None:
        for candidate in _path_candidates(word.text):
            for path in self._resolved(candidate):
                refusal = read_refusal(path) if path else None
                if refusal:
                    raise _Refused(f"command argument: {refusal}")
                if path and not word.glob and path not in self.result.paths:
                    self.result.paths.append(path)
                if word.glob:
                    self._glob(path)

    def write(self, word: Word) -> None:
        self.read(word)
        for path in self._resolved(word.text):
            refusal = write_refusal(path, self.grant.constraints)
            if refusal:
                raise _Refused(f"the command would write {refusal.split(' is ', 1)[0]}: {refusal}")

    def _glob(self, pattern: str) -> None:
        last = pattern.rsplit("/", 1)[-1]
        for sample in _HIDDEN_SAMPLES:
            if any(char in last for char in "*?[") and last.startswith(".") and fnmatchcase(sample, last):
                raise _Refused(f"the pattern {pattern!r} can match {sample!r}, which agents may never read")
        if pattern not in self.result.globs:
            self.result.globs.append(pattern)

    # commands ------------------------------------------------------------------------------------

    def command(self, simple: SimpleCommand) -> None:
        for assignment in simple.assignments:
            name, _, value = assignment.text.partition("=")
            if name.upper().startswith("GIT_") or name.upper() in {
                    "PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "HOME", "BASH_ENV", "ENV", "PYTHONSTARTUP",
                    "NODE_OPTIONS", "PERL5OPT", "RUBYOPT", "IFS", "XDG_CONFIG_HOME"}:
                raise _Refused(f"setting {name} for a command is not allowed")
            self.read(Word(value, glob=assignment.glob))
        for redirect in simple.redirects:
            self.redirect(redirect)
        if simple.words:
            self.program(simple.words, simple)

    def redirect(self, redirect: Redirect) -> None:
        assert redirect.target is not None
        target = redirect.target
        if redirect.op in {">&", "<&"} and (target.text.isdigit() or target.text == "-"):
            return
        if redirect.writes:
            self.write(target)
        else:
            self.read(target)

    def program(self, words: list[Word], simple: SimpleCommand) -> None:
        head = words[0]
        if head.glob:
            raise _Refused("the program name must not be a glob pattern")
        name = _base(head.text)
        if "/" in head.text and not head.text.startswith("/"):
            self.read(head)
        self.result.programs.append(name)
        args = words[1:]
        line = " ".join([name, *(word.text for word in args)])
        for denied in self.deny:
            if line == denied or line.startswith(denied + " "):
                raise _Refused(f"command {denied!r} is not allowed for agents")
        allow = self.grant.command_allow
        if allow and name not in _WRAPPERS and not any(line == a or line.startswith(a + " ") for a in allow):
            raise _Refused(f"command {name!r} is not on the allow-list ({', '.join(allow)})")
        if name in {"source", "."}:
            if not args:
                raise _Refused(f"`{name}` needs a script path")
            self.read(args[0])
        if name == "cd":
            self.cd(args)
            return
        if name in _WRAPPERS:
            rest = self.unwrap(name, args)
            if rest:
                self.program(rest, simple)
            return
        if name == "git":
            self.git(args)
            return
        if name == "find":
            self.find(args)
            return
        interpreter = _interpreter(name)
        if interpreter:
            self.interpreter(interpreter, name, args, simple)
        if name in _AWK:
            self.awk(args)
            return
        if name in {"sed", "gsed"}:
            self.sed(args)
            return
        self.arguments(name, args)

    def arguments(self, name: str, args: list[Word]) -> None:
        plain = [word for word in args if not word.text.startswith("-") or word.text == "-"]
        for word in args:
            self.read(word)
        if name in _WRITES_ALL:
            for word in plain[1:] if name in {"chmod", "chown", "chgrp", "chattr", "setfacl"} else plain:
                self.write(word)
        elif name in _WRITES_LAST and plain:
            self.write(plain[-1])
        elif name == "dd":
            for word in args:
                if word.text.startswith("of="):
                    self.write(Word(word.text[3:], glob=word.glob))
        elif name == "sort":
            for index, word in enumerate(args):
                if word.text == "-o" and index + 1 < len(args):
                    self.write(args[index + 1])
                elif word.text.startswith(("--output=", "-o")) and len(word.text) > 2:
                    self.write(Word(word.text.split("=", 1)[-1] if "=" in word.text else word.text[2:]))

    def cd(self, args: list[Word]) -> None:
        targets = [word for word in args if not word.text.startswith("-")]
        if len(targets) != 1 or targets[0].text == "-" or targets[0].text.startswith("/"):
            raise _Refused("`cd` needs exactly one folder inside the repository, given relative to it")
        self.read(targets[0])
        for path in self._resolved(targets[0].text):
            if path not in self.cwds:
                self.cwds.append(path)

    def unwrap(self, name: str, args: list[Word]) -> list[Word]:
        with_value, positional = _WRAPPERS[name]
        index = 0
        while index < len(args) and args[index].text.startswith("-") and args[index].text != "-":
            option = args[index].text
            if option in {"-o", "--output"} and name == "time" and index + 1 < len(args):
                self.write(args[index + 1])
            index += 2 if option in with_value else 1
        return args[index + positional :]

    def interpreter(self, interpreter: str, name: str, args: list[Word], simple: SimpleCommand) -> None:
        inline = _INLINE_OPTIONS.get(interpreter, set())
        with_value = _VALUE_OPTIONS.get(interpreter, set())
        script: Word | None = None
        index = 0
        while index < len(args):
            text = args[index].text
            if text == "-":
                raise _Refused(f"{name} reading its program from standard input is not allowed")
            if text == "--":
                script = args[index + 1] if index + 1 < len(args) else None
                break
            if not text.startswith("-"):
                script = args[index]
                break
            option = text.split("=", 1)[0]
            if option in inline:
                raise _Refused(f"{name} {option}: inline program text is not allowed; write a script file under the "
                               "allowed paths and run it")
            if not text.startswith("--"):
                for letter in text[1:]:  # combined short options: `-Bc`, `-lne`
                    if f"-{letter}" in inline:
                        raise _Refused(f"{name} {text}: inline program text is not allowed; write a script file "
                                       "under the allowed paths and run it")
                    if f"-{letter}" in with_value or (interpreter == "python" and letter == "m"):
                        break
            if interpreter == "python" and text.startswith("-m"):
                module = text[2:] or (args[index + 1].text if index + 1 < len(args) else "")
                if module.split(".")[0] in {"pip", "ensurepip", "pipx", "uv"}:
                    raise _Refused(f"{name} -m {module}: installing packages is not allowed")
                return
            if option in with_value and "=" not in text and len(text) == 2:
                index += 1
            index += 1
        if script is None and (simple.piped_in or any(not r.writes and r.op != "<&" for r in simple.redirects)):
            raise _Refused(f"{name} reading its program from a pipe or a file redirect is not allowed; "
                           "name the script file instead")

    def git(self, args: list[Word]) -> None:
        index = 0
        while index < len(args) and args[index].text.startswith("-"):
            option = args[index].text
            if option.split("=", 1)[0] in _GIT_REFUSED_OPTIONS or option.startswith("-c"):
                raise _Refused(f"git {option} is not allowed")
            if option == "-C":
                if index + 1 >= len(args):
                    raise _Refused("git -C needs a folder")
                self.read(args[index + 1])
                index += 2
                continue
            index += 1
        if index >= len(args):
            return
        sub = args[index].text
        rest = args[index + 1 :]
        if sub not in _GIT_READ_ONLY:
            raise _Refused(f"git {sub} is not allowed for agents (read-only git commands only: status, diff, log, "
                           "show, grep, blame, ls-files, ...)")
        if sub == "branch" and any(word.text not in _GIT_BRANCH_LIST for word in rest):
            raise _Refused("git branch may only list branches here")
        for word in rest:
            text = word.text
            if sub == "branch":
                continue  # listing only, checked above (`-a` there means all branches)
            combined_text = text.startswith("-") and not text.startswith("--") and "a" in text[1:] and sub in _GIT_SHOWS
            if text.split("=", 1)[0] in _GIT_REFUSED_OPTIONS or (sub == "grep" and text.startswith("-O")) or (
                    combined_text):
                raise _Refused(f"git {sub} {text} is not allowed")
            if word.text.startswith("--output"):
                value = word.text.split("=", 1)[1] if "=" in word.text else ""
                if not value:
                    raise _Refused("git --output needs a file (--output=FILE)")
                self.write(Word(value))
            self.read(word)

    def find(self, args: list[Word]) -> None:
        for word in args:
            if word.text in {"-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprint0", "-fprintf",
                             "-fls"}:
                raise _Refused(f"find {word.text} is not allowed; list the files, then act on them with tools")
        for word in args:
            if not word.text.startswith("-"):
                self.read(Word(word.text))  # start folders and -name patterns: names only, never globbed here

    def awk(self, args: list[Word]) -> None:
        program_given = False
        index = 0
        while index < len(args):
            text = args[index].text
            if text in {"-f", "--file"}:
                program_given = True
                if index + 1 < len(args):
                    self.read(args[index + 1])
                index += 2
                continue
            if text in {"-v", "-F"}:
                index += 2
                continue
            if text.startswith("-"):
                index += 1
                continue
            if not program_given:
                if _AWK_DANGER.search(text):
                    raise _Refused("awk programs that run commands or read/write files (system, getline, pipes, "
                                   "print >) are not allowed")
                program_given = True
            else:
                self.read(args[index])
            index += 1

    def sed(self, args: list[Word]) -> None:
        in_place = any(w.text.startswith("-i") or w.text.startswith("--in-place") for w in args)
        scripts: list[str] = []
        files: list[Word] = []
        index = 0
        while index < len(args):
            text = args[index].text
            if text in {"-e", "--expression"} and index + 1 < len(args):
                scripts.append(args[index + 1].text)
                index += 2
                continue
            if text in {"-f", "--file"} and index + 1 < len(args):
                self.read(args[index + 1])
                scripts.append("")
                index += 2
                continue
            if text.startswith("-"):
                index += 1
                continue
            if not scripts:
                scripts.append(text)
            else:
                files.append(args[index])
            index += 1
        for script in scripts:
            if _sed_runs_or_writes(script):
                raise _Refused("sed scripts that run commands or read/write other files (e, r, R, w, W, s///e, "
                               "s///w) are not allowed")
        for word in files:
            self.read(word)
            if in_place:
                self.write(word)


def _skip_delimited(script: str, start: int, delimiter: str) -> int:
    """Index just past the next unescaped `delimiter`, or -1."""
    index = start
    while index < len(script):
        if script[index] == "\\":
            index += 2
            continue
        if script[index] == delimiter:
            return index + 1
        index += 1
    return -1


def _sed_runs_or_writes(script: str) -> bool:
    """Whether a sed script uses e, r, R, w, W or the s///e and s///w flags (or cannot be read at all)."""
    index, n = 0, len(script)
    while index < n:
        char = script[index]
        if char in " \t\n;{}!,$~+" or char.isdigit():
            index += 1
        elif char in "/\\":  # an address regex: /re/ or \cREc
            delimiter = "/" if char == "/" else script[index + 1 : index + 2]
            index = _skip_delimited(script, index + (1 if char == "/" else 2), delimiter)
            if index < 0:
                return True
            while index < n and script[index] in "IM":
                index += 1
        elif char in "eRrWw":
            return True
        elif char in "sy":
            delimiter = script[index + 1 : index + 2]
            if not delimiter or delimiter in "\\\n":
                return True
            middle = _skip_delimited(script, index + 2, delimiter)
            end = _skip_delimited(script, middle, delimiter) if middle >= 0 else -1
            if end < 0:
                return True
            flags_end = end
            while flags_end < n and script[flags_end] not in ";\n}":
                flags_end += 1
            if char == "s" and any(flag in script[end:flags_end] for flag in "ew"):
                return True
            index = flags_end
        elif char in "aic:bTtvqQlL#":  # text, labels, branches, quit: the rest of the line is theirs
            while index < n and script[index] != "\n":
                index += 1
        elif char in "pPdDnNgGhHxz=F":
            index += 1
        else:
            return True
    return False


def _path_candidates(text: str) -> list[str]:
    """The parts of a word a program might treat as a path: the word, an option's value, `rev:path`."""
    if not text:
        return []
    if text.startswith("-"):
        if "=" in text:
            return [text.split("=", 1)[1]]
        if not text.startswith("--") and len(text) > 2:
            return [text[2:]]
        return []
    found = [text]
    if "=" in text:
        found.append(text.split("=", 1)[1])
    if ":" in text and "://" not in text:
        found.append(text.split(":", 1)[1])
    return [candidate for candidate in found if candidate]


def check_command(command: str, grant: ToolGrant) -> CommandCheck:
    """Check a shell command against the rules above; `refusal` says why it may not run."""
    if not command.strip():
        return CommandCheck(refusal="empty command")
    if len(command) > MAX_COMMAND_CHARS:
        return CommandCheck(refusal=f"the command is longer than {MAX_COMMAND_CHARS} characters")
    checker = _Checker(grant)
    try:
        for simple in simple_commands(command):
            checker.command(simple)
    except ShellRefused as refused:
        return CommandCheck(refusal=str(refused))
    except _Refused as refused:
        return CommandCheck(refusal=str(refused))
    return checker.result


def _command_refusal(command: str, grant: ToolGrant) -> str | None:
    return check_command(command, grant).refusal


# --- MCP -----------------------------------------------------------------------------------------


def mcp_name(server: str, tool: str) -> str:
    return f"{MCP_PREFIX}{server}__{tool}"


def split_mcp_name(name: str) -> tuple[str, str] | None:
    """(server, tool) of an `mcp__<server>__<tool>` name, or None when it is not one."""
    match = _MCP_NAME.match(name)
    return (match.group("server"), match.group("tool")) if match else None


def _mcp_refusal(call: ToolCall, grant: ToolGrant) -> GateVerdict:
    if split_mcp_name(call.name) is None:
        return GateVerdict(allowed=False, reason=f"{call.name!r} is not a valid MCP tool name (mcp__<server>__<tool>)")
    if call.name not in grant.mcp_tools:
        return GateVerdict(allowed=False, reason=f"MCP tool {call.name!r} is not granted to the {grant.role} role")
    size = len(json.dumps(call.arguments, default=str))
    if size > MAX_MCP_ARGUMENT_CHARS:
        return GateVerdict(allowed=False, reason=f"MCP arguments are {size:,} characters (limit "
                                                  f"{MAX_MCP_ARGUMENT_CHARS:,})")
    try:
        touched = _mcp_walk(call.arguments, grant, key="", depth=0)
    except PathRefused as refused:
        return GateVerdict(allowed=False, reason=f"MCP argument: {refused}")
    return GateVerdict(allowed=True, path=",".join(touched) or None)


def _looks_like_path(value: str) -> bool:
    if not value or len(value) > 4096 or any(char.isspace() for char in value):
        return False
    if value.lower().startswith("file:"):
        return True
    if "://" in value:
        return False
    return "/" in value or value.startswith((".", "~")) or read_refusal(value) is not None


def _mcp_walk(value: Any, grant: ToolGrant, key: str, depth: int) -> list[str]:
    if depth > 16:
        raise PathRefused("arguments are nested too deeply")
    touched: list[str] = []
    if isinstance(value, dict):
        for name, item in value.items():
            touched += _mcp_walk(item, grant, str(name).lower(), depth + 1)
    elif isinstance(value, list):
        for item in value:
            touched += _mcp_walk(item, grant, key, depth + 1)
    elif isinstance(value, str):
        if contains_secret(value):
            raise PathRefused(f"argument {key or 'value'!r} carries something shaped like a credential")
        if key in _MCP_PATH_KEYS or key in _MCP_WRITE_KEYS or _looks_like_path(value):
            raw = value[len("file://"):] if value.lower().startswith("file://") else value
            path = normalise(raw)
            refusal = read_refusal(path) if path else None
            if refusal:
                raise PathRefused(refusal)
            if key in _MCP_WRITE_KEYS:
                refusal = write_refusal(path, grant.constraints)
                if refusal:
                    raise PathRefused(refusal)
            touched.append(path or ".")
    return touched


# --- the gate ------------------------------------------------------------------------------------


def _str_arg(arguments: dict[str, Any], name: str) -> str:
    value = arguments.get(name)
    if not isinstance(value, str):
        raise PathRefused(f"argument {name!r} must be a string")
    return value


def _optional_path(arguments: dict[str, Any]) -> str:
    raw = arguments.get("path", ".")
    if raw is None:
        raw = "."
    if not isinstance(raw, str):
        raise PathRefused("argument 'path' must be a string")
    return normalise(raw)


def check_call(call: ToolCall, grant: ToolGrant) -> GateVerdict:
    """Whether `grant` lets this call run. Pure; the tool activity calls it again before acting."""
    if call.name.startswith(MCP_PREFIX):
        return _mcp_refusal(call, grant)
    if call.name not in grant.tools:
        return GateVerdict(allowed=False, reason=f"tool {call.name!r} is not granted to the {grant.role} role")
    if call.name in FINAL_TOOLS:
        return GateVerdict(allowed=True)
    try:
        if call.name == "read_file":
            path = normalise(_str_arg(call.arguments, "path"))
            refusal = read_refusal(path) if path else "read_file needs a file, not the repository root"
            return GateVerdict(allowed=refusal is None, reason=refusal or "", path=path)
        if call.name in {"list_files", "search"}:
            path = _optional_path(call.arguments)
            if call.name == "search":
                pattern = _str_arg(call.arguments, "pattern")
                if len(pattern) > 1000:
                    return GateVerdict(allowed=False, reason="the search pattern is longer than 1000 characters")
            refusal = read_refusal(path) if path else None
            return GateVerdict(allowed=refusal is None, reason=refusal or "", path=path or ".")
        if call.name == "write_file":
            path = normalise(_str_arg(call.arguments, "path"))
            content = call.arguments.get("content", "")
            if not isinstance(content, str):
                return GateVerdict(allowed=False, reason="argument 'content' must be a string", path=path)
            if len(content) > MAX_CONTENT_CHARS:
                return GateVerdict(allowed=False, reason=f"content is longer than {MAX_CONTENT_CHARS:,} characters")
            refusal = write_refusal(path, grant.constraints)
            return GateVerdict(allowed=refusal is None, reason=refusal or "", path=path)
        if call.name == "apply_patch":
            patch = _str_arg(call.arguments, "patch")
            if len(patch) > MAX_CONTENT_CHARS:
                return GateVerdict(allowed=False, reason=f"the patch is longer than {MAX_CONTENT_CHARS:,} characters")
            paths = patch_targets(patch)
            if not paths:
                return GateVerdict(allowed=False, reason="the patch names no file (expected a unified diff)")
            for raw in paths:
                refusal = write_refusal(normalise(raw), grant.constraints)
                if refusal:
                    return GateVerdict(allowed=False, reason=refusal, path=raw)
            return GateVerdict(allowed=True, path=",".join(paths))
        if call.name == "run_command":
            timeout = call.arguments.get("timeout")
            if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)):
                return GateVerdict(allowed=False, reason="argument 'timeout' must be a number of seconds")
            refusal = _command_refusal(_str_arg(call.arguments, "command"), grant)
            return GateVerdict(allowed=refusal is None, reason=refusal or "")
    except PathRefused as refused:
        return GateVerdict(allowed=False, reason=str(refused))
    return GateVerdict(allowed=False, reason=f"unknown tool {call.name!r}")


def admit(state: GovernorState, call: ToolCall, grant: ToolGrant, now: datetime) -> GateVerdict:
    """Check one call and update the run's state (rate limit, denial count). Loop detection is separate."""
    window_start = now - timedelta(minutes=1)
    state.recent_calls = [t for t in state.recent_calls if t > window_start]
    if len(state.recent_calls) >= grant.max_calls_per_minute:
        verdict = GateVerdict(
            allowed=False, reason=f"rate limit: more than {grant.max_calls_per_minute} tool calls in a minute"
        )
    else:
        verdict = check_call(call, grant)
    state.recent_calls.append(now)
    if not verdict.allowed:
        state.denials += 1
    return verdict


def repeated_call(state: GovernorState, call: ToolCall, limits: RunLimits) -> str | None:
    """Count the call; a reason to stop the run when the same call was made `loop_threshold` times."""
    digest = call.digest()
    state.digests[digest] = state.digests.get(digest, 0) + 1
    if state.digests[digest] >= limits.loop_threshold:
        return (
            f"loop detected: {call.name} was called {state.digests[digest]} times with the same arguments "
            f"(limit {limits.loop_threshold})"
        )
    return None


def default_grant(role: Role, constraints: Any) -> ToolGrant:
    return ToolGrant(role=role, tools=list(ROLE_TOOLS[role]), constraints=constraints)
