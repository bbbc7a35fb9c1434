"""The shipped example specs and the JSON Schema: each example parses, and the schema agrees with the parser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from specs.models import ChangeKind
from specs.parser import parse_spec
from specs.schema import SCHEMA_ID, spec_json_schema

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "specs" / "examples").glob("*.md"))


def front_matter(text: str) -> Any:
    _, yaml_text, _ = text.split("---\n", 2)
    return yaml.safe_load(yaml_text)


def test_there_are_examples_of_each_required_kind() -> None:
    names = {path.name for path in EXAMPLES}
    assert "greet-by-name.md" in names
    kinds = {parse_spec(path.read_text(encoding="utf-8"), str(path)).kind for path in EXAMPLES}
    assert {ChangeKind.feature, ChangeKind.bugfix, ChangeKind.docs} <= kinds
    assert kinds & {ChangeKind.chore, ChangeKind.dependency}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_parses_with_a_title_and_a_body(path: Path) -> None:
    spec = parse_spec(path.read_text(encoding="utf-8"), str(path))
    assert spec.title
    assert spec.body


def test_greet_by_name_has_every_criterion_kind_and_a_local_preview() -> None:
    path = next(path for path in EXAMPLES if path.name == "greet-by-name.md")
    spec = parse_spec(path.read_text(encoding="utf-8"), str(path))
    assert spec.service == "greeter"
    assert {criterion.kind for criterion in spec.acceptance} == {"http", "run", "judge"}
    assert spec.preview is not None
    assert spec.preview.start == "python -m greeter --port {port}"


def test_schema_is_valid_draft_2020_12() -> None:
    schema = spec_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"] == SCHEMA_ID
    assert schema["title"]
    assert schema["description"]
    assert "body" not in schema["properties"]
    assert "title" not in schema["required"]  # it defaults to the body's heading
    assert set(schema["required"]) == {"spec", "service", "team", "acceptance"}
    assert all(prop.get("description") for prop in schema["properties"].values())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_front_matter_validates_against_the_schema(path: Path) -> None:
    jsonschema.Draft202012Validator(spec_json_schema()).validate(front_matter(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    ("change", "rejected_at"),
    [
        ({"kind": "featur"}, ["kind"]),
        ({"autonomy": "L9"}, ["autonomy"]),
        ({"foo": 1}, []),
        ({"body": "prose"}, []),
        ({"budget": {"tokens": -5}}, ["budget", "tokens"]),
        ({"acceptance": []}, ["acceptance"]),
        ({"service": "My Service"}, ["service"]),
        ({"spec": True}, ["spec"]),
        ({"constraints": {"max_changed_lines": True}}, ["constraints", "max_changed_lines"]),
    ],
)
def test_schema_rejects_what_the_parser_rejects(change: dict[str, Any], rejected_at: list[str]) -> None:
    document = front_matter((EXAMPLES[0]).read_text(encoding="utf-8")) | change
    errors = list(jsonschema.Draft202012Validator(spec_json_schema()).iter_errors(document))
    assert rejected_at in _paths(errors), [error.message for error in errors]


def _paths(errors: list[jsonschema.ValidationError]) -> list[list[str | int]]:
    """Where errors point, including the branches of anyOf (an optional field's schema is a union)."""
    found: list[list[str | int]] = []
    for error in errors:
        found.append(list(error.absolute_path))
        found += _paths(list(error.context or []))
    return found


def test_schema_accepts_lowercase_http_methods_like_the_parser() -> None:
    document = {
        "spec": 1,
        "service": "s",
        "team": "t",
        "acceptance": [{"id": "a", "http": {"method": "post", "path": "/"}}],
        "preview": {"start": "x {port}"},
    }
    jsonschema.Draft202012Validator(spec_json_schema()).validate(document)
