"""The spec parser: every field (defaults and explicit values), and every error at its exact line and path."""

from __future__ import annotations

import pickle

import pytest
from minimal_spec import MINIMAL_FIELDS, MINIMAL_SPEC

from specs.models import AutonomyLevel, ChangeKind
from specs.parser import SpecError, SpecProblem, parse_issue_body, parse_spec

# The base spec, numbered for reading the assertions below:
#  1 ---             4 team: platform      7     run: pytest -q     10
#  2 spec: 1         5 acceptance:         8 ---                    11 Say hello.
#  3 service: ...    6   - id: unit        9 # Greet by name
BASE = MINIMAL_SPEC + "\nSay hello.\n"


def problems_of(text: str, source: str = "spec.md") -> list[SpecProblem]:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, source)
    return caught.value.problems


def only_problem(text: str) -> SpecProblem:
    found = problems_of(text)
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


def located(text: str) -> list[tuple[int, str]]:
    return [(problem.line, problem.field) for problem in problems_of(text)]


# ----------------------------------------------------------------------------------------------
# Valid specs: defaults and explicit values


def test_minimal_spec_gets_every_default() -> None:
    spec = parse_spec(BASE)
    assert spec.spec == 1
    assert spec.title == "Greet by name"
    assert spec.service == "greeter"
    assert spec.team == "platform"
    assert spec.kind is ChangeKind.feature
    assert spec.autonomy is None
    assert spec.constraints.paths == ["**"]
    assert spec.constraints.forbid == []
    assert spec.constraints.max_changed_lines == 500
    assert spec.constraints.tech == []
    assert spec.preview is None
    assert spec.budget is None
    assert spec.body == "# Greet by name\n\nSay hello."
    [criterion] = spec.acceptance
    assert (criterion.id, criterion.kind, criterion.run) == ("unit", "run", "pytest -q")
    assert (criterion.http, criterion.judge) == (None, None)
    assert (criterion.timeout, criterion.key, criterion.weight) == (300, True, 1.0)


FULL = """\
---
spec: 1
title: Greet visitors by name
service: greeter-2
team: web platform
kind: bugfix
autonomy: L2
constraints:
  paths: ["greeter/**", "tests/*.py", "docs/[a-c]*.md"]
  forbid: [".github/**"]
  max_changed_lines: 120
  tech:
    - stdlib only
acceptance:
  - id: probe
    http:
      method: post
      path: /greet?name=Ada
      status: 201
      body_contains: Hello, Ada!
      body: '{"name": "Ada"}'
      headers:
        Content-Type: application/json
    timeout: 12.5
    key: false
    weight: 2
  - id: tests.unit_1
    run: pytest -q
  - id: tone
    judge: The greeting is friendly.
preview:
  start: python -m greeter --port {port}
  ready: /health
  ready_timeout: 15
  manifests: deploy/preview
budget:
  tokens: 50000
  usd: 1.25
---
# A heading that the title field overrides
"""


def test_every_field_explicit() -> None:
    spec = parse_spec(FULL)
    assert spec.title == "Greet visitors by name"
    assert (spec.service, spec.team, spec.kind, spec.autonomy) == (
        "greeter-2",
        "web platform",
        ChangeKind.bugfix,
        AutonomyLevel.L2,
    )
    assert spec.constraints.paths == ["greeter/**", "tests/*.py", "docs/[a-c]*.md"]
    assert spec.constraints.forbid == [".github/**"]
    assert spec.constraints.max_changed_lines == 120
    assert spec.constraints.tech == ["stdlib only"]
    probe, unit, tone = spec.acceptance
    assert probe.http is not None
    assert probe.http.method == "POST"  # upper-cased
    assert probe.http.path == "/greet?name=Ada"
    assert probe.http.status == 201
    assert probe.http.body_contains == "Hello, Ada!"
    assert probe.http.body == '{"name": "Ada"}'
    assert probe.http.headers == {"Content-Type": "application/json"}
    assert (probe.timeout, probe.key, probe.weight) == (12.5, False, 2.0)
    assert (unit.id, unit.kind) == ("tests.unit_1", "run")
    assert (tone.kind, tone.judge) == ("judge", "The greeting is friendly.")
    assert spec.preview is not None
    assert spec.preview.start == "python -m greeter --port {port}"
    assert (spec.preview.ready, spec.preview.ready_timeout, spec.preview.manifests) == ("/health", 15, "deploy/preview")
    assert spec.budget is not None
    assert (spec.budget.tokens, spec.budget.usd) == (50000, 1.25)
    assert spec.body == "# A heading that the title field overrides"


def test_http_defaults_and_preview_defaults() -> None:
    text = """\
---
spec: 1
title: T
service: s
team: t
acceptance:
  - id: probe
    http:
      path: /
preview:
  manifests: deploy/preview
---
"""
    spec = parse_spec(text)
    http = spec.acceptance[0].http
    assert http is not None
    assert (http.method, http.status, http.body_contains, http.body, http.headers) == ("GET", 200, None, None, {})
    assert spec.preview is not None
    assert (spec.preview.start, spec.preview.ready, spec.preview.ready_timeout) == (None, "/", 60)
    assert spec.body == ""


@pytest.mark.parametrize(
    ("body", "title"),
    [
        ("# Plain heading\n", "Plain heading"),
        ("Intro text.\n\n## Second-level heading ##\n", "Second-level heading"),
        ("```python\n# a comment, not a heading\n```\n\n# Real heading\n", "Real heading"),
        ("#hashtag is not a heading\n# Heading\n", "Heading"),
    ],
)
def test_title_defaults_to_first_heading(body: str, title: str) -> None:
    text = "---\nspec: 1\nservice: s\nteam: t\nacceptance: [{id: a, run: x}]\n---\n" + body
    assert parse_spec(text).title == title


def test_crlf_bom_leading_blank_lines_and_dots_closing() -> None:
    lines = [
        "\ufeff",
        "---",
        "spec: 1",
        "service: s",
        "team: t",
        "kind: featur",
        "acceptance: [{id: a, run: x}]",
        "...",
    ]
    text = "\r\n".join([*lines, "# T", ""])
    problem = only_problem(text)
    assert (problem.line, problem.field) == (6, "kind")
    fixed = parse_spec(text.replace("featur", "docs"))
    assert (fixed.kind, fixed.title, fixed.body) == (ChangeKind.docs, "T", "# T")


def test_anchors_aliases_and_merge_keys_are_plain_yaml() -> None:
    text = """\
---
spec: 1
title: T
service: s
team: t
acceptance:
  - &base {id: a, run: pytest, timeout: 30}
  - <<: *base
    id: b
---
"""
    first, second = parse_spec(text).acceptance
    assert (second.id, second.run, second.timeout) == ("b", "pytest", 30)
    assert first.id == "a"


# ----------------------------------------------------------------------------------------------
# Errors, each at its exact line and field path


def test_problem_str_and_error_str() -> None:
    problem = SpecProblem(source="specs/x.md", line=7, field="acceptance.1.id", message="duplicate criterion id 'a'")
    assert str(problem) == "specs/x.md:7: acceptance.1.id: duplicate criterion id 'a'"
    error = SpecError([problem, problem.model_copy(update={"line": 9})])
    assert str(error).splitlines() == [
        "specs/x.md:7: acceptance.1.id: duplicate criterion id 'a'",
        "specs/x.md:9: acceptance.1.id: duplicate criterion id 'a'",
    ]
    assert pickle.loads(pickle.dumps(error)).problems == error.problems


def test_yaml_syntax_error_at_its_line() -> None:
    text = "---\nspec: 1\nservice: greeter\nteam: a: b\nacceptance: []\n---\n"
    problem = only_problem(text)
    assert (problem.line, problem.field) == (4, "<spec>")
    assert problem.message.startswith("YAML syntax error: mapping values are not allowed here")


def test_yaml_error_after_leading_lines_is_offset() -> None:
    text = "\n\n---\nspec: 1\nservice: [greeter\n---\n"
    problem = only_problem(text)
    assert problem.line == 5  # where the unclosed '[' opened
    assert "flow sequence" in problem.message


def test_unclosed_quote_points_where_it_opened() -> None:
    problem = only_problem("---\nspec: 1\ntitle: 'abc\nteam: x\n---\n")
    assert problem.line == 3


def test_tab_indentation_says_so() -> None:
    problem = only_problem("---\nspec: 1\n\tteam: x\n---\n")
    assert problem.line == 3
    assert "spaces, not tabs" in problem.message


def test_unknown_kind() -> None:
    problem = only_problem(BASE.replace("team: platform\n", "team: platform\nkind: featur\n"))
    assert (problem.line, problem.field) == (5, "kind")
    assert (
        problem.message == "unknown kind 'featur'; expected one of feature, bugfix, chore, refactor, dependency, docs"
    )


def test_autonomy_not_a_level() -> None:
    problem = only_problem(BASE.replace("team: platform\n", "team: platform\nautonomy: L9\n"))
    assert (problem.line, problem.field) == (5, "autonomy")
    assert problem.message == "autonomy 'L9' is not a level; expected L1..L5"


def test_duplicate_criterion_id_points_at_second_id() -> None:
    text = f"""\
---
{MINIMAL_FIELDS}\
  - run: ruff check
    id: unit
---
# T
"""
    problem = only_problem(text)
    assert (problem.line, problem.field) == (9, "acceptance.1.id")
    assert problem.message == "duplicate criterion id 'unit'"


def test_criterion_with_two_kinds() -> None:
    text = BASE.replace("    run: pytest -q\n", "    run: pytest -q\n  - id: both\n    http: {path: /}\n    run: x\n")
    problem = only_problem(text)
    assert (problem.line, problem.field) == (8, "acceptance.1")
    assert problem.message == "a criterion needs exactly one of http, run, judge (found: http, run)"


def test_criterion_with_no_kind() -> None:
    text = BASE.replace("    run: pytest -q\n", "    run: pytest -q\n  - id: nothing\n    timeout: 5\n")
    problem = only_problem(text)
    assert (problem.line, problem.field) == (8, "acceptance.1")
    assert problem.message == "a criterion needs exactly one of http, run, judge (found: none)"


@pytest.mark.parametrize(
    ("value", "field", "words"),
    [
        ("tokens: -5", "budget.tokens", "tokens must be greater than 0, not -5"),
        ("usd: -0.5", "budget.usd", "usd must be greater than 0, not -0.5"),
        ("tokens: 0", "budget.tokens", "tokens must be greater than 0, not 0"),
        ("usd: .inf", "budget.usd", "usd must be a finite number"),
    ],
)
def test_bad_budget(value: str, field: str, words: str) -> None:
    problem = only_problem(BASE.replace("acceptance:\n", f"budget:\n  {value}\nacceptance:\n"))
    assert (problem.line, problem.field) == (6, field)
    assert problem.message.startswith(words)


def test_empty_acceptance() -> None:
    text = "---\nspec: 1\ntitle: T\nservice: s\nteam: t\nacceptance: []\n---\n"
    problem = only_problem(text)
    assert (problem.line, problem.field) == (6, "acceptance")
    assert problem.message.startswith("acceptance needs at least one criterion")


@pytest.mark.parametrize(
    ("glob", "words"),
    [
        ("src/**.py", "'**' must be a whole path segment"),
        ("/abs", "must be relative to the repository root"),
        ("a/../b", "must not contain '..'"),
        ("src/[ab.py", "unbalanced '[' or ']'"),
        ("src/]ab[.py", "unbalanced '[' or ']'"),
        ("src//a.py", "empty path segment"),
        ("src\\\\a.py", "must use '/' as separator"),
        ("' '", "glob must not be empty"),
        ("''", "forbid must not be empty"),
    ],
)
def test_invalid_glob_points_at_its_entry(glob: str, words: str) -> None:
    text = BASE.replace(
        "acceptance:\n", f"constraints:\n  paths:\n    - src/**\n  forbid:\n    - ok/*\n    - {glob}\nacceptance:\n"
    )
    problem = only_problem(text)
    assert (problem.line, problem.field) == (10, "constraints.forbid.1")
    assert words in problem.message


@pytest.mark.parametrize(
    ("insert_after", "line_text", "line", "field", "suggestion"),
    [
        ("team: platform\n", "titel: T", 5, "titel", "did you mean 'title'?"),
        ("team: platform\n", "foo: 1", 5, "foo", "expected one of spec, title, service"),
        ("    run: pytest -q\n", "    timout: 5", 8, "acceptance.0.timout", "did you mean 'timeout'?"),
    ],
)
def test_unknown_field(insert_after: str, line_text: str, line: int, field: str, suggestion: str) -> None:
    problem = only_problem(BASE.replace(insert_after, insert_after + line_text + "\n"))
    assert (problem.line, problem.field) == (line, field)
    assert problem.message.startswith(f"unknown field '{field.rsplit('.', 1)[-1]}'")
    assert suggestion in problem.message


def test_unknown_nested_field_lists_the_allowed_ones() -> None:
    text = BASE.replace("acceptance:\n", "constraints:\n  pathz: [src/**]\nacceptance:\n")
    problem = only_problem(text)
    assert (problem.line, problem.field) == (6, "constraints.pathz")
    assert problem.message == (
        "unknown field 'pathz'; did you mean 'paths'? (expected one of paths, forbid, max_changed_lines, tech)"
    )


def test_unknown_field_in_http_check_and_preview() -> None:
    text = BASE.replace("    run: pytest -q\n", "    http:\n      path: /\n      statu: 201\npreview:\n  strat: x\n")
    assert [(p.line, p.field, p.message) for p in problems_of(text)] == [
        (
            9,
            "acceptance.0.http.statu",
            "unknown field 'statu'; did you mean 'status'? "
            "(expected one of method, path, status, body_contains, body, headers)",
        ),
        (
            11,
            "preview.strat",
            "unknown field 'strat'; did you mean 'start'? "
            "(expected one of start, ready, ready_timeout, manifests, image, ci_check, service, port)",
        ),
    ]


def test_body_is_not_a_front_matter_field() -> None:
    problem = only_problem(BASE.replace("team: platform\n", "team: platform\nbody: hi\n"))
    assert (problem.line, problem.field) == (5, "body")
    assert "the body is the Markdown after the front matter" in problem.message


@pytest.mark.parametrize(
    ("line_text", "field", "message"),
    [
        ("title: 2024", "title", "title must be text, not 2024 (a number); put it in quotes if you meant text"),
        (
            "title: 2024-05-01",
            "title",
            "title must be text, not 2024-05-01 (a date); put it in quotes if you meant text",
        ),
        ("title:", "title", "title is empty; give it a value (text)"),
        (
            "kind: [feature]",
            "kind",
            "unknown kind a list; expected one of feature, bugfix, chore, refactor, dependency, docs",
        ),
        ("constraints: [src]", "constraints", "constraints must be a mapping (key: value lines), not a list"),
        ("preview: yes", "preview", "preview must be a mapping (key: value lines), not true (a boolean)"),
        ("spec: 2", "spec", "spec 2 (a number) is not a spec language version; expected 1 (write 'spec: 1')"),
    ],
)
def test_wrong_top_level_types(line_text: str, field: str, message: str) -> None:
    text = (
        BASE.replace("spec: 1\n", "spec: 1\n" + line_text + "\n")
        if field != "spec"
        else BASE.replace("spec: 1", line_text)
    )
    problem = only_problem(text)
    assert (problem.line, problem.field, problem.message) == (2 if field == "spec" else 3, field, message)


def test_spec_true_is_not_version_one() -> None:
    problem = only_problem(BASE.replace("spec: 1", "spec: true"))
    assert (problem.line, problem.field) == (2, "spec")


@pytest.mark.parametrize(
    ("criterion_line", "field", "message"),
    [
        ("timeout: true", "timeout", "timeout must be a number, not true (a boolean)"),
        ("timeout: '30'", "timeout", "timeout must be a number, not '30'"),
        ("timeout: 0", "timeout", "timeout must be greater than 0, not 0 (a number)"),
        ("timeout: 90000", "timeout", "timeout must be at most 86400, not 90000 (a number)"),
        ("key: maybe", "key", "key must be true or false, not 'maybe'"),
        ("weight: -1", "weight", "weight must be at least 0, not -1 (a number)"),
        ("weight: .nan", "weight", "weight must be a finite number"),
    ],
)
def test_wrong_criterion_values(criterion_line: str, field: str, message: str) -> None:
    problem = only_problem(BASE.replace("    run: pytest -q\n", "    run: pytest -q\n    " + criterion_line + "\n"))
    assert (problem.line, problem.field) == (8, f"acceptance.0.{field}")
    assert problem.message.startswith(message)


def test_bad_criterion_id() -> None:
    problem = only_problem(BASE.replace("  - id: unit\n    run: pytest -q\n", "  - run: pytest -q\n    id: -bad\n"))
    assert (problem.line, problem.field) == (7, "acceptance.0.id")
    assert problem.message.startswith("id '-bad' is not a valid criterion id")


@pytest.mark.parametrize(
    ("constraints", "line", "field", "message"),
    [
        ("  max_changed_lines: lots", 6, "constraints.max_changed_lines", "max_changed_lines must be a whole number"),
        ("  max_changed_lines: 2.5", 6, "constraints.max_changed_lines", "max_changed_lines must be a whole number"),
        ("  max_changed_lines: 0", 6, "constraints.max_changed_lines", "max_changed_lines must be greater than 0"),
        ("  tech: use stdlib", 6, "constraints.tech", "tech must be a list (one '- item' per line), not 'use stdlib'"),
        ("  tech: [1.5]", 6, "constraints.tech.0", "tech must be text, not 1.5 (a number)"),
        ("  paths: [3]", 6, "constraints.paths.0", "paths must be text, not 3 (a number)"),
    ],
)
def test_wrong_constraint_types(constraints: str, line: int, field: str, message: str) -> None:
    problem = only_problem(BASE.replace("acceptance:\n", "constraints:\n" + constraints + "\nacceptance:\n"))
    assert (problem.line, problem.field) == (line, field)
    assert problem.message.startswith(message)


def test_criterion_that_is_not_a_mapping() -> None:
    problem = only_problem(BASE.replace("    run: pytest -q\n", "    run: pytest -q\n  - just run the tests\n"))
    assert (problem.line, problem.field) == (8, "acceptance.1")
    assert problem.message == (
        "each criterion must be a mapping with an id and one of http, run, judge, not 'just run the tests'"
    )


def test_http_check_errors() -> None:
    text = """\
---
spec: 1
title: T
service: s
team: t
acceptance:
  - id: probe
    http:
      method: FETCH
      status: 700
      headers:
        X-Count: 5
preview:
  start: python -m app --port {port}
---
"""
    assert [(p.line, p.field, p.message) for p in problems_of(text)] == [
        (8, "acceptance.0.http.path", "path is missing: the request path to probe, starting with '/'"),
        (
            9,
            "acceptance.0.http.method",
            "unknown HTTP method 'FETCH'; expected one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
        ),
        (10, "acceptance.0.http.status", "status must be at most 599, not 700 (a number)"),
        (
            12,
            "acceptance.0.http.headers.X-Count",
            "X-Count must be text, not 5 (a number); put it in quotes if you meant text",
        ),
    ]


def test_http_path_must_start_with_slash() -> None:
    text = BASE.replace("    run: pytest -q\n", "    http: {path: greet}\npreview: {start: 'x {port}'}\n")
    problem = only_problem(text)
    assert (problem.line, problem.field) == (7, "acceptance.0.http.path")
    assert problem.message == "path 'greet' must start with '/'"


@pytest.mark.parametrize(
    ("drop", "field", "message"),
    [
        ("service: greeter\n", "service", "service is missing: name the service this change is for"),
        ("team: platform\n", "team", "team is missing: name the team whose budget pays for this change"),
        ("spec: 1\n", "spec", "spec is missing: add 'spec: 1'"),
    ],
)
def test_missing_required_top_level_field_points_at_front_matter(drop: str, field: str, message: str) -> None:
    problem = only_problem(BASE.replace(drop, ""))
    assert (problem.line, problem.field) == (1, field)
    assert problem.message.startswith(message)


def test_missing_acceptance_and_missing_nested_field() -> None:
    text = "\n---\nspec: 1\nservice: s\nteam: t\n---\n# T\n"
    problem = only_problem(text)
    assert (problem.line, problem.field) == (2, "acceptance")
    text = BASE.replace("  - id: unit\n    run: pytest -q\n", "  - run: pytest -q\n")
    problem = only_problem(text)
    assert (problem.line, problem.field) == (6, "acceptance.0.id")
    assert problem.message.startswith("id is missing")


@pytest.mark.parametrize("name", ["Greeter", "my service", "-greeter", "greeter_2", "'' "])
def test_bad_service_name(name: str) -> None:
    problem = only_problem(BASE.replace("service: greeter", f"service: {name}"))
    assert (problem.line, problem.field) == (3, "service")


def test_bad_service_name_message() -> None:
    problem = only_problem(BASE.replace("service: greeter", "service: My Service"))
    assert problem.message == (
        "service 'My Service' is not a service name: use lowercase letters, digits and '-', "
        "starting with a letter or digit"
    )


def test_missing_title_without_heading() -> None:
    text = BASE.replace("# Greet by name\n", "No heading here.\n")
    problem = only_problem(text)
    assert (problem.line, problem.field) == (1, "title")
    assert "start the body with a '# Heading'" in problem.message


def test_empty_title_is_not_replaced_by_the_heading() -> None:
    problem = only_problem(BASE.replace("spec: 1\n", "spec: 1\ntitle: ''\n"))
    assert (problem.line, problem.field, problem.message) == (3, "title", "title must not be empty")


def test_http_criterion_without_preview_points_at_the_criterion() -> None:
    text = BASE.replace("    run: pytest -q\n", "    run: pytest -q\n  - id: probe\n    http:\n      path: /greet\n")
    problem = only_problem(text)
    assert (problem.line, problem.field) == (9, "acceptance.1.http")
    assert problem.message == "http criteria need a preview: set preview.start (or preview.manifests)"


def test_preview_without_start_or_manifests_points_at_preview() -> None:
    text = BASE.replace("    run: pytest -q\n", "    http: {path: /}\npreview:\n  ready: /health\n")
    problem = only_problem(text)
    assert (problem.line, problem.field) == (8, "preview")


def test_preview_start_without_port() -> None:
    text = BASE.replace("acceptance:\n", "preview:\n  ready: /health\n  start: python -m greeter\nacceptance:\n")
    problem = only_problem(text)
    assert (problem.line, problem.field) == (7, "preview.start")
    assert "{port}" in problem.message


def test_all_problems_are_reported_in_line_order() -> None:
    text = """\
---
spec: 1
service: Greeter
team: 7
kind: featur
acceptance:
  - id: a
    run: x
    judge: y
---
"""
    assert located(text) == [(1, "title"), (3, "service"), (4, "team"), (5, "kind"), (7, "acceptance.0")]


# ----------------------------------------------------------------------------------------------
# YAML-level problems


def test_duplicate_key_names_key_and_both_lines() -> None:
    problem = only_problem(BASE.replace("team: platform\n", "team: platform\nteam: web\n"))
    assert (problem.line, problem.field) == (5, "team")
    assert problem.message == "duplicate key 'team' (first on line 4); keep only one"


def test_duplicate_nested_key() -> None:
    problem = only_problem(BASE.replace("    run: pytest -q\n", "    run: pytest -q\n    run: ruff\n"))
    assert (problem.line, problem.field) == (8, "acceptance.0.run")


@pytest.mark.parametrize(
    "value", ["!!python/object/apply:os.system ['true']", "!!python/name:os.system", "!!binary aGk=", "!custom x"]
)
def test_unsafe_or_exotic_tags_are_refused(value: str) -> None:
    problem = only_problem(BASE.replace("team: platform", f"team: {value}"))
    assert (problem.line, problem.field) == (4, "team")
    assert "is not allowed in a spec" in problem.message


def test_non_text_keys() -> None:
    assert located(BASE.replace("team: platform\n", "team: platform\nyes: 1\n? [a]\n: 2\n")) == [
        (5, "yes"),
        (6, "<spec>"),
    ]


@pytest.mark.parametrize(
    ("front", "message"),
    [
        ("- spec: 1\n", "the front matter must be a mapping of fields (key: value lines), not a list"),
        ("42\n", "the front matter must be a mapping of fields (key: value lines), not 42 (a number)"),
        ("just words\n", "the front matter must be a mapping of fields (key: value lines), not 'just words'"),
        ("", "the front matter is empty"),
        ("# only a comment\n", "the front matter is empty"),
        ("~\n", "the front matter is empty"),
    ],
)
def test_front_matter_that_is_not_a_mapping(front: str, message: str) -> None:
    problem = only_problem("---\n" + front + "---\n# T\n")
    assert (problem.line, problem.field) == (1, "<spec>")
    assert problem.message.startswith(message)


def test_missing_front_matter() -> None:
    problem = only_problem("# Greet by name\n\nspec: 1\n")
    assert (problem.line, problem.field) == (1, "<spec>")
    assert problem.message.startswith("no front matter")


def test_unterminated_front_matter() -> None:
    problem = only_problem("\n---\nspec: 1\nservice: s\n")
    assert (problem.line, problem.field) == (2, "<spec>")
    assert "never closed" in problem.message


def test_huge_integer_and_impossible_date() -> None:
    text = BASE.replace("team: platform\n", "team: platform\nkind: " + "9" * 5000 + "\ntitle: 2024-02-30\n")
    assert [(p.line, p.field) for p in problems_of(text)] == [(5, "kind"), (6, "title")]


def test_alias_bomb_is_refused_quickly() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]\n" for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
    )
    problem = only_problem("---\n" + bomb + "---\n")
    assert (problem.line, problem.field) == (1, "<spec>")
    assert "anchors and aliases" in problem.message


def test_self_referencing_alias_is_refused() -> None:
    problem = only_problem("---\nspec: &a [*a]\n---\n")
    assert problem.field == "<spec>"


def test_deep_nesting_is_a_problem_not_a_crash() -> None:
    problem = only_problem("---\nspec: " + "[" * 5000 + "\n---\n")
    assert problem.field == "<spec>"


def test_unprintable_character_is_located() -> None:
    problem = only_problem("---\nspec: 1\nteam: a\x00b\n---\n")
    assert (problem.line, problem.field) == (3, "<spec>")
    assert "U+0000" in problem.message


def test_non_text_input() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(b"---\n---\n")  # type: ignore[arg-type]
    assert caught.value.problems[0].message == "a spec must be text, not bytes"


# ----------------------------------------------------------------------------------------------
# GitHub issue bodies


ISSUE = f"""\
Visitors should be greeted by name.

```spec2ship
{MINIMAL_FIELDS}\
```

More context after the block.
"""


def test_issue_fence_anywhere_with_issue_title() -> None:
    spec = parse_issue_body(ISSUE, "Greet by name", "acme/greeter#12")
    assert spec.title == "Greet by name"
    assert spec.body == "Visitors should be greeted by name.\n\nMore context after the block."
    assert spec.acceptance[0].run == "pytest -q"


def test_issue_fence_title_field_wins_and_heading_is_last_resort() -> None:
    with_title = ISSUE.replace("spec: 1\n", "spec: 1\ntitle: From the block\n")
    assert parse_issue_body(with_title, "Issue title", "i").title == "From the block"
    with_heading = "# From the heading\n\n" + ISSUE
    assert parse_issue_body(with_heading, None, "i").title == "From the heading"
    assert parse_issue_body(with_heading, "  ", "i").title == "From the heading"


def test_issue_without_any_title() -> None:
    with pytest.raises(SpecError) as caught:
        parse_issue_body(ISSUE, None, "acme/greeter#12")
    [problem] = caught.value.problems
    assert (problem.source, problem.line, problem.field) == ("acme/greeter#12", 3, "title")


def test_issue_fence_errors_count_lines_from_the_top_of_the_issue() -> None:
    text = ISSUE.replace("team: platform", "team: platform\nkind: featur").replace("\n", "\r\n")
    with pytest.raises(SpecError) as caught:
        parse_issue_body(text, "T", "acme/greeter#12")
    [problem] = caught.value.problems
    assert str(problem).startswith("acme/greeter#12:7: kind: unknown kind 'featur'; expected one of feature, bugfix")


@pytest.mark.parametrize(
    ("opening", "closing"),
    [("````spec2ship", "````"), ("~~~ spec2ship ", "~~~~"), ("  ```spec2ship", "  ```")],
)
def test_issue_fence_variants(opening: str, closing: str) -> None:
    text = ISSUE.replace("```spec2ship", opening).replace("```\n", closing + "\n")
    if opening.startswith("  "):
        text = text.replace("\nspec: 1", "\n  spec: 1")
    assert parse_issue_body(text, "T", "i").service == "greeter"


def test_issue_front_matter() -> None:
    spec = parse_issue_body(BASE, "Issue title", "i")
    assert spec.title == "Issue title"  # the issue's title comes before the body's heading
    assert spec.body == "# Greet by name\n\nSay hello."


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("Just prose, no spec.\n", 1, "no spec found"),
        ("````markdown\n```spec2ship\nspec: 1\n```\n````\n", 1, "no spec found"),
        ("Text\n```spec2ship\nspec: 1\n", 2, "never closed"),
        (ISSUE + "\n```spec2ship\nspec: 1\n```\n", 14, "a second ```spec2ship block (the first is on line 3)"),
    ],
)
def test_issue_without_a_usable_block(body: str, line: int, words: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_issue_body(body, "T", "i")
    [problem] = caught.value.problems
    assert (problem.line, problem.field) == (line, "<spec>")
    assert words in problem.message


def test_issue_fence_yaml_error_line() -> None:
    text = ISSUE.replace("team: platform", "team: [platform")
    with pytest.raises(SpecError) as caught:
        parse_issue_body(text, "T", "i")
    [problem] = caught.value.problems
    assert problem.line == 7  # where PyYAML notices; the message names the line the '[' opened on
    assert problem.message.endswith("(while parsing a flow sequence on line 6)")
