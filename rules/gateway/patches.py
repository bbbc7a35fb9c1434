"""Every file name a unified diff would touch, as git would read it (quoted, renamed, stripped)."""

from __future__ import annotations

import re

from rules.gateway.paths import PathRefused

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
