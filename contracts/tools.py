"""The tools agents are offered, as pydantic models of their arguments.

The JSON Schema a model sees is generated from these models (references inlined, titles dropped,
optional fields plain), so a tool's name, description and arguments are written once. The gateway's
rules (rules/gateway) judge the calls; activities/workspace runs them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from contracts.agents import ToolSpec


class ListFilesArgs(BaseModel):
    """List files under a folder of the repository (recursively, at most 500)."""

    path: str = "."


class ReadFileArgs(BaseModel):
    """Read a text file of the repository, optionally a line range."""

    path: str
    start_line: int | None = Field(default=None, ge=1)
    end_line: int | None = Field(default=None, ge=1)


class SearchArgs(BaseModel):
    """Search the repository for a regular expression; returns file:line: text matches."""

    pattern: str
    path: str = "."


class WriteFileArgs(BaseModel):
    """Create or overwrite a file with the given content."""

    path: str
    content: str


class ApplyPatchArgs(BaseModel):
    """Apply a unified diff (as produced by `git diff`) to the repository."""

    patch: str


class RunCommandArgs(BaseModel):
    """Run a shell command in the repository root, sandboxed: no network, no variables or command substitution, no
    inline interpreter code (write a script file and run it). Returns exit code and output."""

    command: str
    timeout: int = 120


class ReviewCommentArgs(BaseModel):
    path: str | None = None
    line: int | None = None
    body: str


class SubmitReviewArgs(BaseModel):
    """Finish the review: verdict approve or request_changes, with located comments."""

    verdict: Literal["approve", "request_changes"]
    summary: str | None = None
    comments: list[ReviewCommentArgs] | None = None


class JudgementArgs(BaseModel):
    id: str
    verdict: Literal["pass", "fail"]
    reason: str


class SubmitJudgementArgs(BaseModel):
    """Judge each criterion against the evidence: pass or fail, with the reason."""

    judgements: list[JudgementArgs]


TOOL_ARGUMENTS: dict[str, type[BaseModel]] = {
    "list_files": ListFilesArgs,
    "read_file": ReadFileArgs,
    "search": SearchArgs,
    "write_file": WriteFileArgs,
    "apply_patch": ApplyPatchArgs,
    "run_command": RunCommandArgs,
    "submit_review": SubmitReviewArgs,
    "submit_judgement": SubmitJudgementArgs,
}


def _plain(schema: Any, definitions: dict[str, Any]) -> Any:
    """Inline `$ref`s, drop titles, and write `X | None` as plain X (optional by not being required)."""
    if isinstance(schema, list):
        return [_plain(item, definitions) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return _plain(definitions[schema["$ref"].rsplit("/", 1)[-1]], definitions)
    options = schema.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options and len(options) == 2:
        [kept] = [option for option in options if option != {"type": "null"}]
        rest = {k: v for k, v in schema.items() if k not in {"anyOf", "default"}}
        return _plain({**kept, **rest}, definitions)
    return {key: _plain(value, definitions) for key, value in schema.items() if key not in {"title", "$defs"}}


def tool_spec(name: str, arguments: type[BaseModel]) -> ToolSpec:
    schema = arguments.model_json_schema()
    description = " ".join((arguments.__doc__ or "").split())
    parameters = _plain(schema, schema.get("$defs", {}))
    parameters.pop("description", None)  # the tool's description says it once
    return ToolSpec(name=name, description=description, parameters=parameters)


TOOL_SPECS: dict[str, ToolSpec] = {name: tool_spec(name, model) for name, model in TOOL_ARGUMENTS.items()}
