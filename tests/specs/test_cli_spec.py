"""`spec2ship spec validate|schema`: exit codes 0/1/2 and the `FILE:LINE: field: message` output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from minimal_spec import MINIMAL_SPEC
from typer.testing import CliRunner

from workers.cli_spec import spec_app

EXAMPLES = Path(__file__).resolve().parents[2] / "specs" / "examples"

VALID = MINIMAL_SPEC


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_files_print_ok_and_exit_0(runner: CliRunner, tmp_path: Path) -> None:
    first = write(tmp_path, "a.md", VALID)
    second = write(tmp_path, "b.md", VALID.replace("greeter", "billing"))
    result = runner.invoke(spec_app, ["validate", str(first), str(second)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"ok {first}", f"ok {second}"]


def test_invalid_file_prints_one_line_per_problem_and_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    good = write(tmp_path, "good.md", VALID)
    bad = write(tmp_path, "bad.md", VALID.replace("team: platform\n", "team: platform\nkind: featur\nautonomy: L9\n"))
    result = runner.invoke(spec_app, ["validate", str(bad), str(good)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{bad}:5: kind: unknown kind 'featur'; expected one of feature, bugfix, chore, refactor, dependency, docs",
        f"{bad}:6: autonomy: autonomy 'L9' is not a level; expected L1..L5",
        f"ok {good}",
    ]


def test_yaml_syntax_error_is_a_problem_not_a_traceback(runner: CliRunner, tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.md", "---\nspec: [1\n---\n")
    result = runner.invoke(spec_app, ["validate", str(bad)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stdout.startswith(f"{bad}:2: <spec>: YAML syntax error: ")


def test_not_utf8_is_a_problem(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "latin1.md"
    bad.write_bytes(VALID.replace("platform", "équipe").encode("latin-1"))
    result = runner.invoke(spec_app, ["validate", str(bad)])
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{bad}:4: <spec>: not UTF-8 text")


def test_missing_file_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    good = write(tmp_path, "good.md", VALID)
    missing = tmp_path / "nope.md"
    result = runner.invoke(spec_app, ["validate", str(good), str(missing)])
    assert result.exit_code == 2
    assert result.stderr == f"error: {missing}: no such file\n"
    assert result.stdout == ""  # nothing is validated when the command line is wrong


def test_directory_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(spec_app, ["validate", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr == f"error: {tmp_path}: is a folder, not a spec file\n"


def test_no_files_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(spec_app, ["validate"])
    assert result.exit_code == 2
    assert "Missing argument 'FILE'" in result.output


def test_examples_validate_through_the_cli(runner: CliRunner) -> None:
    examples = sorted(str(path) for path in EXAMPLES.glob("*.md"))
    result = runner.invoke(spec_app, ["validate", *examples])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"ok {example}" for example in examples]


def test_schema_prints_indented_json_schema(runner: CliRunner) -> None:
    result = runner.invoke(spec_app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "body" not in schema["properties"]
    assert result.stdout.startswith('{\n  "$schema"')
