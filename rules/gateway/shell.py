"""A conservative reader of the shell commands agents ask `run_command` to run.

It is not a shell parser. It splits a command into words and operators the way `/bin/sh` would for
the simple commands agents write (`python -m pytest -q`, `grep -rn foo src | head`, `cd src && make`),
and it REFUSES whatever it cannot see through: parameter and command substitution (`$x`, `${x}`,
`$(...)`, backticks), here-documents, process substitution, shell functions, `case`/`for` loops. The
result is a list of simple commands with their words (quotes removed, unquoted glob characters noted)
and redirections, which rules/gateway/commands.py checks. Pure: the AgentRun workflow calls it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GLOB_CHARS = frozenset("*?[")
_OPERATOR_START = frozenset(";&|()<>\n")
_KEYWORDS_BEFORE_COMMAND = frozenset({"if", "then", "else", "elif", "while", "until", "do", "!", "{", "time"})
_KEYWORDS_ALONE = frozenset({"fi", "done", "}"})
_REFUSED_KEYWORDS = {
    "for": "`for` loops need variables, which are not allowed; write the commands out, or a script file",
    "case": "`case` is not allowed; write a script file under the allowed paths and run it",
    "select": "`select` is not allowed",
    "function": "shell functions are not allowed",
    "coproc": "`coproc` is not allowed",
}


class ShellRefused(Exception):
    """The command uses shell features the gateway does not let through; the message says which."""


@dataclass
class Word:
    text: str  # after quote removal, as the program will receive it (before globbing)
    glob: bool = False  # has an unquoted `*`, `?` or `[`: the shell will expand it against files
    quoted: bool = False


@dataclass
class Redirect:
    op: str  # `>`, `>>`, `<`, `<>`, `>|`, `&>`, `&>>`, `>&`, `<&`
    fd: str = ""
    target: Word | None = None

    @property
    def writes(self) -> bool:
        return ">" in self.op


@dataclass
class SimpleCommand:
    assignments: list[Word] = field(default_factory=list)  # `NAME=value` before the program
    words: list[Word] = field(default_factory=list)  # program and arguments
    redirects: list[Redirect] = field(default_factory=list)
    piped_in: bool = False  # reads the previous command's output (`a | b`)
    background: bool = False  # ended by `&`


def _operator(text: str, at: int) -> str:
    for op in ("&&", "||", ";;", "|&", "&>>", "&>", ">>", ">|", ">&", "<&", "<>", "<<", ">", "<", ";", "&", "|", "(",
               ")", "\n"):
        if text.startswith(op, at):
            return op
    raise AssertionError(f"no operator at {at}")  # unreachable: callers check _OPERATOR_START


def tokens(command: str) -> list[Word | str]:
    """Words and operators (operators as plain strings), or ShellRefused."""
    out: list[Word | str] = []
    i, n = 0, len(command)
    while i < n:
        char = command[i]
        if char in " \t":
            i += 1
            continue
        if char == "\\" and command.startswith("\\\n", i):
            i += 2
            continue
        if char == "#":
            while i < n and command[i] != "\n":
                i += 1
            continue
        if char in _OPERATOR_START:
            op = _operator(command, i)
            if op == "<<":
                raise ShellRefused("here-documents (<<) are not allowed; write the file with write_file")
            if op in {"<", ">"} and command.startswith("(", i + 1):
                raise ShellRefused("process substitution (<(...), >(...)) is not allowed")
            out.append(op)
            i += len(op)
            continue
        word, i = _word(command, i)
        # `2>file`: a word made only of digits directly followed by a redirection is a file descriptor.
        if i < n and command[i] in "<>" and word.text.isdigit() and not word.quoted:
            op = _operator(command, i)
            out.append(word.text + op)
            i += len(op)
            continue
        out.append(word)
    return out


def _word(command: str, i: int) -> tuple[Word, int]:
    text: list[str] = []
    glob = quoted = False
    n = len(command)
    while i < n:
        char = command[i]
        if char in " \t" or char in _OPERATOR_START:
            break
        if char == "'":
            end = command.find("'", i + 1)
            if end < 0:
                raise ShellRefused("unbalanced single quote")
            text.append(command[i + 1 : end])
            quoted, i = True, end + 1
            continue
        if char == '"':
            i = _double_quoted(command, i + 1, text)
            quoted = True
            continue
        if char == "\\":
            if i + 1 < n:
                if command[i + 1] == "\n":
                    i += 2
                    continue
                text.append(command[i + 1])
                quoted, i = True, i + 2
                continue
            raise ShellRefused("the command ends with a backslash")
        if char == "$":
            raise ShellRefused("variables and command substitution ($...) are not allowed; write the value out")
        if char == "`":
            raise ShellRefused("command substitution (`...`) is not allowed")
        if char in GLOB_CHARS:
            glob = True
        if char == "~" and not text:
            raise ShellRefused("`~` (a home folder) is not allowed; use paths inside the repository")
        text.append(char)
        i += 1
    return Word("".join(text), glob=glob, quoted=quoted), i


def _double_quoted(command: str, i: int, text: list[str]) -> int:
    n = len(command)
    while i < n:
        char = command[i]
        if char == '"':
            return i + 1
        if char == "\\" and i + 1 < n and command[i + 1] in '$`"\\\n':
            if command[i + 1] != "\n":
                text.append(command[i + 1])
            i += 2
            continue
        if char == "$":
            raise ShellRefused("variables and command substitution ($...) are not allowed, also in double quotes")
        if char == "`":
            raise ShellRefused("command substitution (`...`) is not allowed, also in double quotes")
        text.append(char)
        i += 1
    raise ShellRefused("unbalanced double quote")


_SEPARATORS = {"&&", "||", ";", "&", "|", "|&", "\n", "(", ")", ";;"}


def simple_commands(command: str) -> list[SimpleCommand]:
    """The simple commands of `command`, in order, or ShellRefused."""
    items = tokens(command)
    result: list[SimpleCommand] = []
    current = SimpleCommand()
    expect_command = True
    index = 0
    while index < len(items):
        item = items[index]
        if isinstance(item, str) and item in _SEPARATORS:
            if item == "(" and current.words:
                raise ShellRefused("shell functions (name() {...}) are not allowed")
            if item == ")" and index > 0 and items[index - 1] == "(":
                raise ShellRefused("shell functions (name() {...}) are not allowed")
            if item == "&":
                current.background = True
            if current.words or current.redirects or current.assignments:
                result.append(current)
            current = SimpleCommand(piped_in=item in {"|", "|&"})
            expect_command = True
            index += 1
            continue
        if isinstance(item, str):  # a redirection operator, maybe with its file descriptor
            fd = "".join(ch for ch in item if ch.isdigit())
            op = item[len(fd):]
            target = items[index + 1] if index + 1 < len(items) else None
            if not isinstance(target, Word):
                raise ShellRefused(f"redirection {item!r} has no target")
            current.redirects.append(Redirect(op=op, fd=fd, target=target))
            index += 2
            continue
        if expect_command and not current.words:
            if item.text in _REFUSED_KEYWORDS and not item.quoted:
                raise ShellRefused(_REFUSED_KEYWORDS[item.text])
            if item.text in _KEYWORDS_BEFORE_COMMAND and not item.quoted:
                index += 1
                continue
            if item.text in _KEYWORDS_ALONE and not item.quoted:
                index += 1
                continue
            if _is_assignment(item):
                current.assignments.append(item)
                index += 1
                continue
        current.words.append(item)
        index += 1
    if current.words or current.redirects or current.assignments:
        result.append(current)
    return result


def _is_assignment(word: Word) -> bool:
    name, sep, _ = word.text.partition("=")
    return bool(sep) and name.isidentifier() and name.isascii()
