"""Options every command shares, so they mean the same thing everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from activities.config import data_dir

DataDirOpt = Annotated[Path | None, typer.Option(
    "--data-dir", help="The state folder: Temporal's database, workspaces, usage records "
                       "(default: $SPEC2SHIP_DATA_DIR, else ./.spec2ship).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def state_folder(option: Path | None) -> Path:
    """The folder `--data-dir` names, or SPEC2SHIP_DATA_DIR's, or ./.spec2ship: one rule for every command."""
    return option.expanduser().resolve() if option is not None else data_dir()
