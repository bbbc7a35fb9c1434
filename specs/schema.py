"""JSON Schema of a spec's front matter, for editors (completion, inline errors) and other tools.

Generated from the pydantic models so it cannot drift from what the parser accepts. A few rules
cannot be expressed in JSON Schema (unique criterion ids, glob shapes, preview needed by http
criteria); the parser checks those and this schema describes them in prose.
"""

from __future__ import annotations

from typing import Any, get_args

from specs.models import HttpMethod, Spec

SCHEMA_DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://spec2ship.dev/schemas/spec/v1.json"

__all__ = ["SCHEMA_DRAFT", "SCHEMA_ID", "spec_json_schema"]


def spec_json_schema() -> dict[str, Any]:
    """The Draft 2020-12 schema of the front matter (version 1); `body` is left out, being the Markdown."""
    generated = Spec.model_json_schema(mode="validation")
    properties: dict[str, Any] = dict(generated["properties"])
    properties.pop("body", None)
    properties["title"] = {
        **properties["title"],
        "description": "One line. Optional here: defaults to the body's first '# Heading' (or the issue title).",
    }
    required = [name for name in generated.get("required", []) if name not in ("body", "title")]
    defs: dict[str, Any] = generated.get("$defs", {})
    _accept_lowercase_methods(defs)
    _image_names_the_sha(defs)
    return {
        "$schema": SCHEMA_DRAFT,
        "$id": SCHEMA_ID,
        "title": "spec2ship spec, version 1 (front matter)",
        "description": (
            "The YAML front matter of a spec2ship spec: what one change must do, how it is checked and what "
            "it may touch. The parser also requires unique criterion ids, repository-relative globs with '**' "
            "as a whole segment, a preview (start or manifests) when any criterion uses http, preview.image "
            "with '{sha}' in its tag and preview.manifests beside it, and preview.image beside preview.ci_check."
        ),
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
        "$defs": defs,
    }


def _accept_lowercase_methods(defs: dict[str, Any]) -> None:
    """The parser upper-cases `method` before checking it; the schema must not reject `get`."""
    http = defs.get("HttpCheck", {}).get("properties", {})
    if "method" in http:
        methods = list(get_args(HttpMethod))
        http["method"] = {**http["method"], "enum": methods + [method.lower() for method in methods]}


def _image_names_the_sha(defs: dict[str, Any]) -> None:
    """Let editors flag a preview.image without '{sha}' in its tag (the parser says why in full)."""
    image = defs.get("PreviewConfig", {}).get("properties", {}).get("image")
    if image is None:
        return
    for option in image.get("anyOf", []):
        if option.get("type") == "string":
            option["pattern"] = r":[^/]*\{sha\}[^/]*$"
