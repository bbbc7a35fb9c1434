"""The spec's preview section for the Kubernetes (vCluster) backend: image with {sha}, the CI check that
builds it, manifests, Service and port; each mistake is reported at its own line."""

from __future__ import annotations

import jsonschema
import pytest
from minimal_spec import MINIMAL_FIELDS

from specs.models import image_for
from specs.parser import SpecError, parse_spec
from specs.schema import spec_json_schema


def spec_with(preview: str) -> str:
    return f"---\n{MINIMAL_FIELDS}preview:\n{preview}---\n# Items\n"


def problems(preview: str) -> list[tuple[int, str, str]]:
    with pytest.raises(SpecError) as raised:
        parse_spec(spec_with(preview))
    return [(p.line, p.field, p.message) for p in raised.value.problems]


def test_kubernetes_preview_fields_parse() -> None:
    spec = parse_spec(spec_with(
        "  manifests: deploy/preview\n  image: ghcr.io/acme/inventory:pr-{sha}\n  ci_check: build-image\n"
        "  service: inventory-api\n  port: 8080\n"
    ))
    preview = spec.preview
    assert preview is not None
    assert (preview.manifests, preview.ci_check, preview.service, preview.port) == (
        "deploy/preview", "build-image", "inventory-api", 8080)
    assert image_for(preview.image or "", "abc1234") == "ghcr.io/acme/inventory:pr-abc1234"


@pytest.mark.parametrize(("preview", "expected"), [
    ("  manifests: deploy\n  image: ghcr.io/acme/inventory:latest\n",
     (10, "preview.image", "preview.image 'ghcr.io/acme/inventory:latest' must contain '{sha}' in its tag, as in "
                          "ghcr.io/acme/inventory:{sha}, so every head commit runs its own image")),
    ("  manifests: deploy\n  image: ghcr.io/{sha}/inventory:1\n",
     (10, "preview.image", "preview.image 'ghcr.io/{sha}/inventory:1': put '{sha}' in the tag (after the last ':'), "
                          "not in the path")),
    ("  manifests: deploy\n  image: GHCR.io/Acme:{sha}\n",
     (10, "preview.image", "preview.image 'GHCR.io/Acme:{sha}' is not an image reference: write registry/path:tag in "
                          "lowercase, as in ghcr.io/acme/inventory:{sha}")),
    ("  manifests: deploy\n  ci_check: build\n",
     (10, "preview.ci_check", "preview.ci_check names the check that builds preview.image; set preview.image too")),
    ("  image: ghcr.io/acme/inventory:{sha}\n",
     (9, "preview.image", "preview.image needs preview.manifests: the manifests say how the image runs")),
    ("  manifests: ../elsewhere\n",
     (9, "preview.manifests", "preview.manifests '../elsewhere' must not contain '..'; it names a folder inside the "
                              "repository")),
    ("  manifests: deploy\n  port: 70000\n", (10, "preview.port", "port must be at most 65535, not 70000 (a number)")),
])
def test_kubernetes_preview_mistakes_point_at_their_field(preview: str, expected: tuple[int, str, str]) -> None:
    assert problems(preview) == [expected]


def test_json_schema_describes_the_kubernetes_preview_fields() -> None:
    schema = spec_json_schema()
    fields = schema["$defs"]["PreviewConfig"]["properties"]
    assert {"image", "ci_check", "manifests", "service", "port"} <= set(fields)
    validator = jsonschema.Draft202012Validator(schema)
    base = {"spec": 1, "service": "inventory", "team": "t", "acceptance": [{"id": "a", "run": "true"}]}
    good = {**base, "preview": {"manifests": "deploy", "image": "ghcr.io/acme/inventory:{sha}"}}
    assert list(validator.iter_errors(good)) == []
    bad = {**base, "preview": {"manifests": "deploy", "image": "ghcr.io/acme/inventory:latest"}}
    assert list(validator.iter_errors(bad))
