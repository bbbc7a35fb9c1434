"""The public contract the fake GitHub is held to: GitHub's own OpenAPI description and recorded real calls.

- `npm_package(name, version)`: `npm pack` into a cache folder outside the repository
  (`~/.cache/spec2ship-npm/<name>-<version>/package`, or `$SPEC2SHIP_NPM_CACHE`), extracted once and
  reused; never committed. Raises `NpmUnavailable` (tests skip with its message) when npm cannot fetch.
- `GitHubOpenApi`: `@octokit/openapi` `generated/api.github.com.json` loaded with openapi-core, WITHOUT
  the spec's self-validation (13 s, and it is GitHub's file, not ours); `errors(...)` validates one
  response against its operation and says what is wrong.
- `recorded_calls(scenario)`: the calls recorded against api.github.com in `@octokit/fixtures`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from jsonschema_path import SchemaPath
from openapi_core import Config, OpenAPI
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30Validator

OPENAPI_PACKAGE = ("@octokit/openapi", "23.0.2")
FIXTURES_PACKAGE = ("@octokit/fixtures", "23.1.2")
SPEC_HOST = "https://api.github.com"


class NpmUnavailable(RuntimeError):
    """The npm data cannot be had here (no npm, no registry); contract tests skip with this message."""


def npm_cache() -> Path:
    return Path(os.environ.get("SPEC2SHIP_NPM_CACHE", "~/.cache/spec2ship-npm")).expanduser()


def npm_package(name: str, version: str) -> Path:
    """The extracted `package/` folder of `name@version`, fetched with `npm pack` on first use."""
    slug = f"{name.lstrip('@').replace('/', '-')}-{version}"
    cache = npm_cache()
    folder = cache / slug / "package"
    if (folder / "package.json").is_file():
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"{slug}.tgz"
    if not tarball.is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise NpmUnavailable(f"npm is not installed: cannot fetch {name}@{version} for the GitHub contract tests")
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            result = subprocess.run(
                [npm, "pack", f"{name}@{version}", "--silent"], cwd=tmp, capture_output=True, text=True, check=False
            )
            packed = list(Path(tmp).glob("*.tgz"))
            if result.returncode != 0 or len(packed) != 1:
                raise NpmUnavailable(f"npm pack {name}@{version} failed: {result.stderr.strip()[-500:]}")
            os.replace(packed[0], tarball)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        with tarfile.open(tarball) as archive:
            archive.extractall(tmp, filter="data")
        target = cache / slug
        target.mkdir(exist_ok=True)
        try:
            os.rename(Path(tmp) / "package", folder)
        except OSError:
            if not (folder / "package.json").is_file():  # another process won the race: fine
                raise
    return folder


class GitHubOpenApi:
    """GitHub's REST description, ready to validate responses; thread-safe (the fake serves from threads)."""

    def __init__(self, spec_file: Path) -> None:
        self.spec: dict[str, Any] = json.loads(spec_file.read_text(encoding="utf-8"))
        self._api = OpenAPI.from_dict(self.spec, config=Config(spec_validator_cls=None))
        self._lock = threading.Lock()

    @classmethod
    def fetch(cls) -> GitHubOpenApi:
        return cls(npm_package(*OPENAPI_PACKAGE) / "generated" / "api.github.com.json")

    def documented_statuses(self, method: str, template: str) -> set[str]:
        operation = self.spec["paths"].get(template, {}).get(method.lower(), {})
        return set(operation.get("responses", {}))

    def errors(
        self,
        method: str,
        path: str,
        query: str,
        status: int,
        content_type: str | None,
        body: bytes,
        request_body: bytes = b"",
        undocumented_as: str | None = None,
    ) -> list[str]:
        """What is wrong with this response for this request (`path` without the API prefix); [] if valid.

        A status the operation does not document is an error, unless `undocumented_as` names a schema
        the body must then match: GitHub documents rate limits and outages once for the whole API
        (429/403/5xx with a `basic-error` body), not per operation, and the fake injects them anywhere.
        """
        request = MockRequest(
            SPEC_HOST,
            method.lower(),
            _one_segment(path),
            args=dict(parse_qsl(query)),
            data=request_body or None,
            content_type="application/json",
        )
        media = (content_type or "application/json").split(";")[0].strip()
        response = MockResponse(body, status_code=status, content_type=media)
        try:
            with self._lock:
                self._api.validate_response(request, response)
        except ResponseNotFound as exc:
            if undocumented_as is None:
                return [describe(exc)]
            try:
                value = json.loads(body or b"null")
            except ValueError:
                return [f"{status} body is not JSON: {body[:200]!r}"]
            return [
                f"{status} body vs {undocumented_as}: {message}"
                for message in self.schema_errors(undocumented_as, value)
            ]
        except Exception as exc:  # openapi-core raises one exception type per kind of mismatch
            return [describe(exc)]
        return []

    def schema_errors(self, schema_name: str, value: Any) -> list[str]:
        """Validate a value against one `components/schemas` entry (for bodies no operation documents)."""
        schema = SchemaPath.from_dict(self.spec) / "components" / "schemas" / schema_name
        with schema.resolve() as resolved:
            validator = OAS30Validator(resolved.contents, _resolver=resolved.resolver)
            return [error.message for error in validator.iter_errors(value)]


_GREEDY = re.compile(r"^(/repos/[^/]+/[^/]+/(?:contents|git/refs|git/ref)/)(.+)$")


def _one_segment(path: str) -> str:
    """GitHub takes `contents/{path}` and `git/refs/{ref}` with slashes inside the parameter, which an
    OpenAPI template cannot express; encode those slashes so the operation is found."""
    match = _GREEDY.match(path)
    return match[1] + quote(match[2], safe="") if match else path


def describe(exc: BaseException) -> str:
    """openapi-core hides the useful part (which field, which rule) in causes and `schema_errors`."""
    parts = [f"{type(exc).__name__}: {exc}"]
    cause: BaseException | None = exc
    seen = 0
    while cause is not None and seen < 5:
        for error in getattr(cause, "schema_errors", ()) or ():
            location = "/".join(str(step) for step in getattr(error, "absolute_path", ()))
            parts.append(f"  at {location or '<root>'}: {getattr(error, 'message', error)}")
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return "\n".join(parts)[:4000]


@dataclass(frozen=True)
class RecordedCall:
    """One call GitHub really answered, from `@octokit/fixtures` (normalized ids and dates)."""

    method: str
    path: str
    request_body: Any
    status: int
    response: Any
    headers: dict[str, str]


def recorded_calls(scenario: str) -> list[RecordedCall]:
    folder = npm_package(*FIXTURES_PACKAGE) / "scenarios" / "api.github.com" / scenario
    calls = json.loads((folder / "normalized-fixture.json").read_text(encoding="utf-8"))
    return [
        RecordedCall(
            method=call["method"].upper(),
            path=call["path"],
            request_body=call.get("body"),
            status=int(call["status"]),
            response=call.get("response"),
            headers={str(key).lower(): str(value) for key, value in (call.get("headers") or {}).items()},
        )
        for call in calls
    ]
