"""Fixtures of the GitHub tests: the fake GitHub (held to GitHub's OpenAPI description when npm can fetch
it), a repository with an issue, and a forge talking to it through PyGithub and real git."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from doubles.github_keys import app_key_pair
from doubles.github_openapi import GitHubOpenApi, NpmUnavailable
from doubles.github_server import FakeGitHub
from github_world import APP_ID, BOT, FILES, INSTALLATION, REPO
from pydantic import SecretStr

from activities.forge.github import GitHubForge
from activities.forge.github_auth import GitHubAuth
from contracts.forge import ForgeKind, RepoRef


@pytest.fixture(scope="session")
def github_contract() -> GitHubOpenApi | None:
    """GitHub's OpenAPI description, or None when npm cannot fetch it (the contract test then skips
    with the reason; the other tests still run against the fake)."""
    try:
        return GitHubOpenApi.fetch()
    except NpmUnavailable:
        return None


@pytest.fixture
def fake(github_contract: GitHubOpenApi | None) -> Iterator[FakeGitHub]:
    """A fresh fake GitHub; whatever a test drives through it must satisfy the contract."""
    with FakeGitHub(contract=github_contract) as server:
        yield server
        assert server.contract_failures == [], "\n".join(server.contract_failures)


@pytest.fixture
def token(fake: FakeGitHub) -> str:
    value = fake.add_token(BOT)
    fake.add_repo(REPO, FILES)
    fake.add_collaborator(REPO, BOT, "write")
    return value


@pytest.fixture
def auth(fake: FakeGitHub, token: str) -> GitHubAuth:
    return GitHubAuth(api_url=fake.api_url, token=SecretStr(token))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    base = tmp_path / "work"
    base.mkdir()
    return base


@pytest.fixture
def forge(auth: GitHubAuth, workdir: Path) -> Iterator[GitHubForge]:
    with GitHubForge(RepoRef(kind=ForgeKind.github, location=REPO), auth, workdir, throttle=False) as made:
        yield made


@pytest.fixture(scope="module")
def app_key() -> tuple[str, str]:
    """(private PEM, public PEM) of a fresh RSA key, as GitHub generates for an App."""
    return app_key_pair()


@pytest.fixture
def app_env(fake: FakeGitHub, app_key: tuple[str, str], tmp_path: Path) -> dict[str, str]:
    fake.add_repo(REPO, {"README.md": "# shop\n"})
    fake.add_app(APP_ID, "spec2ship-test", app_key[1])
    fake.install_app(APP_ID, INSTALLATION, [REPO])
    key_file = tmp_path / "app.pem"
    key_file.write_text(app_key[0])
    return {
        "SPEC2SHIP_GITHUB_URL": fake.api_url,
        "SPEC2SHIP_GITHUB_APP_ID": str(APP_ID),
        "SPEC2SHIP_GITHUB_PRIVATE_KEY_FILE": str(key_file),
    }
