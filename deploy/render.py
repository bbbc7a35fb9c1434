"""Render the Helm chart offline, with Helm's own Go code and no `helm` binary.

    python -m deploy.render deploy/helm/spec2ship --values deploy/helm/spec2ship/ci/gpu-keda-values.yaml

prints the manifests `helm template` would print. helm-python-sdk binds Helm's Go SDK through a shared
library, so values are checked against the chart's values.schema.json exactly as `helm install` checks
them, and a mistyped value fails here with the field named. The tests use `render` and `lint` directly.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

RELEASE = "spec2ship"
NAMESPACE = "spec2ship"


class RenderError(Exception):
    """The chart did not render: schema violations (with the field named) or a template error."""


def load_values(files: Sequence[Path]) -> dict[str, Any]:
    """Later files override earlier ones, key by key, like repeated `helm --values`."""
    merged: dict[str, Any] = {}
    for file in files:
        loaded = yaml.safe_load(file.read_text()) or {}
        if not isinstance(loaded, dict):
            raise RenderError(f"{file}: a values file must be a mapping at the top level")
        merged = _merge(merged, loaded)
    return merged


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def render(chart: Path, values: dict[str, Any] | None = None, *, release: str = RELEASE,
           namespace: str = NAMESPACE) -> dict[str, str]:
    """Template file name -> rendered text, as an install would render it (hooks included)."""
    import helm_python as helm

    try:
        with helm.Chart.load(str(chart)) as loaded:
            return loaded.render(values or {}, name=release, namespace=namespace, is_install=True)
    except helm.HelmError as error:
        raise RenderError(str(error).strip()) from error


def objects(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object in the rendered templates, in template order (NOTES.txt is not one)."""
    found: list[dict[str, Any]] = []
    for name in sorted(rendered):
        if not name.endswith((".yaml", ".yml")):
            continue
        found.extend(doc for doc in yaml.safe_load_all(rendered[name]) if doc)
    return found


def lint(chart: Path, values: dict[str, Any] | None = None) -> list[str]:
    """Helm's lint in strict mode: the findings that are warnings or errors (info lines are dropped)."""
    import helm_python as helm

    report = helm.lint(str(chart), values or {}, strict=True, namespace=NAMESPACE)
    return [f"{message['path']}: {message['error'].strip()}" for message in report["messages"]
            if message["severity"] >= 2]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.render", description=__doc__.split("\n\n")[0])
    parser.add_argument("chart", type=Path, help="the chart's folder, e.g. deploy/helm/spec2ship")
    parser.add_argument("--values", "-f", type=Path, action="append", default=[], help="a values file; repeatable")
    parser.add_argument("--release", default=RELEASE, help="release name")
    parser.add_argument("--namespace", default=NAMESPACE, help="release namespace")
    args = parser.parse_args(argv)
    try:
        rendered = render(args.chart, load_values(args.values), release=args.release, namespace=args.namespace)
    except (RenderError, OSError, yaml.YAMLError) as error:
        print(f"render: {error}", file=sys.stderr)
        return 1
    for name in sorted(rendered):
        if name.endswith((".yaml", ".yml")) and rendered[name].strip():
            print(f"---\n# Source: {name}\n{rendered[name].strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
