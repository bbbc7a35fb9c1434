"""Read a spec (Markdown with YAML front matter, or a GitHub issue body) into a validated `Spec`.

Every problem is reported with the file line where the offending field stands, so a user can fix a
spec from the message alone: YAML is composed into nodes (which know their lines) before it is
turned into data, and each pydantic error location is mapped back to the node it came from.
Whatever the input, the only exception that leaves this module is `SpecError`.
"""

from __future__ import annotations

import datetime
import difflib
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from specs.models import AutonomyLevel, ChangeKind, HttpMethod, Spec

__all__ = ["SpecError", "SpecProblem", "parse_issue_body", "parse_spec"]

WHOLE_SPEC = "<spec>"
"""The field name of problems that concern the whole document rather than one field."""

MAX_NODES = 10_000
"""Front matter larger than this (anchors and aliases expanded) is refused, so a 'billion laughs'
document cannot make validation take forever."""

# PyYAML counts these as line breaks; counting the same ones keeps our line numbers and its marks aligned.
_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")
_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(?P<text>.*)$")
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
# Plain data only: anything else (binary, set, omap, python objects, custom tags) is refused by name.
_ALLOWED_TAGS = frozenset(
    "tag:yaml.org,2002:" + name for name in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map")
)


class SpecProblem(BaseModel):
    """One located problem in a spec; `str()` gives the familiar `FILE:LINE: field: message` form."""

    model_config = ConfigDict(frozen=True)

    source: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.field}: {self.message}"


class SpecError(ValueError):
    """A spec that cannot be used, with every problem found (not just the first) so all can be fixed at once."""

    def __init__(self, problems: Sequence[SpecProblem]) -> None:
        self.problems: list[SpecProblem] = list(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)

    def __reduce__(self) -> tuple[type[SpecError], tuple[list[SpecProblem]]]:
        # Keeps the exception picklable (e.g. across process pools) with its problems intact.
        return (SpecError, (self.problems,))


# --------------------------------------------------------------------------------------------------
# Finding the YAML in the text


@dataclass(frozen=True)
class _Line:
    start: int  # offset of the first character
    end: int  # offset just past the line break (or the end of the text)
    text: str  # without the line break
    newline: str  # the line break itself ('' on the last line)


@dataclass(frozen=True)
class _Located:
    """Where the YAML of a spec lies in the text, and the prose around it."""

    yaml_text: str
    first_line: int  # 1-based file line of the YAML's first line
    anchor_line: int  # the opening '---' or fence: where whole-document problems point
    body: str


class _Problems(Exception):
    """Internal: problems found while locating or loading; turned into a SpecError at the edge."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        super().__init__(problems)
        self.problems = problems


def _split_lines(text: str) -> list[_Line]:
    lines: list[_Line] = []
    position = 0
    for match in _BREAK.finditer(text):
        lines.append(_Line(position, match.end(), text[position : match.start()], match.group()))
        position = match.end()
    lines.append(_Line(position, len(text), text[position:], ""))
    return lines


def _strip_blank_lines(text: str) -> str:
    """Drop blank lines at both ends but keep the first line's indentation (it is Markdown)."""
    lines = _BREAK.split(text)
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def _first_content_line(lines: list[_Line]) -> int:
    index = 0
    while index < len(lines) - 1 and not lines[index].text.strip("\ufeff \t"):
        index += 1
    return index


def _opens_front_matter(lines: list[_Line]) -> bool:
    return lines[_first_content_line(lines)].text.lstrip("\ufeff").rstrip() == "---"


def _front_matter(text: str, source: str) -> _Located:
    """The YAML between a leading '---' line and the next '---' (or '...') line."""
    lines = _split_lines(text)
    opening = _first_content_line(lines)
    if lines[opening].text.lstrip("\ufeff").rstrip() != "---":
        raise _Problems(
            [
                SpecProblem(
                    source=source,
                    line=opening + 1,
                    field=WHOLE_SPEC,
                    message="no front matter: a spec starts with a '---' line, then its YAML fields "
                    "(spec, service, team, acceptance, ...), then a closing '---' line",
                )
            ]
        )
    for index in range(opening + 1, len(lines)):
        if lines[index].text.rstrip() in ("---", "..."):
            return _Located(
                yaml_text=text[lines[opening + 1].start : lines[index].start],
                first_line=opening + 2,
                anchor_line=opening + 1,
                body=_strip_blank_lines(text[lines[index].end :]),
            )
    raise _Problems(
        [
            SpecProblem(
                source=source,
                line=opening + 1,
                field=WHOLE_SPEC,
                message="the front matter opened here is never closed: end the YAML with a '---' line",
            )
        ]
    )


@dataclass(frozen=True)
class _Fence:
    opening: int  # 0-based line index
    closing: int | None
    indent: int


def _fences(lines: list[_Line]) -> Iterator[tuple[_Fence, str]]:
    """Fenced code blocks as CommonMark sees them, with their info strings."""
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index].text)
        if match is None or (match["fence"][0] == "`" and "`" in match["info"]):
            index += 1
            continue
        fence = match["fence"]
        closing_fence = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        closing = next(
            (later for later in range(index + 1, len(lines)) if closing_fence.match(lines[later].text)), None
        )
        yield _Fence(index, closing, len(match["indent"])), match["info"].strip()
        if closing is None:
            return
        index = closing + 1


def _spec_fence(text: str, source: str) -> _Located:
    """The YAML in the issue's ```spec2ship block; the rest of the issue is the body."""
    lines = _split_lines(text)
    found = [fence for fence, info in _fences(lines) if info == "spec2ship"]
    if not found:
        raise _Problems(
            [
                SpecProblem(
                    source=source,
                    line=1,
                    field=WHOLE_SPEC,
                    message="no spec found: start the issue with front matter ('---' ... '---') or add a "
                    "```spec2ship fenced block holding the spec's YAML fields",
                )
            ]
        )
    fence = found[0]
    problems = [
        SpecProblem(
            source=source,
            line=extra.opening + 1,
            field=WHOLE_SPEC,
            message=f"a second ```spec2ship block (the first is on line {fence.opening + 1}); keep only one",
        )
        for extra in found[1:]
    ]
    if fence.closing is None:
        problems.append(
            SpecProblem(
                source=source,
                line=fence.opening + 1,
                field=WHOLE_SPEC,
                message="the ```spec2ship block opened here is never closed: end it with a ``` line",
            )
        )
    if problems:
        raise _Problems(problems)
    assert fence.closing is not None
    # Original line breaks are kept: YAML gives some of them (U+2028 in quoted text) their own meaning.
    content = "".join(
        _dedent(line.text, fence.indent) + line.newline for line in lines[fence.opening + 1 : fence.closing]
    )
    before = _strip_blank_lines(text[: lines[fence.opening].start])
    after = _strip_blank_lines(text[lines[fence.closing].end :])
    return _Located(
        yaml_text=content,
        first_line=fence.opening + 2,
        anchor_line=fence.opening + 1,
        body="\n\n".join(part for part in (before, after) if part),
    )


def _dedent(line: str, indent: int) -> str:
    """Remove up to `indent` leading spaces, as CommonMark does inside an indented fence."""
    spaces = len(line) - len(line.lstrip(" "))
    return line[min(spaces, indent) :]


def _first_heading(body: str) -> str | None:
    """The text of the body's first ATX heading outside code blocks: the default title."""
    lines = _split_lines(body)
    skip: set[int] = set()
    for fence, _info in _fences(lines):
        end = fence.closing if fence.closing is not None else len(lines) - 1
        skip.update(range(fence.opening, end + 1))
    for index, line in enumerate(lines):
        if index in skip:
            continue
        match = _ATX_HEADING.match(line.text)
        text = _without_closing_hashes(match["text"]) if match else ""
        if text:
            return text
    return None


def _without_closing_hashes(text: str) -> str:
    """`Title ##` -> `Title` (an optional closing sequence); done by hand to stay linear on long lines."""
    text = text.strip(" \t")
    bare = text.rstrip("#")
    if bare != text and (not bare or bare[-1] in " \t"):
        text = bare.rstrip(" \t")
    return text


# --------------------------------------------------------------------------------------------------
# Loading the YAML with lines

FieldPath = tuple[str, ...]  # keys and list indexes as text, e.g. ("acceptance", "1", "id")


@dataclass
class _Loaded:
    data: Any
    lines: dict[FieldPath, int] = field(default_factory=dict)  # 1-based line where each path's field stands


def _describe_tag(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag


def _yaml_error_problem(exc: yaml.YAMLError, located: _Located, source: str) -> SpecProblem:
    """A YAML syntax error, at the line PyYAML names, moved into file coordinates."""
    if isinstance(exc, yaml.reader.ReaderError):
        line = located.first_line + len(_BREAK.findall(located.yaml_text[: max(exc.position, 0)]))
        what = f"the character U+{exc.character:04X}" if isinstance(exc.character, int) else "a character"
        message = f"{what} is not allowed in YAML; remove it"
        return SpecProblem(source=source, line=line, field=WHOLE_SPEC, message=message)
    if isinstance(exc, yaml.MarkedYAMLError):
        problem = exc.problem or "invalid YAML"
        mark = exc.problem_mark
        if exc.context_mark is not None and (mark is None or "end of stream" in problem or "<stream end>" in problem):
            mark = exc.context_mark  # e.g. an unclosed quote: point where it opened, not at the end
        line = located.first_line + mark.line if mark is not None else located.anchor_line
        if "could not determine a constructor for the tag" in problem:
            tag = problem.rsplit("'", 2)[-2] if problem.count("'") >= 2 else "?"
            message = f"the YAML tag {_describe_tag(tag)} is not allowed in a spec; write plain values"
        else:
            message = f"YAML syntax error: {problem}"
            if exc.context and exc.context_mark is not None:
                message += f" ({exc.context} on line {located.first_line + exc.context_mark.line})"
            if "'\\t'" in problem:
                message += "; indent with spaces, not tabs"
        return SpecProblem(source=source, line=line, field=WHOLE_SPEC, message=message)
    return SpecProblem(source=source, line=located.anchor_line, field=WHOLE_SPEC, message=f"invalid YAML: {exc}")


def _load(located: _Located, source: str) -> _Loaded:
    """Compose the YAML, check its shape node by node (with lines), then build plain data."""
    try:
        loader = yaml.SafeLoader(located.yaml_text)
    except yaml.YAMLError as exc:  # the reader refuses unprintable characters up front
        raise _Problems([_yaml_error_problem(exc, located, source)]) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return _Loaded(data=None)
        loaded = _Loaded(data=None)
        problems = _walk(node, loader, located, source, loaded.lines)
        if problems:
            raise _Problems(problems)
        loaded.data = loader.construct_document(node)
        return loaded
    except yaml.YAMLError as exc:
        raise _Problems([_yaml_error_problem(exc, located, source)]) from None
    except RecursionError:
        message = "the front matter is nested too deeply to read"
        problem = SpecProblem(source=source, line=located.anchor_line, field=WHOLE_SPEC, message=message)
        raise _Problems([problem]) from None
    finally:
        loader.dispose()


def _walk(
    root: yaml.Node, loader: yaml.SafeLoader, located: _Located, source: str, lines: dict[FieldPath, int]
) -> list[SpecProblem]:
    """Record each path's line and find what plain data cannot express: duplicate or non-text keys,
    unsupported tags, unreadable scalars, and documents that aliases blow up beyond MAX_NODES."""
    problems: list[SpecProblem] = []

    def add(node: yaml.Node, path: FieldPath, message: str) -> None:
        line = located.first_line + node.start_mark.line
        problems.append(SpecProblem(source=source, line=line, field=_dotted(path), message=message))

    stack: list[tuple[yaml.Node, FieldPath]] = [(root, ())]
    visited = 0
    while stack:
        node, path = stack.pop()
        visited += 1
        if visited > MAX_NODES:
            message = (
                f"the front matter holds more than {MAX_NODES} values once anchors and aliases are expanded; "
                "a spec should be small"
            )
            return [SpecProblem(source=source, line=located.anchor_line, field=WHOLE_SPEC, message=message)]
        if node.tag not in _ALLOWED_TAGS:
            add(node, path, f"the YAML tag {_describe_tag(node.tag)} is not allowed in a spec; write plain values")
            continue
        if isinstance(node, yaml.MappingNode):
            first_seen: dict[str, int] = {}
            children: list[tuple[yaml.Node, FieldPath]] = []
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE:
                    children.append((value_node, path))  # merged keys count as this mapping's own
                    continue
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
                    if isinstance(key_node, yaml.ScalarNode):
                        add(key_node, (*path, key_node.value), f"the key {key_node.value!r} is not text; quote it")
                    else:
                        add(key_node, path, "a key must be a plain name, not a list or mapping")
                    continue
                key = key_node.value
                key_line = located.first_line + key_node.start_mark.line
                if key in first_seen:
                    message = f"duplicate key '{key}' (first on line {first_seen[key]}); keep only one"
                    add(key_node, (*path, key), message)
                    continue
                first_seen[key] = key_line
                lines.setdefault((*path, key), key_line)
                children.append((value_node, (*path, key)))
            stack.extend(reversed(children))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines.setdefault((*path, str(index)), located.first_line + item.start_mark.line)
            stack.extend((item, (*path, str(index))) for index, item in reversed(list(enumerate(node.value))))
        elif isinstance(node, yaml.ScalarNode):
            try:
                loader.construct_object(node)
            except (ValueError, OverflowError) as exc:
                if node.tag == "tag:yaml.org,2002:int":
                    add(node, path, f"the number {_clip(node.value)!r} is too large; quote it if it is text")
                else:
                    add(node, path, f"the value {_clip(node.value)!r} cannot be read ({exc}); quote it if it is text")
    return problems


# --------------------------------------------------------------------------------------------------
# From pydantic errors to located, human problems


_PLAIN_KEY = re.compile(r"[^\s.'\"]+")


def _dotted(path: Sequence[str]) -> str:
    """`acceptance.1.id`; keys that would make the path ambiguous (empty, with dots or spaces) are quoted."""
    if not path:
        return WHOLE_SPEC
    return ".".join(part if _PLAIN_KEY.fullmatch(part) else repr(_clip(part, 40)) for part in path)


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show(value: object) -> str:
    """A short, YAML-flavoured rendering of a value the user wrote, with what YAML made of it."""
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int):
        if abs(value) < 10**40:
            return f"{value} (a number)"
        return f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"  # str() of huge ints may raise
    if isinstance(value, float):
        return f"{value!r} (a number)"
    if isinstance(value, datetime.date):
        return f"{value.isoformat()} (a date)"
    if isinstance(value, str):
        return repr(_clip(value))
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def _quote_hint(value: object) -> str:
    scalar = isinstance(value, bool | int | float | datetime.date)
    return "; put it in quotes if you meant text" if scalar else ""


def _model_at(path: Sequence[str]) -> type[BaseModel] | None:
    """The model class that validates the mapping at `path` (for listing the fields it allows)."""
    annotation: object = Spec
    for part in path:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if part not in annotation.model_fields:
                return None
            annotation = annotation.model_fields[part].annotation
        elif typing.get_origin(annotation) is list and part.isdigit():
            annotation = typing.get_args(annotation)[0]
        else:
            return None
    annotation = _unwrap(annotation)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _unwrap(annotation: object) -> object:
    """`X | None` -> `X`, so the walk sees the model inside an optional field."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _choices(values: Sequence[str]) -> str:
    return ", ".join(values)


_MISSING_HINTS: dict[str, str] = {
    "spec": "spec is missing: add 'spec: 1' (the version of the spec language)",
    "title": "title is missing: add 'title: ...' to the front matter or start the body with a '# Heading'",
    "service": "service is missing: name the service this change is for, e.g. 'service: greeter'",
    "team": "team is missing: name the team whose budget pays for this change, e.g. 'team: platform'",
    "acceptance": "acceptance is missing: list at least one criterion (an id and one of http, run, judge)",
    "id": "id is missing: give each criterion an id, unique within the spec",
    "path": "path is missing: the request path to probe, starting with '/'",
}

_PATTERN_HINTS: dict[str, str] = {
    "service": "is not a service name: use lowercase letters, digits and '-', starting with a letter or digit",
    "id": "is not a valid criterion id: use letters, digits, '_', '.' and '-', starting with a letter or digit",
    "path": "must start with '/'",
    "ready": "must start with '/'",
}

_TYPE_NAMES: dict[str, str] = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list (one '- item' per line)",
    "dict_type": "a mapping (key: value lines)",
    "model_type": "a mapping (key: value lines)",
    "model_attributes_type": "a mapping (key: value lines)",
}


def _message(error: ErrorDetails, path: FieldPath) -> str:
    """Say what is wrong and what to write instead, in the user's terms rather than pydantic's."""
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    value = error.get("input")
    names = [part for part in path if not part.isdigit()]
    name = names[-1] if names else WHOLE_SPEC
    if kind == "missing":
        return _MISSING_HINTS.get(name, f"{name} is missing; it is required here")
    if kind == "extra_forbidden":
        model = _model_at(path[:-1])
        allowed = [f for f in model.model_fields if not (model is Spec and f == "body")] if model else []
        message = f"unknown field '{path[-1]}'"
        close = difflib.get_close_matches(path[-1], allowed, n=1)
        if close:
            message += f"; did you mean '{close[0]}'?"
        if allowed:
            message += f" (expected one of {_choices(allowed)})"
        return message
    if kind == "enum" and name == "kind":
        return f"unknown kind {_show(value)}; expected one of {_choices([k.value for k in ChangeKind])}"
    if kind == "enum" and name == "autonomy":
        levels = [level.value for level in AutonomyLevel]
        return f"autonomy {_show(value)} is not a level; expected {levels[0]}..{levels[-1]}"
    if kind == "literal_error" and name == "spec":
        return f"spec {_show(value)} is not a spec language version; expected 1 (write 'spec: 1')"
    if kind == "literal_error" and name == "method":
        return f"unknown HTTP method {_show(value)}; expected one of {_choices(typing.get_args(HttpMethod))}"
    if kind in _TYPE_NAMES:
        if value is None:
            return f"{name} is empty; give it a value ({_TYPE_NAMES[kind]})"
        if path[:1] == ("acceptance",) and len(path) == 2:
            return f"each criterion must be a mapping with an id and one of http, run, judge, not {_show(value)}"
        hint = _quote_hint(value) if kind == "string_type" else ""
        return f"{name} must be {_TYPE_NAMES[kind]}, not {_show(value)}{hint}"
    if kind == "string_pattern_mismatch":
        if name in _PATTERN_HINTS:
            return f"{name} {_show(value)} {_PATTERN_HINTS[name]}"
        return f"{name} {_show(value)} must match {ctx.get('pattern')}"
    if kind in ("string_too_short", "too_short"):
        if name == "acceptance":
            return "acceptance needs at least one criterion (an id and one of http, run, judge)"
        return f"{name} must not be empty"
    bounds = {
        "greater_than": ("greater than", "gt"),
        "greater_than_equal": ("at least", "ge"),
        "less_than": ("less than", "lt"),
        "less_than_equal": ("at most", "le"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        bound = ctx.get(key)
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)  # "greater than 0", not "greater than 0.0"
        return f"{name} must be {words} {bound}, not {_show(value)}"
    if kind == "finite_number":
        return f"{name} must be a finite number, not {_show(value)}"
    if kind == "string_unicode":
        return f"{name} must be valid Unicode text"
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    return str(error["msg"])


def _relocate(error: ErrorDetails, data: Mapping[str, Any]) -> FieldPath:
    """The path a problem belongs to; some cross-field errors carry it in ctx rather than loc."""
    path: FieldPath = tuple(str(part) for part in error["loc"])
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    if error["type"] == "duplicate_criterion_id":
        return (*path, str(ctx.get("index", 0)), "id")
    if error["type"] == "preview_required":
        return ("preview",) if "preview" in data else ("acceptance", str(ctx.get("index", 0)), "http")
    if error["type"] == "preview_field_needs":
        return (*path, str(ctx.get("field", "")))
    return path


def _line_of(path: FieldPath, loaded: _Loaded, anchor_line: int) -> int:
    """The line of the longest prefix of `path` that stands in the YAML (the parent of a missing field)."""
    for end in range(len(path), 0, -1):
        line = loaded.lines.get(path[:end])
        if line is not None:
            return line
    return anchor_line


def _validate(loaded: _Loaded, located: _Located, source: str, default_title: str | None) -> Spec:
    """Fill in what the front matter may leave out (title, body), validate, and locate every error."""
    data = loaded.data
    if not isinstance(data, dict):
        if data is None:
            message = "the front matter is empty; write the spec's fields (spec, service, team, acceptance, ...)"
        else:
            message = f"the front matter must be a mapping of fields (key: value lines), not {_show(data)}"
        raise _Problems([SpecProblem(source=source, line=located.anchor_line, field=WHOLE_SPEC, message=message)])
    fields = dict(data)
    problems: list[SpecProblem] = []
    if "body" in fields:
        problems.append(
            SpecProblem(
                source=source,
                line=loaded.lines.get(("body",), located.anchor_line),
                field="body",
                message="unknown field 'body': the body is the Markdown after the front matter, not a field",
            )
        )
        del fields["body"]
    if "title" not in fields:
        title = (default_title or "").strip() or _first_heading(located.body)
        if title:
            fields["title"] = title
    try:
        spec = Spec.model_validate({**fields, "body": located.body})
    except ValidationError as exc:
        for error in exc.errors():
            path = _relocate(error, fields)
            where = path[:-1] if error["type"] == "missing" else path
            line = _line_of(where, loaded, located.anchor_line)
            problems.append(SpecProblem(source=source, line=line, field=_dotted(path), message=_message(error, path)))
    if problems:
        raise _Problems(problems)
    return spec


# --------------------------------------------------------------------------------------------------
# Entry points


def _parse(text: object, source: str, locate: Callable[[str, str], _Located], default_title: str | None) -> Spec:
    if not isinstance(text, str):
        message = f"a spec must be text, not {type(text).__name__}"
        raise SpecError([SpecProblem(source=source, line=1, field=WHOLE_SPEC, message=message)])
    try:
        located = locate(text, source)
        return _validate(_load(located, source), located, source, default_title)
    except _Problems as found:
        unique = list(dict.fromkeys(found.problems))
        raise SpecError(sorted(unique, key=lambda problem: problem.line)) from None


def parse_spec(text: str, source: str = "<spec>") -> Spec:
    """Parse a spec file: YAML front matter, then the Markdown body (the intent in prose).

    `source` names the file in problems. Raises `SpecError` listing every problem found.
    """
    return _parse(text, source, _front_matter, None)


def parse_issue_body(body: str, title: str | None, source: str) -> Spec:
    """Parse a GitHub issue: front matter at the top, else a ```spec2ship fenced block anywhere.

    The rest of the issue is the spec's body. Without a `title` field, the issue's title is used,
    then the body's first heading. Lines in problems count from the top of the issue body.
    """
    default_title = title if isinstance(title, str) else None

    def locate(text: str, source: str) -> _Located:
        return _front_matter(text, source) if _opens_front_matter(_split_lines(text)) else _spec_fence(text, source)

    return _parse(body, source, locate, default_title)
