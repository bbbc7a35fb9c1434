"""`spec2ship preview render`: what the vCluster preview backend would create for a spec, as YAML.

A dry run for platform engineers and spec authors: the namespace, the GitOps controller's objects (Argo
CD or Flux) with the vCluster chart's values, and the repository's manifests with the PR's image, in the
order the backend applies them. No cluster is contacted; the manifests are read from the working tree
at --repo. Exit codes: 0 rendered, 1 bad input (one line on stderr saying what), 2 usage.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, cast

import typer

from activities.config import VClusterSettings
from activities.preview.vcluster.manifests import ManifestError
from activities.preview.vcluster.render import render_preview
from specs.parser import SpecError, parse_spec
from workers.inputs import InputFileError, read_text_input

__all__ = ["preview_app"]

EXIT_BAD_INPUT = 1
EXIT_USAGE = 2
_SHA = re.compile(r"^[0-9a-f]{7,64}$")

preview_app = typer.Typer(
    name="preview",
    help="Kubernetes (vCluster) previews: see what would be created, without a cluster.",
    no_args_is_help=True,
    add_completion=False,
)


CONTROLLERS = ("argocd", "flux")


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@preview_app.command("render")
def render(
    spec_file: Annotated[Path, typer.Argument(metavar="SPEC_FILE", help="The spec (Markdown with front matter).")],
    repo: Annotated[Path, typer.Option("--repo", help="The service's repository (its working tree is read).")],
    controller: Annotated[str, typer.Option("--controller", help="The platform's GitOps controller: argocd or flux.")],
    pr: Annotated[int, typer.Option("--pr", help="The pull request number.")],
    sha: Annotated[str, typer.Option("--sha", help="The PR head commit (hexadecimal).")],
) -> None:
    """Print the YAML documents the vCluster backend would create for SPEC_FILE; notes go to stderr."""
    if controller not in CONTROLLERS:
        raise _fail(f"--controller {controller!r}: use argocd or flux", EXIT_USAGE)
    if pr < 1:
        raise _fail(f"--pr {pr}: a pull request number is 1 or more", EXIT_USAGE)
    try:
        text = read_text_input(spec_file, "spec")
    except InputFileError as error:
        raise _fail(str(error), EXIT_USAGE) from None
    if not repo.is_dir():
        raise _fail(f"--repo {repo}: not a folder")
    if not _SHA.match(sha):
        raise _fail(f"--sha {sha!r} is not a commit id: give 7 to 64 lowercase hexadecimal characters")
    try:
        spec = parse_spec(text, source=str(spec_file))
    except SpecError as error:
        extra = len(error.problems) - 1
        more = f" (and {extra} more; see `spec2ship spec validate`)" if extra else ""
        raise _fail(f"{error.problems[0]}{more}") from None
    try:
        settings = VClusterSettings.from_env()
    except ValueError as error:
        raise _fail(f"configuration: {error}") from None
    try:
        chosen = cast(Literal["argocd", "flux"], controller)
        plan = render_preview(spec, repo, controller=chosen, pr=pr, sha=sha, settings=settings)
    except ManifestError as error:
        raise _fail(str(error)) from None
    for note in plan.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(plan.to_yaml(), nl=False)
