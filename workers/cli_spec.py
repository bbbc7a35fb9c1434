"""`spec2ship spec ...`: check specs before they are filed, and hand editors the JSON Schema.

Output is one line per problem in the `FILE:LINE: field: message` form that editors and CI
annotations already understand. Exit codes: 0 all valid, 1 some spec is invalid, 2 usage errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from specs.parser import SpecError, SpecProblem, parse_spec
from specs.schema import spec_json_schema
from workers.inputs import InputFileError, check_input_file, read_text_input

__all__ = ["spec_app"]

EXIT_INVALID = 1
EXIT_USAGE = 2

spec_app = typer.Typer(
    name="spec",
    help="Validate spec files and print the spec JSON Schema.",
    no_args_is_help=True,
    add_completion=False,
)


def _unreadable(path: Path) -> str | None:
    """Why a FILE argument cannot be read at all (a usage error, not an invalid spec), if it cannot."""
    try:
        check_input_file(path, "spec")
    except InputFileError as error:
        return str(error)
    return None


def _read(path: Path) -> str | SpecProblem:
    """The file's text, or a located problem when it is not UTF-8 (a spec can only be Markdown text)."""
    try:
        return read_text_input(path, "spec")
    except InputFileError as error:
        where, _, message = str(error).partition(": ")
        line = int(where.rsplit(":", 1)[1]) if where.startswith(f"{path}:") else 1
        return SpecProblem(source=str(path), line=line, field="<spec>", message=message)


@spec_app.command("validate")
def validate(
    files: Annotated[list[Path], typer.Argument(metavar="FILE", help="Spec files (Markdown with front matter).")],
) -> None:
    """Check spec files; print `ok FILE` for each valid one and `FILE:LINE: field: message` per problem."""
    unreadable = [reason for reason in map(_unreadable, files) if reason is not None]
    if unreadable:
        for reason in unreadable:
            typer.echo(f"error: {reason}", err=True)
        raise typer.Exit(EXIT_USAGE)
    invalid = False
    for path in files:
        try:
            text = _read(path)
        except OSError as exc:
            typer.echo(f"error: {path}: {exc.strerror or exc}", err=True)
            raise typer.Exit(EXIT_USAGE) from None
        try:
            if isinstance(text, SpecProblem):
                raise SpecError([text])
            parse_spec(text, source=str(path))
        except SpecError as exc:
            invalid = True
            for problem in exc.problems:
                typer.echo(str(problem))
        else:
            typer.echo(f"ok {path}")
    if invalid:
        raise typer.Exit(EXIT_INVALID)


@spec_app.command("schema")
def schema() -> None:
    """Print the JSON Schema (Draft 2020-12) of a spec's front matter, e.g. for editor completion."""
    typer.echo(json.dumps(spec_json_schema(), indent=2))
