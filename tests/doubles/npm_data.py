"""Published npm data packages (GitHub's OpenAPI description, webhook examples, recorded fixtures) for
the contract tests, fetched once with `npm pack` into a cache outside the repository and reused.

The cache is `$SPEC2SHIP_NPM_CACHE`, else `~/.cache/spec2ship-npm/`. A tarball already there is used
as is (no network); each package is unpacked once, into a folder named after it and its version, via
a temporary folder and a rename so parallel test runs never see half an extraction.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

ENV_CACHE = "SPEC2SHIP_NPM_CACHE"
NPM_TIMEOUT_S = 300


class NpmDataUnavailable(RuntimeError):
    """The package is neither cached nor fetchable (no npm, no registry); the message says how to get it."""


def cache_dir() -> Path:
    configured = os.environ.get(ENV_CACHE)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "spec2ship-npm"


def tarball_name(name: str, version: str) -> str:
    """npm's own name for the tarball of `name@version` (`@scope/pkg` -> `scope-pkg-version.tgz`)."""
    return f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"


def npm_package_dir(name: str, version: str) -> Path:
    """The unpacked `package/` folder of `name@version`, fetching and unpacking it on first use."""
    cache = cache_dir()
    target = cache / f"{name.lstrip('@').replace('/', '-')}-{version}"
    package = target / "package"
    if package.is_dir():
        return package
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / tarball_name(name, version)
    if not tarball.is_file():
        _pack(name, version, cache)
    scratch = Path(tempfile.mkdtemp(dir=cache, prefix=".unpack-"))
    try:
        with tarfile.open(tarball) as archive:
            archive.extractall(scratch, filter="data")
        scratch.rename(target)
    except OSError:
        if not package.is_dir():  # not a lost race with another test run: a real failure
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not package.is_dir():
        raise NpmDataUnavailable(f"{tarball} holds no package/ folder; delete it and run the tests again")
    return package


def _pack(name: str, version: str, cache: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise NpmDataUnavailable(
            f"{name}@{version} is not in {cache} and npm is not installed: install Node.js/npm, or put "
            f"{tarball_name(name, version)} there"
        )
    done = subprocess.run(
        [npm, "pack", f"{name}@{version}", "--pack-destination", str(cache), "--silent"],
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0 or not (cache / tarball_name(name, version)).is_file():
        raise NpmDataUnavailable(
            f"`npm pack {name}@{version}` failed (exit {done.returncode}): {done.stderr.strip()[-500:]}"
        )
