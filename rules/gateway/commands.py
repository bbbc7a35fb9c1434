"""The command checker: deny by default what a shell command does out of the gateway's sight."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from contracts.workspace import ToolGrant
from rules.gateway.paths import PathRefused, normalise, read_refusal, write_refusal
from rules.gateway.shell import Redirect, ShellRefused, SimpleCommand, Word, simple_commands

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


def command_refusal(command: str, grant: ToolGrant) -> str | None:
    return check_command(command, grant).refusal
