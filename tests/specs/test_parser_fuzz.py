"""Property tests: whatever the text, the parser answers a Spec or a SpecError with sane locations.

The webhook feeds it arbitrary issue bodies, so any other exception would be a crash reachable by
anyone who can open an issue.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specs.models import ChangeKind, Spec
from specs.parser import SpecError, parse_issue_body, parse_spec

FIELD_NAMES = [
    *Spec.model_fields,
    "paths",
    "forbid",
    "max_changed_lines",
    "tech",
    "id",
    "http",
    "run",
    "judge",
    "timeout",
    "key",
    "weight",
    "method",
    "path",
    "status",
    "headers",
    "start",
    "ready",
    "tokens",
    "usd",
]

# Characters that make YAML and Markdown interesting, mixed with plain ones.
YAMLISH = st.lists(
    st.sampled_from([*"ab1 -:[]{}&*!|>'\"#%@`,?~.\n\t\r\\\u2028", "---", "```", "spec2ship", "spec: 1\n"])
).map("".join)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**60), max_value=10**60)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["1", "L9", "featur", "src/**.py", "/", "{port}", "2024-02-30", "yes", "~"])
)
keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=8)
documents: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=6),
    max_leaves=30,
)

_BREAKS = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")


def assert_only_spec_errors(text: str, *, issue: bool = False) -> None:
    """Parse and check the contract: a Spec, or a SpecError whose problems point inside the text."""
    line_count = len(_BREAKS.split(text))
    try:
        if issue:
            parse_issue_body(text, None, "issue")
        else:
            parse_spec(text, "fuzz.md")
    except SpecError as error:
        assert error.problems
        for problem in error.problems:
            assert 1 <= problem.line <= line_count, (str(problem), line_count)
            assert problem.field
            assert problem.message


def front_matter(document: object, *, allow_unicode: bool = True) -> str:
    return "---\n" + yaml.safe_dump(document, allow_unicode=allow_unicode) + "---\n# Title\n"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_arbitrary_text(text: str) -> None:
    assert_only_spec_errors(text)
    assert_only_spec_errors(text, issue=True)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(YAMLISH)
def test_arbitrary_yamlish_front_matter(text: str) -> None:
    assert_only_spec_errors("---\n" + text + "\n---\n")
    assert_only_spec_errors("Intro\n```spec2ship\n" + text + "\n```\n", issue=True)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_arbitrary_yaml_documents(document: object) -> None:
    assert_only_spec_errors(front_matter(document))


VALID: dict[str, Any] = {
    "spec": 1,
    "service": "greeter",
    "team": "platform",
    "acceptance": [{"id": "probe", "http": {"path": "/greet"}}, {"id": "unit", "run": "pytest -q"}],
    "preview": {"start": "python -m greeter --port {port}"},
    "constraints": {"paths": ["src/**"], "max_changed_lines": 10},
    "budget": {"tokens": 10},
}


def _paths(value: object, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: object) -> Any:
    if not path:
        return new
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(copy[path[0]], path[1:], new)
    return copy


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_paths(VALID)), documents)
def test_one_field_of_a_valid_spec_replaced(path: tuple[Any, ...], new: object) -> None:
    """Near-valid specs reach deep into validation; a reported field must be the replaced one or near it."""
    mutated = _replace(VALID, path, new)
    try:
        parse_spec(front_matter(mutated), "fuzz.md")
    except SpecError as error:
        text = front_matter(mutated)
        line_count = len(_BREAKS.split(text))
        for problem in error.problems:
            assert 1 <= problem.line <= line_count
        top = str(path[0])
        assert any(p.field.split(".")[0] in (top, "<spec>", "acceptance", "preview") for p in error.problems), [
            str(p) for p in error.problems
        ]


printable = st.text(st.characters(codec="utf-8"), min_size=1, max_size=30).filter(lambda value: bool(value.strip()))
criterion_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,10}", fullmatch=True)


@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    ids = draw(st.lists(criterion_ids, min_size=1, max_size=4, unique=True))
    criteria: list[dict[str, Any]] = [
        {"id": criterion_id, draw(st.sampled_from(["run", "judge"])): draw(printable)} for criterion_id in ids
    ]
    return {
        "spec": 1,
        "title": draw(printable),
        "service": draw(st.from_regex(r"[a-z0-9][a-z0-9-]{0,15}", fullmatch=True)),
        "team": draw(printable),
        "kind": draw(st.sampled_from([kind.value for kind in ChangeKind])),
        "constraints": {"tech": draw(st.lists(printable, max_size=3))},
        "acceptance": criteria,
    }


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs())
def test_valid_specs_round_trip(document: dict[str, Any]) -> None:
    """What yaml.safe_dump writes for a valid spec reads back to the same values.

    allow_unicode=False: with raw characters PyYAML's own emitter does not round-trip U+0085.
    """
    spec = parse_spec(front_matter(document, allow_unicode=False))
    assert spec.title == document["title"]
    assert spec.team == document["team"]
    assert spec.service == document["service"]
    assert spec.kind.value == document["kind"]
    assert spec.constraints.tech == document["constraints"]["tech"]
    assert [c.model_dump(include={"id", "run", "judge"}, exclude_none=True) for c in spec.acceptance] == document[
        "acceptance"
    ]
